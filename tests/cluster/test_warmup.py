"""Warm-up from peers (memcachepy.cluster.warmup, memcachepy.server.warmup) on real nodes.

Nodes are memcachepy daemons on 127.0.0.1 started with ``--cluster-config`` (a membership
file listing them all) and ``--cluster-replicas 2``. A node SIGKILLed and restarted empty
copies back the items for which it is a replica, never a stale one.
"""

from __future__ import annotations

import random
import threading
import time
import urllib.request
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import pytest
from pymemcache.client.base import Client

from memcachepy.cluster import ClusterClient
from memcachepy.cluster.warmup import PeerConnection
from tests.servers import HOST, ServerProcess, free_port, memcachepy_server

from .nodes import spec

POLICY: dict[str, Any] = {
    "connect_timeout": 1.0,
    "timeout": 2.0,
    "retry_timeout": 0.05,
    "dead_timeout": 0.1,
}


def warm_nodes(stack: ExitStack, tmp_path: Path, count: int, *extra: str) -> list[ServerProcess]:
    """``count`` nodes that list each other in a membership file, with R=2."""
    ports = [free_port() for _ in range(count)]
    members = tmp_path / "members"
    members.write_text("".join(f"{HOST}:{port}\n" for port in ports))
    return [
        stack.enter_context(
            memcachepy_server(
                "-m",
                "64",
                "--cluster-config",
                str(members),
                "--cluster-replicas",
                "2",
                *extra,
                port=port,
            )
        )
        for port in ports
    ]


def stats(node: ServerProcess) -> dict[str, str]:
    client = Client(node.address, connect_timeout=2, timeout=5)
    try:
        return {
            k.decode(): v.decode() if isinstance(v, bytes) else str(v)
            for k, v in client.stats().items()
        }
    finally:
        client.close()


def wait_warm(node: ServerProcess, limit: float) -> dict[str, str]:
    """Poll ``stats`` until the warm-up is done (or aborted), at most ``limit`` seconds."""
    deadline = time.monotonic() + limit
    while True:
        now = stats(node)
        if now["warmup_state"] in ("done", "aborted") or time.monotonic() > deadline:
            return now
        time.sleep(0.1)


def items_on(node: ServerProcess, keys: list[bytes]) -> dict[bytes, tuple[bytes, int]]:
    """Value and flags of each of ``keys`` the node holds (``mg v f t c``, pipelined)."""
    found: dict[bytes, tuple[bytes, int]] = {}
    with PeerConnection(node.address, timeout=5) as conn:
        for start in range(0, len(keys), 500):
            chunk = keys[start : start + 500]
            for key, item in zip(chunk, conn.fetch(chunk), strict=True):
                if item is not None:
                    found[key] = (item.value, item.flags)
    return found


def restart(nodes: list[ServerProcess], index: int, stack: ExitStack) -> float:
    """SIGKILL node ``index`` and start it again empty; the monotonic time of the start."""
    nodes[index].kill()
    started = time.monotonic()
    back = nodes[index].respawn()
    stack.callback(back.stop)
    nodes[index] = back
    return started


def value_of(i: int, version: int = 1) -> bytes:
    return b"%d:%d:" % (i, version) + b"v" * (i % 300)


def test_a_node_restarted_empty_holds_its_replica_keys_again_within_15_s(tmp_path: Path) -> None:
    """The issue's figure: 3 nodes, R=2, 30,000 keys, no client reading."""
    with ExitStack() as stack:
        nodes = warm_nodes(stack, tmp_path, 3)
        assert wait_warm(nodes[0], 10)["warmup_items"] == "0"  # nothing to copy at first
        keys = [f"wu:{i}" for i in range(30_000)]
        with ClusterClient([spec(n) for n in nodes], replicas=2, **POLICY) as client:
            for start in range(0, len(keys), 1000):
                for flags in (0, 7):  # half the keys with client flags
                    batch: dict[str | bytes, bytes] = {
                        k: value_of(i)
                        for i, k in enumerate(keys[start : start + 1000], start)
                        if i % 2 == flags % 2
                    }
                    assert client.set_many(batch, flags=flags) == []
            mine = [k for k in keys if nodes[0].port in [s.port for s in client.replica_servers(k)]]
        started = restart(nodes, 0, stack)
        final = wait_warm(nodes[0], 15.0)
        elapsed = time.monotonic() - started
        wanted = {k.encode(): (value_of(int(k[3:])), 0 if int(k[3:]) % 2 == 0 else 7) for k in mine}
        held = items_on(nodes[0], list(wanted))
        right = sum(held.get(k) == v for k, v in wanted.items())
        print(
            f"warm-up: {right} of {len(wanted)} replica keys ({right / len(wanted):.2%}) "
            f"byte for byte with flags {elapsed:.1f} s after the restart; stats {final}"
        )
        assert final["warmup_state"] == "done" and elapsed <= 15.0
        assert right >= 0.99 * len(wanted)
        assert int(final["warmup_items"]) == len(held) and int(final["warmup_bytes"]) > 0
        assert set(held) <= set(wanted)  # keys of other nodes are not copied


