"""ClusterClient's routing and failure policy, with in-memory fake nodes and a fake clock.

The same behaviour against real nodes killed, stopped and restarted is in test_failover.py.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Iterator
from typing import Any

import pytest
from pymemcache.exceptions import MemcacheServerError

from memcachepy.cluster import ClusterClient, NoAvailableNodesError

SERVERS = ["10.0.0.1:11211", "10.0.0.2:11211", "10.0.0.3:11211"]
KEYS = [f"key:{i}" for i in range(60)]


class FakeNode:
    """The subset of pymemcache's client API ClusterClient uses, over a dict."""

    def __init__(self, address: tuple[str, int], **options: Any) -> None:
        self.address = address
        self.data: dict[bytes, Any] = {}
        self.down = False
        self.delay = 0.0
        self.delays: dict[str, float] = {}
        self.calls: list[str] = []
        self.lock = threading.Lock()

    def _enter(self, name: str) -> None:
        with self.lock:
            self.calls.append(name)
        delay = self.delays.get(name, self.delay)
        if delay:
            time.sleep(delay)
        if self.down:
            raise ConnectionRefusedError(f"{self.address} is down")

    @staticmethod
    def _k(key: str | bytes) -> bytes:
        return key.encode() if isinstance(key, str) else key

    def get(self, key: str | bytes, default: Any = None) -> Any:
        self._enter("get")
        return self.data.get(self._k(key), default)

    def gets(self, key: str | bytes) -> tuple[Any, Any]:
        self._enter("gets")
        value = self.data.get(self._k(key))
        return (value, b"1") if value is not None else (None, None)

    def get_many(self, keys: Iterable[str | bytes]) -> dict[Any, Any]:
        self._enter("get_many")
        return {key: self.data[self._k(key)] for key in keys if self._k(key) in self.data}

    def set(self, key: str | bytes, value: Any, **_: Any) -> bool:
        self._enter("set")
        if value == b"too large":
            self.data.pop(self._k(key), None)
            raise MemcacheServerError(b"object too large for cache")
        self.data[self._k(key)] = value
        return True

    def set_many(self, values: dict[Any, Any], **_: Any) -> list[Any]:
        self._enter("set_many")
        self.data.update((self._k(key), value) for key, value in values.items())
        return []

    def add(self, key: str | bytes, value: Any, **_: Any) -> bool:
        self._enter("add")
        if self._k(key) in self.data:
            return False
        self.data[self._k(key)] = value
        return True

    def append(self, key: str | bytes, value: Any, **_: Any) -> bool:
        self._enter("append")
        if self._k(key) not in self.data:
            return False
        self.data[self._k(key)] += value
        return True

    def incr(self, key: str | bytes, value: int, noreply: bool = False) -> int | None:
        self._enter("incr")
        if self._k(key) not in self.data:
            return None
        new = int(self.data[self._k(key)]) + value
        self.data[self._k(key)] = str(new).encode()
        return new

    def delete(self, key: str | bytes, noreply: bool = False) -> bool:
        self._enter("delete")
        return self.data.pop(self._k(key), None) is not None

    def delete_many(self, keys: Iterable[str | bytes], noreply: bool = False) -> bool:
        self._enter("delete_many")
        for key in keys:
            self.data.pop(self._k(key), None)
        return True

    def flush_all(self, noreply: bool = False) -> bool:
        self._enter("flush_all")
        self.data.clear()
        return True

    def close(self) -> None:
        pass


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def make_client(clock: FakeClock) -> Iterator[Any]:
    clients: list[ClusterClient] = []

    def make(replicas: int = 1, **options: Any) -> tuple[ClusterClient, dict[str, FakeNode]]:
        fakes: dict[str, FakeNode] = {}

        def factory(address: tuple[str, int], **kwargs: Any) -> FakeNode:
            fakes[f"{address[0]}:{address[1]}"] = FakeNode(address, **kwargs)
            return fakes[f"{address[0]}:{address[1]}"]

        settings: dict[str, Any] = {
            "failure_limit": 2,
            "retry_timeout": 1.0,
            "dead_timeout": 10.0,
            "clock": clock,
        }
        settings.update(options)
        client = ClusterClient(SERVERS, replicas=replicas, client_factory=factory, **settings)
        clients.append(client)
        return client, fakes

    yield make
    for client in clients:
        client.close()


