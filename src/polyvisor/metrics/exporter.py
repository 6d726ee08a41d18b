"""The Prometheus exporter: each scrape samples every host of a fleet at once and serves the counters.

Every host is bounded by its own timeout (its config entry's, else the fleet's), and no host gets more than the
scrape's budget: the exporter's ``timeout`` if given, and what Prometheus allows the scrape (it sends its
``scrape_timeout`` in the ``X-Prometheus-Scrape-Timeout-Seconds`` header), less :data:`MARGIN` for the reply. A
dead or hung host is then a ``polyvisor_scrape_success`` of 0 after at most that long, and the other hosts'
series come in the same scrape. Scrapes run one at a time (a second waits for the first), so the hosts see one
sample per scrape however many scrapers ask. Metric names: :mod:`polyvisor.metrics.families`.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Self

from prometheus_client.core import Metric
from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import Collector

from polyvisor.errors import ValidationError
from polyvisor.fleet import Fleet
from polyvisor.fleet.planning import check_seconds
from polyvisor.metrics.families import metric_families
from polyvisor.uri import URI

__all__ = ["MARGIN", "SCRAPE_TIMEOUT_HEADER", "Exporter", "FleetCollector", "parse_listen"]

log = logging.getLogger("polyvisor.exporter")

SCRAPE_TIMEOUT_HEADER = "X-Prometheus-Scrape-Timeout-Seconds"
MARGIN = 0.5
"""Seconds of a scrape's budget kept for rendering and sending the reply."""
_LEAST = 0.1


class FleetCollector(Collector):
    """A collector of a fleet's counters: one :meth:`polyvisor.Fleet.stats` per scrape."""

    def __init__(self, fleet: Fleet, *, timeout: float | None = None) -> None:
        if timeout is not None:
            check_seconds(timeout, "timeout")
        self._fleet = fleet
        self._timeout = timeout
        self._backends = {host: URI.parse(fleet.uri(host)).driver for host in fleet.hosts}
        self._lock = threading.Lock()

    def collect(self) -> Iterable[Metric]:
        """Sample the fleet, each host within its own timeout (and the collector's)."""
        return self.scrape(None)

    def scrape(self, budget: float | None) -> list[Metric]:
        """Sample the fleet with no host given more than ``budget`` seconds (None: no budget of the scraper's)."""
        bounds = [seconds for seconds in (self._timeout, budget) if seconds is not None]
        at_most = max(min(bounds), _LEAST) if bounds else None
        with self._lock:
            result = self._fleet.stats(at_most=at_most)
        for key, error in result.errors.items():
            log.info("%s: %s: %s", key, type(error).__name__, " ".join(str(error).split()))
        return metric_families(result, self._backends)


class _Snapshot(Collector):
    """One scrape's families, for the encoder."""

    def __init__(self, families: list[Metric]) -> None:
        self._families = families

    def collect(self) -> Iterable[Metric]:
        return self._families


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_GET(self) -> None:  # the name http.server calls
        path = self.path.split("?", 1)[0]
        if path == "/":
            self._reply(200, "text/plain; charset=utf-8", b"polyvisor exporter: the metrics are at /metrics\n")
            return
        if path != "/metrics":
            self._reply(404, "text/plain; charset=utf-8", b"not found: the metrics are at /metrics\n")
            return
        budget = _budget(self.headers.get(SCRAPE_TIMEOUT_HEADER))
        encoder, content_type = choose_encoder(self.headers.get("Accept", ""))
        try:
            body = encoder(_Snapshot(self.server.collector.scrape(budget)))
        except Exception as error:  # a scrape that fails says why to the scraper, and the exporter serves on
            log.exception("scrape failed")
            self._reply(500, "text/plain; charset=utf-8", f"scrape failed: {type(error).__name__}\n".encode())
            return
        self._reply(200, content_type, body)

    def _reply(self, status: int, content_type: str, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, fmt: str, *args: object) -> None:  # http.server's hook, called positionally
        log.debug("%s %s", self.address_string(), fmt % args)


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], collector: FleetCollector) -> None:
        self.collector = collector
        super().__init__(address, _Handler)


class Exporter:
    """An HTTP server of ``/metrics`` for one collector, listening on ``host:port`` (port 0: any free port)."""

    def __init__(self, collector: FleetCollector, host: str, port: int) -> None:
        try:
            self._server = _Server((host, port), collector)
        except OSError as error:
            raise ValidationError(
                f"cannot listen on {host}:{port} ({error.strerror or error}); choose another address or port",
                field="--listen",
            ) from None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """The metrics' URL, with the port actually bound."""
        address = self._server.server_address
        host = address[0].decode() if isinstance(address[0], bytes) else str(address[0])
        port = address[1]
        shown = f"[{host}]" if ":" in host else host
        return f"http://{shown}:{port}/metrics"

    def serve_forever(self) -> None:
        """Serve on this thread until :meth:`close` is called (from another thread) or the process stops."""
        self._server.serve_forever()

    def start(self) -> Self:
        """Serve on a daemon thread; return self."""
        self._thread = threading.Thread(target=self._server.serve_forever, name="polyvisor-exporter", daemon=True)
        self._thread.start()
        return self

    def close(self) -> None:
        """Stop serving and release the port."""
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join()
            self._thread = None
        self._server.server_close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def parse_listen(text: str) -> tuple[str, int]:
    """Return the host and port of ``HOST:PORT`` (``[::1]:PORT`` for IPv6); ValidationError naming what is wrong."""
    host, colon, port = text.rpartition(":")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if not colon or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValidationError(
            f"{text!r} is not HOST:PORT; give an address and a port such as 127.0.0.1:9870", field="--listen"
        )
    return host, int(port)


def _budget(header: str | None) -> float | None:
    if header is None:
        return None
    try:
        seconds = float(header)
    except ValueError:
        return None  # a malformed header is the scraper's: the hosts keep their own timeouts
    return seconds - MARGIN if seconds > 0 else None