def test_warm_up_under_writes_and_deletes_serves_no_stale_value(tmp_path: Path) -> None:
    """Writers set and delete the same keys while the restarted node warms up."""
    with ExitStack() as stack:
        nodes = warm_nodes(stack, tmp_path, 3, "--warm-up-rate", "1500")
        keys = [f"race:{i}" for i in range(6000)]
        latest: dict[str, bytes | None] = {}
        with ClusterClient([spec(n) for n in nodes], replicas=2, **POLICY) as client:
            for start in range(0, len(keys), 1000):
                batch: dict[str | bytes, bytes] = {
                    k: value_of(i) for i, k in enumerate(keys[start : start + 1000], start)
                }
                assert client.set_many(batch) == []
            latest.update({k: value_of(i) for i, k in enumerate(keys)})
        restart(nodes, 0, stack)
        with ClusterClient([spec(n) for n in nodes], replicas=2, **POLICY) as client:
            stop_at = time.monotonic() + 20
            lock = threading.Lock()
            counts = {"sets": 0, "deletes": 0, "stale": 0, "reads": 0}

            def writer(wid: int) -> None:
                rng = random.Random(wid)
                mine = keys[wid::4]
                version = 1
                while time.monotonic() < stop_at and stats_state[0] == "running":
                    key = rng.choice(mine)
                    i = int(key[5:])
                    version += 1
                    if rng.random() < 0.3:
                        client.delete(key)
                        latest[key] = None
                        counts["deletes"] += 1
                    else:
                        value = value_of(i, version)
                        assert client.set(key, value)
                        latest[key] = value
                        counts["sets"] += 1
                    other = rng.choice(mine)  # a key of this writer's: its latest is known
                    got = client.get(other)
                    with lock:
                        counts["reads"] += 1
                        counts["stale"] += got != latest[other]

            stats_state = ["running"]
            threads = [threading.Thread(target=writer, args=(w,)) for w in range(4)]
            for t in threads:
                t.start()
            final = wait_warm(nodes[0], 20.0)
            stats_state[0] = final["warmup_state"]
            for t in threads:
                t.join(30)
            # Every replica of every key, asked directly: the last value written or nothing.
            stale = 0
            by_node: dict[int, list[bytes]] = {}
            for key in keys:
                for server in client.replica_servers(key):
                    by_node.setdefault(server.port, []).append(key.encode())
            for node in nodes:
                held = items_on(node, by_node[node.port])
                for wire_key, (value, _) in held.items():
                    stale += value != latest[wire_key.decode()]
            reads = sum(client.get(k) != latest[k] for k in keys)
        print(
            f"under writes: {counts}, warm-up {final}, stale on replicas {stale}, "
            f"stale reads after {reads}"
        )
        assert final["warmup_state"] == "done" and int(final["warmup_items"]) > 0
        assert counts["sets"] > 100 and counts["deletes"] > 30
        assert counts["stale"] == 0 and stale == 0 and reads == 0


@contextmanager
def pair(tmp_path: Path, *extra: str) -> Iterator[tuple[ServerProcess, ServerProcess]]:
    """Node B holding 400 keys (R=1, no warm-up), and node A started empty after it, with
    R=2 over {A, B}: A warms up from B, slowly (batches of 100 keys, 50 items/s)."""
    ports = [free_port(), free_port()]
    members = tmp_path / "members"
    members.write_text("".join(f"{HOST}:{port}\n" for port in ports))
    with ExitStack() as stack:
        b = stack.enter_context(memcachepy_server("--cluster-config", str(members), port=ports[1]))
        source = Client(b.address)
        for i in range(400):
            source.set(f"p:{i}", value_of(i), flags=i, noreply=False)
        source.close()
        a = stack.enter_context(
            memcachepy_server(
                "--cluster-config",
                str(members),
                "--cluster-replicas",
                "2",
                "--warm-up-rate",
                "50",
                *extra,
                port=ports[0],
            )
        )
        yield a, b


