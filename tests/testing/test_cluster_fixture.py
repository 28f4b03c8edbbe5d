"""memcachepy_cluster with pymemcache's HashClient and memcachepy's ClusterClient."""

from __future__ import annotations

import pytest

from .inner import EXES, exe_args, run

CLUSTER = """
import pytest
from pymemcache.client.hash import HashClient

from memcachepy.cluster import ClusterClient

KEYS = {f"key-{i}": str(i) for i in range(60)}


def hash_client(cluster, timeout=5.0, ignore_exc=False):
    return HashClient(cluster.addresses, connect_timeout=timeout, timeout=timeout,
                      ignore_exc=ignore_exc, retry_attempts=1, dead_timeout=60,
                      default_noreply=False)


def test_keys_spread_over_the_nodes(memcachepy_cluster):
    assert len(memcachepy_cluster) == 3
    assert len(set(memcachepy_cluster.addresses)) == 3
    hash_client(memcachepy_cluster).set_many(KEYS)
    counts = [int(node.stats()["curr_items"]) for node in memcachepy_cluster]
    assert sum(counts) == len(KEYS) and all(counts)
    memcachepy_cluster.flush()
    assert hash_client(memcachepy_cluster).get_many(list(KEYS)) == {}


def test_a_paused_node_loses_only_its_keys(memcachepy_cluster):
    hash_client(memcachepy_cluster).set_many(KEYS)
    client = hash_client(memcachepy_cluster, timeout=0.3, ignore_exc=True)
    on_first = int(memcachepy_cluster[0].stats()["curr_items"])
    memcachepy_cluster[0].pause()
    hits = client.get_many(list(KEYS))
    assert len(hits) == len(KEYS) - on_first
    assert all(hits[key] == value.encode() for key, value in KEYS.items() if key in hits)


@pytest.mark.memcachepy(nodes=2, args=["-m", "48"])
def test_marker_sets_nodes_and_flags(memcachepy_cluster):
    assert len(memcachepy_cluster) == 2
    assert {node.stats()["limit_maxbytes"] for node in memcachepy_cluster} == {
        str(48 * 1024 * 1024)}


def test_cluster_client_replicas_survive_a_killed_node(memcachepy_cluster):
    client = ClusterClient(memcachepy_cluster.addresses, replicas=2, connect_timeout=0.5,
                           timeout=0.3, failure_limit=1)
    try:
        client.set_many(KEYS)
        memcachepy_cluster[1].kill()
        assert client.get_many(list(KEYS)) == {k: v.encode() for k, v in KEYS.items()}
        memcachepy_cluster[1].restart()  # back, empty: the replicas still answer
        assert client.get_many(list(KEYS)) == {k: v.encode() for k, v in KEYS.items()}
    finally:
        client.close()
"""


@pytest.mark.parametrize("exe", list(EXES))
def test_cluster_fixture(pytester: pytest.Pytester, exe: str) -> None:
    run(pytester, CLUSTER, *exe_args(exe)).assert_outcomes(passed=4)
