"""The connection loop's synchronous half: read, answer and send, for every connection.

:class:`Multiplexer` holds every connection and the epoll set of the multiplexed ones, and
does all the work of a wake-up (:meth:`Multiplexer.serve_round`) without awaiting anything:
each ready connection gets one step (:meth:`Multiplexer.run_step`), then is re-armed in the
epoll set for what it waits on next (:meth:`Multiplexer.rearm`). It imports no trio, so
mypyc compiles it with the sans-I/O layers: per request, the loop's own work (the read, the
budget, the output bound, the send) runs as native code instead of some hundred bytecodes.
The async shell around it, which waits and runs the tasks, is
:mod:`memcachepy.server.connections`.
"""

from __future__ import annotations

import logging
import math
import os
import select
import socket
import ssl
import time
from collections.abc import Callable
from typing import Any, Final, Protocol, cast

from memcachepy.auth.throttle import failure_delay
from memcachepy.dispatch.reply import Reply
from memcachepy.ops.counters import ServerCounters
from memcachepy.ops.current import CURRENT_CONNECTION
from memcachepy.ops.hooks import Handler as Handler  # also server/daemon.py's
from memcachepy.protocol import events as ev
from memcachepy.protocol.events import NEED_DATA
from memcachepy.protocol.replies import count_replies, reply_bytes
from memcachepy.protocol.text import RequestSink, TextParser
from memcachepy.protocol.text_events import TextEventParser
from memcachepy.protocol.wire import GET_OOM, OUTPUT_FULL, Outcome
from memcachepy.server.reply_memory import UNLIMITED, flushes, responses

log = logging.getLogger("memcachepy")

# memcached reads 16 KiB at a time; its "line over 2048 bytes without a newline" rule
# depends on it, so a longer line arriving in one packet is judged the same way.
READ_SIZE: Final = 16384
# Replies queued for one connection are sent once they pass this many bytes (checked
# every few pieces), so a multi-get of huge values never sits whole in memory.
OUTPUT_HIGH_WATER: Final = 256 * 1024
OUTPUT_CHECK_PIECES: Final = 8
MAX_EVENTS: Final = 256  # epoll events taken per wake-up; the rest come next round
# A round stops taking ready connections after this long: one read can bring the end of
# a 1 MB value, a store of a millisecond or more, and hundreds of them may be ready at once.
# Those not reached stay ready (the epoll set is level-triggered): the next poll has them.
ROUND_SLICE: Final = 0.005
# Bound once: compiled, ``time.monotonic()`` looks the name up in the module on each call,
# and the loop reads the clock after every connection it serves.
_monotonic: Final = time.monotonic
# What a connection may hold of partial requests, and of unsent replies, outside the bound
# of -o conn_mem_limit: one read's worth each, as memcached's own read buffer, so that
# ordinary requests and replies never count.
HELD_FREE: Final = READ_SIZE

# What a step leaves a connection waiting for.
READ: Final = 0  # more bytes from the client
AGAIN: Final = 1  # nothing: requests are buffered (budget spent, or TLS holds bytes)
WRITE: Final = 2  # the socket to take the unsent replies
CLOSE: Final = 3  # to be closed (quit, error, EOF), or to become a watcher (watch)
PAUSE: Final = 4  # time: not read after failed authentications (auth/throttle.py)

# The steps Multiplexer.guard runs.
DO_READ: Final = 0  # read, answer, send
DO_SEND: Final = 1  # send what a blocked send left
DO_PROCESS: Final = 2  # answer what is buffered, send

EPOLLIN: Final = select.EPOLLIN
EPOLLOUT: Final = select.EPOLLOUT


class ProtocolParser(Protocol):
    """What the connection loop needs of a sans-I/O parser (text, binary, ...)."""

    def receive_data(self, data: bytes) -> None: ...

    def next_event(self) -> object: ...

    @property
    def mid_request(self) -> bool: ...

    @property
    def buffered(self) -> int: ...


class LogLines(Protocol):
    """What a ``watch`` connection is sent: the lines the server queues for it."""

    #: Called when lines wait where there were none; the loop sets it.
    wake: Callable[[], None] | None

    def take(self) -> list[bytes]:
        """The lines queued so far (and forget them)."""


