"""ClusterClient against real nodes that die (SIGKILL), hang (SIGSTOP) and come back.

Every load loop is bounded in passes and in time.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable
from contextlib import ExitStack
from typing import Any

import pytest
from pymemcache.client.base import Client

from memcachepy.cluster import ClusterClient
from tests.servers import ServerProcess

from .nodes import node_keys, spec

KEYS = [f"key:{i}" for i in range(300)]
TIMEOUT = 0.5
# "No request waits longer than the timeout": a dead node is refused at once; the slack is
# only for scheduling on a loaded machine.
SLACK = 0.25
FAST_POLICY: dict[str, Any] = {
    "connect_timeout": TIMEOUT,
    "timeout": TIMEOUT,
    "failure_limit": 2,
    "retry_timeout": 0.1,
    "dead_timeout": 0.5,
}


def timed_gets(
    client: ClusterClient, keys: list[str], passes: int = 2, budget: float = 8.0
) -> tuple[dict[str, Any], float]:
    """Read every key ``passes`` times (bounded by ``budget`` seconds); last values, max latency."""
    values: dict[str, Any] = {}
    slowest = 0.0
    deadline = time.monotonic() + budget
    for _ in range(passes):
        for key in keys:
            start = time.monotonic()
            values[key] = client.get(key)
            slowest = max(slowest, time.monotonic() - start)
            assert time.monotonic() < deadline, "load loop ran out of time"
    return values, slowest


class BoundedLoad:
    """Reads keys in a background thread: at most ``passes`` passes and ``budget`` seconds."""

    def __init__(
        self, client: ClusterClient, keys: list[str], passes: int = 6, budget: float = 6.0
    ) -> None:
        self.client, self.keys, self.passes, self.budget = client, keys, passes, budget
        self.requests = 0
        self.slowest = 0.0
        self.errors: list[BaseException] = []
        self._thread = threading.Thread(target=self._run)

    def _run(self) -> None:
        deadline = time.monotonic() + self.budget
        try:
            for _ in range(self.passes):
                for key in self.keys:
                    if time.monotonic() > deadline:
                        return
                    start = time.monotonic()
                    self.client.get(key)
                    self.slowest = max(self.slowest, time.monotonic() - start)
                    self.requests += 1
        except BaseException as error:  # reported by the test
            self.errors.append(error)

    def __enter__(self) -> BoundedLoad:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._thread.join(self.budget + 5)
        assert not self._thread.is_alive()


def wait_until(condition: Callable[[], bool], budget: float = 5.0) -> None:
    deadline = time.monotonic() + budget
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.02)


def state_of(client: ClusterClient, node: ServerProcess) -> str:
    return next(s.state for s in client.node_status() if s.server.port == node.port)


def readmitted(client: ClusterClient, node: ServerProcess) -> bool:
    """Send one request to ``node`` (if its wait is over) and say whether it is up again."""
    probe = next(key for key in KEYS if client.replica_servers(key)[0].port == node.port)
    client.get(probe)
    return state_of(client, node) == "up"


def test_r1_killed_node_only_its_keys_miss_then_it_is_readmitted(
    nodes: list[ServerProcess], node_stack: ExitStack
) -> None:
    with ClusterClient([spec(n) for n in nodes], **FAST_POLICY) as client:
        assert client.set_many(dict.fromkeys(KEYS, b"v")) == []
        victim = nodes[1]
        victim_keys = node_keys(victim, KEYS)
        assert 40 < len(victim_keys) < 200
        with BoundedLoad(client, KEYS) as load:
            wait_until(lambda: load.requests > len(KEYS))
            victim.kill()  # SIGKILL, while the load runs
            at_kill = load.requests
        assert not load.errors
        assert load.requests > at_kill + len(KEYS), "the load did not run past the kill"
        assert load.slowest < TIMEOUT + SLACK, f"a request under load took {load.slowest:.3f}s"

        values, slowest = timed_gets(client, KEYS)
        assert {k for k, v in values.items() if v is None} == victim_keys
        assert all(values[k] == b"v" for k in KEYS if k not in victim_keys)
        assert slowest < TIMEOUT + SLACK, f"a request took {slowest:.3f}s"
        assert state_of(client, victim) in ("failing", "ejected")
        assert client.get_many(KEYS) == {k: b"v" for k in KEYS if k not in victim_keys}

        back = node_stack.enter_context(_respawned(victim))
        wait_until(lambda: readmitted(client, victim))
        assert client.set_many(dict.fromkeys(KEYS, b"w")) == []
        assert node_keys(back, KEYS) == victim_keys  # same placement after re-admission
        assert client.get_many(KEYS) == dict.fromkeys(KEYS, b"w")


def test_r2_killed_node_loses_no_key_and_comes_back_empty(
    nodes: list[ServerProcess], node_stack: ExitStack
) -> None:
    with ClusterClient([spec(n) for n in nodes], replicas=2, **FAST_POLICY) as client:
        assert client.set_many(dict.fromkeys(KEYS, b"v1")) == []
        assert sum(len(node_keys(n, KEYS)) for n in nodes) == 2 * len(KEYS)
        victim = nodes[0]
        with BoundedLoad(client, KEYS) as load:
            wait_until(lambda: load.requests > len(KEYS))
            victim.kill()
        assert not load.errors and load.slowest < TIMEOUT + SLACK

        values, slowest = timed_gets(client, KEYS)
        assert values == dict.fromkeys(KEYS, b"v1")
        assert slowest < TIMEOUT + SLACK, f"a request took {slowest:.3f}s"
        assert client.get_many(KEYS) == dict.fromkeys(KEYS, b"v1")
        changed = KEYS[:100]  # written while the victim is away
        assert client.set_many(dict.fromkeys(changed, b"v2")) == []

        back = node_stack.enter_context(_respawned(victim))  # empty, same port
        wait_until(lambda: readmitted(client, victim))
        expected = {key: b"v2" if key in changed else b"v1" for key in KEYS}
        assert client.get_many(KEYS) == expected
        assert timed_gets(client, KEYS, passes=1)[0] == expected
        assert client.set_many(dict.fromkeys(KEYS, b"v3")) == []
        assert len(node_keys(back, KEYS)) > 100  # it holds its share again


@pytest.mark.parametrize("replicas", [1, 2])
def test_node_back_from_a_partition_never_serves_overwritten_values(
    nodes: list[ServerProcess], replicas: int
) -> None:
    # SIGSTOP keeps the node's memory: when it resumes it still has the old values.
    with ClusterClient([spec(n) for n in nodes], replicas=replicas, **FAST_POLICY) as client:
        assert client.set_many(dict.fromkeys(KEYS, b"old")) == []
        victim = nodes[2]
        held = sorted(node_keys(victim, KEYS))
        overwritten, deleted = held[:10], held[10:20]
        victim.kill(signal.SIGSTOP)
        try:
            start = time.monotonic()
            for key in overwritten:
                client.set(key, b"new")
            for key in deleted:
                client.delete(key)
            # At most failure_limit requests waited for the timeout; the rest skipped it.
            assert time.monotonic() - start < 2 * TIMEOUT + 1.0
            assert state_of(client, victim) in ("failing", "ejected")
        finally:
            victim.kill(signal.SIGCONT)
        assert node_keys(victim, overwritten) == set(overwritten)  # stale copies are there
        wait_until(lambda: readmitted(client, victim))
        for key in overwritten:
            assert client.get(key) == (b"new" if replicas == 2 else None)
        for key in deleted:
            assert client.get(key) is None
        # Read repair may have copied the new values back; the old ones never return.
        assert set(node_keys(victim, deleted)) == set()
        held_now = node_keys(victim, overwritten)
        if held_now:
            assert replicas == 2
            direct = Client(victim.address, connect_timeout=2, timeout=5)
            assert direct.get_many(sorted(held_now)) == dict.fromkeys(held_now, b"new")
            direct.close()
        untouched = held[20:]
        assert client.get_many(untouched) == dict.fromkeys(untouched, b"old")


def test_all_nodes_down_gives_a_clear_error(nodes: list[ServerProcess]) -> None:
    from memcachepy.cluster import NoAvailableNodesError

    with ClusterClient([spec(n) for n in nodes], **FAST_POLICY) as client:
        assert client.set("k", b"v")
        for node in nodes:
            node.kill()
        with pytest.raises(NoAvailableNodesError, match="all 3 memcached nodes are down"):
            for key in KEYS[:50]:  # bounded: each node fails at most once before all are out
                client.get(key)


class _respawned:
    """Context manager: the killed node started again on its port, stopped afterwards."""

    def __init__(self, node: ServerProcess) -> None:
        self.node = node
        self.process: ServerProcess | None = None

    def __enter__(self) -> ServerProcess:
        self.process = self.node.respawn()
        return self.process

    def __exit__(self, *exc_info: object) -> None:
        if self.process is not None:
            self.process.stop()
