"""Placement against the real programs: libmemcached (through pylibmc) and twemproxy.

Neither exposes where it puts a key, so each test stores keys through the real client
or proxy into real nodes, then asks every node directly which keys it holds, and compares
that with KetamaRing's answer. The same server lists go through pylibmc, nutcracker,
pymemcache's HashClient with KetamaRing, and ClusterClient, and all must agree key by key.
"""

from __future__ import annotations

import random
import subprocess
import time
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Any

import pytest
from pymemcache.client.base import Client
from pymemcache.client.hash import HashClient

from memcachepy.cluster import ClusterClient, KetamaRing
from memcachepy.cluster.hashing import hash_names
from tests.servers import HOST, IN_CI, ServerProcess, free_port, require_binary, spawn

from .nodes import bindable, flush, node_keys, start_node

try:
    import pylibmc
except ImportError:  # pragma: no cover - depends on the machine
    if IN_CI:
        raise  # CI installs it: a missing pylibmc there is a failure, not a skip
    pytest.skip("pylibmc is not installed (pip install pylibmc)", allow_module_level=True)

KEYS = [f"key:{i}" for i in range(300)]
_rng = random.Random(20261125)
_HIGH_BYTES = [b for b in range(33, 256) if b != 127]
# Keys with bytes >= 0x80 exercise the C libraries' signed-char hashing.
BYTE_KEYS = [f"k{i}" for i in range(150)] + [
    bytes(_rng.choice(_HIGH_BYTES) for _ in range(_rng.randint(1, 24))).decode("latin-1")
    for _ in range(150)
]
# Sequential keys bunch up under the weaker hashes (fnv1a_64 is really 32-bit FNV-1a):
# random ones spread over every node.
RANDOM_KEYS = [
    "".join(
        _rng.choice("abcdefghijklmnopqrstuvwxyz0123456789:_-") for _ in range(_rng.randint(1, 30))
    )
    for _ in range(300)
]
RANDOM_KEYS = sorted(set(RANDOM_KEYS))
DEFAULT_PORT_HOSTS = ["127.0.0.2", "127.0.0.3", "127.0.0.4"]


@dataclass
class Pool:
    """Started nodes: three on 127.0.0.1 (free ports), three on 127.0.0.x:11211."""

    local: list[ServerProcess]
    default_port: list[ServerProcess]


@pytest.fixture(scope="module")
def pool() -> Iterator[Pool]:
    with ExitStack() as stack:
        local = [stack.enter_context(start_node()) for _ in range(3)]
        default_port = []
        if all(bindable(host, 11211) for host in DEFAULT_PORT_HOSTS):
            default_port = [
                stack.enter_context(start_node(host, 11211)) for host in DEFAULT_PORT_HOSTS
            ]
        yield Pool(local, default_port)


def spec(node: ServerProcess) -> str:
    return f"{node.host}:{node.port}"


def where(nodes: list[ServerProcess], keys: list[str]) -> dict[str, str]:
    """Which node holds each key, read from the nodes directly; every key exactly once."""
    holder: dict[str, str] = {}
    for node in nodes:
        for key in node_keys(node, keys):
            assert key not in holder, f"{key!r} is on {holder[key]} and {spec(node)}"
            holder[key] = spec(node)
    assert set(holder) == set(keys), "some keys were not stored"
    return holder


def ring_placement(ring: KetamaRing[str], keys: list[str]) -> dict[str, str]:
    return {key: str(ring.get_node(key.encode("latin-1"))) for key in keys}


def through_pylibmc(
    nodes: list[ServerProcess], weights: list[int], behaviors: dict[str, Any], keys: list[str]
) -> dict[str, str]:
    flush(nodes)
    servers = [f"{spec(node)}:{weight}" for node, weight in zip(nodes, weights, strict=True)]
    client = pylibmc.Client(servers, behaviors=behaviors)
    try:
        for key in keys:
            assert client.set(key, b"v")
    finally:
        client.disconnect_all()
    return where(nodes, keys)


def weighted_ring(
    nodes: list[ServerProcess], weights: list[int], **options: Any
) -> KetamaRing[str]:
    return KetamaRing({spec(n): w for n, w in zip(nodes, weights, strict=True)}, **options)


def pick(pool: Pool, which: str) -> list[ServerProcess]:
    if which == "local":
        return pool.local
    if not pool.default_port:
        pytest.skip("127.0.0.2-4:11211 cannot be bound here")
    if which == "default-port":
        return pool.default_port
    return [*pool.default_port[:2], *pool.local[:2]]  # "mixed"


