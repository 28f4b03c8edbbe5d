"""Read repair of ClusterClient(replicas=2) against real nodes restarted empty.

Racing writers are real too: a node client that, just before the repair's ``add``, writes
or deletes the key through a second connection, as another client would.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import ExitStack
from typing import Any

import pytest
from pymemcache.client.base import Client, PooledClient

from memcachepy.cluster import ClusterClient
from tests.servers import ServerProcess

from .nodes import node_keys, spec

KEYS = [f"rr:{i}" for i in range(200)]
POLICY: dict[str, Any] = {
    "connect_timeout": 1.0,
    "timeout": 2.0,
    "retry_timeout": 0.05,
    "dead_timeout": 0.1,
}
TTL = 600


def meta(node: ServerProcess, key: str, flags: str = "f t v") -> list[bytes]:
    """``mg key flags`` straight to one node: the reply line's words (``EN`` on a miss)."""
    client = Client(node.address, connect_timeout=2, timeout=5)
    try:
        line: bytes = client.raw_command(f"mg {key} {flags}".encode(), b"\r\n")
        return line.split()
    finally:
        client.close()


def restart_empty(
    client: ClusterClient, nodes: list[ServerProcess], index: int, stack: ExitStack
) -> ServerProcess:
    """SIGKILL node ``index``, start it again empty, and wait until the client uses it again."""
    nodes[index].kill()
    back = nodes[index].respawn()
    stack.callback(back.stop)
    nodes[index] = back
    probe = next(
        k
        for k in (f"probe:{i}" for i in range(1000))
        if client.replica_servers(k)[0].port == back.port
    )
    deadline = time.monotonic() + 5
    while True:  # the first request finds the old connection broken; the next one succeeds
        client.get(probe)
        if next(s.state for s in client.node_status() if s.server.port == back.port) == "up":
            return back
        assert time.monotonic() < deadline, "the restarted node was not used again"
        time.sleep(0.02)


def first_replica_keys(client: ClusterClient, node: ServerProcess) -> list[str]:
    return [k for k in KEYS if client.replica_servers(k)[0].port == node.port]


def held_keys(client: ClusterClient, node: ServerProcess) -> list[str]:
    return [k for k in KEYS if node.port in [s.port for s in client.replica_servers(k)]]


@pytest.mark.parametrize("read", ["get", "get_many"])
def test_a_node_restarted_empty_gets_back_what_is_read_with_flags_and_ttl(
    nodes: list[ServerProcess], read: str
) -> None:
    with (
        ExitStack() as stack,
        ClusterClient([spec(n) for n in nodes], replicas=2, **POLICY) as client,
    ):
        for i, key in enumerate(KEYS):
            assert client.set(key, f"value {i}".encode(), expire=TTL, flags=i)
        back = restart_empty(client, nodes, 0, stack)
        first, held = first_replica_keys(client, back), held_keys(client, back)
        assert first and len(held) > len(first) and node_keys(back, KEYS) == set()
        if read == "get":
            for key in KEYS:
                assert client.get(key) == f"value {KEYS.index(key)}".encode()
        else:
            found: dict[Any, Any] = {}
            for start in range(0, len(KEYS), 50):
                found.update(client.get_many(KEYS[start : start + 50]))
            assert found == {k: f"value {i}".encode() for i, k in enumerate(KEYS)}
        # Keys it is first for missed there; the others were probed (it came back lately).
        stats = client.stats()
        assert stats["read_repairs"] == len(held) and stats["read_repair_undone"] == 0
        assert stats["read_repair_probes"] == len(held) - len(first)
        assert node_keys(back, KEYS) == set(held)
        for key in held:
            words = meta(back, key)
            i = KEYS.index(key)
            assert words[0] == b"VA" and words[2] == f"f{i}".encode(), words
            assert TTL - 30 < int(words[3][1:]) <= TTL, words

        # A second fault: another node dies, and still no key is lost.
        nodes[1].kill()
        for i, key in enumerate(KEYS):
            assert client.get(key) == f"value {i}".encode()


def test_after_the_repair_window_only_misses_are_repaired(nodes: list[ServerProcess]) -> None:
    with (
        ExitStack() as stack,
        ClusterClient([spec(n) for n in nodes], replicas=2, repair_window=0.0, **POLICY) as client,
    ):
        assert client.set_many(dict.fromkeys(KEYS, b"v")) == []
        back = restart_empty(client, nodes, 0, stack)
        for key in KEYS:
            assert client.get(key) == b"v"
        first = first_replica_keys(client, back)
        assert node_keys(back, KEYS) == set(first)
        assert client.stats()["read_repairs"] == len(first)
        assert client.stats()["read_repair_probes"] == 0


