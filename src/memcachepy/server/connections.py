"""The connection loop: one trio task serves every plain connection through an epoll set.

A trio task per connection pays a scheduler round trip per request and connection; with
many connections that halves throughput. Here every plain connection is registered once in
a level-triggered epoll set owned by one task (:meth:`ConnectionLoop.run`). The task waits
for that set's fd with ``wait_readable`` and, on each wake-up, serves every ready connection:
one read, every complete request in it (at most ``requests_per_event``, memcached's ``-R``),
one send. A connection whose send would block is re-registered for EPOLLOUT only, so it is
not read until its replies are gone (backpressure); one that used up its budget with
requests still buffered is served again next round, after the others.

Per-connection tasks remain only for TLS (handshake and records). They run the same
synchronous steps, which live in :mod:`memcachepy.server.multiplexer` (compiled with mypyc
where a compiler is present); this module is the part that awaits.
"""

from __future__ import annotations

import logging
import math
import socket
import ssl
import time
from collections.abc import Callable

import trio

from memcachepy.server.multiplexer import (
    AGAIN,
    CLOSE,
    DO_PROCESS,
    DO_READ,
    DO_SEND,
    EPOLLIN,
    PAUSE,
    READ,
    WRITE,
    Connection,
    LoopHost,
    Multiplexer,
)
from memcachepy.server.reply_memory import UNLIMITED

log = logging.getLogger("memcachepy")

TLS_HANDSHAKE_TIMEOUT = 10.0
# How long rounds are served back to back while each finds work, before the other tasks
# get their turn (a round that finds nothing goes back to trio at once).
SERVE_SLICE = 0.002
IDLE_SWEEP = 0.25  # seconds between idle-timeout sweeps of multiplexed connections