# (node group, weights, pylibmc behaviors, KetamaRing options)
PYLIBMC_CASES: dict[str, tuple[str, list[int], dict[str, Any], dict[str, Any]]] = {
    "weighted-md5": ("local", [1, 1, 1], {"ketama_weighted": True}, {}),
    "weighted-md5-weights": ("local", [1, 2, 3], {"ketama_weighted": True}, {}),
    "weighted-11211": ("default-port", [1, 1, 1], {"ketama_weighted": True}, {}),
    "weighted-mixed-ports-weights": ("mixed", [2, 1, 1, 3], {"ketama_weighted": True}, {}),
    # ketama + a weight above 1 turns libmemcached's weighted layout on, keeping "hash".
    "ketama-weights-fnv1a_64": (
        "local",
        [1, 2, 1],
        {"ketama": True, "hash": "fnv1a_64"},
        {"key_hash": "fnv1a_64"},
    ),
    "ketama-weights-11211-md5": ("default-port", [3, 1, 2], {"ketama": True, "hash": "md5"}, {}),
    # Plain ketama with no weights is libmemcached's other layout: variant="ketama".
    "ketama-md5": ("local", [1, 1, 1], {"ketama": True, "hash": "md5"}, {"variant": "ketama"}),
    "ketama-default-hash": (
        "local",
        [1, 1, 1],
        {"ketama": True},
        {"variant": "ketama", "key_hash": "one_at_a_time"},
    ),
    "ketama-crc": (
        "local",
        [1, 1, 1],
        {"ketama": True, "hash": "crc"},
        {"variant": "ketama", "key_hash": "crc32"},
    ),
    "ketama-fnv1_32": (
        "local",
        [1, 1, 1],
        {"ketama": True, "hash": "fnv1_32"},
        {"variant": "ketama", "key_hash": "fnv1_32"},
    ),
    "ketama-murmur-11211": (
        "default-port",
        [1, 1, 1],
        {"ketama": True, "hash": "murmur"},
        {"variant": "ketama", "key_hash": "murmur"},
    ),
}


@pytest.mark.parametrize("case", list(PYLIBMC_CASES))
def test_ring_matches_libmemcached(pool: Pool, case: str) -> None:
    which, weights, behaviors, options = PYLIBMC_CASES[case]
    nodes = pick(pool, which)
    keys = RANDOM_KEYS if "key_hash" in options else KEYS
    actual = through_pylibmc(nodes, weights, behaviors, keys)
    assert actual == ring_placement(weighted_ring(nodes, weights, **options), keys)
    assert len(set(actual.values())) == len(nodes)


# -- twemproxy --------------------------------------------------------------------------


@dataclass
class ProxyPool:
    port: int
    nodes: list[ServerProcess]
    ring: KetamaRing[str]
    keys: list[str]


def _server_lines(nodes: list[ServerProcess], weights: list[int], names: list[str] | None) -> str:
    lines = []
    for i, (node, weight) in enumerate(zip(nodes, weights, strict=True)):
        name = f" {names[i]}" if names else ""
        lines.append(f"   - {spec(node)}:{weight}{name}\n")
    return "".join(lines)


@pytest.fixture(scope="module")
def twemproxy(
    pool: Pool, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, ProxyPool]]:
    """One nutcracker process with a pool per case, all in front of the same nodes."""
    binary = require_binary("nutcracker")
    local = pool.local
    cases: dict[
        str, tuple[list[ServerProcess], list[int], list[str] | None, dict[str, Any], list[str]]
    ] = {
        "md5": (local, [1, 1, 1], None, {}, BYTE_KEYS),
        "md5-weights": (local, [1, 2, 3], None, {}, KEYS),
        "md5-names": (local, [1, 1, 2], ["alpha", "beta", "gamma"], {}, KEYS),
        "md5-hash-tag": (
            local,
            [1, 1, 1],
            None,
            {"hash_tag": "{}"},
            [f"{{user{i % 7}}}:{i}" for i in range(100)] + KEYS[:100],
        ),
    }
    if pool.default_port:
        cases["md5-11211-weights"] = (pool.default_port, [2, 1, 1], None, {}, KEYS)
        cases["md5-mixed"] = ([*pool.default_port[:2], *local[:2]], [1, 1, 1, 1], None, {}, KEYS)
    for name in hash_names():
        if name != "md5":
            cases[name] = (local, [1, 1, 1], None, {"key_hash": name}, BYTE_KEYS)
    config = []
    pools: dict[str, ProxyPool] = {}
    for case, (nodes, weights, names, options, keys) in cases.items():
        port = free_port()
        hash_name = options.get("key_hash", "md5")
        tag = f'  hash_tag: "{options["hash_tag"]}"\n' if "hash_tag" in options else ""
        config.append(
            f"pool_{case.replace('-', '_')}:\n  listen: {HOST}:{port}\n  hash: {hash_name}\n"
            f"  distribution: ketama\n  timeout: 2000\n  auto_eject_hosts: false\n{tag}"
            f"  servers:\n{_server_lines(nodes, weights, names)}"
        )
        ring = weighted_ring(nodes, weights, **options)
        if names:
            ring = KetamaRing(key_hash=options.get("key_hash", "md5"))
            ring.set_nodes(
                {spec(n): w for n, w in zip(nodes, weights, strict=True)},
                labels={spec(n): label for n, label in zip(nodes, names, strict=True)},
            )
        pools[case] = ProxyPool(port, nodes, ring, keys)
    directory = tmp_path_factory.mktemp("nutcracker")
    conf = directory / "nutcracker.yml"
    conf.write_text("".join(config))
    argv = [
        binary,
        "-c",
        str(conf),
        "-o",
        str(directory / "nutcracker.log"),
        "-s",
        str(free_port()),
        "-a",
        HOST,
        "-p",
        str(directory / "nutcracker.pid"),
    ]
    check = subprocess.run([*argv, "-t"], capture_output=True, timeout=10)
    assert check.returncode == 0, check.stderr.decode(errors="replace") + conf.read_text()
    first = next(iter(pools.values()))
    proxy = spawn(argv, first.port)
    try:
        _wait_ports([p.port for p in pools.values()])
        yield pools
    finally:
        proxy.stop()


