"""``polyvisor_libvirt.testing``, the kit's extras, run as the conformance session runs them (a pytest of its own)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest


def _kit(*args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "pytest", "-p", "polyvisor.testing", "-p", "polyvisor_libvirt.testing"]
    command += ["-p", "no:cacheprovider", "-q", "-rs", "--polyvisor-uri", "test:///default", *args]
    env = {key: value for key, value in os.environ.items() if not key.startswith("PYTEST_")}
    return subprocess.run(command, capture_output=True, text=True, timeout=300, env=env, check=False)


def test_a_base_volume_made_for_the_session_feeds_the_clone_cases() -> None:
    # The test driver's storage lives in the kit's process: only a base made there can be cloned.
    result = _kit("--polyvisor-libvirt-base-volume", "default-pool/kit-base.qcow2=64", "-k", "clones or missing_base")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "4 passed" in result.stdout, result.stdout
    assert "no base image" not in result.stdout


def test_without_a_base_the_clone_cases_skip_as_the_kit_says() -> None:
    result = _kit("-k", "clones")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no base image on this target (--polyvisor-base-image)" in result.stdout


@pytest.mark.parametrize("value", ["kit-base.qcow2=64", "pool/=64", "pool/a/b=64", "pool/base=0", "pool/base"])
def test_a_base_volume_needs_a_pool_a_name_and_a_size(value: str) -> None:
    result = _kit("--polyvisor-libvirt-base-volume", value, "-k", "clones")
    assert result.returncode != 0
    assert "is not POOL/NAME=SIZE_MIB" in result.stdout + result.stderr
