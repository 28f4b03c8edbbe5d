"""The trio server: listeners, one task per connection, limits, signals, graceful drain.

The connection loop works on non-blocking stdlib sockets with trio's
``wait_readable``/``wait_writable`` rather than the stream layer: it reads
until the socket would block, answers everything that arrived with one send,
and only then waits. That saves a scheduler round trip per request; a
checkpoint after every ``-R`` (reqs_per_event, 20) requests keeps a pipelining
client from starving the others (memcached's reqs_per_event).
"""

from __future__ import annotations

import errno
import ipaddress
import logging
import math
import signal
import socket
import ssl
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

import trio

from memcachepy.auth.authfile import Authfile
from memcachepy.config import Settings
from memcachepy.dispatch.binary import BinaryDispatcher
from memcachepy.dispatch.reply import Outcome, Reply
from memcachepy.dispatch.text import TEXT_FRAMING, Dispatcher
from memcachepy.ops.counters import ServerCounters
from memcachepy.ops.stats_report import ConnectionRow, connection_stats
from memcachepy.protocol.ascii_auth import AsciiAuthParser
from memcachepy.protocol.binary import REQUEST_MAGIC, BinaryParser
from memcachepy.protocol.events import NEED_DATA
from memcachepy.protocol.text import TextParser
from memcachepy.server import maintenance
from memcachepy.server.listeners import (
    BoundListeners,
    bind_listeners,
    listener_text,
    socket_text,
    tcp_ports,
)
from memcachepy.server.operations import Operations
from memcachepy.server.tls import TlsError, build_server_context
from memcachepy.server.udp import UdpListener
from memcachepy.store.cache import Cache
from memcachepy.store.persist import MemoryFileError

if TYPE_CHECKING:
    from memcachepy.cluster.endpoint import ConfigEndpoint

log = logging.getLogger("memcachepy")


class ProtocolParser(Protocol):
    """What the connection loop needs of a sans-I/O parser (text, binary, ...)."""

    def receive_data(self, data: bytes) -> None: ...

    def next_event(self) -> object: ...

    @property
    def mid_request(self) -> bool: ...

    @property
    def buffered(self) -> int: ...


Handler = Callable[[Any, list[Reply]], int]
"""Applies one event, appending reply bytes; returns an Outcome."""


class _NoParser:
    """Stands in until a connection's first byte picks its protocol."""

    mid_request = False
    buffered = 0

    def receive_data(self, data: bytes) -> None:
        raise AssertionError("no protocol chosen yet")

    def next_event(self) -> object:
        return NEED_DATA


_NO_PARSER: ProtocolParser = _NoParser()

# memcached reads 16 KiB at a time; its "line over 2048 bytes without a newline" rule
# depends on it, so a longer line arriving in one packet is judged the same way.
READ_SIZE = 16384
# Replies queued for one connection are sent once they pass this many bytes (checked
# every few pieces), so a multi-get of huge values never sits whole in memory.
OUTPUT_HIGH_WATER = 256 * 1024
OUTPUT_CHECK_PIECES = 8
TOO_MANY_CONNECTIONS = b"ERROR Too many open connections\r\n"
TLS_HANDSHAKE_TIMEOUT = 10.0
# Errors from accept() that mean "try again later", not "stop serving".
_ACCEPT_RETRY = {errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM, errno.ECONNABORTED}


