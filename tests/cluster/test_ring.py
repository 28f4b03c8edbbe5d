"""KetamaRing: libmemcached's point layout, distribution, pymemcache HashClient use.

Placement against the real libmemcached (pylibmc) and twemproxy is in test_placement.py.
"""

from __future__ import annotations

import functools
import hashlib
import struct
from collections import Counter

import pytest
from pymemcache.client.hash import HashClient

from memcachepy.cluster import KetamaRing, build_ring, ketama_label
from memcachepy.cluster.ring import points_per_node
from tests.servers import free_port

KEYS = [f"key:{i}" for i in range(100_000)]

NAME_SETS = {
    "ips-11211": [f"10.0.0.{i}:11211" for i in range(1, 11)],
    "one-host-many-ports": [f"127.0.0.1:{11211 + i}" for i in range(10)],
    "dns-names": [f"cache{i}.example.com:11211" for i in range(10)],
}


def placement(ring: KetamaRing[str], keys: list[str]) -> dict[str, str | None]:
    return {key: ring.get_node(key) for key in keys}


def test_labels_drop_the_default_port() -> None:
    assert ketama_label("10.0.0.1:11211") == "10.0.0.1"
    assert ketama_label("10.0.0.1:11212") == "10.0.0.1:11212"
    assert ketama_label(("cache.example.com", 11211)) == "cache.example.com"
    assert ketama_label(("::1", 22122)) == "::1:22122"
    assert ketama_label("::1:11211") == "::1"  # pymemcache's "host:port" for IPv6
    assert ketama_label("/var/run/memcached.sock") == "/var/run/memcached.sock"


def test_points_are_four_per_md5_digest_of_label_dash_index() -> None:
    ring = KetamaRing(["10.0.0.1:11211", "10.0.0.2:11212"])
    assert ring.point_counts() == {"10.0.0.1:11211": 160, "10.0.0.2:11212": 160}
    digest = hashlib.md5(b"10.0.0.2:11212-7").digest()
    for value in struct.unpack("<4I", digest):
        index = ring._continuum.values.index(value)
        assert ring._continuum.owners[index] == "10.0.0.2:11212"


def test_key_goes_to_first_point_at_or_after_its_hash_wrapping() -> None:
    ring = KetamaRing(["a:1", "b:2", "c:3"])
    values, owners = ring._continuum.values, ring._continuum.owners
    assert ring.get_node_for_point(values[5]) == owners[5]
    assert ring.get_node_for_point(values[5] + 1) == owners[6]
    assert ring.get_node_for_point(values[-1] + 1) == owners[0]
    assert ring.get_node_for_point(0) == owners[0]


@pytest.mark.parametrize(
    ("weights", "expected"),
    [
        ([1, 1, 1], [160, 160, 160]),
        ([1, 2, 3], [80, 160, 240]),
        ([1, 1, 1, 1, 1, 1, 1], [160] * 7),
        ([3, 1, 1], [288, 96, 96]),
        ([1, 2], [104, 212]),  # single-precision floor(40*2/3)=53 -> 212, floor(26.67)=26 -> 104
    ],
)
def test_weighted_point_counts(weights: list[int], expected: list[int]) -> None:
    total = sum(weights)
    assert [points_per_node(w, total, len(weights)) for w in weights] == expected
    ring = KetamaRing({f"n{i}:1": w for i, w in enumerate(weights)})
    assert list(ring.point_counts().values()) == expected


@pytest.mark.parametrize("names", NAME_SETS.values(), ids=list(NAME_SETS))
def test_ten_nodes_share_100k_keys_within_15_percent(names: list[str]) -> None:
    counts = Counter(placement(KetamaRing(names), KEYS).values())
    mean = len(KEYS) / len(names)
    assert len(counts) == len(names)
    assert max(counts.values()) <= 1.15 * mean, counts


def test_removing_a_node_moves_only_its_keys() -> None:
    names = NAME_SETS["ips-11211"]
    ring = KetamaRing(names)
    before = placement(ring, KEYS)
    busiest = Counter(before.values()).most_common(1)[0][0]
    assert busiest is not None
    ring.remove_node(busiest)
    after = placement(ring, KEYS)
    moved = [key for key in KEYS if before[key] != after[key]]
    assert all(before[key] == busiest for key in moved)
    assert len(moved) <= (1 / 10 + 0.02) * len(KEYS)


def test_adding_a_node_moves_keys_only_to_it() -> None:
    names = NAME_SETS["dns-names"]
    ring = KetamaRing(names)
    before = placement(ring, KEYS[:20_000])
    ring.add_node("cache10.example.com:11211")
    after = placement(ring, KEYS[:20_000])
    moved = [key for key in before if before[key] != after[key]]
    assert all(after[key] == "cache10.example.com:11211" for key in moved)
    assert len(moved) <= (1 / 11 + 0.02) * 20_000


