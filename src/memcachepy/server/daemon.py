"""The trio server: listeners, limits, signals, graceful drain.

Connections are served by :mod:`memcachepy.server.connections`: one task multiplexes
every plain connection through an epoll set.
"""

from __future__ import annotations

import errno
import ipaddress
import logging
import signal
import socket
import time
from typing import TYPE_CHECKING, Any

import trio

from memcachepy.auth.authfile import Authfile
from memcachepy.config import Settings
from memcachepy.dispatch.binary import BinaryDispatcher
from memcachepy.dispatch.text import TEXT_FRAMING, Dispatcher
from memcachepy.ops.counters import ServerCounters
from memcachepy.ops.current import CURRENT_CONNECTION
from memcachepy.ops.stats_report import ConnectionRow, connection_stats
from memcachepy.protocol.ascii_auth import AsciiAuthParser
from memcachepy.protocol.binary import REQUEST_MAGIC, BinaryParser
from memcachepy.protocol.text import RequestSink, TextParser
from memcachepy.server import maintenance
from memcachepy.server.connections import ConnectionLoop
from memcachepy.server.listeners import (
    BoundListeners,
    bind_listeners,
    listener_text,
    socket_text,
    tcp_ports,
)
from memcachepy.server.multiplexer import Connection, Handler, ProtocolParser
from memcachepy.server.reply_memory import conn_memory_bound, replies_per_round
from memcachepy.server.service import Service
from memcachepy.server.tls import TlsError, build_server_context
from memcachepy.server.udp import UdpListener
from memcachepy.server.watch import Watcher
from memcachepy.store.cache import Cache
from memcachepy.store.persist import MemoryFileError

if TYPE_CHECKING:
    from memcachepy.cluster.endpoint import ConfigEndpoint
    from memcachepy.server.warmup import Warmup

log = logging.getLogger("memcachepy")


TOO_MANY_CONNECTIONS = b"ERROR Too many open connections\r\n"
# Errors from accept() that mean "try again later", not "stop serving".
_ACCEPT_RETRY = {errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM, errno.ECONNABORTED}


def _address(sock: socket.socket) -> str:
    name = sock.getsockname()
    if isinstance(name, str | bytes):  # AF_UNIX
        return name.decode(errors="replace") if isinstance(name, bytes) else name
    host, port = name[0], name[1]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGUSR1)
_held_signals: list[int] = []
# The handlers hold_stop_signals replaced, put back once the signal loop ends.
_original_handlers: dict[int, Any] = {}


def hold_stop_signals() -> None:
    """Until :meth:`Server.serve` handles them, remember stop signals instead of dying.

    The CLI binds the listeners before trio runs, so a client (or systemd) can connect and
    send SIGTERM before the signal loop exists; memcached installs its handlers before it
    binds. A held signal is acted on as soon as the signal loop starts. Once that loop
    ends (the drain and the -e save follow), the original handlers are back, so a second
    SIGTERM during a long drain still ends the process as it did before.
    """
    for signum in STOP_SIGNALS:
        previous = signal.signal(signum, lambda signum, _frame: _held_signals.append(signum))
        _original_handlers.setdefault(signum, previous)


def _release_stop_signals() -> None:
    for signum, handler in _original_handlers.items():
        signal.signal(signum, handler)
    _original_handlers.clear()


