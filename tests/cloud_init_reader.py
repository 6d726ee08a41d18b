"""What real cloud-init reads from a seed: Debian's ``cloud-init`` package, run as a library on the test machine.

``scripts/bootstrap`` unpacks Debian's cloud-init package (its Python code only: nothing is installed, no service
can run on the host) into ``.venv/debian-cloud-init`` and installs the Debian libraries it imports. Its code runs
under Debian's own ``/usr/bin/python3`` in one worker process per test session (``cloud_init_worker.py``), so the
YAML loader is the one a Debian 12 guest runs.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
WORKER = Path(__file__).with_name("cloud_init_worker.py")
DEBIAN_PYTHON = "/usr/bin/python3"


def library() -> Path:
    """The unpacked package's Python path (``$POLYVISOR_CLOUD_INIT_LIB`` overrides it)."""
    if override := os.environ.get("POLYVISOR_CLOUD_INIT_LIB"):
        return Path(override)
    return ROOT / ".venv" / "debian-cloud-init" / "usr" / "lib" / "python3" / "dist-packages"


class CloudInitReader:
    """A running worker; :meth:`read` answers what cloud-init makes of a seed's files."""

    def __init__(self) -> None:
        path = library()
        if not (path / "cloudinit" / "sources" / "DataSourceNoCloud.py").is_file():
            raise RuntimeError(f"Debian's cloud-init is not unpacked at {path}: run scripts/bootstrap")
        self._process = subprocess.Popen(
            [DEBIAN_PYTHON, "-I", str(WORKER), str(path)],  # -I: none of the venv's settings reach it
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self.version: str = self._answer()["ready"]

    def _answer(self) -> dict[str, Any]:
        assert self._process.stdout is not None
        line = self._process.stdout.readline()
        if not line:
            raise RuntimeError(f"the cloud-init worker exited ({self._process.wait()})")
        answer: dict[str, Any] = json.loads(line)
        return answer

    def read(self, files: Mapping[str, bytes]) -> dict[str, Any]:
        """``meta-data``, ``network-config``, ``public-keys``, ``cloud-config`` (None unless user-data is a
        ``#cloud-config``) and ``warnings``, as cloud-init 22.4's NoCloud code loads them."""
        assert self._process.stdin is not None
        request = {"files": {name: base64.b64encode(data).decode("ascii") for name, data in files.items()}}
        self._process.stdin.write(json.dumps(request) + "\n")
        self._process.stdin.flush()
        return self._answer()

    def close(self) -> None:
        if self._process.stdin is not None:
            self._process.stdin.close()
        self._process.wait(timeout=10)
        if self._process.stdout is not None:
            self._process.stdout.close()