class ConnectionLoop:
    """Every connection of one server: the multiplexed ones and the task-served ones."""

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
        self.mux = Multiplexer(
            host,
            idle_timeout=idle_timeout,
            requests_per_event=requests_per_event,
            verbose=verbose,
            reply_limit=reply_limit,
            conn_limit=conn_limit,
        )
        self.mux.start_pause = self._start_pause
        self.host = host
        self.counters = host.counters
        self.idle_timeout = idle_timeout
        self._nursery: trio.Nursery | None = None

    @property
    def connections(self) -> dict[int, Connection]:
        """Every open connection, by fd."""
        return self.mux.connections

    @property
    def draining(self) -> bool:
        """A graceful stop has begun."""
        return self.mux.draining

    # -- life --------------------------------------------------------------------------

    async def run(self, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Serve until cancelled; then close every connection still open."""
        mux = self.mux
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                if self.idle_timeout:
                    nursery.start_soon(self._sweep_idle)
                task_status.started()
                await self._serve_ready()
        finally:
            for conn in list(mux.connections.values()):
                mux.close(conn, "shutdown")
            mux.shut()

    def add(self, sock: socket.socket, address: object, tls: ssl.SSLContext | None) -> None:
        """Serve a freshly accepted non-blocking socket (counted by the caller)."""
        mux = self.mux
        conn = Connection(sock, address, tls is not None)
        mux.connections[conn.fd] = conn
        if mux.verbose():
            log.info("<%d new connection from %s", conn.fd, conn.peer)
        self.host.connection_opened(conn.fd, address)
        assert self._nursery is not None
        if tls is not None:
            self._nursery.start_soon(self._serve_tls, conn, tls)
            return
        conn.last_active = time.monotonic()
        mux.epoll.register(conn.fd, EPOLLIN)
        mux.muxed[conn.fd] = conn

    async def drain(self, timeout: float) -> None:
        """Graceful stop: close each connection once nothing of a request is buffered."""
        mux = self.mux
        mux.draining = True
        for conn in list(mux.connections.values()):
            if conn.fd in mux.muxed:
                if not conn.queued and mux.idle(conn):
                    mux.close(conn, "shutdown")
            elif conn.waiting and not conn.parser.buffered and conn.scope is not None:
                conn.scope.cancel()
        with trio.move_on_after(timeout):
            while mux.connections:
                await trio.sleep(0.01)

    def lines(self) -> list[tuple[str, object]]:
        """``stats conns``: each connection's address and state."""
        out: list[tuple[str, object]] = []
        for fd, conn in sorted(self.mux.connections.items()):
            out.append((f"{fd}:addr", conn.peer))
            out.append((f"{fd}:state", "conn_parse_cmd"))
        return out

    # -- the multiplexing task ---------------------------------------------------------

    async def _serve_ready(self) -> None:
        mux = self.mux
        fileno = mux.epoll.fileno()
        serve_for = mux.serve_for
        busy = False
        while True:
            # Busy (the slice was spent) or with connections to serve again, the loop only
            # lets the other tasks run: a checkpoint costs less than a wait for the epoll
            # set, which registers its fd with trio's epoll each time.
            if busy or mux.again:
                await trio.lowlevel.checkpoint()
            else:
                await trio.lowlevel.wait_readable(fileno)
            busy = serve_for(SERVE_SLICE)

    async def _sweep_idle(self) -> None:
        """``idle_timeout`` for multiplexed connections: memcached's conn_timeout thread
        also checks on a coarse clock."""
        mux = self.mux
        while True:
            await trio.sleep(min(IDLE_SWEEP, self.idle_timeout / 4))
            limit = time.monotonic() - self.idle_timeout
            for conn in list(mux.muxed.values()):
                # Watchers are only written to: memcached's conn_timeout leaves them too.
                if (
                    conn.log is None
                    and conn.last_active <= limit
                    and not conn.writing
                    and not conn.queued
                ):
                    self.counters.idle_kicks += 1
                    mux.close(conn, "idle_timeout")

    # -- per-connection tasks ----------------------------------------------------------

    def _start_pause(self, conn: Connection) -> None:
        assert self._nursery is not None
        self._nursery.start_soon(self._resume_after_pause, conn)

    async def _resume_after_pause(self, conn: Connection) -> None:
        await trio.sleep(conn.pause)
        mux = self.mux
        if conn.closed:
            return
        mux.muxed[conn.fd] = conn
        conn.writing = False
        mux.epoll.register(conn.fd, EPOLLIN)
        state = mux.run_step(conn, DO_SEND) if conn.unsent else READ
        if state == READ:
            state = mux.run_step(conn, DO_PROCESS)
        mux.rearm(conn, state)

    async def _serve_tls(self, conn: Connection, context: ssl.SSLContext) -> None:
        tls = context.wrap_socket(conn.sock, server_side=True, do_handshake_on_connect=False)
        conn.use_socket(tls)  # it owns the fd now
        if not await _handshake(tls):
            self.counters.ssl_handshake_errors += 1
            self.mux.close(conn, "error")
            return
        await self._serve_task(conn)

    async def _serve_task(self, conn: Connection) -> None:
        """A connection served by a task of its own, with the same steps as the loop."""
        mux = self.mux
        scope = trio.CancelScope()
        conn.scope = scope
        idle = self.idle_timeout
        sock = conn.sock
        state = READ
        with scope:
            while True:
                if state == AGAIN:
                    await trio.lowlevel.checkpoint()
                    state = mux.run_step(conn, DO_PROCESS)
                elif state == WRITE:
                    if conn.send_wants_read:
                        conn.send_wants_read = False
                        await trio.lowlevel.wait_readable(sock)
                    else:
                        await trio.lowlevel.wait_writable(sock)
                    state = mux.run_step(conn, DO_SEND)
                    if state == READ:
                        state = AGAIN  # requests (or a multi-get's rest) may be waiting
                elif state == READ:
                    state = mux.run_step(conn, DO_READ)
                    if state != READ:
                        continue
                    if mux.draining and not conn.parser.buffered:
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
                    mux.finish(conn)
                    return
                elif state == PAUSE:
                    await trio.sleep(conn.pause)
                    state = WRITE if conn.unsent else AGAIN
                else:
                    return  # closed by guard
        if scope.cancelled_caught and not mux.draining:
            self.counters.idle_kicks += 1
            mux.close(conn, "idle_timeout")
        else:
            mux.close(conn, "shutdown")


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
