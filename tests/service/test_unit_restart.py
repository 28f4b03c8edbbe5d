"""A restart under the shipped units keeps an ``-e`` cache.

systemd stops a service by sending its ``KillSignal`` and waits ``TimeoutStopSec`` before
SIGKILL. These tests send a real daemon exactly the signal the unit names, with a cache
filled most of the way to the unit's ``CACHESIZE``, and check that it is gone within the
unit's timeout and that the next start serves every item again.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest
from pymemcache.client.base import Client

from memcachepy.config import Settings
from tests.servers import free_port, memcachepy_argv, spawn
from tests.service.test_units import SERVICES, unit_settings

MB = 1 << 20


def unit_stop(unit: str) -> tuple[signal.Signals, float, int]:
    """The unit's KillSignal, TimeoutStopSec (seconds) and default CACHESIZE (MB)."""
    s = unit_settings(unit)
    timeout = s["TimeoutStopSec"][0]
    assert timeout.endswith("s"), timeout
    env = dict(item.split("=", 1) for item in s["Environment"][0].split())
    return signal.Signals[s["KillSignal"][0]], float(timeout[:-1]), int(env["CACHESIZE"])


@pytest.mark.parametrize("unit", SERVICES)
def test_units_stop_gracefully_with_time_to_drain_and_save(unit: str) -> None:
    kill_signal, timeout, cachesize = unit_stop(unit)
    assert kill_signal == signal.SIGUSR1  # the daemon's graceful stop, which saves -e
    # The rule the unit comment and the README state: the drain, then -m at 10 MB/s.
    assert timeout >= Settings().drain_timeout + cachesize / 10


def test_the_units_kill_signal_saves_a_full_cache_and_the_next_start_restores_it(
    tmp_path: Path,
) -> None:
    kill_signal, timeout, cachesize = unit_stop("memcachepy.service")
    memory = str(tmp_path / "memory")
    port = free_port()
    argv = memcachepy_argv(port, "-m", str(cachesize), "-e", memory)
    big = {f"big:{i}".encode(): os.urandom(100_000) for i in range(400)}  # ~40 of 64 MB
    small = {f"small:{i}".encode(): f"value {i}".encode() * (1 + i % 7) for i in range(3000)}
    server = spawn(argv, port)
    try:
        client = Client(server.address, connect_timeout=5, timeout=30)
        for key, value in big.items():
            assert client.set(key, value, noreply=False)
        for i, (key, value) in enumerate(small.items()):
            assert client.set(key, value, expire=3600, flags=i % 65536, noreply=False)
        stats = client.stats()
        assert stats[b"evictions"] == 0 and stats[b"curr_items"] == len(big) + len(small)
        client.close()
        server.proc.send_signal(kill_signal)
        started = time.monotonic()
        assert server.proc.wait(timeout) == 0  # systemd would SIGKILL it past the timeout
        stopped_in = time.monotonic() - started
    finally:
        server.stop()
    assert stopped_in < timeout

    server = spawn(argv, port)
    try:
        client = Client(server.address, connect_timeout=5, timeout=30)
        assert client.stats()[b"curr_items"] == len(big) + len(small)
        for start in range(0, len(big), 50):
            keys = list(big)[start : start + 50]
            assert client.get_many(keys) == {k: big[k] for k in keys}
        for i, key in enumerate(small):
            # mg with f and t: the flags, and the remaining TTL (a restart keeps the clock).
            head = client.raw_command(b"mg " + key + b" f t", b"\r\n").split()
            assert head[0] == b"HD" and head[1] == f"f{i % 65536}".encode(), head
            assert 3000 < int(head[2][1:]) <= 3600, head
        got_values = {}
        keys = list(small)
        for start in range(0, len(keys), 200):
            got_values.update(client.get_many(keys[start : start + 200]))
        assert got_values == small
        client.close()
    finally:
        server.stop()
