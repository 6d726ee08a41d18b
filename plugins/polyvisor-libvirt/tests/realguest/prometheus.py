"""A real Prometheus server (Debian's ``prometheus``) of the test session's own: config and data in a temporary
directory, listening on 127.0.0.1, scraping every two seconds the targets a test adds (file-based discovery, so one
server serves the whole session), queried through its HTTP API."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from polyvisor.testing import eventually

from .support import unavailable

SCRAPE_INTERVAL = "2s"
"""Also the scrape timeout: the exporter gives each host 1.5 s of it, and the WinRM transport starts no Receive with
less than half a second left, so a scrape over WinRM needs more than one second."""


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class PrometheusServer:
    """One Prometheus process; :meth:`scrape` adds a target, :meth:`query` runs PromQL."""

    def __init__(self, workdir: Path) -> None:
        binary = shutil.which("prometheus")
        if binary is None:
            unavailable("no prometheus binary; install Debian's package with scripts/bootstrap")
        self.binary = binary
        self.workdir = workdir
        self.port = _free_port()
        self.targets = workdir / "targets.json"
        self.targets.write_text("[]", encoding="utf-8")
        self.config = workdir / "prometheus.yml"
        self.config.write_text(
            json.dumps(  # JSON is YAML
                {
                    "global": {"scrape_interval": SCRAPE_INTERVAL, "scrape_timeout": SCRAPE_INTERVAL},
                    "scrape_configs": [{"job_name": "polyvisor", "file_sd_configs": [{"files": [str(self.targets)]}]}],
                }
            ),
            encoding="utf-8",
        )
        self.log = workdir / "prometheus.log"
        self._process: subprocess.Popen[bytes] | None = None
        self._scraped: list[str] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> PrometheusServer:
        command = [
            self.binary,
            f"--config.file={self.config}",
            f"--storage.tsdb.path={self.workdir / 'data'}",
            f"--web.listen-address=127.0.0.1:{self.port}",
            "--log.level=warn",
        ]
        with self.log.open("wb") as log:
            self._process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)

        def ready() -> bool:
            assert self._process is not None
            if self._process.poll() is not None:
                raise AssertionError(f"prometheus exited: {self.log.read_text(errors='replace')[-2000:]}")
            try:
                with urllib.request.urlopen(f"{self.url}/-/ready", timeout=2) as reply:
                    return bool(reply.status == 200)
            except OSError:
                return False

        eventually(ready, timeout=60, what="Prometheus to be ready", interval=0.2)
        return self

    def scrape(self, target: str) -> None:
        """Add ``host:port`` to the scraped targets (Prometheus sees the file change at once)."""
        self._scraped.append(target)
        staged = self.targets.with_suffix(".tmp")
        staged.write_text(json.dumps([{"targets": self._scraped}]), encoding="utf-8")
        staged.replace(self.targets)

    def forget(self, target: str) -> None:
        """Stop scraping ``host:port``."""
        self._scraped.remove(target)
        staged = self.targets.with_suffix(".tmp")
        staged.write_text(json.dumps([{"targets": self._scraped}]), encoding="utf-8")
        staged.replace(self.targets)

    def query(self, promql: str) -> list[dict[str, Any]]:
        """Run an instant query; return its vector's results (``metric`` labels and ``value`` [time, text])."""
        url = f"{self.url}/api/v1/query?{urllib.parse.urlencode({'query': promql})}"
        with urllib.request.urlopen(url, timeout=10) as reply:
            answer = json.loads(reply.read())
        assert answer["status"] == "success", answer
        results: list[dict[str, Any]] = answer["data"]["result"]
        return results

    def close(self) -> None:
        if self._process is not None:
            self._process.terminate()
            try:
                self._process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
            self._process = None
