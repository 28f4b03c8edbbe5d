"""The warm-up's small parts: pacing, TTLs, finding this node in the membership."""

from __future__ import annotations

import time

from memcachepy.cluster.discovery import ClusterNode
from memcachepy.cluster.warmup import RateLimit, client_exptime, find_self


def test_rate_limit_paces_by_the_slower_of_items_and_bytes() -> None:
    now = [100.0]
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    limit = RateLimit(1000, 10_000, clock=lambda: now[0], sleep=sleep)
    limit.charge(100, 100)  # 0.1 s of items, 0.01 s of bytes
    limit.charge(100, 5_000)  # 0.2 s of items, 0.51 s of bytes
    assert [round(s, 3) for s in slept] == [0.1, 0.41]
    unlimited = RateLimit(0, 0, clock=lambda: now[0], sleep=sleep)
    unlimited.charge(10**6, 10**9)
    assert len(slept) == 2


def test_client_exptime_keeps_short_ttls_relative_and_long_ones_absolute() -> None:
    assert client_exptime(-1) == 0
    assert client_exptime(600) == 600
    assert client_exptime(60 * 60 * 24 * 30) == 60 * 60 * 24 * 30
    assert client_exptime(60 * 60 * 24 * 31, now=1_000_000) == 1_000_000 + 60 * 60 * 24 * 31
    assert abs(client_exptime(60 * 60 * 24 * 40) - time.time() - 60 * 60 * 24 * 40) < 5


def test_find_self_by_listen_address_then_by_local_address() -> None:
    nodes = [
        ClusterNode("a.example", "127.0.0.1", 11211),
        ClusterNode("b.example", "127.0.0.2", 11211),
        ClusterNode("c.example", "192.0.2.7", 11212),
    ]
    assert find_self(nodes, [11211], ["127.0.0.2"]).ip == "127.0.0.2"  # type: ignore[union-attr]
    # Listening on every address: two loopback members would both be this machine.
    assert find_self(nodes, [11211], ["0.0.0.0"]) is None
    assert find_self(nodes[:1], [11211], ["0.0.0.0"]).host == "a.example"  # type: ignore[union-attr]
    assert find_self(nodes, [11212], ["0.0.0.0"]) is None  # 192.0.2.7 is not ours
    assert find_self(nodes, [11213], ["127.0.0.1"]) is None