def test_get_nodes_walks_distinct_nodes_in_ring_order() -> None:
    ring = KetamaRing(NAME_SETS["ips-11211"][:4])
    for key in KEYS[:500]:
        replicas = ring.get_nodes(key, 3)
        assert replicas[0] == ring.get_node(key)
        assert len(set(replicas)) == 3
    assert len(ring.get_nodes("k", 10)) == 4
    assert KetamaRing().get_nodes("k", 2) == []
    assert KetamaRing().get_node("k") is None


def test_str_and_bytes_keys_place_alike() -> None:
    ring = KetamaRing(NAME_SETS["ips-11211"])
    for key in KEYS[:200]:
        assert ring.get_node(key) == ring.get_node(key.encode())


def test_hash_tag_hashes_only_the_tagged_part() -> None:
    ring = KetamaRing(NAME_SETS["ips-11211"], hash_tag="{}")
    user = ring.get_node("user")
    assert all(ring.get_node(f"{{user}}:{i}") == user for i in range(50))
    assert ring.get_node("a{}b") == KetamaRing(NAME_SETS["ips-11211"]).get_node("a{}b")
    with pytest.raises(ValueError):
        KetamaRing(hash_tag="{")


def test_remove_unknown_node_raises_value_error() -> None:
    with pytest.raises(ValueError, match="No such node"):
        KetamaRing(["a:1"]).remove_node("b:2")


def test_bad_weights_are_refused() -> None:
    with pytest.raises(ValueError):
        KetamaRing({"a:1": 0})
    with pytest.raises(ValueError):
        KetamaRing(["a:1"]).add_node("b:1", weight=-2)


def test_unweighted_libmemcached_variant_uses_100_key_hashed_points() -> None:
    ring = KetamaRing(["a:1", "b:2"], variant="ketama", key_hash="fnv1a_64")
    assert ring.point_counts() == {"a:1": 100, "b:2": 100}
    # Any weight above 1 switches libmemcached to the weighted layout.
    weighted = KetamaRing({"a:1": 1, "b:2": 2}, variant="ketama")
    assert weighted.point_counts() == KetamaRing({"a:1": 1, "b:2": 2}).point_counts()


def test_build_ring_uses_weights_and_names() -> None:
    ring = build_ring(["10.0.0.1:11211:3", "10.0.0.2:11212"])
    labels = sorted(ring.label(node) for node in ring.nodes)
    assert labels == ["10.0.0.1", "10.0.0.2:11212"]
    assert sorted(ring.point_counts().values()) == [80, 240]


def node_of(client: HashClient, key: str) -> str:
    host, port = client._get_client(key).server  # picks the node without connecting
    return f"{host}:{port}"


def test_pymemcache_hashclient_places_keys_with_the_ring() -> None:
    servers = [("127.0.0.1", 11211), ("127.0.0.2", 11211), ("127.0.0.1", 22122)]
    client = HashClient(servers, hasher=KetamaRing)
    ring = KetamaRing(["127.0.0.1:11211", "127.0.0.2:11211", "127.0.0.1:22122"])
    assert all(node_of(client, key) == ring.get_node(key) for key in KEYS[:300])


def test_pymemcache_hashclient_takes_ring_options_through_a_partial() -> None:
    servers = [("127.0.0.1", 11211), ("127.0.0.2", 11211), ("127.0.0.1", 22122)]
    weights = {"127.0.0.1:11211": 3, "127.0.0.1:22122": 2}
    hasher = functools.partial(KetamaRing, key_hash="fnv1a_64", weights=weights)
    client = HashClient(servers, hasher=hasher)
    ring = KetamaRing(
        {"127.0.0.1:11211": 3, "127.0.0.2:11211": 1, "127.0.0.1:22122": 2}, key_hash="fnv1a_64"
    )
    assert client.hasher.point_counts() == ring.point_counts()
    assert all(node_of(client, key) == ring.get_node(key) for key in KEYS[:300])


def test_pymemcache_hashclient_ejects_through_remove_node() -> None:
    # Nothing listens on these ports: the first request fails and, with no retries,
    # HashClient ejects the node by calling the hasher's remove_node.
    ports = [free_port() for _ in range(3)]
    client = HashClient(
        [("127.0.0.1", port) for port in ports],
        hasher=KetamaRing,
        retry_attempts=0,
        ignore_exc=True,
        connect_timeout=1,
        timeout=1,
    )
    ring = KetamaRing([f"127.0.0.1:{port}" for port in ports])
    victim = node_of(client, "some-key")
    assert client.get("some-key") is None
    assert victim not in client.hasher
    ring.remove_node(victim)
    assert all(node_of(client, key) == ring.get_node(key) for key in KEYS[:300])