def owner(client: ClusterClient, fakes: dict[str, FakeNode], key: str, index: int = 0) -> FakeNode:
    return fakes[str(client.replica_servers(key)[index])]


def states(client: ClusterClient) -> dict[str, str]:
    return {str(status.server): status.state for status in client.node_status()}


def test_failing_node_is_skipped_then_ejected_then_readmitted(
    make_client: Any, clock: FakeClock
) -> None:
    client, fakes = make_client()
    key = KEYS[0]
    node = owner(client, fakes, key)
    name = str(client.replica_servers(key)[0])
    assert client.set(key, b"v")
    node.down = True
    assert client.get(key) is None  # failure 1: skipped for retry_timeout
    assert states(client)[name] == "failing"
    calls = len(node.calls)
    assert client.get(key) is None
    assert len(node.calls) == calls  # skipped: not even tried
    clock.now += 1.5
    assert client.get(key) is None  # retried, failure 2: ejected for dead_timeout
    assert states(client)[name] == "ejected"
    clock.now += 9
    assert client.get(key) is None and len(node.calls) == calls + 1
    node.down = False
    clock.now += 2
    assert client.get(key) == b"v"  # dead timeout over: tried again, re-admitted
    assert states(client)[name] == "up"


def test_other_nodes_keep_serving_while_one_is_down(make_client: Any) -> None:
    client, fakes = make_client()
    assert client.set_many(dict.fromkeys(KEYS, b"v")) == []
    dead = owner(client, fakes, KEYS[0])
    dead.down = True
    values = {key: client.get(key) for key in KEYS}
    for key, value in values.items():
        assert value == (None if owner(client, fakes, key) is dead else b"v")
    found = client.get_many(KEYS)
    assert set(found) == {key for key in KEYS if owner(client, fakes, key) is not dead}


def test_every_node_down_raises_a_clear_error(make_client: Any) -> None:
    client, fakes = make_client()
    for fake in fakes.values():
        fake.down = True
    for key in KEYS[:30]:  # each node fails once; afterwards all are skipped
        try:
            client.get(key)
        except NoAvailableNodesError:
            break
    with pytest.raises(NoAvailableNodesError, match="all 3 memcached nodes are down"):
        client.get("k")
    with pytest.raises(NoAvailableNodesError):
        client.set("k", b"v")
    with pytest.raises(NoAvailableNodesError):
        client.get_many(["a", "b"])
    with ClusterClient([]) as empty, pytest.raises(NoAvailableNodesError, match="no nodes"):
        empty.get("k")


def test_replicas_hold_copies_and_reads_fall_through(make_client: Any) -> None:
    client, fakes = make_client(replicas=2)
    key = KEYS[1]
    first, second = owner(client, fakes, key, 0), owner(client, fakes, key, 1)
    assert client.set(key, b"v")
    assert first.data[key.encode()] == second.data[key.encode()] == b"v"
    first.data.clear()  # e.g. restarted empty
    assert client.get(key) == b"v"
    first.down = True
    assert client.get(key) == b"v"
    assert client.get_many([key]) == {key: b"v"}


def test_missed_writes_are_deleted_before_the_node_serves_again(
    make_client: Any, clock: FakeClock
) -> None:
    client, fakes = make_client(replicas=1)
    key, other = KEYS[2], KEYS[3]
    node = owner(client, fakes, key)
    assert client.set(key, b"old")
    node.down = True  # a partition: the node keeps its data
    assert not client.set(key, b"new")  # fails: remembered
    assert not client.delete(key)  # skipped: remembered
    assert sum(status.missed_writes for status in client.node_status()) == 1
    node.down = False
    clock.now += 5
    node.data[other.encode()] = b"untouched"
    assert client.get(key) is None  # the old value was deleted before the read
    assert "delete_many" in node.calls
    assert node.data.get(other.encode()) == b"untouched"


def test_too_many_missed_writes_flush_the_node(make_client: Any, clock: FakeClock) -> None:
    client, fakes = make_client(max_missed_writes=3)
    node = owner(client, fakes, KEYS[0])
    mine = [key for key in KEYS if owner(client, fakes, key) is node]
    assert client.set_many(dict.fromkeys(mine, b"old")) == []
    node.down = True
    assert client.get(mine[0]) is None
    assert set(client.set_many(dict.fromkeys(mine, b"new"))) == set(mine)
    assert any(status.needs_flush for status in client.node_status())
    node.down = False
    clock.now += 5
    assert client.get(mine[0]) is None
    assert "flush_all" in node.calls and not node.data


