"""Running real ansible-core against the collection: build and install it, run commands, read their output.

Everything here goes through Ansible's own programs (``ansible-galaxy``, ``ansible-inventory``,
``ansible-playbook``) in subprocesses, as a user would run them, with the collection installed from the tarball
``ansible-galaxy collection build`` makes. A missing program or component fails under ``CI=true`` and skips
elsewhere.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

from polyvisor.testing import components

COLLECTION_DIR = Path(__file__).resolve().parent.parent
ROOT = COLLECTION_DIR.parent.parent
NAMESPACE, NAME = "polyvisor", "hypervisors"
FQCN = f"{NAMESPACE}.{NAME}"
PASSWORD_ENV = "POLYVISOR_HYPERV_HOST_PASSWORD"
# Everything the tests create is named with this prefix (and a per-run part), so cleanup can find exactly it.
PREFIX = "pvansible-"
KVM_URI = "qemu:///system"
GUEST_SPEC = Path("/var/lib/libvirt/images/polyvisor-guest/x86_64/conformance-spec.json")


@dataclass(frozen=True)
class HypervHost:
    """The loopback Hyper-V host's endpoints and credentials."""

    username: str
    password: str
    https_port: int
    http_port: int
    ca_path: str

    @property
    def psrp_uri(self) -> str:
        """PSRP over HTTPS, the certificate checked against the host's test CA (passed as ``ca_path``)."""
        return f"hyperv://{self.username}@127.0.0.1:{self.https_port}/?transport=psrp"

    @property
    def winrm_uri(self) -> str:
        """The WinRM shell over plain HTTP with NTLM message encryption."""
        return f"hyperv://{self.username}@127.0.0.1:{self.http_port}/?transport=winrm&scheme=http&auth=ntlm"


def unavailable(reason: str) -> NoReturn:
    """Fail under CI=true, skip elsewhere: a missing component must not pass silently on CI."""
    components.unavailable(f"ansible integration environment incomplete: {reason}")


def program(name: str) -> str:
    """Return the path of an ansible-core program, next to this Python first."""
    beside = Path(sys.executable).parent / name
    found = str(beside) if beside.exists() else shutil.which(name)
    if found is None:
        unavailable(f"{name} not found: ansible-core is not installed (scripts/bootstrap installs it)")
    return found


@dataclass(frozen=True)
class Result:
    """A finished ansible command."""

    args: Sequence[str]
    returncode: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr

    @property
    def warnings(self) -> list[str]:
        """The ``[WARNING]:`` lines Ansible printed (it shows a module's warnings so, not in the result)."""
        return re.findall(r"^\[WARNING\]: (.*)$", self.output, re.MULTILINE)

    def recap(self) -> dict[str, dict[str, int]]:
        """The PLAY RECAP counters per host (``ok``, ``changed``, ``failed``, ...)."""
        counters: dict[str, dict[str, int]] = {}
        recap = self.stdout.split("PLAY RECAP", 1)[-1]
        for host, rest in re.findall(r"^(\S+)\s+:\s+(.*)$", recap, re.MULTILINE):
            counters[host] = {key: int(value) for key, value in re.findall(r"(\w+)=(\d+)", rest)}
        assert counters, f"no PLAY RECAP in:\n{self.output}"
        return counters