def test_keys_deleted_or_changed_during_the_warm_up_do_not_come_back(tmp_path: Path) -> None:
    with pair(tmp_path) as (a, b):
        keys = [f"p:{i}".encode() for i in range(400)]
        deadline = time.monotonic() + 10
        while int(stats(a)["warmup_items"]) < 100:  # the first batch is in; 2 s to the next
            assert time.monotonic() < deadline
            time.sleep(0.02)
        first = set(items_on(a, keys))
        later = [k for k in keys if k not in first]
        deleted, changed = later[0::3], later[1::3]
        local, source = Client(a.address), Client(b.address)
        for key in deleted:  # a client's delete reaches A first (B would get it later)
            local.delete(key, noreply=False)
        for key in changed:  # a write that reached B only (A was skipped by its client)
            source.set(key, b"new", noreply=False)
        local.close()
        source.close()
        final = wait_warm(a, 15)
        held = items_on(a, keys)
        assert final["warmup_state"] == "done"
        assert not set(deleted) & set(held)
        assert all(held[k][0] == b"new" for k in changed if k in held)
        untouched = later[2::3]
        assert untouched and all(held[k] == (value_of(int(k[2:])), int(k[2:])) for k in untouched)
        assert int(final["warmup_dropped"]) >= len(deleted) + len(changed)


def test_flush_all_stops_the_warm_up_and_stats_and_metrics_show_it(tmp_path: Path) -> None:
    port = free_port()
    with pair(tmp_path, "--metrics-port", str(port)) as (a, _b):
        Client(a.address).flush_all(noreply=False)
        final = wait_warm(a, 15)
        assert final["warmup_state"] == "aborted"
        assert int(final["warmup_items"]) < 400
        with urllib.request.urlopen(f"http://{HOST}:{port}/metrics", timeout=5) as reply:
            metrics = reply.read().decode()
        assert 'memcachepy_warmup_state{state="aborted"} 1.0' in metrics
        assert 'memcachepy_warmup_state{state="running"} 0.0' in metrics
        assert "memcachepy_warmup_items_total" in metrics


def test_no_warm_up_and_a_restored_memory_file_skip_it(tmp_path: Path) -> None:
    with pair(tmp_path, "--no-warm-up") as (a, _b):
        assert "warmup_state" not in stats(a)  # the node keeps memcached's stats list
        assert int(stats(a)["curr_items"]) == 0


@pytest.mark.parametrize(
    "flags", [("--cluster-replicas", "2"), ("--cluster-dns-server", "127.0.0.1:53")]
)
def test_cluster_flags_need_a_membership(flags: tuple[str, ...]) -> None:
    import subprocess
    import sys

    result = subprocess.run(
        [sys.executable, "-m", "memcachepy", *flags], capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 64 and "--cluster-" in result.stderr


def test_the_tool_warms_a_memcached_node_from_memcached_peers(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``memcachepy-tool ENDPOINT cluster warm NODE``: the same copy, from outside, with
    only memcached's own commands (real memcached nodes; a memcachepy endpoint)."""
    from memcachepy.tool.cli import main as tool_main
    from tests.servers import memcached_server

    with ExitStack() as stack:
        nodes = [stack.enter_context(memcached_server("-m", "16")) for _ in range(3)]
        members = tmp_path / "members"
        members.write_text("".join(f"{n.host}:{n.port}\n" for n in nodes))
        endpoint = stack.enter_context(memcachepy_server("--cluster-config", str(members)))
        keys = [f"tool:{i}" for i in range(3000)]
        with ClusterClient([spec(n) for n in nodes], replicas=2, **POLICY) as client:
            assert (
                client.set_many({k: value_of(i) for i, k in enumerate(keys)}, flags=3, expire=600)
                == []
            )
            mine = [
                k.encode()
                for k in keys
                if nodes[0].port in [s.port for s in client.replica_servers(k)]
            ]
        Client(nodes[0].address).flush_all(noreply=False)  # as if restarted empty
        status = tool_main(
            [spec(endpoint), "cluster", "warm", spec(nodes[0]), "--replicas", "2", "--json"]
        )
        out = capsys.readouterr().out
        assert status == 0, out
        assert f'"warmup_items": {len(mine)}' in out
        held = items_on(nodes[0], mine)
        assert held == {k: (value_of(int(k[5:])), 3) for k in mine}
        with PeerConnection(nodes[0].address) as conn:  # the TTL came along
            ttls = [item.ttl for item in conn.fetch(mine[:50]) if item is not None]
        assert all(590 <= t <= 600 for t in ttls)