class _NoParser:
    """Stands in until a connection's first byte picks its protocol."""

    mid_request = False
    buffered = 0

    def receive_data(self, data: bytes) -> None:
        raise AssertionError("no protocol chosen yet")

    def next_event(self) -> object:
        return NEED_DATA


_NO_PARSER: Final[ProtocolParser] = _NoParser()


class LoopHost(Protocol):
    """What the loop needs of the server around it."""

    counters: ServerCounters

    def session(self, first_byte: int) -> tuple[ProtocolParser, Handler, RequestSink | None]:
        """The parser and handler for a connection, chosen by its first byte; and the
        sink when the parser answers a read in one call (TextParser.serve) and may call
        it directly."""

    def take_remainder(self) -> object: ...

    def connection_opened(self, fd: int, address: object) -> None: ...

    def connection_closed(self, fd: int, address: object, reason: str) -> None: ...

    def watcher(self, conn: Connection) -> LogLines | None:
        """The lines ``conn`` is to be sent since it sent ``watch``, or None."""


class Connection:
    """One client connection's state between reads."""

    def __init__(self, sock: socket.socket, address: object, tls: bool) -> None:
        self.sock = sock
        # The socket's methods, bound once: compiled, calling an attribute skips the
        # method lookup ``sock.recv(...)`` makes on every call.
        self.recv: Callable[[int], bytes] = sock.recv
        self.send: Callable[[Reply], int] = sock.send
        self.fd = sock.fileno()
        self.address = address
        self.peer = peer_name(address, sock.family)
        self.parser: ProtocolParser = _NO_PARSER
        self.handle: Handler | None = None
        self.sink: RequestSink | None = None
        # The parser again when it answers a read in one call (TextParser.serve), typed so
        # that compiled code calls it natively.
        self.batch: TextParser | None = None
        self.out: list[Reply] = []
        self.unsent: list[Reply] = []  # replies a blocked send left, in order
        self.last_active = 0.0
        self.queued = False  # in the loop's list of connections to serve again
        self.writing = False  # registered for EPOLLOUT (not read until unsent is gone)
        self.closing = False  # close once unsent is gone
        self.closed = False
        self.tls = tls
        self.send_wants_read = False  # TLS: a send needs the peer's bytes first
        self.scope: Any = None  # a task's trio.CancelScope
        self.waiting = False  # a task's: in a read wait (a drain may cancel it)
        self.close_reason = "normal"  # what `watch connevents` reports when it closes
        self.held = 0  # bytes of partial requests counted against -o conn_mem_limit
        self.held_replies = 0  # and of replies a blocked send left
        self.auth_failures = 0
        self.pause = 0.0  # PAUSE: seconds to hold it before serving it again
        # A watcher's lines: it is sent them, and what it sends is read and ignored.
        self.log: LogLines | None = None

    def use_socket(self, sock: socket.socket) -> None:
        """Serve through ``sock`` from now on (a TLS socket wrapping the accepted one)."""
        self.sock = sock
        self.recv = sock.recv
        self.send = sock.send