@dataclass(frozen=True)
class Ansible:
    """ansible-core with the collection installed in a private collections path."""

    home: Path
    env: Mapping[str, str]

    def run(self, name: str, *args: str, timeout: float = 240, env: Mapping[str, str] | None = None) -> Result:
        command = [program(name), *args]
        done = subprocess.run(
            command,
            capture_output=True,
            text=True,
            timeout=timeout,
            env={**self.env, **(env or {})},
            cwd=self.home,
            check=False,
        )
        return Result(command, done.returncode, done.stdout, done.stderr)

    def playbook(self, playbook: Path, *args: str, env: Mapping[str, str] | None = None) -> Result:
        """Run a playbook against localhost (local connection, this Python as the module interpreter)."""
        return self.run("ansible-playbook", "-i", str(self.home / "localhost.ini"), str(playbook), *args, env=env)

    def module(
        self, name: str, args: Mapping[str, Any], *flags: str, env: Mapping[str, str] | None = None
    ) -> tuple[dict[str, Any], Result]:
        """Run one module of the collection on localhost (``ansible localhost -m``); return its result and the run.

        The minimal callback prints the result whole (``localhost | FAILED! => {...}``), so a test reads
        ``changed``, ``msg``, ``warnings``, ... as the module returned them.
        """
        result = self.run(
            "ansible",
            "localhost",
            "-i",
            str(self.home / "localhost.ini"),
            "-m",
            f"{FQCN}.{name}",
            "-a",
            json.dumps(dict(args)),
            *flags,
            env={"ANSIBLE_LOAD_CALLBACK_PLUGINS": "1", "ANSIBLE_STDOUT_CALLBACK": "minimal", **(env or {})},
        )
        found = re.search(r"^localhost \| ([A-Z!]+) => (\{.*)", result.stdout, re.MULTILINE | re.DOTALL)
        if found is None:
            raise AssertionError(f"no module result in:\n{result.output}")
        report: dict[str, Any] = untag(json.loads(found.group(2)))
        report.setdefault("failed", found.group(1) == "FAILED!")  # the callback says it in the status word
        return report, result

    def inventory(self, source: Path, env: Mapping[str, str] | None = None) -> tuple[dict[str, Any], Result]:
        """Run ``ansible-inventory --list`` on a source; return the parsed listing and the run."""
        result = self.run("ansible-inventory", "-i", str(source), "--list", env=env)
        assert result.returncode == 0, result.output
        return untag(json.loads(result.stdout)), result


def untag(value: Any) -> Any:
    """Drop ansible-core's trust markers (``{"__ansible_unsafe": text}``) from ``ansible-inventory`` output."""
    if isinstance(value, dict):
        if set(value) == {"__ansible_unsafe"}:
            return value["__ansible_unsafe"]
        return {key: untag(item) for key, item in value.items()}
    if isinstance(value, list):
        return [untag(item) for item in value]
    return value


def install_collection(home: Path) -> Ansible:
    """Build the collection with ansible-galaxy, install the tarball under ``home``; return a runner."""
    home.mkdir(parents=True, exist_ok=True)
    config = home / "ansible.cfg"
    config.write_text("[defaults]\n", encoding="utf-8")  # no ansible.cfg from the working directory or $HOME
    env = {
        **os.environ,
        "ANSIBLE_CONFIG": str(config),
        "ANSIBLE_HOME": str(home / "ansible-home"),
        "ANSIBLE_LOCAL_TEMP": str(home / "tmp"),
        "ANSIBLE_REMOTE_TMP": str(home / "remote-tmp"),
        "ANSIBLE_COLLECTIONS_PATH": str(home / "collections"),
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_FORCE_COLOR": "0",
        "ANSIBLE_RETRY_FILES_ENABLED": "0",
        "ANSIBLE_STDOUT_CALLBACK": "default",
        "PYTHONWARNINGS": "",
    }
    ansible = Ansible(home, env)
    built = ansible.run("ansible-galaxy", "collection", "build", str(COLLECTION_DIR), "--output-path", str(home))
    assert built.returncode == 0, built.output
    tarball = home / f"{NAMESPACE}-{NAME}-0.1.0.tar.gz"
    assert tarball.exists(), built.output
    installed = ansible.run(
        "ansible-galaxy", "collection", "install", str(tarball), "-p", str(home / "collections"), "--force"
    )
    assert installed.returncode == 0, installed.output
    (home / "localhost.ini").write_text(
        f"localhost ansible_connection=local ansible_python_interpreter={sys.executable}\n", encoding="utf-8"
    )
    return ansible
