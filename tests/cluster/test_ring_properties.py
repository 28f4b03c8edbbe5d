"""Property tests for KetamaRing (hypothesis)."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from memcachepy.cluster import KetamaRing
from memcachepy.cluster.ring import POINTS_PER_SERVER, points_per_node

hosts = st.from_regex(r"[a-z][a-z0-9.-]{0,20}", fullmatch=True)
ports = st.integers(min_value=1, max_value=65535)
node_names = st.builds(lambda host, port: f"{host}:{port}", hosts, ports)
node_sets = st.lists(node_names, min_size=1, max_size=8, unique=True)
keys = st.lists(st.binary(min_size=1, max_size=40), min_size=1, max_size=60)
hash_names = st.sampled_from(["md5", "fnv1a_64", "crc32a", "murmur"])

SETTINGS = settings(max_examples=60, deadline=None)


@SETTINGS
@given(node_sets, node_names, keys, hash_names)
def test_adding_a_node_only_moves_keys_to_it(
    nodes: list[str], new: str, sample: list[bytes], key_hash: str
) -> None:
    if new in nodes:
        return
    ring = KetamaRing(nodes, key_hash=key_hash)
    before = {key: ring.get_node(key) for key in sample}
    ring.add_node(new)
    for key in sample:
        assert ring.get_node(key) in (before[key], new)


@SETTINGS
@given(node_sets, st.data(), keys)
def test_removing_a_node_only_moves_its_keys(
    nodes: list[str], data: st.DataObject, sample: list[bytes]
) -> None:
    victim = data.draw(st.sampled_from(nodes))
    ring = KetamaRing(nodes)
    before = {key: ring.get_node(key) for key in sample}
    ring.remove_node(victim)
    for key in sample:
        after = ring.get_node(key)
        if before[key] != victim:
            assert after == before[key]
        else:
            assert after != victim


@SETTINGS
@given(node_sets, keys, st.randoms(use_true_random=False))
def test_placement_is_deterministic_and_independent_of_insertion_order(
    nodes: list[str], sample: list[bytes], rng: random.Random
) -> None:
    shuffled = list(nodes)
    rng.shuffle(shuffled)
    first, second = KetamaRing(nodes), KetamaRing(shuffled)
    for key in sample:
        assert first.get_node(key) == second.get_node(key) == first.get_node(key)
        assert first.get_node(key) in nodes


@SETTINGS
@given(st.lists(st.integers(min_value=1, max_value=20), min_size=1, max_size=10))
def test_weights_give_proportional_point_counts(weights: list[int]) -> None:
    ring = KetamaRing({f"n{i}:1": weight for i, weight in enumerate(weights)})
    counts = ring.point_counts()
    total = sum(weights)
    for i, weight in enumerate(weights):
        count = counts[f"n{i}:1"]
        ideal = weight / total * POINTS_PER_SERVER * len(weights)
        assert count % 4 == 0
        assert ideal - 4.001 <= count <= ideal + 0.001
        assert count == points_per_node(weight, total, len(weights))
    if len(set(weights)) == 1:
        assert set(counts.values()) == {POINTS_PER_SERVER}
    heavier = [i for i in range(len(weights)) if weights[i] > min(weights)]
    for i in heavier:
        assert counts[f"n{i}:1"] >= min(counts.values())


@SETTINGS
@given(node_sets, keys, st.integers(min_value=1, max_value=5))
def test_replicas_start_with_the_owner_and_are_distinct(
    nodes: list[str], sample: list[bytes], count: int
) -> None:
    ring = KetamaRing(nodes)
    for key in sample:
        replicas = ring.get_nodes(key, count)
        assert len(replicas) == min(count, len(nodes)) == len(set(replicas))
        assert replicas[0] == ring.get_node(key)


@SETTINGS
@given(node_sets, node_names, keys)
def test_replica_lists_survive_a_removal_as_the_remaining_nodes(
    nodes: list[str], new: str, sample: list[bytes]
) -> None:
    # Removing a node only deletes it from each key's walk: the other nodes keep their order.
    if new in nodes:
        return
    ring = KetamaRing([*nodes, new])
    walks = {key: ring.get_nodes(key, len(nodes) + 1) for key in sample}
    ring.remove_node(new)
    for key in sample:
        assert ring.get_nodes(key, len(nodes)) == [n for n in walks[key] if n != new]