def test_no_expiry_and_a_ttl_beyond_30_days_survive_the_copy(nodes: list[ServerProcess]) -> None:
    with (
        ExitStack() as stack,
        ClusterClient([spec(n) for n in nodes], replicas=2, **POLICY) as client,
    ):
        keys = [k for k in KEYS if client.replica_servers(k)[0].port == nodes[0].port][:2]
        forty_days = 40 * 86400
        assert client.set(keys[0], b"forever")
        assert client.set(keys[1], b"long", expire=int(time.time()) + forty_days)
        back = restart_empty(client, nodes, 0, stack)
        assert client.get(keys[0]) == b"forever" and client.get(keys[1]) == b"long"
        assert meta(back, keys[0], "t")[1] == b"t-1"
        # memcached converts a Unix time with its own coarse clock: a second either way.
        assert forty_days - 60 < int(meta(back, keys[1], "t")[1][1:]) <= forty_days + 2


def racing_factory(race: Callable[[str], None]) -> Callable[..., Any]:
    """Node clients whose ``add`` first lets ``race(key)`` run (another writer's turn)."""

    class RacedClient(PooledClient):  # type: ignore[misc]
        def add(self, key: Any, *args: Any, **kwargs: Any) -> Any:
            race(key)
            return super().add(key, *args, **kwargs)

    return RacedClient


def raced_read(
    nodes: list[ServerProcess], stack: ExitStack, race: Callable[[str], None]
) -> tuple[ClusterClient, str]:
    """A key of node 0 stored as v1, node 0 restarted empty, then read: the repair's add
    meets ``race``. The client (closed by ``stack``) and the key."""
    client = stack.enter_context(
        ClusterClient(
            [spec(n) for n in nodes], replicas=2, client_factory=racing_factory(race), **POLICY
        )
    )
    key = next(k for k in KEYS if client.replica_servers(k)[0].port == nodes[0].port)
    assert client.set(key, b"v1")
    restart_empty(client, nodes, 0, stack)
    assert client.get(key) == b"v1"  # read from the second replica, before the race
    return client, key


def test_repair_never_overwrites_a_newer_write(nodes: list[ServerProcess]) -> None:
    def newer_write(key: str) -> None:  # another client stores v2 on the empty node first
        direct = Client(nodes[0].address, connect_timeout=2, timeout=5)
        direct.set(key, b"v2", noreply=False)
        direct.close()

    with ExitStack() as stack:
        client, key = raced_read(nodes, stack, newer_write)
        direct = Client(nodes[0].address, connect_timeout=2, timeout=5)
        assert direct.get(key) == b"v2"
        direct.close()
        assert client.stats()["read_repair_refused"] == 1
        assert client.stats()["read_repairs"] == 0


def test_a_delete_racing_the_repair_is_not_undone(nodes: list[ServerProcess]) -> None:
    def racing_delete(key: str) -> None:  # another client deletes the key everywhere
        for node in nodes:
            direct = Client(node.address, connect_timeout=2, timeout=5)
            direct.delete(key, noreply=False)
            direct.close()

    with ExitStack() as stack:
        client, key = raced_read(nodes, stack, racing_delete)
        assert client.stats()["read_repair_undone"] == 1
        assert node_keys(nodes[0], [key]) == set()  # the copy was taken back
        assert client.get(key) is None


@pytest.mark.parametrize("options", [{"replicas": 1}, {"replicas": 2, "read_repair": False}])
def test_no_repair_without_replicas_or_when_turned_off(
    nodes: list[ServerProcess], options: dict[str, Any]
) -> None:
    with (
        ExitStack() as stack,
        ClusterClient([spec(n) for n in nodes], **options, **POLICY) as client,
    ):
        assert client.set_many(dict.fromkeys(KEYS, b"v")) == []
        restart_empty(client, nodes, 0, stack)
        for key in KEYS:
            client.get(key)
        assert node_keys(nodes[0], KEYS) == set()
        assert client.stats()["read_repairs"] == 0


def test_writes_a_node_missed_are_copied_back_when_it_returns(nodes: list[ServerProcess]) -> None:
    """Keys written while a node was down are deleted there when it returns (it missed
    them), then copied back from the other replica at once: R copies again, unread."""
    with (
        ExitStack() as stack,
        ClusterClient([spec(n) for n in nodes], replicas=2, **POLICY) as client,
    ):
        for i, key in enumerate(KEYS):
            assert client.set(key, b"old", expire=TTL, flags=i)
        nodes[0].kill()
        held = held_keys(client, nodes[0])
        changed, deleted = held[0::2], held[1::4]
        for key in changed:  # the node is down: recorded as missed
            assert client.set(key, b"new", expire=TTL, flags=7)
        for key in deleted:
            client.delete(key)
        before = client.stats()["read_repairs"]
        back = restart_empty(client, nodes, 0, stack)  # one request to it settles it
        assert node_keys(back, changed) == set(changed)
        assert node_keys(back, deleted) == set()
        assert all(meta(back, key, "f v")[2] == b"f7" for key in changed[:20])
        assert client.stats()["read_repairs"] - before >= len(changed)