def _address(sock: socket.socket) -> str:
    name = sock.getsockname()
    if isinstance(name, str | bytes):  # AF_UNIX
        return name.decode(errors="replace") if isinstance(name, bytes) else name
    host, port = name[0], name[1]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


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
        )
        self.cluster = _cluster_endpoint(settings)
        self.dispatcher = Dispatcher(
            settings, self.cache, self.counters, self.request_shutdown, self._connection_lines,
            cluster=self.cluster,
        )
        self.dispatcher.admin.reload_tls = self.reload_tls
        # -S: the SASL password file, loaded now so a bad one stops the start.
        self.sasl_passwords = (
            Authfile.load(settings.sasl_pwdb, max_entries=None)
            if settings.sasl and settings.sasl_pwdb else None
        )
        self.binary_dispatcher = BinaryDispatcher(
            settings, self.cache, self.counters, started=self.dispatcher.started,
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
        self._draining = False
        # Connections in a read wait, with their parser (a drain spares half-read requests).
        self._waiting: dict[int, tuple[trio.CancelScope, ProtocolParser]] = {}
        # fd -> (peer, local address), as `stats conns` shows them; and since when each
        # connection has waited for its next command.
        self._peers: dict[int, tuple[str, str]] = {}
        self._idle_since: dict[int, float] = {}
        self._started_at = time.monotonic()
        self.ports: list[int] = []
        self.listeners: list[socket.socket] = []
        # systemd notify/watchdog/socket activation, --metrics-port, watch, -vv (service.py).
        self.operations = Operations(self)

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
            inherited = listeners if listeners is not None else (
                self.operations.inherited_listeners())  # systemd socket activation
            bound = (BoundListeners(inherited, activated=True) if inherited is not None
                     else bind_listeners(self.settings))
        listeners, udp_sockets = bound.sockets, bound.udp
        self._plain_listeners = bound.plain
        self.listeners = [*listeners, *udp_sockets]  # for `stats conns`
        self.ports = tcp_ports(listeners)
        self._warn_if_exposed(listeners)
        try:
            self.operations.prepare()  # binds --metrics-port before READY=1
            # Before the accept loops: under socket activation a client is already waiting.
            log.info("listening on %s", ", ".join(
                [self._listener_name(sock) for sock in listeners]
                + [f"udp {_address(sock)}" for sock in udp_sockets]))
            async with trio.open_nursery() as connections:
                async with trio.open_nursery() as acceptors:
                    for sock in listeners:
                        acceptors.start_soon(self._accept_loop, sock, connections)
                    for sock in udp_sockets:
                        udp = UdpListener(sock, lambda first: self._session(first, "auto"),
                                          self.counters)
                        acceptors.start_soon(udp.serve)
                    if handle_signals:
                        # Started, not start_soon: signals are handled before READY=1.
                        await acceptors.start(self._signal_loop)
                        await acceptors.start(self._hangup_loop)
                    maintenance.start(acceptors, self.cache, self.settings.store)
                    task_status.started(self.ports)
                    acceptors.start_soon(self.operations.run)  # READY=1, watchdog, metrics
                    await self._stop.wait()
                    self.operations.stopping(self._graceful)
                    acceptors.cancel_scope.cancel()
                if self._graceful:
                    await self._drain(connections)
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
            self.operations.close()
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
                    "127.0.0.1)", host,
                )

    async def _drain(self, connections: trio.Nursery) -> None:
        self._draining = True
        for scope, parser in list(self._waiting.values()):
            if not parser.buffered:
                scope.cancel()
        with trio.move_on_after(self.settings.drain_timeout):
            while connections.child_tasks:
                await trio.sleep(0.01)

    async def _signal_loop(
        self, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT, signal.SIGUSR1) as signals:
            task_status.started()
            async for signum in signals:
                log.info("signal %s", signal.Signals(signum).name)
                self.request_shutdown(graceful=signum == signal.SIGUSR1)

    async def _hangup_loop(
        self, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """SIGHUP re-reads the --cluster-config file. memcached survives SIGHUP too."""
        with trio.open_signal_receiver(signal.SIGHUP) as signals:
            task_status.started()
            async for _ in signals:
                self.operations.reloading()
                self.reload_cluster_config()
                self.reload_tls()
                self.operations.reloaded()

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
            log.error("cluster config not reloaded, still serving version %d: %s",
                      self.cluster.config.version, error)
            return
        config = self.cluster.config
        log.info("cluster config %s: version %d, %d nodes", "reloaded" if changed else
                 "unchanged", config.version, len(config.nodes))

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
            connections.start_soon(self._connection, sock, address, tls)

    async def _tls_handshake(
        self, sock: socket.socket, context: ssl.SSLContext
    ) -> ssl.SSLSocket | None:
        """Wrap ``sock`` in TLS; None (counted) if the handshake fails or times out."""
        tls = context.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
        with trio.move_on_after(TLS_HANDSHAKE_TIMEOUT):
            while True:
                try:
                    tls.do_handshake()
                    return tls
                except ssl.SSLWantReadError:
                    await trio.lowlevel.wait_readable(tls)
                except ssl.SSLWantWriteError:
                    await trio.lowlevel.wait_writable(tls)
                except (ssl.SSLError, OSError) as exc:
                    log.info("TLS handshake failed: %s", exc)
                    break
        self.counters.ssl_handshake_errors += 1
        tls.close()
        return None

    async def _connection(
        self, sock: socket.socket, address: object, tls: ssl.SSLContext | None = None
    ) -> None:
        counters = self.counters
        if tls is not None:
            wrapped = await self._tls_handshake(sock, tls)
            if wrapped is None:
                counters.curr_connections -= 1
                return
            sock = wrapped
        fd = sock.fileno()
        self._peers[fd] = (socket_text(sock.family, address),
                           socket_text(sock.family, sock.getsockname()))
        if self.settings.verbosity:
            log.info("<%d new connection from %s", fd, self._peers[fd][0])
        # One cancel scope for the connection's life, not one per read wait (that showed up
        # in profiles): a graceful drain or the idle timeout cancels it only while the
        # connection is waiting to read, so a reply being sent is never cut short.
        scope = trio.CancelScope()
        self.operations.connection_opened(fd, address)
        reason = "normal"
        try:
            with scope:
                await self._serve_connection(sock, fd, scope)
                watcher = self.operations.watcher(fd)  # the client sent `watch`
                if watcher is not None:
                    await self.operations.stream_watch(sock, watcher, scope)
            if scope.cancelled_caught:
                reason = "shutdown" if self._draining else "idle_timeout"
            if scope.cancelled_caught and not self._draining:
                counters.idle_kicks += 1
        except OSError as exc:
            reason = "error"
            log.debug("connection %d: %s", fd, exc)
        except Exception:
            # A bug met by one request must cost that client its connection, never the
            # server: log it loudly, count it, close, and keep serving everyone else.
            counters.internal_errors += 1
            log.exception("connection %d: internal error; closing it", fd)
        finally:
            self.operations.connection_closed(fd, address, reason)
            counters.curr_connections -= 1
            del self._peers[fd]
            self._idle_since.pop(fd, None)
            sock.close()
            if self.settings.verbosity:
                log.info("<%d connection closed", fd)

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

    async def _serve_connection(
        self, sock: socket.socket, fd: int, scope: trio.CancelScope
    ) -> None:
        counters = self.counters
        parser: ProtocolParser = _NO_PARSER
        handle: Handler = self.dispatcher.handle
        idle = self.settings.idle_timeout
        reqs_per_event = self.settings.reqs_per_event
        waiting = self._waiting
        since_yield = 0
        out: list[Reply] = []
        is_tls = isinstance(sock, ssl.SSLSocket)
        # After a short read the socket is most likely empty: wait for readiness rather
        # than pay for a recv that fails with EAGAIN (a syscall and an exception per
        # request for one-at-a-time clients).
        drained = False
        while True:
            data = None
            if not drained:
                try:
                    data = sock.recv(READ_SIZE)
                except ssl.SSLWantWriteError:  # TLS needs to write first (key update)
                    await trio.lowlevel.wait_writable(sock)
                    continue
                except (BlockingIOError, ssl.SSLWantReadError):
                    pass
            if data is None:
                drained = False
                since_yield = 0
                if self._draining and not parser.buffered:
                    return
                if idle:
                    scope.deadline = trio.current_time() + idle
                waiting[fd] = (scope, parser)
                self._idle_since[fd] = time.monotonic()
                try:
                    await trio.lowlevel.wait_readable(sock)
                finally:
                    del waiting[fd]
                    if idle:
                        scope.deadline = math.inf
                continue
            if not data:
                return
            # TLS may hold decrypted bytes that the socket will never signal.
            drained = len(data) < READ_SIZE and not (is_tls and sock.pending())  # type: ignore[attr-defined]
            counters.bytes_read += len(data)
            if parser is _NO_PARSER:
                parser, handle = self._session(data[0])
            parser.receive_data(data)
            outcome = Outcome.CONTINUE
            next_check = OUTPUT_CHECK_PIECES
            while True:
                event = parser.next_event()
                if event is NEED_DATA:
                    break
                since_yield += 1
                outcome = handle(event, out)
                if since_yield >= reqs_per_event:
                    # -R: after that many requests let the others run, as memcached's
                    # reqs_per_event; replies stay queued for the one send below.
                    since_yield = 0
                    counters.conn_yields += 1
                    await trio.lowlevel.checkpoint()
                if outcome != Outcome.CONTINUE:
                    if outcome != Outcome.MORE:
                        break
                    # A long multi-get paused at its reply budget: send, then go on.
                    parser.requeue(self.dispatcher.take_remainder())  # type: ignore[attr-defined]
                    outcome = Outcome.CONTINUE
                    next_check = 0
                if len(out) >= next_check and not parser.mid_request:
                    # Backpressure: past a bound, send before answering more, so a client
                    # that asks for much and reads slowly makes us wait, not buffer.
                    if sum(map(len, out)) >= OUTPUT_HIGH_WATER:
                        counters.output_flushes += 1
                        await self._send(sock, out)
                        out = []
                        # A client that reads fast enough never makes _send wait: let the
                        # others run between big replies all the same.
                        since_yield = 0
                        await trio.lowlevel.checkpoint()
                    next_check = len(out) + OUTPUT_CHECK_PIECES
            # Like memcached, hold replies while a data block is still arriving.
            if out and (outcome == Outcome.CLOSE or not parser.mid_request):
                await self._send(sock, out)
                out = []
            if outcome == Outcome.CLOSE:
                return

    async def _send(self, sock: socket.socket, out: list[Reply]) -> None:
        """Send queued replies: joined into one send, unless they are big (no doubling)."""
        if len(out) == 1:
            await self._send_bytes(sock, out[0])
            return
        total = sum(map(len, out))
        if total <= OUTPUT_HIGH_WATER:
            await self._send_bytes(sock, b"".join(out))
            return
        small: list[Reply] = []
        for piece in out:
            if len(piece) < 4096:
                small.append(piece)
                continue
            if small:
                await self._send_bytes(sock, b"".join(small))
                small = []
            await self._send_bytes(sock, piece)
        if small:
            await self._send_bytes(sock, b"".join(small))

    async def _send_bytes(self, sock: socket.socket, data: Reply) -> None:
        self.counters.bytes_written += len(data)
        try:
            sent = sock.send(data)
        except (BlockingIOError, ssl.SSLWantWriteError, ssl.SSLWantReadError):
            sent = 0
        if sent == len(data):
            return
        view = memoryview(data)[sent:]
        while view:
            await trio.lowlevel.wait_writable(sock)
            try:
                view = view[sock.send(view) :]
            except (BlockingIOError, ssl.SSLWantWriteError):
                pass
            except ssl.SSLWantReadError:
                await trio.lowlevel.wait_readable(sock)

    def _connection_lines(self) -> list[tuple[str, object]]:
        """``stats conns``: the listeners, then each client (memcached's states: a client
        in the middle of a data block is conn_nread, the one asking is conn_parse_cmd)."""
        now = time.monotonic()
        rows = []
        for fd, (peer, local) in self._peers.items():
            waiting = self._waiting.get(fd)
            if waiting is None:
                state, idle = "conn_parse_cmd", 0.0
            else:
                state = "conn_nread" if waiting[1].mid_request else "conn_waiting"
                idle = now - self._idle_since.get(fd, now)
            rows.append(ConnectionRow(fd, peer, local, state, int(idle)))
        listeners = [(sock.fileno(), listener_text(sock), sock.type == socket.SOCK_DGRAM)
                     for sock in self.listeners if sock.fileno() >= 0]
        return connection_stats(listeners, rows, int(now - self._started_at))


def _cluster_endpoint(settings: Settings) -> ConfigEndpoint | None:
    """What a node started with --cluster-config answers to ``config get|set cluster``."""
    if not settings.cluster_config:
        return None
    # Imported here so that a node without the flag never loads the cluster package.
    from memcachepy.cluster.endpoint import load_endpoint

    return load_endpoint(settings.cluster_config, settings.cluster_admin_token_file)
