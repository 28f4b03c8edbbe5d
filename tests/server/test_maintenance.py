"""The LRU maintainer's turns: run by a busy connection loop between its rounds, and by
their task while the loop waits.

A real daemon's parts (``Server`` builds them as it does when it serves) over a socketpair;
the task runs under trio on the real clock.
"""

from __future__ import annotations

import math
import socket
import time
from collections.abc import Iterator

import pytest
import trio

from memcachepy.config import Settings
from memcachepy.server.daemon import Server
from memcachepy.server.maintenance import (
    MAINTAINER_BUDGET,
    MAINTAINER_SLICE,
    LruTurns,
    lru_maintainer,
)
from memcachepy.server.multiplexer import EPOLLIN, Connection
from memcachepy.store.items import SEG_COLD, SEG_HOT, SEG_SHIFT
from memcachepy.store.results import StoreMode

ITEMS = 400  # all of one class, far past HOT's share


@pytest.fixture
def server() -> Iterator[Server]:
    made = Server(Settings())
    cache = made.cache
    for i in range(ITEMS):
        cache.store(StoreMode.SET, b"key:%d" % i, 0, 0, b"v" * 50)
    yield made
    made.loop.mux.shut()


def class_of(server: Server) -> int:
    counts = server.cache.items.counts
    return next(c for c in range(1, len(counts)) if counts[c])


def segment(server: Server, seg: int) -> int:
    items = server.cache.items
    count: int = items.seg_counts[class_of(server) | seg << SEG_SHIFT]
    return count


def juggles(server: Server) -> int:
    return server.cache.counters.lru_maintainer_juggles


def connect(server: Server) -> socket.socket:
    """A multiplexed connection, as the acceptor adds one; the client's end."""
    mux = server.loop.mux
    ours, client = socket.socketpair()
    ours.setblocking(False)
    client.settimeout(5)
    conn = Connection(ours, "test", False)
    mux.connections[conn.fd] = conn
    mux.epoll.register(conn.fd, EPOLLIN)
    mux.muxed[conn.fd] = conn
    return client


def test_a_busy_loop_runs_a_due_slice_after_a_round_and_none_before_it_is_due(
    server: Server,
) -> None:
    mux = server.loop.mux
    turns = LruTurns(server.cache, server.settings.store)
    mux.timed = turns.from_loop
    mux.due = 0.0
    assert segment(server, SEG_HOT) == ITEMS
    client = connect(server)
    client.sendall(b"version\r\n")
    mux.serve_for(0)
    assert client.recv(100).startswith(b"VERSION ")
    # One slice of the turn ran: its moves, and the rest of the turn is due at once.
    assert juggles(server) == 1
    assert segment(server, SEG_COLD) == MAINTAINER_SLICE
    assert mux.due == turns.due <= time.monotonic()
    # The turn goes on a slice per round until its budget is spent; then a pause.
    rounds = 0
    while turns.due <= time.monotonic():
        client.sendall(b"version\r\n")
        mux.serve_for(0)
        client.recv(100)
        rounds += 1
    assert rounds == MAINTAINER_BUDGET // MAINTAINER_SLICE - 1
    assert segment(server, SEG_COLD) == MAINTAINER_BUDGET
    assert mux.due == turns.due > time.monotonic()
    # Not due: the rounds run no slice.
    before = juggles(server)
    client.sendall(b"version\r\n")
    mux.serve_for(0)
    client.recv(100)
    assert juggles(server) == before
    assert segment(server, SEG_COLD) == MAINTAINER_BUDGET
    client.close()


def test_a_loop_told_of_a_turn_the_task_ran_runs_none_early(server: Server) -> None:
    mux = server.loop.mux
    turns = LruTurns(server.cache, server.settings.store)
    mux.timed = turns.from_loop
    mux.due = 0.0
    turns.due = time.monotonic() + 60  # the task ran a turn meanwhile
    assert mux.timed(time.monotonic()) == turns.due
    assert juggles(server) == 0
    assert turns.loop_ran == -math.inf


def test_the_task_runs_the_turns_while_the_loop_waits_and_stops_the_loops_when_cancelled(
    server: Server,
) -> None:
    mux = server.loop.mux
    turns = LruTurns(server.cache, server.settings.store)

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(lru_maintainer, turns, mux)
            await trio.sleep(0.3)
            assert mux.timed == turns.from_loop
            nursery.cancel_scope.cancel()

    trio.run(main)
    # HOT was brought down to its share by the task alone (the loop served no round).
    hot_share = ITEMS * server.settings.store.hot_lru_pct // 100
    assert segment(server, SEG_HOT) <= hot_share
    assert juggles(server) > 1
    assert mux.due == math.inf
    client = connect(server)
    client.sendall(b"version\r\n")
    before = juggles(server)
    mux.serve_for(0)
    assert client.recv(100).startswith(b"VERSION ")
    assert juggles(server) == before
    client.close()
