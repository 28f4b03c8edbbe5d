"""The connection loop: one trio task serves every plain connection through an epoll set.

A trio task per connection pays a scheduler round trip per request and connection; with
many connections that halves throughput. Here every plain connection is registered once in
a level-triggered epoll set owned by one task (:meth:`ConnectionLoop.run`). The task waits
for that set's fd with ``wait_readable`` and, on each wake-up, serves every ready connection:
one read, every complete request in it (at most ``requests_per_event``, memcached's ``-R``),
one send. A connection whose send would block is re-registered for EPOLLOUT only, so it is
not read until its replies are gone (backpressure); one that used up its budget with
requests still buffered is served again next round, after the others.

Per-connection tasks remain only where a connection waits on something of its own: TLS
(handshake and records) and ``watch`` streams. They run the same synchronous steps.
"""

from __future__ import annotations

import logging
import math
import select
import socket
import ssl
import time
from collections.abc import Awaitable, Callable
from typing import Any, Final, Protocol

import trio

from memcachepy.dispatch.reply import Outcome, Reply
from memcachepy.ops.counters import ServerCounters
from memcachepy.protocol import events as ev
from memcachepy.protocol.events import NEED_DATA
from memcachepy.protocol.text import OUTPUT_FULL
from memcachepy.server.reply_memory import GET_OOM, UNLIMITED, flushes, responses

log = logging.getLogger("memcachepy")

# memcached reads 16 KiB at a time; its "line over 2048 bytes without a newline" rule
# depends on it, so a longer line arriving in one packet is judged the same way.
READ_SIZE: Final = 16384
# Replies queued for one connection are sent once they pass this many bytes (checked
# every few pieces), so a multi-get of huge values never sits whole in memory.
OUTPUT_HIGH_WATER: Final = 256 * 1024
OUTPUT_CHECK_PIECES: Final = 8
TLS_HANDSHAKE_TIMEOUT: Final = 10.0
MAX_EVENTS: Final = 256  # epoll events taken per wake-up; the rest come next round
IDLE_SWEEP: Final = 0.25  # seconds between idle-timeout sweeps of multiplexed connections

# What a step leaves a connection waiting for.
READ: Final = 0  # more bytes from the client
AGAIN: Final = 1  # nothing: requests are buffered (budget spent, or TLS holds bytes)
WRITE: Final = 2  # the socket to take the unsent replies
CLOSE: Final = 3  # to be closed (quit, error, EOF, watch)

_EPOLLIN: Final = select.EPOLLIN
_EPOLLOUT: Final = select.EPOLLOUT


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
WatchStream = Callable[[], Awaitable[None]]
"""Streams a watcher's lines until it hangs up or the server drains."""


class _NoParser:
    """Stands in until a connection's first byte picks its protocol."""

    mid_request = False
    buffered = 0

    def receive_data(self, data: bytes) -> None:
        raise AssertionError("no protocol chosen yet")

    def next_event(self) -> object:
        return NEED_DATA



_NO_PARSER: Final[ProtocolParser] = _NoParser()


class BatchSink(Protocol):
    """A dispatcher that text parsers may call directly (see TextParser.serve)."""

    def plain(self) -> bool: ...


class BatchParser(Protocol):
    """A parser that answers a whole read in one call (TextParser.serve)."""

    def serve(self, sink: Any, out: list[Reply], budget: int,
              high_water: int) -> tuple[int, int]: ...


class Host(Protocol):
    """What the loop needs of the server around it."""

    counters: ServerCounters

    def session(self, first_byte: int) -> tuple[ProtocolParser, Handler, BatchSink | None]:
        """The parser and handler for a connection, chosen by its first byte; and the
        sink when the parser is a :class:`BatchParser` that may call it directly."""

    def take_remainder(self) -> object: ...

    def connection_opened(self, fd: int, address: object) -> None: ...

    def connection_closed(self, fd: int, address: object, reason: str) -> None: ...

    def set_current(self, fd: int) -> None: ...

    def watch_stream(self, conn: Connection) -> WatchStream | None:
        """What streams ``watch`` lines to ``conn``, or None if it is no watcher."""