class Multiplexer:
    """The synchronous steps of serving connections, and the state they share."""

    def __init__(
        self,
        host: LoopHost,
        *,
        idle_timeout: float,
        requests_per_event: int,
        verbose: Callable[[], int],
        reply_limit: int = UNLIMITED,
        conn_limit: int = 0,
    ) -> None:
        self.host = host
        self.counters = host.counters
        self.idle_timeout = idle_timeout
        self.requests_per_event = requests_per_event
        # Replies a connection may stack between sends (-o read_buf_mem_limit, see
        # reply_memory); such a connection is served one event at a time.
        self.reply_limit = reply_limit
        self.verbose = verbose
        # -o conn_mem_limit: bytes of partial requests (values and lines still arriving)
        # and of unsent replies, held across all connections past each one's HELD_FREE;
        # 0: no bound.
        self.conn_limit = conn_limit
        self.conn_held = 0
        self.connections: dict[int, Connection] = {}  # every open one, by fd
        self.epoll = select.epoll()
        self._poll: Callable[[float, int], list[tuple[int, int]]] = self.epoll.poll  # bound once
        self.muxed: dict[int, Connection] = {}  # registered in the epoll set
        self.again: list[Connection] = []
        self.draining = False
        # Watchers with lines to send: sent when serve_for ends (at most its slice later),
        # so each gets those rounds' lines in one send, as memcached's logger thread sends
        # every millisecond or so. Lines queued outside serve_for (a TLS connection's task,
        # a new connection) signal the eventfd, made with the first watcher: the loop wakes.
        self.logging: list[Connection] = []
        self.serving = False
        self.wake_fd = -1
        self.woken = False
        # Set by the loop: serves a held connection again after conn.pause seconds.
        self.start_pause: Callable[[Connection], None] = _no_pause
        # Work due at a time on the monotonic clock (the LRU maintainer's turns). While the
        # loop is busy it runs the work between two rounds: a timer through trio's scheduler
        # costs more than a slice of the work itself. ``timed(now)`` runs what is due and
        # answers when more will be.
        self.due = math.inf
        self.timed: Callable[[float], float] = _nothing_due

    def serve_round(self, now: float = -1.0) -> int:
        """One wake-up of the multiplexing task: serve every ready connection once, then
        those served again (their budget was spent with requests still buffered).
        ``now``: the monotonic clock as the caller just read it (-1: read it here).
        Returns how many connections it served."""
        again, self.again = self.again, []
        if now < 0:
            now = _monotonic()
        end = now + ROUND_SLICE
        muxed = self.muxed
        ready = self._poll(0, MAX_EVENTS)
        for fd, _ in ready:
            conn = muxed.get(fd)
            if conn is None or conn.queued:
                if fd == self.wake_fd:
                    os.eventfd_read(fd)
                    self.woken = False
                continue
            conn.last_active = now
            if conn.writing:
                state = self.run_step(conn, DO_SEND)
            else:
                state = self.run_step(conn, DO_READ)
            self.rearm(conn, state)
            if _monotonic() > end:
                break
        for conn in again:
            conn.queued = False
            if not conn.closed:
                self.rearm(conn, self.run_step(conn, DO_PROCESS))
        return len(ready) + len(again)

    def serve_for(self, seconds: float) -> bool:
        """Serve rounds back to back until one finds nothing to do, or ``seconds`` pass.

        A wake-up through trio's scheduler costs more than a small round's requests, so
        the loop goes back to trio only when idle, or once a slice is spent, so that the
        other tasks (accept, timers, TLS connections) still run at least that often.
        Returns True when the slice was spent with connections still served: the caller
        need not wait for the epoll set, which is likely ready again."""
        now = _monotonic()
        end = now + seconds
        self.serving = True
        busy = False
        while self.serve_round(now):
            now = _monotonic()
            if now >= self.due:
                self.due = self.timed(now)
            if now >= end:
                busy = True
                break
        if self.logging:
            self.send_logs()
        self.serving = False
        if self.logging:  # queued while sending (a watcher closed: connevents)
            self.wake()
        return busy

    def rearm(self, conn: Connection, state: int) -> None:
        """Register a multiplexed connection for what it waits on now, or close it."""
        if state == WRITE:
            if not conn.writing:  # stop reading it until its replies are gone
                conn.writing = True
                self.epoll.modify(conn.fd, EPOLLOUT)
                if self.conn_limit:
                    self.hold_replies(conn)
            return
        if conn.writing and not conn.closed:
            conn.writing = False
            self.epoll.modify(conn.fd, EPOLLIN)
            self.conn_held -= conn.held_replies
            conn.held_replies = 0
        if state == READ:
            if self.draining and self.idle(conn):
                self.close(conn, "shutdown")
        elif state == AGAIN:
            conn.queued = True
            self.again.append(conn)
        elif state == CLOSE:
            self.finish(conn)
        elif state == PAUSE:
            self.unregister(conn)  # not read until the pause ends
            self.start_pause(conn)

    def run_step(self, conn: Connection, step: int) -> int:
        """Run one step (DO_READ, DO_SEND or DO_PROCESS: a code, not a bound method, so
        that compiled code calls the step natively); an error closes this connection,
        never the loop. -1: closed."""
        try:
            if conn.log is not None:
                return self.log_step(conn, step)
            if step == DO_READ:
                state = self.read_and_process(conn)
            elif step == DO_SEND:
                state = self.send_unsent(conn)
            else:
                state = self.process(conn)
            if self.conn_limit and step != DO_SEND and not conn.closed:
                batch = conn.batch  # typed: compiled, a native call
                held = batch.buffered if batch is not None else conn.parser.buffered
                if held > HELD_FREE or conn.held:
                    state = self.hold(conn, held, state)
        except OSError as exc:
            log.debug("connection %d: %s", conn.fd, exc)
            self.close(conn, "error")
            return -1
        except Exception:
            # A bug met by one request must cost that client its connection, never the
            # server: log it loudly, count it, close, and keep serving everyone else.
            self.counters.internal_errors += 1
            log.exception("connection %d: internal error; closing it", conn.fd)
            self.close(conn, "error")
            return -1
        if state == READ:
            if conn.closing:
                return CLOSE
            if conn.writing:
                return AGAIN  # requests (or a multi-get's rest) may wait behind the send
        return state

    def hold(self, conn: Connection, held: int, state: int) -> int:
        """Count what ``conn`` holds past HELD_FREE against -o conn_mem_limit. Past the
        bound, the connection whose partial request just grew lets it go, answered as
        memcached answers when it lacks memory (see TextEventParser.shed), so that slow
        uploads cost the daemon a bounded amount of memory and never the daemon itself."""
        extra = held - HELD_FREE if held > HELD_FREE else 0
        grew = extra > conn.held
        self.conn_held += extra - conn.held
        conn.held = extra
        if not grew or self.conn_held <= self.conn_limit or state == WRITE:
            return state
        parser = conn.parser
        if isinstance(parser, TextEventParser):
            if not parser.shed():
                return state  # complete requests, or a long get line being answered
            self.counters.read_buf_oom += 1
            state = self.process(conn)  # the answers shed() queued
        else:  # binary or -Y: no partial body is swallowed there; the connection goes
            self.counters.read_buf_oom += 1
            self.closing(conn, Outcome.CLOSE_ERROR)
            state = CLOSE
        extra = max(parser.buffered - HELD_FREE, 0)
        self.conn_held += extra - conn.held
        conn.held = extra
        return state

    def hold_replies(self, conn: Connection) -> None:
        """Count the replies a blocked send left against -o conn_mem_limit (a client that
        asks and never reads holds them until it reads). Past the bound, that client is
        closed: memcached keeps such replies as references to items under -m, where these
        are copies, and closing is the one answer a client that does not read can get."""
        backlog = held_bytes(conn.unsent) - HELD_FREE
        if backlog <= 0:
            return
        conn.held_replies = backlog
        self.conn_held += backlog
        if self.conn_held > self.conn_limit:
            self.counters.read_buf_oom += 1
            self.close(conn, "error")

    def finish(self, conn: Connection) -> None:
        """CLOSE: a connection that sent ``watch`` becomes a watcher; others are closed."""
        log_lines = self.host.watcher(conn) if conn.log is None else None
        if log_lines is None:
            self.close(conn, conn.close_reason)
            return
        conn.log = log_lines
        conn.parser = _NO_PARSER  # what it sends from now on is read and dropped
        conn.handle = conn.sink = conn.batch = None
        if conn.fd not in self.muxed:  # TLS: served by a task until now
            self.epoll.register(conn.fd, EPOLLIN)
            self.muxed[conn.fd] = conn
        if self.wake_fd < 0:
            self.wake_fd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
            self.epoll.register(self.wake_fd, EPOLLIN)
        log_lines.wake = lambda: self.lines_wait(conn)
        self.lines_wait(conn)

    def lines_wait(self, conn: Connection) -> None:
        """A watcher has lines to send (its wake): when serve_for ends, or the next one."""
        self.logging.append(conn)
        if not self.serving:
            self.wake()

    def wake(self) -> None:
        if not self.woken and self.wake_fd >= 0:
            self.woken = True
            os.eventfd_write(self.wake_fd, 1)

    def send_logs(self) -> None:
        """Send each waiting watcher its lines (one blocked in a send gets them after)."""
        waiting, self.logging = self.logging, []
        for conn in waiting:
            if not conn.closed and not conn.writing:
                self.rearm(conn, self.run_step(conn, DO_PROCESS))

    def log_step(self, conn: Connection, step: int) -> int:
        """A watcher's step: drop what it sent (EOF closes it), or send it its lines."""
        if step == DO_READ:
            try:
                data = conn.recv(READ_SIZE)
            except (BlockingIOError, ssl.SSLWantReadError, ssl.SSLWantWriteError):
                return READ
            return READ if data else CLOSE
        if conn.unsent and self.send_unsent(conn) == WRITE:
            return WRITE
        assert conn.log is not None
        lines = conn.log.take()
        if not lines or self.send_buffer(conn, b"".join(lines)):
            return READ
        return WRITE

    def unregister(self, conn: Connection) -> None:
        if self.muxed.pop(conn.fd, None) is not None:
            self.epoll.unregister(conn.fd)

    def close(self, conn: Connection, reason: str) -> None:
        if conn.closed:
            return
        conn.closed = True
        self.conn_held -= conn.held + conn.held_replies
        conn.held = conn.held_replies = 0
        self.unregister(conn)
        del self.connections[conn.fd]
        self.host.connection_closed(conn.fd, conn.address, reason)
        self.counters.curr_connections -= 1
        conn.sock.close()
        if self.verbose():
            log.info("<%d connection closed", conn.fd)

    def shut(self) -> None:
        """Close the epoll set and the wake-up eventfd (every connection is closed)."""
        self.epoll.close()
        if self.wake_fd >= 0:
            os.close(self.wake_fd)
            self.wake_fd = -1

    def idle(self, conn: Connection) -> bool:
        return not conn.parser.buffered and not conn.unsent and not conn.out

    def read_and_process(self, conn: Connection) -> int:
        try:
            data = conn.recv(READ_SIZE)
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
            if conn.sink is not None and isinstance(parser, TextParser):
                conn.batch = parser
        batch = conn.batch
        if batch is not None:
            batch.receive_data(data)
        else:
            parser.receive_data(data)
        state = self.process(conn)
        if state == READ and conn.tls and conn.sock.pending():  # type: ignore[attr-defined]
            return AGAIN  # TLS holds decrypted bytes the socket will never signal
        return state

    def process(self, conn: Connection) -> int:
        """Answer the buffered requests, up to the budget; send what they produced."""
        parser = conn.parser
        handle = conn.handle
        if handle is None:
            return READ
        CURRENT_CONNECTION.fd = conn.fd  # compiled: a native store, not a method call
        sink = conn.sink
        limit = self.reply_limit
        batch = conn.batch
        if batch is not None and sink is not None and sink.plain() and limit == UNLIMITED:
            return self.process_batch(conn, batch, sink)
        out = conn.out
        held = 0  # response objects of this round, as memcached would count them
        budget = self.requests_per_event
        outcome = Outcome.CONTINUE
        next_check = OUTPUT_CHECK_PIECES
        # The bytes (queued) of out[:counted], kept by count_replies as TextParser.serve's.
        counted = queued = 0
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
                    outcome, held = self.out_of_reply_memory(event, handle, out, held, limit)
                    if outcome != Outcome.CONTINUE:
                        break
                    continue
                if flushes(event):
                    held = 0
            outcome = handle(event, out)
            if outcome == Outcome.AUTH_FAILED:
                outcome = Outcome.CONTINUE
                if self.auth_failed(conn):
                    state = PAUSE  # answered now; the next request waits
                    break
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
                counted, queued = count_replies(out, counted, queued)
                if queued >= OUTPUT_HIGH_WATER:
                    self.counters.output_flushes += 1
                    state = AGAIN
                    break
                next_check = counted + OUTPUT_CHECK_PIECES
            # A slice of a long get line (not its last) takes the whole round, as in
            # TextParser.serve, so that others are served between slices.
            if count >= budget or (type(event) is ev.Retrieve and not event.last):
                self.counters.conn_yields += 1
                state = AGAIN
                break
        if outcome == Outcome.CLOSE or outcome == Outcome.CLOSE_ERROR:
            self.closing(conn, outcome)
            state = CLOSE
        # Like memcached, hold replies while a data block is still arriving.
        if out and (state == CLOSE or not parser.mid_request) and not self.send(conn):
            return PAUSE if state == PAUSE else WRITE  # a pause ends with the rest sent
        return state

    def auth_failed(self, conn: Connection) -> bool:
        """Count a failed authentication; True if the connection is to be held."""
        conn.auth_failures += 1
        conn.pause = failure_delay(conn.auth_failures)
        # memcached's SASL library says "Password verification failed" at -v.
        log.info(
            "<%d Password verification failed: failure %d on this connection from %s%s",
            conn.fd,
            conn.auth_failures,
            conn.peer,
            f"; holding it {conn.pause * 1000:.0f} ms" if conn.pause else "",
        )
        return conn.pause > 0

    def out_of_reply_memory(
        self, event: object, handle: Handler, out: list[Reply], held: int, limit: int
    ) -> tuple[int, int]:
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

    def process_batch(self, conn: Connection, parser: TextParser, sink: RequestSink) -> int:
        """:meth:`process` in one parser call: no event per request."""
        out = conn.out
        outcome, count = parser.serve(sink, out, self.requests_per_event, OUTPUT_HIGH_WATER)
        state = READ
        if outcome:
            if outcome == Outcome.MORE:  # a long multi-get paused at its reply budget
                parser.requeue(self.host.take_remainder())  # type: ignore[arg-type]
                state = AGAIN
            elif outcome == Outcome.CLOSE or outcome == Outcome.CLOSE_ERROR:
                self.closing(conn, outcome)
                state = CLOSE
            elif outcome == OUTPUT_FULL:  # send before answering more (backpressure)
                self.counters.output_flushes += 1
                state = AGAIN
            else:  # NOT_PLAIN: an observer arrived; go on one event at a time
                state = AGAIN
        elif count >= self.requests_per_event:
            self.counters.conn_yields += 1
            state = AGAIN
        if out and (state == CLOSE or not parser.mid_request) and not self.send(conn):
            return WRITE
        return state

    @staticmethod
    def closing(conn: Connection, outcome: int) -> None:
        conn.closing = True
        if outcome == Outcome.CLOSE_ERROR:
            conn.close_reason = "error"

    def send(self, conn: Connection) -> bool:
        """Send ``conn.out``: joined into one send unless big (no doubling). False if the
        socket took only part (the rest waits in ``conn.unsent``)."""
        out = conn.out
        size = reply_bytes(out, 0)
        self.counters.bytes_written += size
        if size > OUTPUT_HIGH_WATER:
            conn.out = []
            conn.unsent = _group(out)
            return self.send_unsent(conn) != WRITE
        # The common case: one send of one buffer, and the list kept for the next replies.
        data = out[0] if len(out) == 1 else b"".join(out)
        out.clear()
        return self.send_buffer(conn, data)

    @staticmethod
    def send_buffer(conn: Connection, data: Reply) -> bool:
        """One send of ``data``; False if the socket took only part (the rest waits in
        ``conn.unsent``)."""
        try:
            sent = conn.send(data)
        except (BlockingIOError, ssl.SSLWantWriteError):
            sent = 0
        except ssl.SSLWantReadError:
            conn.send_wants_read = True
            sent = 0
        if sent == len(data):
            return True
        conn.unsent = [memoryview(data)[sent:] if sent else data]
        return False

    def send_unsent(self, conn: Connection) -> int:
        pieces = conn.unsent
        send = conn.send
        while pieces:
            piece = pieces[0]
            try:
                sent = send(piece)
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


def held_bytes(pieces: list[Reply]) -> int:
    """The memory ``pieces`` keep alive: the whole of what a partly sent piece (a view)
    still holds, not only its unsent part."""
    size = 0
    for piece in pieces:
        if type(piece) is memoryview:
            size += len(cast(bytes, piece.obj))
        else:
            size += len(piece)
    return size


def _no_pause(conn: Connection) -> None:
    raise AssertionError("no loop to hold a connection")


def _nothing_due(now: float) -> float:
    return math.inf


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
