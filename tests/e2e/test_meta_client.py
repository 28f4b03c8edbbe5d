"""meta-memcache, the meta-protocol client, unchanged, against memcachepy.

Every test runs against memcachepy and, as a check on the test itself, against real
memcached 1.6.18: the client must see the same thing from both.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

meta_memcache = pytest.importorskip("meta_memcache")

from meta_memcache import (  # noqa: E402
    CacheClient,
    Key,
    LeasePolicy,
    RecachePolicy,
    ServerAddress,
    SetMode,
    StalePolicy,
    connection_pool_factory_builder,
)
from meta_memcache.interfaces.cache_api import CacheApi  # noqa: E402

from tests.servers import ServerProcess, memcached_server, memcachepy_server  # noqa: E402

NO_WAIT = LeasePolicy(ttl=30, miss_retries=3, miss_retry_wait=0.0, miss_max_retry_wait=0.0)


@pytest.fixture(scope="module", params=["memcachepy", "memcached"])
def meta_server(request: pytest.FixtureRequest) -> Iterator[ServerProcess]:
    start = memcachepy_server if request.param == "memcachepy" else memcached_server
    with start() as proc:
        yield proc


def make_client(server: ServerProcess) -> CacheApi:
    return CacheClient.cache_client_from_servers(
        [ServerAddress(*server.address)],
        connection_pool_factory_builder(connection_timeout=5, recv_timeout=5),
    )


@pytest.fixture
def client(meta_server: ServerProcess) -> CacheApi:
    return make_client(meta_server)


def test_set_get_delete(client: CacheApi) -> None:
    assert client.set("mm:a", b"hello", ttl=100)
    assert client.get("mm:a") == b"hello"
    assert client.delete("mm:a")
    assert client.get("mm:a") is None
    assert not client.delete("mm:a")
    assert client.invalidate("mm:a")


def test_values_of_every_type_round_trip(client: CacheApi) -> None:
    values: dict[str, object] = {
        "mm:bytes": b"\x00\r\n\xff",
        "mm:str": "text é",
        "mm:int": 42,
        "mm:dict": {"a": [1, 2, 3]},
        "mm:big": b"x" * 300_000,
    }
    for key, value in values.items():
        assert client.set(key, value, ttl=0)
    for key, value in values.items():
        assert client.get(key) == value
    assert client.multi_get(list(values)) == {Key(k): v for k, v in values.items()}


def test_multi_get_with_misses(client: CacheApi) -> None:
    client.set("mm:m1", b"1", ttl=0)
    client.set("mm:m3", b"3", ttl=0)
    got = client.multi_get(["mm:m1", "mm:m2", "mm:m3"])
    assert got == {Key("mm:m1"): b"1", Key("mm:m2"): None, Key("mm:m3"): b"3"}


def test_binary_and_long_keys_go_base64(client: CacheApi) -> None:
    # Non-ASCII keys and keys longer than 250 bytes are sent base64-encoded (flag b).
    for key in ("ключ", "with space", "k" * 400):
        assert client.set(key, key.encode(), ttl=0)
        assert client.get(key) == key.encode()


def test_cas_writes(client: CacheApi) -> None:
    client.set("mm:cas", b"a", ttl=0)
    value, cas = client.get_cas("mm:cas")
    assert value == b"a" and cas
    assert client.set("mm:cas", b"b", ttl=0, cas_token=cas)
    assert not client.set("mm:cas", b"c", ttl=0, cas_token=cas)  # conflict
    new_cas = client.set_cas("mm:cas", b"d", ttl=0)
    assert new_cas and new_cas != cas
    assert client.get_cas("mm:cas") == (b"d", new_cas)


def test_set_modes(client: CacheApi) -> None:
    assert client.refill("mm:mode", b"first", ttl=0)  # add
    assert not client.refill("mm:mode", b"second", ttl=0)
    assert client.set("mm:mode", b"+", ttl=0, set_mode=SetMode.APPEND)
    assert client.set("mm:mode", b"<", ttl=0, set_mode=SetMode.PREPEND)
    assert client.get("mm:mode") == b"<first+"
    assert client.set("mm:mode", b"r", ttl=0, set_mode=SetMode.REPLACE)
    assert not client.set("mm:absent", b"r", ttl=0, set_mode=SetMode.REPLACE)
    assert client.get("mm:mode") == b"r"


def test_touch_and_ttl(client: CacheApi, meta_server: ServerProcess) -> None:
    client.set("mm:ttl", b"v", ttl=100)
    assert client.touch("mm:ttl", 500)
    assert not client.touch("mm:nottl", 500)
    with meta_server.connect() as sock:
        sock.sendall(b"mg mm:ttl t\r\n")
        reply = b""
        while not reply.endswith(b"\r\n"):
            chunk = sock.recv(100)
            assert chunk, "connection closed"
            reply += chunk
        assert reply in (b"HD t500\r\n", b"HD t499\r\n")


def test_counters(client: CacheApi) -> None:
    assert not client.delta("mm:cnt", 1)  # miss
    assert client.delta_initialize("mm:cnt", 5, initial_value=10, initial_ttl=100)
    assert client.delta_and_get("mm:cnt", 5) == 15
    assert client.delta_and_get("mm:cnt", -20) == 0
    assert client.delta_initialize_and_get("mm:new", 1, initial_value=7, initial_ttl=0) == 7
    assert client.delta_initialize_and_get("mm:new", 1, initial_value=7, initial_ttl=0) == 8


def test_lease_on_miss(meta_server: ServerProcess) -> None:
    """get_or_lease: one client wins the right to fill a miss, the others wait for it."""
    winner, loser = make_client(meta_server), make_client(meta_server)
    waits: list[float] = []
    assert winner.get_or_lease("mm:lease", NO_WAIT) is None  # won: must fill it
    assert loser.get_or_lease("mm:lease", NO_WAIT, lease_wait_fn=waits.append) is None
    assert len(waits) == NO_WAIT.miss_retries - 1  # lost, retried, gave up
    assert winner.set("mm:lease", b"filled", ttl=100)
    assert loser.get_or_lease("mm:lease", NO_WAIT) == b"filled"


def test_recache_before_expiry(meta_server: ServerProcess) -> None:
    """RecachePolicy: when the TTL runs low one reader is told to recache, others get data."""
    first, second = make_client(meta_server), make_client(meta_server)
    first.set("mm:recache", b"old", ttl=100)
    policy = RecachePolicy(ttl=200)
    assert first.get("mm:recache", recache_policy=policy) is None  # won: recache now
    assert second.get("mm:recache", recache_policy=policy) == b"old"  # Z: someone is on it
    assert first.set("mm:recache", b"new", ttl=1000)
    assert second.get("mm:recache", recache_policy=policy) == b"new"


def test_stale_while_revalidate(meta_server: ServerProcess) -> None:
    """Delete marks stale; one reader recaches, the others are served the stale value."""
    writer, reader, other = (make_client(meta_server) for _ in range(3))
    stale = StalePolicy(mark_stale_on_deletion_ttl=30, mark_stale_on_cas_mismatch=True)
    writer.set("mm:swr", b"v1", ttl=100)
    _, old_cas = writer.get_cas("mm:swr")
    assert writer.delete("mm:swr", stale_policy=stale)  # marked stale, not gone
    value, cas = reader.get_cas("mm:swr")
    assert value is None and cas  # X W: this reader must recache
    assert other.get("mm:swr") == b"v1"  # X Z: served stale
    # A writer racing with an old CAS still stores, but the value stays marked stale ...
    assert writer.set("mm:swr", b"late", ttl=100, cas_token=old_cas, stale_policy=stale)
    assert other.get("mm:swr") == b"late"
    # ... until the recacher writes with the CAS it got.
    _, current = other.get_cas("mm:swr")
    assert reader.set("mm:swr", b"v2", ttl=100, cas_token=current, stale_policy=stale)
    assert other.get("mm:swr") == b"v2"
    assert reader.get("mm:swr") == b"v2"