def _wait_ports(ports: list[int]) -> None:
    deadline = time.monotonic() + 10
    for port in ports:
        while True:
            try:
                Client((HOST, port), connect_timeout=0.2).version()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.02)
            except Exception:
                break  # listening; nutcracker may not proxy "version"


def through_twemproxy(proxy: ProxyPool) -> dict[str, str]:
    flush(proxy.nodes)
    client = Client(
        (HOST, proxy.port),
        connect_timeout=2,
        timeout=5,
        default_noreply=False,
        allow_unicode_keys=True,
        encoding="latin-1",
    )
    try:
        values = {key.encode("latin-1"): b"v" for key in proxy.keys}
        assert client.set_many(values) == []
    finally:
        client.close()
    return where(proxy.nodes, proxy.keys)


TWEMPROXY_CASES = [
    "md5",
    "md5-weights",
    "md5-names",
    "md5-hash-tag",
    "md5-11211-weights",
    "md5-mixed",
    *[name for name in hash_names() if name != "md5"],
]


@pytest.mark.parametrize("case", TWEMPROXY_CASES)
def test_ring_matches_twemproxy(twemproxy: dict[str, ProxyPool], case: str) -> None:
    if case not in twemproxy:
        pytest.skip("127.0.0.2-4:11211 cannot be bound here")
    proxy = twemproxy[case]
    actual = through_twemproxy(proxy)
    assert actual == ring_placement(proxy.ring, proxy.keys)
    # libmemcached's crc32 only spans 0..32767, so on a ring of MD5 points every key lands
    # on one node, in twemproxy as here; the "ketama-crc" pylibmc case covers it better.
    assert len(set(actual.values())) == (1 if case == "crc32" else len(proxy.nodes))


# -- everyone at once -------------------------------------------------------------------


def through_hashclient(nodes: list[ServerProcess], keys: list[str]) -> dict[str, str]:
    flush(nodes)
    client = HashClient([node.address for node in nodes], hasher=KetamaRing, default_noreply=False)
    try:
        for key in keys:
            assert client.set(key, b"v")
    finally:
        client.close()
    return where(nodes, keys)


def through_cluster_client(
    nodes: list[ServerProcess], weights: list[int], keys: list[str]
) -> dict[str, str]:
    flush(nodes)
    servers = [(node.host, node.port, weight) for node, weight in zip(nodes, weights, strict=True)]
    with ClusterClient(servers) as client:
        assert client.set_many(dict.fromkeys(keys, b"v")) == []
    return where(nodes, keys)


@pytest.mark.parametrize("which", ["local", "default-port"])
def test_libmemcached_twemproxy_pymemcache_and_cluster_client_agree(
    pool: Pool, twemproxy: dict[str, ProxyPool], which: str
) -> None:
    nodes = pick(pool, which)
    proxy = twemproxy["md5" if which == "local" else "md5-11211-weights"]
    weights = [1, 1, 1] if which == "local" else [2, 1, 1]
    placements = {
        "libmemcached": through_pylibmc(nodes, weights, {"ketama_weighted": True}, KEYS),
        "twemproxy": through_twemproxy(ProxyPool(proxy.port, nodes, proxy.ring, KEYS)),
        "cluster client": through_cluster_client(nodes, weights, KEYS),
        "ring": ring_placement(weighted_ring(nodes, weights), KEYS),
    }
    if weights == [1, 1, 1]:  # HashClient has no weights
        placements["pymemcache HashClient"] = through_hashclient(nodes, KEYS)
    reference = placements["libmemcached"]
    for name, placement in placements.items():
        differing = [key for key in KEYS if placement[key] != reference[key]]
        assert not differing, f"{name} disagrees with libmemcached on {len(differing)} keys"
