"""Running a node as a service: systemd notify and watchdog, metrics, ``watch``, ``-vv``.

:class:`Service` is what :class:`memcachepy.server.daemon.Server` calls at a few points of its
life; everything here stays off the request path unless asked for:

* sd_notify (:mod:`memcachepy.ops.systemd`): ``READY=1`` once the listeners accept connections,
  ``STATUS=`` with a one-line summary every few seconds, ``RELOADING=1``/``READY=1`` around
  a SIGHUP reload, ``STOPPING=1`` when stopping. With ``WatchdogSec=``, ``WATCHDOG=1`` pings
  come from a task of the event loop, so a loop that stops turning stops pinging and systemd
  restarts the daemon.
* socket activation: the listeners systemd passed (``LISTEN_FDS``) replace ``-l``/``-p``.
* ``--metrics-port``: Prometheus text format over a small HTTP server on trio (loopback by
  default), built by prometheus-client from :class:`memcachepy.ops.metrics.StatsCollector`, and
  the sampled latency histogram.
* ``watch``: streams :mod:`memcachepy.server.watch` lines to watching connections.
* ``-v``/``-vv``/``-vvv`` and ``verbosity``: :mod:`memcachepy.ops.logs`.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Final, Protocol

import trio

from memcachepy.config import Settings
from memcachepy.dispatch.text import Dispatcher
from memcachepy.ops.counters import ServerCounters, format_stats
from memcachepy.ops.current import CURRENT_CONNECTION
from memcachepy.ops.hooks import TRACE, Handler, RequestHooks
from memcachepy.ops.logs import CommandLog, apply_verbosity
from memcachepy.ops.metrics import parse_stat_lines
from memcachepy.ops.systemd import (
    Notifier,
    activated_listeners,
    check_memory_max,
    watchdog_interval,
)
from memcachepy.protocol import events as ev
from memcachepy.server.listeners import open_listeners
from memcachepy.server.watch import Watcher, WatchHub
from memcachepy.store.cache import Cache

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

    from memcachepy.ops.metrics import LatencySampler

log = logging.getLogger("memcachepy")

STATUS_INTERVAL: Final = 10.0  # seconds between STATUS= updates
SAMPLE_INTERVAL: Final = 1.0  # seconds between latency sampling windows
HTTP_TIMEOUT: Final = 10.0  # seconds a metrics client gets to send its request and read
HTTP_MAX_REQUEST: Final = 8192
HTTP_MAX_CLIENTS: Final = 16


StatSource = Callable[[], list[tuple[str, object]]]


class ServedBy(Protocol):
    """What the service side uses of the server that owns it.

    Declared here so that this module needs nothing of :mod:`.daemon`, which imports it.
    """

    settings: Settings
    dispatcher: Dispatcher
    cache: Cache
    counters: ServerCounters
    ports: list[int]


class MetricsPortError(OSError):
    """The ``--metrics-port`` address cannot be bound; ``str()`` is the whole message."""

    def __str__(self) -> str:
        return str(self.strerror)


class Service:
    """The service side of one :class:`~memcachepy.server.daemon.Server` (see the module doc)."""

    def __init__(self, server: ServedBy) -> None:
        self.server = server
        settings = server.settings
        self.notifier = Notifier.from_environment()
        self.watchdog_interval = watchdog_interval()
        self.hooks = RequestHooks(server.dispatcher._handlers, server.dispatcher.handlers_changed)
        self._stats_handler: Handler = self.hooks.base(ev.Stats)
        # Features that add lines to plain `stats` (the warm-up); see add_stats.
        self._stat_sources: list[StatSource] = []
        self.registry: CollectorRegistry | None = None
        self.sampler: LatencySampler | None = None
        self._metrics_socket: socket.socket | None = None
        if settings.metrics_port is not None:
            # Imported only with --metrics-port: prometheus-client is not loaded otherwise.
            from prometheus_client import CollectorRegistry

            from memcachepy.ops.metrics import LatencySampler, StatsCollector

            self.registry = CollectorRegistry(auto_describe=False)
            self.registry.register(StatsCollector(self.read_stats))
            self.sampler = LatencySampler(self.hooks, self.registry)  # innermost layer
        self.watch = WatchHub(server.dispatcher, self.hooks, counters=server.counters)
        self.watch.enabled = settings.watch_enabled
        command_log = CommandLog(lambda: settings.verbosity)
        self.hooks.add("log", command_log, command_log.wants)
        self.hooks.add("verbosity", self._verbosity_layer, lambda t: t is ev.Verbosity)
        self.hooks.refresh()  # the CLI set the log level for -v..-vvv; `verbosity` changes it

    # -- start, reload, stop --------------------------------------------------------------

    def inherited_listeners(self) -> list[socket.socket] | None:
        """The listening sockets systemd passed (socket activation), or None."""
        sockets = activated_listeners()
        if not sockets:
            return None
        names = ", ".join(_sockname(sock) for sock in sockets)
        log.info("socket activation: serving %d passed socket(s): %s", len(sockets), names)
        return sockets

    def prepare(self) -> None:
        """Bind what must be bound before READY=1 (the metrics port); raises OSError."""
        settings = self.server.settings
        check_memory_max(settings.memory_limit)
        if settings.metrics_port is None:
            return
        try:
            [self._metrics_socket] = open_listeners(settings.metrics_listen, settings.metrics_port)[
                :1
            ]
        except OSError as exc:
            raise MetricsPortError(
                exc.errno,
                f"failed to listen on {settings.metrics_listen}:"
                f"{settings.metrics_port} (--metrics-port): {exc.strerror}",
            ) from None

    @property
    def metrics_port(self) -> int | None:
        """Where /metrics is served (the real port when asked for port 0)."""
        if self._metrics_socket is None:
            return None
        return int(self._metrics_socket.getsockname()[1])

    async def run(self) -> None:
        """Started once the listeners accept connections; runs until the server stops."""
        self.notifier.ready(self.summary())
        async with trio.open_nursery() as nursery:
            if self.watchdog_interval is not None:
                nursery.start_soon(self._watchdog, self.watchdog_interval)
            if self.notifier.enabled:
                nursery.start_soon(self._status_updates)
            if self._metrics_socket is not None:
                nursery.start_soon(self._serve_metrics, self._metrics_socket)
                log.info("metrics on http://%s/metrics", _sockname(self._metrics_socket))
            if self.sampler is not None:
                nursery.start_soon(self._sample_latency, self.sampler)

    def reloading(self) -> None:
        """SIGHUP received: tell systemd, which waits for :meth:`reloaded`."""
        self.notifier.reloading()

    def reloaded(self) -> None:
        self.notifier.ready(self.summary())

    def stopping(self, graceful: bool) -> None:
        how = "draining connections" if graceful else "stopping"
        self.notifier.stopping(f"{how}: {self.summary()}")

    def close(self) -> None:
        if self._metrics_socket is not None:
            self._metrics_socket.close()
        self.notifier.close()

    # -- status and watchdog ----------------------------------------------------------------

    def read_stats(self, sub: bytes) -> list[tuple[str, str]]:
        """What ``stats [sub]`` answers now, as (name, value) pairs (not logged, not timed)."""
        out: list[Any] = []
        self._stats_handler(ev.Stats([sub] if sub else []), out)
        reply = b"".join(bytes(piece) for piece in out)
        return parse_stat_lines(reply if sub else self._with_sources(reply))

    def add_stats(self, source: StatSource) -> None:
        """Append ``source()``'s lines to plain ``stats`` (and so to /metrics), read at
        each request. Nodes without such a feature keep memcached's list exactly."""
        self._stat_sources.append(source)
        self.hooks.add("stat sources", self._stats_layer, lambda t: t is ev.Stats)
        self.hooks.refresh()

    def _stats_layer(self, event: Any, out: list[Any], call: Handler) -> int:
        outcome = call(event, out)
        if not event.args and out and isinstance(out[-1], bytes):
            out[-1] = self._with_sources(out[-1])
        return outcome

    def _with_sources(self, reply: bytes) -> bytes:
        if not reply.endswith(b"END\r\n"):
            return reply
        pairs = [pair for source in self._stat_sources for pair in source()]
        return reply.removesuffix(b"END\r\n") + format_stats(pairs)

    def summary(self) -> str:
        """A one-line state for STATUS=: connections, items, memory, hit ratio."""
        stats = dict(self.read_stats(b""))
        used = int(stats.get("bytes", 0)) / 2**20
        limit = int(stats.get("limit_maxbytes", 0)) / 2**20
        gets = int(stats.get("cmd_get", 0))
        hits = int(stats.get("get_hits", 0))
        ratio = f"{100 * hits / gets:.1f}% get hits" if gets else "no gets yet"
        ports = ",".join(str(port) for port in self.server.ports)
        return (
            f"port {ports}: {stats.get('curr_connections', 0)} connections, "
            f"{stats.get('curr_items', 0)} items, {used:.1f} of {limit:.0f} MB, {ratio}"
        )

    async def _watchdog(self, interval: float) -> None:
        # A task of the event loop: if the loop wedges, the pings stop, and systemd acts.
        while True:
            self.notifier.watchdog()
            log.log(TRACE, "watchdog ping")
            await trio.sleep(interval)

    async def _status_updates(self) -> None:
        last = ""
        while True:
            await trio.sleep(STATUS_INTERVAL)
            status = self.summary()
            if status != last:
                self.notifier.status(status)
                last = status

    # -- requests: verbosity and latency ----------------------------------------------------

    def _verbosity_layer(self, event: Any, out: list[Any], call: Handler) -> int:
        outcome = call(event, out)
        apply_verbosity(self.server.settings.verbosity)
        self.hooks.refresh()  # command logging on or off
        return outcome

    async def _sample_latency(self, sampler: LatencySampler) -> None:
        while True:
            sampler.open_window()
            await trio.sleep(SAMPLE_INTERVAL)

    # -- metrics endpoint -------------------------------------------------------------------

    async def _serve_metrics(self, sock: socket.socket) -> None:
        listener = trio.SocketListener(trio.socket.from_stdlib_socket(sock))
        limit = trio.Semaphore(HTTP_MAX_CLIENTS)

        async def handle(stream: trio.SocketStream) -> None:
            if limit.value == 0:  # too many scrapers at once: turn this one away
                await stream.aclose()
                return
            async with limit:
                await self._metrics_request(stream)

        await trio.serve_listeners(handle, [listener])

    async def _metrics_request(self, stream: trio.SocketStream) -> None:
        try:
            with trio.move_on_after(HTTP_TIMEOUT):
                request = b""
                while b"\r\n\r\n" not in request and b"\n\n" not in request:
                    if len(request) > HTTP_MAX_REQUEST:
                        await stream.send_all(_http(431, b"request too large\n"))
                        return
                    chunk = await stream.receive_some(4096)
                    if not chunk:
                        return
                    request += chunk
                await stream.send_all(self._metrics_response(request))
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as exc:
            log.debug("metrics client: %s", exc)
        finally:
            await stream.aclose()

    def _metrics_response(self, request: bytes) -> bytes:
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        parts = request.split(b"\r\n", 1)[0].split(b" ")
        method, target = (parts + [b"", b""])[:2]
        path = target.split(b"?", 1)[0]
        if method not in (b"GET", b"HEAD"):
            return _http(405, b"only GET and HEAD\n", extra=b"Allow: GET, HEAD\r\n")
        if path == b"/metrics":
            assert self.registry is not None
            body = generate_latest(self.registry)
            log.log(TRACE, "metrics scrape: %d bytes", len(body))
            return _http(200, body, CONTENT_TYPE_LATEST.encode(), head=method == b"HEAD")
        if path == b"/":
            return _http(200, b"memcachepy: metrics at /metrics\n", head=method == b"HEAD")
        return _http(404, b"not found; metrics are at /metrics\n", head=method == b"HEAD")

    # -- connections and watch --------------------------------------------------------------

    def connection_opened(self, fd: int, address: object) -> None:
        CURRENT_CONNECTION.set(fd)
        self.watch.connection_opened(fd, address)

    def connection_closed(self, fd: int, address: object, reason: str) -> None:
        self.watch.connection_closed(fd, address, reason)

    def watcher(self, fd: int) -> Watcher | None:
        """The watcher this connection became with ``watch``, if it did."""
        return self.watch.get(fd)


_REASONS: Final = {
    200: b"OK",
    404: b"Not Found",
    405: b"Method Not Allowed",
    431: b"Request Header Fields Too Large",
}


def _http(
    status: int,
    body: bytes,
    content_type: bytes = b"text/plain; charset=utf-8",
    head: bool = False,
    extra: bytes = b"",
) -> bytes:
    header = (
        b"HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %d\r\nConnection: close\r\n%s\r\n"
    ) % (status, _REASONS[status], content_type, len(body), extra)
    return header if head else header + body


def _sockname(sock: socket.socket) -> str:
    name = sock.getsockname()
    if isinstance(name, tuple):
        host = f"[{name[0]}]" if ":" in name[0] else name[0]
        return f"{host}:{name[1]}"
    return f"unix:{name}"
