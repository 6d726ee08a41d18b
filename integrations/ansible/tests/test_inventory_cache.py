"""The inventory plugin's cache, through Ansible's own cache plugins (``ansible.builtin.jsonfile``): a second run
within the cache's timeout lists the VMs without asking any host, a flushed cache asks again, and a listing with a
skipped host is never cached."""

from __future__ import annotations

from pathlib import Path

import pytest

import polyvisor

from .support import Ansible, HypervHost

pytestmark = pytest.mark.loopback

PASSWORD_ENV = "PVANSIBLE_CACHE_PASSWORD"


def _source(tmp_path: Path, host: HypervHost, *, dead: bool = False) -> Path:
    config = tmp_path / "polyvisor.toml"
    config.write_text(
        f"""
[connections.hv1]
uri = "{host.psrp_uri}"
password_env = "{PASSWORD_ENV}"
options = {{ ca_path = "{host.ca_path}" }}
"""
        + ('\n[connections.dead]\nuri = "qemu+tcp://127.0.0.1:1/system"\n' if dead else ""),
        encoding="utf-8",
    )
    source = tmp_path / "cached.polyvisor.yml"
    source.write_text(
        f"""plugin: polyvisor.hypervisors.polyvisor
config: {config}
cache: true
cache_plugin: ansible.builtin.jsonfile
cache_connection: {tmp_path / "cache"}
cache_timeout: 600
keyed_groups:
  - key: polyvisor_labels.team | default('none')
    prefix: team
""",
        encoding="utf-8",
    )
    return source


def test_a_second_run_lists_from_the_cache_without_asking_the_host(
    ansible: Ansible, hyperv_host: HypervHost, names: str, tmp_path: Path
) -> None:
    with polyvisor.connect(hyperv_host.psrp_uri, password=hyperv_host.password, ca_path=hyperv_host.ca_path) as hv:
        hv.create({"name": f"{names}cached", "memory_mib": 256, "labels": {"team": "infra"}})
    source = _source(tmp_path, hyperv_host)
    right, wrong = {PASSWORD_ENV: hyperv_host.password}, {PASSWORD_ENV: "Wrong-4711"}

    listing, _run = ansible.inventory(source, env=right)
    assert f"{names}cached" in listing["team_infra"]["hosts"]
    assert list((tmp_path / "cache").iterdir()), "the jsonfile cache plugin wrote nothing"

    # With the wrong password, a run that asked the host would be refused (no host answered); from the cache it is
    # not asked, and lists the same VMs and groups.
    cached, run = ansible.inventory(source, env=wrong)
    assert cached == listing
    assert "skipped" not in run.stderr, run.stderr

    flushed = ansible.run("ansible-inventory", "-i", str(source), "--list", "--flush-cache", env=wrong)
    assert flushed.returncode != 0, flushed.output
    assert "no host answered" in " ".join(flushed.stderr.split()), flushed.stderr
    assert hyperv_host.password not in flushed.output + run.output


def test_a_listing_with_a_skipped_host_is_not_cached(
    ansible: Ansible, hyperv_host: HypervHost, names: str, tmp_path: Path
) -> None:
    source = _source(tmp_path, hyperv_host, dead=True)
    for _run in range(2):  # the dead host is asked, and warned about, every time
        _listing, result = ansible.inventory(source, env={PASSWORD_ENV: hyperv_host.password})
        assert "host dead skipped" in " ".join(result.stderr.split()), result.stderr
    cache = tmp_path / "cache"
    assert not cache.exists() or not list(cache.iterdir())