def test_non_idempotent_writes_run_on_the_primary_and_are_mirrored(make_client: Any) -> None:
    client, fakes = make_client(replicas=2)
    key = KEYS[4]
    first, second = owner(client, fakes, key, 0), owner(client, fakes, key, 1)
    assert client.add(key, b"1")
    assert not client.add(key, b"2")
    assert first.data[key.encode()] == second.data[key.encode()] == b"1"
    assert client.incr(key, 5) == 6
    assert first.data[key.encode()] == second.data[key.encode()] == b"6"
    second.data[key.encode()] = b"40"  # a replica that diverged loses the key
    assert client.incr(key, 1) == 7
    assert key.encode() not in second.data
    assert client.append(key, b"0")
    assert first.data[key.encode()] == b"70" and key.encode() not in second.data
    first.down = True  # the next replica becomes the primary
    assert client.incr(key, 1) is None


def test_a_refused_write_drops_the_key_from_every_replica(make_client: Any) -> None:
    client, fakes = make_client(replicas=3)
    key = KEYS[5]
    assert client.set(key, b"v")
    with pytest.raises(MemcacheServerError):
        client.set(key, b"too large")
    assert all(key.encode() not in fake.data for fake in fakes.values())


def test_multi_key_requests_go_to_all_nodes_at_once(make_client: Any) -> None:
    client, fakes = make_client(replicas=1)
    assert client.set_many(dict.fromkeys(KEYS, b"v")) == []
    for fake in fakes.values():
        fake.delay = 0.2
        fake.calls.clear()
    start = time.monotonic()
    assert client.get_many(KEYS) == dict.fromkeys(KEYS, b"v")
    elapsed = time.monotonic() - start
    assert all(fake.calls == ["get_many"] for fake in fakes.values())
    assert elapsed < 0.5, f"3 nodes x 0.2 s took {elapsed:.2f}s: not parallel"


def test_get_many_asks_the_next_replica_for_what_the_first_missed(make_client: Any) -> None:
    client, fakes = make_client(replicas=2)
    assert client.set_many(dict.fromkeys(KEYS, b"v")) == []
    emptied = owner(client, fakes, KEYS[0])
    emptied.data.clear()
    assert client.get_many(KEYS) == dict.fromkeys(KEYS, b"v")


def test_set_many_reports_keys_stored_nowhere(make_client: Any) -> None:
    client, fakes = make_client(replicas=1)
    dead = owner(client, fakes, KEYS[0])
    dead.down = True
    failed = client.set_many(dict.fromkeys(KEYS, b"v"))
    assert set(failed) == {key for key in KEYS if owner(client, fakes, key) is dead}


def test_membership_update_keeps_health_and_missed_writes(make_client: Any) -> None:
    client, fakes = make_client(replicas=1)
    node = owner(client, fakes, KEYS[0])
    node.down = True
    client.set(KEYS[0], b"v")
    client.update_servers([*SERVERS, "10.0.0.4:11211"])
    statuses = {str(status.server): status for status in client.node_status()}
    assert len(statuses) == 4
    down = statuses[f"{node.address[0]}:{node.address[1]}"]
    assert down.state == "failing" and down.missed_writes == 1


def test_requests_wait_for_an_invalidation_in_progress(make_client: Any, clock: FakeClock) -> None:
    client, fakes = make_client(replicas=1)
    node = owner(client, fakes, KEYS[0])
    mine = [key for key in KEYS if owner(client, fakes, key) is node]
    stale, other = mine[0], mine[1]
    assert client.set(stale, b"old")
    node.down = True
    assert not client.set(stale, b"new")  # missed: the node keeps b"old"
    node.down = False
    clock.now += 5
    node.delays["delete_many"] = 0.3  # the invalidation is slow
    results: dict[str, Any] = {}
    first = threading.Thread(target=lambda: results.update(first=client.get(other)))
    first.start()  # settles the node: its delete_many is in flight for 0.3 s
    time.sleep(0.05)
    results["second"] = client.get(stale)  # must wait for that delete, not read b"old"
    first.join(5)
    assert results == {"first": None, "second": None}
    assert node.calls.count("delete_many") == 1