class Connection:
    """One client connection's state between reads."""

    __slots__ = ("sock", "fd", "address", "peer", "parser", "handle", "sink", "out", "unsent",
                 "last_active", "queued", "writing", "closing", "closed", "tls",
                 "send_wants_read", "scope", "waiting", "close_reason")

    def __init__(self, sock: socket.socket, address: object, tls: bool) -> None:
        self.sock = sock
        self.fd = sock.fileno()
        self.address = address
        self.peer = peer_name(address, sock.family)
        self.parser: ProtocolParser = _NO_PARSER
        self.handle: Handler | None = None
        self.sink: BatchSink | None = None
        self.out: list[Reply] = []
        self.unsent: list[Reply] = []  # replies a blocked send left, in order
        self.last_active = 0.0
        self.queued = False  # in the loop's list of connections to serve again
        self.writing = False  # registered for EPOLLOUT (not read until unsent is gone)
        self.closing = False  # close once unsent is gone
        self.closed = False
        self.tls = tls
        self.send_wants_read = False  # TLS: a send needs the peer's bytes first
        self.scope: trio.CancelScope | None = None  # a task's
        self.waiting = False  # a task's: in a read wait (a drain may cancel it)
        self.close_reason = "normal"  # what `watch connevents` reports when it closes


class ConnectionLoop:
    """Every connection of one server: the multiplexed ones and the task-served ones."""

    def __init__(self, host: Host, *, idle_timeout: float, requests_per_event: int,
                 verbose: Callable[[], int], reply_limit: int = UNLIMITED) -> None:
        self.host = host
        self.counters = host.counters
        self.idle_timeout = idle_timeout
        self.requests_per_event = requests_per_event
        # Replies a connection may stack between sends (-o read_buf_mem_limit, see
        # reply_memory); such a connection is served one event at a time.
        self.reply_limit = reply_limit
        self._verbose = verbose
        self.connections: dict[int, Connection] = {}  # every open one, by fd
        self._epoll = select.epoll()
        self._muxed: dict[int, Connection] = {}  # registered in the epoll set
        self._again: list[Connection] = []
        self.draining = False
        self._nursery: trio.Nursery | None = None

    # -- life --------------------------------------------------------------------------

    async def run(self, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Serve until cancelled; then close every connection still open."""
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                if self.idle_timeout:
                    nursery.start_soon(self._sweep_idle)
                task_status.started()
                await self._serve_ready()
        finally:
            for conn in list(self.connections.values()):
                self._close(conn, "shutdown")
            self._epoll.close()

    def add(self, sock: socket.socket, address: object, tls: ssl.SSLContext | None) -> None:
        """Serve a freshly accepted non-blocking socket (counted by the caller)."""
        conn = Connection(sock, address, tls is not None)
        self.connections[conn.fd] = conn
        if self._verbose():
            log.info("<%d new connection from %s", conn.fd, conn.peer)
        self.host.connection_opened(conn.fd, address)
        assert self._nursery is not None
        if tls is not None:
            self._nursery.start_soon(self._serve_tls, conn, tls)
            return
        conn.last_active = time.monotonic()
        self._epoll.register(conn.fd, _EPOLLIN)
        self._muxed[conn.fd] = conn

    async def drain(self, timeout: float) -> None:
        """Graceful stop: close each connection once nothing of a request is buffered."""
        self.draining = True
        for conn in list(self.connections.values()):
            if conn.fd in self._muxed:
                if not conn.queued and self._idle(conn):
                    self._close(conn, "shutdown")
            elif conn.waiting and not conn.parser.buffered and conn.scope is not None:
                conn.scope.cancel()
        with trio.move_on_after(timeout):
            while self.connections:
                await trio.sleep(0.01)

    def lines(self) -> list[tuple[str, object]]:
        """``stats conns``: each connection's address and state."""
        out: list[tuple[str, object]] = []
        for fd, conn in sorted(self.connections.items()):
            out.append((f"{fd}:addr", conn.peer))
            out.append((f"{fd}:state", "conn_parse_cmd"))
        return out

    async def send_all(self, conn: Connection, pieces: list[Reply]) -> None:
        """Send from a task, waiting while the socket is full (watch streams)."""
        conn.out.extend(pieces)
        if self._send(conn):
            return
        while conn.unsent:
            await trio.lowlevel.wait_writable(conn.sock)
            self._send_unsent(conn)

    # -- the multiplexing task ---------------------------------------------------------

    async def _serve_ready(self) -> None:
        epoll = self._epoll
        fileno = epoll.fileno()
        muxed = self._muxed
        idle = self.idle_timeout
        while True:
            if self._again:
                await trio.lowlevel.checkpoint()
            else:
                await trio.lowlevel.wait_readable(fileno)
            again, self._again = self._again, []
            now = time.monotonic() if idle else 0.0
            for fd, _ in epoll.poll(0, MAX_EVENTS):
                conn = muxed.get(fd)
                if conn is None or conn.queued:
                    continue
                conn.last_active = now
                if conn.writing:
                    state = self._guard(conn, self._send_unsent)
                else:
                    state = self._guard(conn, self._read_and_process)
                self._settle(conn, state)
            for conn in again:
                conn.queued = False
                if not conn.closed:
                    self._settle(conn, self._guard(conn, self._process))

    def _settle(self, conn: Connection, state: int) -> None:
        """Register a multiplexed connection for what it waits on now, or close it."""
        if state == WRITE:
            if not conn.writing:  # stop reading it until its replies are gone
                conn.writing = True
                self._epoll.modify(conn.fd, _EPOLLOUT)
            return
        if conn.writing and not conn.closed:
            conn.writing = False
            self._epoll.modify(conn.fd, _EPOLLIN)
        if state == READ:
            if self.draining and self._idle(conn):
                self._close(conn, "shutdown")
        elif state == AGAIN:
            conn.queued = True
            self._again.append(conn)
        elif state == CLOSE:
            self._finish(conn)

    def _guard(self, conn: Connection, step: Callable[[Connection], int]) -> int:
        """Run one step; an error closes this connection, never the loop. -1: closed."""
        try:
            state = step(conn)
        except OSError as exc:
            log.debug("connection %d: %s", conn.fd, exc)
            self._close(conn, "error")
            return -1
        except Exception:
            # A bug met by one request must cost that client its connection, never the
            # server: log it loudly, count it, close, and keep serving everyone else.
            self.counters.internal_errors += 1
            log.exception("connection %d: internal error; closing it", conn.fd)
            self._close(conn, "error")
            return -1
        if state == READ:
            if conn.closing:
                return CLOSE
            if conn.writing:
                return AGAIN  # requests (or a multi-get's rest) may wait behind the send
        return state

    def _finish(self, conn: Connection) -> None:
        """CLOSE: a watcher goes on in a task of its own; anyone else is closed."""
        stream = self.host.watch_stream(conn)
        if stream is None:
            self._close(conn, conn.close_reason)
            return
        self._unregister(conn)
        assert self._nursery is not None
        self._nursery.start_soon(self._serve_watch, conn, stream)

    def _unregister(self, conn: Connection) -> None:
        if self._muxed.pop(conn.fd, None) is not None:
            self._epoll.unregister(conn.fd)

    def _close(self, conn: Connection, reason: str) -> None:
        if conn.closed:
            return
        conn.closed = True
        self._unregister(conn)
        del self.connections[conn.fd]
        self.host.connection_closed(conn.fd, conn.address, reason)
        self.counters.curr_connections -= 1
        conn.sock.close()
        if self._verbose():
            log.info("<%d connection closed", conn.fd)

    async def _sweep_idle(self) -> None:
        """``idle_timeout`` for multiplexed connections: memcached's conn_timeout thread
        also checks on a coarse clock."""
        while True:
            await trio.sleep(min(IDLE_SWEEP, self.idle_timeout / 4))
            limit = time.monotonic() - self.idle_timeout
            for conn in list(self._muxed.values()):
                if conn.last_active <= limit and not conn.writing and not conn.queued:
                    self.counters.idle_kicks += 1
                    self._close(conn, "idle_timeout")

    # -- the steps (synchronous: shared by the loop and the per-connection tasks) -------

    def _idle(self, conn: Connection) -> bool:
        return not conn.parser.buffered and not conn.unsent and not conn.out

    def _read_and_process(self, conn: Connection) -> int:
        try:
            data = conn.sock.recv(READ_SIZE)
        except (BlockingIOError, ssl.SSLWantReadError):
            return READ
        except ssl.SSLWantWriteError:  # TLS must write first (a key update)
            return WRITE
        if not data:
            return CLOSE
        self.counters.bytes_read += len(data)
        parser = conn.parser
        if parser is _NO_PARSER:
            parser, conn.handle, conn.sink = self.host.session(data[0])
            conn.parser = parser
        parser.receive_data(data)
        state = self._process(conn)
        if state == READ and conn.tls and conn.sock.pending():  # type: ignore[attr-defined]
            return AGAIN  # TLS holds decrypted bytes the socket will never signal
        return state

    def _process(self, conn: Connection) -> int:
        """Answer the buffered requests, up to the budget; send what they produced."""
        parser = conn.parser
        handle = conn.handle
        if handle is None:
            return READ
        self.host.set_current(conn.fd)
        sink = conn.sink
        limit = self.reply_limit
        if sink is not None and sink.plain() and limit == UNLIMITED:
            return self._process_batch(conn, sink)
        out = conn.out
        held = 0  # response objects of this round, as memcached would count them
        budget = self.requests_per_event
        outcome = Outcome.CONTINUE
        next_check = OUTPUT_CHECK_PIECES
        count = 0
        state = READ
        while True:
            event = parser.next_event()
            if event is NEED_DATA:
                break
            count += 1
            if limit != UNLIMITED:
                held += responses(event)
                if held > limit:
                    outcome, held = self._out_of_reply_memory(event, handle, out, held, limit)
                    if outcome != Outcome.CONTINUE:
                        break
                    continue
                if flushes(event):
                    held = 0
            outcome = handle(event, out)
            if outcome != Outcome.CONTINUE:
                if outcome != Outcome.MORE:
                    break
                # A long multi-get paused at its reply budget: send, then go on.
                rest = self.host.take_remainder()
                held -= responses(rest)  # counted already with the whole get
                parser.requeue(rest)  # type: ignore[attr-defined]
                outcome = Outcome.CONTINUE
                next_check = 0
            if len(out) >= next_check and not parser.mid_request:
                # Backpressure: past a bound, send before answering more, so a client
                # that asks for much and reads slowly makes us wait, not buffer.
                if sum(map(len, out)) >= OUTPUT_HIGH_WATER:
                    self.counters.output_flushes += 1
                    state = AGAIN
                    break
                next_check = len(out) + OUTPUT_CHECK_PIECES
            if count >= budget:
                self.counters.conn_yields += 1
                state = AGAIN
                break
        if outcome == Outcome.CLOSE or outcome == Outcome.CLOSE_ERROR:
            self._closing(conn, outcome)
            state = CLOSE
        # Like memcached, hold replies while a data block is still arriving.
        if out and (state == CLOSE or not parser.mid_request) and not self._send(conn):
            return WRITE
        return state

    def _out_of_reply_memory(self, event: object, handle: Handler, out: list[Reply],
                             held: int, limit: int) -> tuple[int, int]:
        """memcached out of response objects: a get answers GET_OOM alone, after looking up
        the keys it had room for; anything else closes. Returns (outcome, replies held)."""
        self.counters.response_obj_oom += 1
        room = limit - (held - responses(event))
        if type(event) is not ev.Retrieve:
            out.clear()  # memcached's conn_closing sends nothing more
            return Outcome.CLOSE_ERROR, 0
        if room > 0:
            handle(event._replace(keys=event.keys[:room], last=False), [])
        out.clear()  # memcached culls every stacked response before the error
        out.append(GET_OOM)
        return Outcome.CONTINUE, 1

    def _process_batch(self, conn: Connection, sink: BatchSink) -> int:
        """:meth:`_process` in one parser call: no event per request."""
        parser: BatchParser = conn.parser  # type: ignore[assignment]
        out = conn.out
        outcome, count = parser.serve(sink, out, self.requests_per_event, OUTPUT_HIGH_WATER)
        state = READ
        if outcome:
            if outcome == Outcome.MORE:  # a long multi-get paused at its reply budget
                conn.parser.requeue(self.host.take_remainder())  # type: ignore[attr-defined]
                state = AGAIN
            elif outcome == Outcome.CLOSE or outcome == Outcome.CLOSE_ERROR:
                self._closing(conn, outcome)
                state = CLOSE
            elif outcome == OUTPUT_FULL:  # send before answering more (backpressure)
                self.counters.output_flushes += 1
                state = AGAIN
            else:  # NOT_PLAIN: an observer arrived; go on one event at a time
                state = AGAIN
        elif count >= self.requests_per_event:
            self.counters.conn_yields += 1
            state = AGAIN
        if out and (state == CLOSE or not conn.parser.mid_request) and not self._send(conn):
            return WRITE
        return state

    @staticmethod
    def _closing(conn: Connection, outcome: int) -> None:
        conn.closing = True
        if outcome == Outcome.CLOSE_ERROR:
            conn.close_reason = "error"

    def _send(self, conn: Connection) -> bool:
        """Send ``conn.out``: joined into one send unless big (no doubling). False if the
        socket took only part (the rest waits in ``conn.unsent``)."""
        out = conn.out
        conn.out = []
        if len(out) == 1:
            pieces = out
        elif sum(map(len, out)) <= OUTPUT_HIGH_WATER:
            pieces = [b"".join(out)]
        else:
            pieces = _group(out)
        for piece in pieces:
            self.counters.bytes_written += len(piece)
        conn.unsent = pieces
        return self._send_unsent(conn) != WRITE

    def _send_unsent(self, conn: Connection) -> int:
        pieces = conn.unsent
        sock = conn.sock
        while pieces:
            piece = pieces[0]
            try:
                sent = sock.send(piece)
            except (BlockingIOError, ssl.SSLWantWriteError):
                return WRITE
            except ssl.SSLWantReadError:
                conn.send_wants_read = True
                return WRITE
            if sent < len(piece):
                pieces[0] = memoryview(piece)[sent:]
                return WRITE
            del pieces[0]
        return READ

    # -- per-connection tasks ----------------------------------------------------------

    async def _serve_tls(self, conn: Connection, context: ssl.SSLContext) -> None:
        tls = context.wrap_socket(conn.sock, server_side=True, do_handshake_on_connect=False)
        conn.sock = tls  # it owns the fd now
        if not await _handshake(tls):
            self.counters.ssl_handshake_errors += 1
            self._close(conn, "error")
            return
        await self._serve_task(conn)

    async def _serve_task(self, conn: Connection) -> None:
        """A connection served by a task of its own, with the same steps as the loop."""
        scope = trio.CancelScope()
        conn.scope = scope
        idle = self.idle_timeout
        sock = conn.sock
        state = READ
        with scope:
            while True:
                if state == AGAIN:
                    await trio.lowlevel.checkpoint()
                    state = self._guard(conn, self._process)
                elif state == WRITE:
                    if conn.send_wants_read:
                        conn.send_wants_read = False
                        await trio.lowlevel.wait_readable(sock)
                    else:
                        await trio.lowlevel.wait_writable(sock)
                    state = self._guard(conn, self._send_unsent)
                    if state == READ:
                        state = AGAIN  # requests (or a multi-get's rest) may be waiting
                elif state == READ:
                    state = self._guard(conn, self._read_and_process)
                    if state != READ:
                        continue
                    if self.draining and not conn.parser.buffered:
                        break
                    if idle:
                        scope.deadline = trio.current_time() + idle
                    conn.waiting = True
                    try:
                        await trio.lowlevel.wait_readable(sock)
                    finally:
                        conn.waiting = False
                        scope.deadline = math.inf
                elif state == CLOSE:
                    self._finish(conn)
                    return
                else:
                    return  # closed by _guard
        if scope.cancelled_caught and not self.draining:
            self.counters.idle_kicks += 1
            self._close(conn, "idle_timeout")
        else:
            self._close(conn, "shutdown")

    async def _serve_watch(self, conn: Connection, stream: WatchStream) -> None:
        scope = trio.CancelScope()
        conn.scope = scope
        try:
            with scope:
                await stream()
        except OSError as exc:
            log.debug("connection %d: %s", conn.fd, exc)
        finally:
            self._close(conn, "shutdown" if self.draining else "normal")


async def _handshake(tls: ssl.SSLSocket) -> bool:
    """Run the TLS handshake; False if it fails or times out."""
    with trio.move_on_after(TLS_HANDSHAKE_TIMEOUT):
        while True:
            try:
                tls.do_handshake()
                return True
            except ssl.SSLWantReadError:
                await trio.lowlevel.wait_readable(tls)
            except ssl.SSLWantWriteError:
                await trio.lowlevel.wait_writable(tls)
            except (ssl.SSLError, OSError) as exc:
                log.info("TLS handshake failed: %s", exc)
                return False
    return False


def _group(out: list[Reply]) -> list[Reply]:
    """Big replies on their own, runs of small ones joined (small data copied only)."""
    pieces: list[Reply] = []
    small: list[Reply] = []
    for piece in out:
        if len(piece) < 4096:
            small.append(piece)
            continue
        if small:
            pieces.append(b"".join(small))
            small = []
        pieces.append(piece)
    if small:
        pieces.append(b"".join(small))
    return pieces


def peer_name(address: object, family: int) -> str:
    """How ``stats conns`` names a peer: ``tcp:host:port``, ``tcp:[v6]:port``, ``unix:path``."""
    if family in (socket.AF_INET, socket.AF_INET6) and isinstance(address, tuple):
        host, port = address[0], address[1]
        return f"tcp:[{host}]:{port}" if ":" in str(host) else f"tcp:{host}:{port}"
    return f"unix:{address}"
