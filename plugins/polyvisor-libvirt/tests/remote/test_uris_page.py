"""docs/uris.md's remote transports: the example script runs with each documented URI, pointed at this session's
servers, and prints what the page shows.

Only the host, port and files of a documented URI change, plus what these servers need and a real host does not:
``command=`` (an ``ssh`` reading this test's known_hosts; a user's ``~/.ssh/config`` does that) and, for TLS and
TCP, ``name=`` (the listening daemon proxies to ``qemu:///system``).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from urllib.parse import quote

from servers import DIGEST_USER, SASL_PASSWORDS, SCRAM_USER, SYSTEM_NAME, ListenerDaemon, PrivateSshd, TestPKI

ROOT = Path(__file__).resolve().parents[4]
PAGE = ROOT / "docs" / "uris.md"
SCRIPT = ROOT / "docs" / "examples" / "remote_host.py"
DOC_HOST = "kvm01.example.com"


def _block(label: str) -> str:
    """The fenced block that follows the MyST target ``(label)=``."""
    lines = PAGE.read_text(encoding="utf-8").splitlines()
    start = lines.index(f"({label})=") + 2
    return "\n".join(lines[start : lines.index("```", start)])


def _run(uri: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCRIPT), uri],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **env},
        check=False,
    )


def _assert_prints_the_listing(result: subprocess.CompletedProcess[str], scheme: str) -> None:
    assert result.returncode == 0, result.stdout + result.stderr
    shown = _block("remote-example-output").splitlines()
    first, *vms = result.stdout.splitlines()
    assert first == shown[0].replace("qemu+ssh", scheme).replace(DOC_HOST, "127.0.0.1")
    vm_line = r"  \S+ [a-z]+"  # "  <name> <state>", one per VM, whichever VMs exist
    assert re.fullmatch(vm_line, shown[1])
    assert all(re.fullmatch(vm_line, line) for line in vms), vms


def _ssh_uri(label: str, sshd: PrivateSshd, **files: Path) -> str:
    uri = _block(label).replace(DOC_HOST, f"127.0.0.1:{sshd.port}")
    for documented, path in files.items():
        uri = uri.replace(documented, str(path))
    return uri


def test_the_ssh_example_lists_the_host(sshd: PrivateSshd) -> None:
    uri = _ssh_uri("remote-ssh-uri", sshd, **{"/home/ops/.ssh/id_ed25519": sshd.key})
    _assert_prints_the_listing(_run(f"{uri}&command={sshd.ssh_command}"), "qemu+ssh")


def test_the_libssh_example_lists_the_host_and_names_the_fix_for_an_unknown_key(sshd: PrivateSshd) -> None:
    files = {"/home/ops/.ssh/id_ed25519": sshd.key, "/home/ops/.ssh/known_hosts": sshd.known_hosts}
    _assert_prints_the_listing(_run(_ssh_uri("remote-libssh-uri", sshd, **files)), "qemu+libssh")

    files["/home/ops/.ssh/known_hosts"] = sshd.empty_known_hosts
    result = _run(_ssh_uri("remote-libssh-uri", sshd, **files))
    assert result.returncode == 1, result.stdout + result.stderr
    shown = _block("remote-example-unknown-key")
    for documented, path in files.items():
        shown = shown.replace(documented, str(path))
    shown = shown.replace(f"ssh-keyscan {DOC_HOST}", f"ssh-keyscan -p {sshd.port} 127.0.0.1")
    shown = shown.replace(DOC_HOST, "127.0.0.1")
    assert result.stdout.strip().split(" failed: ", 1)[1] == shown.split(" failed: ", 1)[1]


def _listener_uri(label: str, daemon: ListenerDaemon, port: int, **files: Path) -> str:
    uri = _block(label).replace(DOC_HOST, f"127.0.0.1:{port}")
    for documented, path in files.items():
        uri = uri.replace(documented, str(path))
    return f"{uri}{'&' if '?' in uri else '?'}name={quote(SYSTEM_NAME, safe='')}"


def test_the_tls_example_lists_the_host(tls_daemon: ListenerDaemon, pki: TestPKI) -> None:
    uri = _listener_uri("remote-tls-uri", tls_daemon, tls_daemon.tls_port, **{"/home/ops/pki/kvm01": pki.client})
    _assert_prints_the_listing(_run(uri), "qemu+tls")


def test_the_tls_example_with_scram_takes_the_password_from_the_environment(
    scram_daemon: ListenerDaemon, pki: TestPKI
) -> None:
    uri = _listener_uri("remote-tls-uri", scram_daemon, scram_daemon.tls_port, **{"/home/ops/pki/kvm01": pki.client})
    password = SASL_PASSWORDS[SCRAM_USER]
    result = _run(uri, LIBVIRT_USERNAME=SCRAM_USER, LIBVIRT_PASSWORD=password)
    _assert_prints_the_listing(result, "qemu+tls")
    refused = _run(uri, LIBVIRT_USERNAME=SCRAM_USER, LIBVIRT_PASSWORD=password + "-wrong")
    assert refused.returncode == 1
    assert "refused the SASL user name or password" in refused.stdout
    assert password not in refused.stdout + refused.stderr


def test_the_tcp_example_lists_the_host(tls_daemon: ListenerDaemon) -> None:
    # The documented URI names no pkipath; TCP has none. This daemon's TCP listener offers DIGEST-MD5.
    uri = _listener_uri("remote-tcp-uri", tls_daemon, tls_daemon.tcp_port)
    result = _run(uri, LIBVIRT_USERNAME=DIGEST_USER, LIBVIRT_PASSWORD=SASL_PASSWORDS[DIGEST_USER])
    _assert_prints_the_listing(result, "qemu+tcp")
