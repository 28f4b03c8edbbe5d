"""Real binary-protocol clients, unchanged, against a running memcachepy.

python-binary-memcached (``bmemcached``) speaks the binary protocol in pure Python and uses
the quiet opcodes for its multi-key calls (setq/getkq/deleteq closed by a noop); pylibmc with
``binary=True`` goes through libmemcached's binary implementation.
"""

from __future__ import annotations

from collections.abc import Iterator

import bmemcached
import pylibmc
import pytest

from tests.servers import ServerProcess


@pytest.fixture
def bm(server: ServerProcess) -> Iterator[bmemcached.Client]:
    client = bmemcached.Client((f"{server.host}:{server.port}",), socket_timeout=5)
    yield client
    client.disconnect_all()


@pytest.fixture
def lm(server: ServerProcess) -> Iterator[pylibmc.Client]:
    client = pylibmc.Client(
        [f"{server.host}:{server.port}"],
        binary=True,
        behaviors={"cas": True, "receive_timeout": 5_000_000, "send_timeout": 5_000_000},
    )
    yield client
    client.disconnect_all()


# -- python-binary-memcached ------------------------------------------------------------------


def test_bmemcached_set_get_delete(bm: bmemcached.Client) -> None:
    assert bm.set("bm:a", "hello") is True
    assert bm.get("bm:a") == "hello"
    assert bm.set("bm:obj", {"n": [1, 2, 3]}) is True
    assert bm.get("bm:obj") == {"n": [1, 2, 3]}
    assert bm.delete("bm:a") is True
    assert bm.get("bm:a") is None
    assert bm.delete("bm:a") is True  # bmemcached counts a miss as deleted, as with memcached


def test_bmemcached_add_replace_cas(bm: bmemcached.Client) -> None:
    assert bm.add("bm:c", "1") is True
    assert bm.add("bm:c", "2") is False
    assert bm.replace("bm:c", "3") is True
    assert bm.replace("bm:absent", "3") is False
    value, cas = bm.gets("bm:c")
    assert value == "3" and cas
    assert bm.cas("bm:c", "4", cas) is True
    assert bm.cas("bm:c", "5", cas) is False
    assert bm.get("bm:c") == "4"


def test_bmemcached_counters(bm: bmemcached.Client) -> None:
    assert bm.set("bm:n", 10) is True
    assert bm.incr("bm:n", 5) == 15
    assert bm.decr("bm:n", 20) == 0
    assert bm.incr("bm:n", 2**64 - 1) == 2**64 - 1


def test_bmemcached_multi_uses_quiet_opcodes(bm: bmemcached.Client) -> None:
    values = {f"bm:m:{i}": f"value-{i}" * (i % 5 + 1) for i in range(100)}
    assert bm.set_multi(values) == []  # the keys that failed
    got = bm.get_multi([*values, "bm:m:absent"])
    assert got == values
    assert bm.delete_multi(list(values)) is True
    assert bm.get_multi(list(values)) == {}
    assert bm.delete_multi(["bm:m:0"]) is False  # a miss: deleteq answers "not found"


def test_bmemcached_large_value_and_stats(bm: bmemcached.Client, server: ServerProcess) -> None:
    big = "x" * 900_000
    assert bm.set("bm:big", big) is True
    assert bm.get("bm:big") == big
    stats = bm.stats()[f"{server.host}:{server.port}"]
    assert stats["version"].startswith(b"1.6.18")
    assert int(stats["curr_connections"]) >= 1


# -- pylibmc, binary=True -----------------------------------------------------------------------


def test_pylibmc_binary_basic(lm: pylibmc.Client) -> None:
    assert lm.set("lm:a", "v") is True
    assert lm.get("lm:a") == "v"
    assert lm.get("lm:absent") is None
    assert lm.add("lm:a", "w") is False
    assert lm.replace("lm:a", "w") is True
    assert lm.append("lm:a", "+") is True
    assert lm.prepend("lm:a", "-") is True
    assert lm.get("lm:a") == "-w+"
    assert lm.delete("lm:a") is True
    assert lm.delete("lm:a") is False


def test_pylibmc_binary_multi_cas_touch(lm: pylibmc.Client) -> None:
    values = {f"lm:m:{i}": i * 1000 for i in range(50)}
    assert lm.set_multi(values) == []
    assert lm.get_multi([*values, "lm:m:absent"]) == values
    value, cas = lm.gets("lm:m:1")
    assert value == 1000
    assert lm.cas("lm:m:1", 1, cas) is True
    assert lm.cas("lm:m:1", 2, cas) is False
    # (A touch hit is left out: libmemcached 1.1 then waits out its receive timeout against
    # real memcached as well.)
    assert lm.touch("lm:absent", 100) is False
    assert lm.delete_multi(list(values)) is True


def test_pylibmc_binary_counters_and_errors(lm: pylibmc.Client) -> None:
    lm.set("lm:n", "1")
    assert lm.incr("lm:n", 41) == 42
    assert lm.decr("lm:n", 50) == 0
    with pytest.raises(pylibmc.NotFound):
        lm.incr("lm:absent", 1)
    with pytest.raises(pylibmc.TooBig):
        lm.set("lm:big", "x" * (2 * 1024 * 1024))


def test_pylibmc_binary_stats_and_flush(lm: pylibmc.Client) -> None:
    ((_, stats),) = lm.get_stats()
    assert stats["version"].startswith(b"1.6.18")
    lm.set("lm:f", "v")
    assert lm.flush_all() is True
    assert lm.get("lm:f") is None