class Server:
    """One memcachepy node: a cache and the listeners that serve it."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.counters = ServerCounters()
        self.cache = Cache(
            settings.memory_limit,
            growth_factor=settings.growth_factor,
            min_chunk=settings.min_chunk,
            item_size_max=settings.item_size_max,
            use_cas=settings.use_cas,
            evict=settings.evict,
            framing=TEXT_FRAMING,
            tuning=settings.store,
            memory_file=settings.memory_file,
            extstore=settings.extstore if settings.extstore.enabled else None,
        )
        self.cluster = _cluster_endpoint(settings)
        self.dispatcher = Dispatcher(
            settings,
            self.cache,
            self.counters,
            self.request_shutdown,
            self._connection_lines,
            cluster=self.cluster,
        )
        self.dispatcher.admin.reload_tls = self.reload_tls
        # -S: the SASL password file, loaded now so a bad one stops the start.
        self.sasl_passwords = (
            Authfile.load(settings.sasl_pwdb, max_entries=None)
            if settings.sasl and settings.sasl_pwdb
            else None
        )
        self.binary_dispatcher = BinaryDispatcher(
            settings,
            self.cache,
            self.counters,
            started=self.dispatcher.started,
            sasl=self.sasl_passwords,
        )
        # -Z: one context for new connections, replaced on SIGHUP (certificate renewal).
        self.tls_context = build_server_context(settings.tls) if settings.tls_enabled else None
        self.counters.ssl_cert_loaded_at = time.time()
        # -Y: loaded at start-up so a bad file stops the daemon before it listens.
        self.authfile = Authfile.load(settings.auth_file) if settings.auth_file else None
        self._stop = trio.Event()
        self._graceful = False
        self.save_error: str | None = None  # why a graceful stop could not save -e
        self.loop = ConnectionLoop(
            self,
            idle_timeout=settings.idle_timeout,
            requests_per_event=settings.reqs_per_event,
            verbose=lambda: settings.verbosity,
            reply_limit=replies_per_round(settings.read_buf_mem_limit, settings.threads),
            conn_limit=conn_memory_bound(settings),
        )
        self._started_at = time.monotonic()
        self.ports: list[int] = []
        self.listeners: list[socket.socket] = []
        # systemd notify/watchdog/socket activation, --metrics-port, watch, -vv (service.py).
        self.service = Service(self)
        # --cluster-replicas R >= 2: a node that starts empty copies its share from peers.
        self.warmup = _warmup(self)

    def request_shutdown(self, graceful: bool) -> None:
        """Stop serving: at once, or after in-flight requests finish (``graceful``)."""
        self._graceful = self._graceful or graceful
        self._stop.set()

    async def serve(
        self,
        *,
        listeners: list[socket.socket] | None = None,
        bound: BoundListeners | None = None,
        handle_signals: bool = True,
        task_status: trio.TaskStatus[list[int]] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Serve until stopped; ``task_status.started`` receives the bound TCP ports.

        ``bound``: listeners the CLI bound before forking and dropping root; else
        ``listeners`` (stream sockets), else systemd's, else bound here from the settings.
        """
        if bound is None:
            inherited = (
                listeners if listeners is not None else (self.service.inherited_listeners())
            )  # systemd socket activation
            bound = (
                BoundListeners(inherited, activated=True)
                if inherited is not None
                else bind_listeners(self.settings)
            )
        listeners, udp_sockets = bound.sockets, bound.udp
        self._plain_listeners = bound.plain
        self.listeners = [*listeners, *udp_sockets]  # for `stats conns`
        self.ports = tcp_ports(listeners)
        self._warn_if_exposed(listeners)
        try:
            self.service.prepare()  # binds --metrics-port before READY=1
            # Before the accept loops: under socket activation a client is already waiting.
            log.info(
                "listening on %s",
                ", ".join(
                    [self._listener_name(sock) for sock in listeners]
                    + [f"udp {_address(sock)}" for sock in udp_sockets]
                ),
            )
            async with trio.open_nursery() as connections:
                await connections.start(self.loop.run)
                async with trio.open_nursery() as acceptors:
                    if handle_signals:
                        # Started, not start_soon, and before the accept loops: a client
                        # served before the SIGHUP receiver existed could send the signal
                        # that Python's default action turns into an exit.
                        await acceptors.start(self._signal_loop)
                        await acceptors.start(self._hangup_loop)
                    for sock in listeners:
                        acceptors.start_soon(self._accept_loop, sock, connections)
                    for sock in udp_sockets:
                        udp = UdpListener(
                            sock, lambda first: self._session(first, "auto"), self.counters
                        )
                        acceptors.start_soon(udp.serve)
                    maintenance.start(acceptors, self.cache, self.settings.store, self.loop.mux)
                    if self.warmup is not None:
                        acceptors.start_soon(self.warmup.run)
                    if self.settings.cluster_dns and self.cluster is not None:
                        from memcachepy.server.membership import follow_dns

                        acceptors.start_soon(
                            follow_dns, self.cluster, self.settings.cluster_dns_interval
                        )
                    task_status.started(self.ports)
                    acceptors.start_soon(self.service.run)  # READY=1, watchdog, metrics
                    await self._stop.wait()
                    self.service.stopping(self._graceful)
                    acceptors.cancel_scope.cancel()
                if self._graceful:
                    await self.loop.drain(self.settings.drain_timeout)
                connections.cancel_scope.cancel()
            if self._graceful:
                try:
                    self.cache.save()  # -e: what the next start restores (a no-op without -e)
                except MemoryFileError as exc:
                    log.error("[restart] %s", exc)
                    self.save_error = str(exc)
        finally:
            for sock in [*listeners, *udp_sockets]:
                sock.close()
            self.service.close()
            self.cache.close()
        log.info("stopped")

    def _listener_name(self, sock: socket.socket) -> str:
        """``tcp 127.0.0.1:11211``, ``tls [::1]:11212`` or ``unix /run/memcachepy.sock``."""
        if sock.family == socket.AF_UNIX:
            kind = "unix"
        elif self.tls_context is not None and sock.fileno() not in self._plain_listeners:
            kind = "tls"
        else:
            kind = "tcp"
        return f"{kind} {_address(sock)}"

    def _warn_if_exposed(self, listeners: list[socket.socket]) -> None:
        """Safe defaults: say so loudly when a non-loopback listener has no protection."""
        if self.authfile is not None:
            return
        for sock in listeners:
            if sock.family not in (socket.AF_INET, socket.AF_INET6):
                continue
            host = sock.getsockname()[0]
            if not ipaddress.ip_address(host).is_loopback:
                log.warning(
                    "listening on %s without TLS or authentication: anyone who can reach "
                    "this address can read and change the cache (use -Y, or listen on "
                    "127.0.0.1)",
                    host,
                )

    async def _signal_loop(
        self, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        try:
            with trio.open_signal_receiver(*STOP_SIGNALS) as signals:
                task_status.started()
                for signum in _held_signals:
                    self._stop_signal(signum)
                _held_signals.clear()
                async for signum in signals:
                    self._stop_signal(signum)
        finally:
            _release_stop_signals()

    def _stop_signal(self, signum: int) -> None:
        log.info("signal %s", signal.Signals(signum).name)
        self.request_shutdown(graceful=signum == signal.SIGUSR1)

    async def _hangup_loop(
        self, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """SIGHUP re-reads the --cluster-config file. memcached survives SIGHUP too."""
        with trio.open_signal_receiver(signal.SIGHUP) as signals:
            task_status.started()
            async for _ in signals:
                self.service.reloading()
                self.reload_cluster_config()
                self.reload_tls()
                self.service.reloaded()

    def reload_tls(self) -> None:
        """Load the certificates again for new connections; established ones keep theirs."""
        if self.tls_context is None:
            return
        try:
            self.tls_context = build_server_context(self.settings.tls)
        except TlsError as error:
            log.error("TLS certificates not reloaded, keeping the old ones: %s", error)
            return
        self.counters.ssl_cert_loaded_at = time.time()
        log.info("TLS certificates reloaded")

    def reload_cluster_config(self) -> None:
        """Re-read the membership file; a bad one is logged and the nodes served are kept."""
        if self.cluster is None:
            log.info("SIGHUP: no --cluster-config to reload")
            return
        try:
            changed = self.cluster.reload()
        except ValueError as error:
            log.error(
                "cluster config not reloaded, still serving version %d: %s",
                self.cluster.config.version,
                error,
            )
            return
        config = self.cluster.config
        log.info(
            "cluster config %s: version %d, %d nodes",
            "reloaded" if changed else "unchanged",
            config.version,
            len(config.nodes),
        )

    async def _accept_loop(self, listener: socket.socket, connections: trio.Nursery) -> None:
        counters = self.counters
        while True:
            await trio.lowlevel.wait_readable(listener)
            try:
                sock, address = listener.accept()
            except BlockingIOError:
                continue
            except OSError as exc:
                if exc.errno in _ACCEPT_RETRY:
                    log.warning("accept failed: %s; retrying", exc)
                    await trio.sleep(0.1)
                    continue
                raise
            sock.setblocking(False)
            if counters.curr_connections >= self.settings.max_connections:
                counters.rejected_connections += 1
                try:
                    sock.send(TOO_MANY_CONNECTIONS)
                except OSError:
                    pass
                sock.close()
                continue
            counters.curr_connections += 1
            counters.total_connections += 1
            if sock.family in (socket.AF_INET, socket.AF_INET6):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            tls = None if listener.fileno() in self._plain_listeners else self.tls_context
            self.loop.add(sock, address, tls)

    def _session(
        self, first_byte: int, protocol: str | None = None
    ) -> tuple[ProtocolParser, Handler]:
        """The parser and handler for a connection, chosen by the first byte it sends.

        ``-B`` decides unless ``protocol`` overrides it: with ``auto`` (the default) a first
        byte of 0x80 means the binary protocol. UDP always negotiates, as memcached does.
        """
        protocol = protocol or self.settings.protocol
        if self.authfile is None and (
            protocol == "binary" or (protocol == "auto" and first_byte == REQUEST_MAGIC)
        ):
            binary = BinaryParser(self.cache.item_fits, sasl=self.settings.sasl)
            return binary, self.binary_dispatcher.session().handle
        parser = TextParser(self.cache.item_fits, config_commands=self.cluster is not None)
        if self.authfile is not None:
            return AsciiAuthParser(parser, self.authfile.check), self.dispatcher.handle
        return parser, self.dispatcher.handle

    # -- what the connection loop asks of the server (connections.LoopHost) ------------------

    def session(self, first_byte: int) -> tuple[ProtocolParser, Handler, RequestSink | None]:
        parser, handle = self._session(first_byte)
        # A plain text connection's parser calls the dispatcher directly (one call per read).
        sink = self.dispatcher if type(parser) is TextParser else None
        return parser, handle, sink

    def take_remainder(self) -> object:
        return self.dispatcher.take_remainder()

    def connection_opened(self, fd: int, address: object) -> None:
        self.service.connection_opened(fd, address)

    def connection_closed(self, fd: int, address: object, reason: str) -> None:
        self.dispatcher.admin.connection_closed(fd)
        self.service.connection_closed(fd, address, reason)

    def watcher(self, conn: Connection) -> Watcher | None:
        return self.service.watcher(conn.fd)  # the client sent `watch`

    def _connection_lines(self) -> list[tuple[str, object]]:
        """``stats conns``: the listeners, then each client (memcached's states: the client
        asking is conn_parse_cmd, one in the middle of a data block conn_nread)."""
        now = time.monotonic()
        asking = CURRENT_CONNECTION.get()
        rows = []
        for fd, conn in sorted(self.loop.connections.items()):
            if fd == asking:
                state, idle = "conn_parse_cmd", 0.0
            else:
                state = "conn_nread" if conn.parser.mid_request else "conn_waiting"
                idle = now - conn.last_active if conn.last_active else 0.0
            local = socket_text(conn.sock.family, conn.sock.getsockname())
            rows.append(
                ConnectionRow(
                    fd, socket_text(conn.sock.family, conn.address), local, state, int(idle)
                )
            )
        listeners = [
            (sock.fileno(), listener_text(sock), sock.type == socket.SOCK_DGRAM)
            for sock in self.listeners
            if sock.fileno() >= 0
        ]
        return connection_stats(listeners, rows, int(now - self._started_at))


def _cluster_endpoint(settings: Settings) -> ConfigEndpoint | None:
    """What a node started with --cluster-config (or --cluster-dns) answers to
    ``config get|set cluster``."""
    if settings.cluster_dns:
        from memcachepy.server.membership import dns_endpoint

        return dns_endpoint(settings)
    if not settings.cluster_config:
        return None
    # Imported here so that a node without the flag never loads the cluster package.
    from memcachepy.cluster.endpoint import load_endpoint

    return load_endpoint(settings.cluster_config, settings.cluster_admin_token_file)


def _warmup(server: Server) -> Warmup | None:
    """The warm-up of a node with a membership and --cluster-replicas of 2 or more."""
    from memcachepy.server.warmup import Warmup, warmup_wanted

    if server.cluster is None or not warmup_wanted(server.settings):
        return None
    return Warmup(server, server.cluster, server.service.hooks, server.service.add_stats)
