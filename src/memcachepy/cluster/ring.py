"""A ketama consistent-hash ring that places keys exactly as libmemcached and twemproxy do.

Placement rules (libmemcached's weighted ketama, which twemproxy copies):

* Each node has a *label*: its host when the port is 11211, otherwise ``host:port``
  (twemproxy uses the server's name instead when its config gives one).
* A node of weight ``w`` out of a total ``W`` over ``n`` nodes gets
  ``floor(w / W * 40 * n) * 4`` points, computed in C ``float`` arithmetic as the C code
  does (160 points per node when all weights are equal).
* For ``i = 0, 1, ...`` the MD5 digest of ``"<label>-<i>"`` gives four points: the
  little-endian 32-bit integers at digest bytes 0..3, 4..7, 8..11 and 12..15.
* A key's point is its key hash (MD5 by default: the first four digest bytes, little-endian);
  the key belongs to the first ring point ``>=`` it, wrapping to the lowest point.
* Two nodes sharing a point value (rare: 32-bit points) resolve to the node added first,
  as the C libraries' stable sort of the server list does.

That is libmemcached's ``MEMCACHED_BEHAVIOR_KETAMA_WEIGHTED`` (pylibmc's ``"ketama_weighted":
True``, which also forces MD5 key hashing) and twemproxy's ``distribution: ketama``.
libmemcached's plain ``MEMCACHED_BEHAVIOR_KETAMA`` (pylibmc's ``"ketama": True``) differs
while every weight is 1: 100 points per node, one per label, each the *key hash* of
``"<label>-<i>"``. ``KetamaRing(variant="ketama")`` reproduces that one too.

:class:`KetamaRing` is also a pymemcache ``HashClient`` hasher: ``HashClient(servers,
hasher=KetamaRing)`` makes pymemcache place keys as libmemcached does. HashClient builds the
hasher with no arguments and adds its nodes as ``"host:port"`` strings, so weights and
other options go through a partial::

    HashClient(servers, hasher=functools.partial(
        KetamaRing, key_hash="fnv1a_64", weights={"10.0.0.1:11211": 2}))
"""

from __future__ import annotations

import struct
import threading
from bisect import bisect_left
from collections.abc import Hashable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from hashlib import md5
from typing import Generic, TypeVar

from memcachepy.cluster.hashing import KeyHash, hash_function

__all__ = [
    "DEFAULT_PORT",
    "POINTS_PER_SERVER",
    "POINTS_PER_SERVER_UNWEIGHTED",
    "VARIANTS",
    "KetamaRing",
    "ketama_label",
    "points_per_node",
]

#: Port that libmemcached and twemproxy leave out of a node's label.
DEFAULT_PORT = 11211
#: Points per node when all weights are equal.
POINTS_PER_SERVER = 160
#: Points per node in libmemcached's unweighted ``ketama`` variant.
POINTS_PER_SERVER_UNWEIGHTED = 100
_POINTS_PER_HASH = 4
VARIANTS = ("ketama_weighted", "ketama")

NodeT = TypeVar("NodeT", bound=Hashable)


def ketama_label(node: object) -> str:
    """The string libmemcached hashes for ``node``'s points.

    ``"host:port"`` strings and ``(host, port)`` tuples (the node identifiers pymemcache's
    ``HashClient`` uses) become ``host`` when the port is 11211, else ``host:port``. Any
    other node (a unix socket path, a name) is hashed as ``str(node)``.
    """
    if isinstance(node, tuple) and len(node) == 2:
        host, port = node
        return str(host) if int(port) == DEFAULT_PORT else f"{host}:{int(port)}"
    text = str(node)
    host, sep, port = text.rpartition(":")
    if sep and host and port.isdigit():
        return host if int(port) == DEFAULT_PORT else text
    return text


def _f32(value: float) -> float:
    """Round to the nearest C ``float`` (IEEE single precision)."""
    result: float = struct.unpack("f", struct.pack("f", value))[0]
    return result


def points_per_node(weight: int, total_weight: int, node_count: int) -> int:
    """Points a node of ``weight`` gets, with libmemcached's single-precision arithmetic.

    C computes ``floorf(pct * 160 / 4 * (float)n + 1e-10) * 4`` with ``pct`` a ``float``;
    each single-precision step is reproduced, because rounding decides whether a node gets
    e.g. 156 or 160 points.
    """
    if weight <= 0 or total_weight <= 0 or node_count <= 0:
        raise ValueError("weights and node count must be positive")
    pct = _f32(_f32(weight) / _f32(total_weight))
    scaled = _f32(_f32(_f32(pct * POINTS_PER_SERVER) / _POINTS_PER_HASH) * _f32(node_count))
    # The C code adds 1e-10 before flooring; that never changes the floor of a float.
    return int(scaled) * _POINTS_PER_HASH


def _label_points(label: str, count: int) -> Iterator[int]:
    """The ring points of a label: four per MD5 digest of ``label-i``."""
    for i in range(count // _POINTS_PER_HASH):
        digest = md5(f"{label}-{i}".encode()).digest()
        yield from struct.unpack("<4I", digest)


@dataclass(frozen=True, slots=True)
class _NodeEntry(Generic[NodeT]):
    node: NodeT
    label: str
    weight: int


@dataclass(frozen=True, slots=True)
class _Continuum(Generic[NodeT]):
    values: list[int]
    owners: list[NodeT]
    node_count: int


class KetamaRing(Generic[NodeT]):
    """Consistent hashing over nodes, with libmemcached's ketama placement.

    ``nodes`` may be an iterable of node identifiers or a mapping of node to weight.
    ``key_hash`` is a twemproxy hash name (``"md5"``, ``"fnv1a_64"``, ...; see
    :mod:`memcachepy.cluster.hashing`) or a function from bytes to a 32-bit int; it only
    changes where keys fall, the node points are always MD5 as in libmemcached and
    twemproxy. ``weights`` and ``labels`` give defaults for nodes added later by
    :meth:`add_node` (pymemcache's ``HashClient`` adds nodes without either).
    ``hash_tag``, two characters such as ``"{}"``, hashes only the part of a key between
    them, as twemproxy's ``hash_tag`` does. ``variant="ketama"`` selects libmemcached's
    unweighted variant (see the module docstring); it falls back to the weighted points as
    soon as one weight is above 1, as libmemcached does.

    Reads (:meth:`get_node`, :meth:`get_nodes`) are safe while another thread changes the
    membership: every change builds a new continuum and swaps it in.
    """

    def __init__(
        self,
        nodes: Iterable[NodeT] | Mapping[NodeT, int] | None = None,
        *,
        key_hash: str | KeyHash = "md5",
        weights: Mapping[NodeT, int] | None = None,
        labels: Mapping[NodeT, str] | None = None,
        hash_tag: str | None = None,
        variant: str = "ketama_weighted",
    ) -> None:
        if variant not in VARIANTS:
            raise ValueError(f"variant must be one of {VARIANTS}, got {variant!r}")
        self.variant = variant
        self._key_hash: KeyHash = hash_function(key_hash) if isinstance(key_hash, str) else key_hash
        self.key_hash_name = (
            key_hash if isinstance(key_hash, str) else getattr(key_hash, "__name__", "custom")
        )
        if hash_tag is not None and len(hash_tag) != 2:
            raise ValueError("hash_tag must be two characters, such as '{}'")
        self._hash_tag = hash_tag.encode() if hash_tag is not None else None
        self._default_weights: dict[NodeT, int] = dict(weights or {})
        self._default_labels: dict[NodeT, str] = dict(labels or {})
        self._entries: dict[NodeT, _NodeEntry[NodeT]] = {}
        self._lock = threading.Lock()
        self._continuum: _Continuum[NodeT] = _Continuum([], [], 0)
        if nodes is not None:
            if isinstance(nodes, Mapping):
                for node, weight in nodes.items():
                    self._insert(node, weight, None)
            else:
                for node in nodes:
                    self._insert(node, None, None)
            self._rebuild()

    # -- membership -------------------------------------------------------------------

    def add_node(self, node: NodeT, weight: int | None = None, label: str | None = None) -> None:
        """Add ``node`` (or change its weight/label); ``weight`` defaults to 1."""
        with self._lock:
            self._insert(node, weight, label)
            self._rebuild()

    def remove_node(self, node: NodeT) -> None:
        """Remove ``node``; ``ValueError`` if it is not on the ring (as pymemcache expects)."""
        with self._lock:
            if node not in self._entries:
                raise ValueError(f"No such node {node!r} to remove")
            del self._entries[node]
            self._rebuild()

    def set_nodes(
        self,
        nodes: Iterable[NodeT] | Mapping[NodeT, int],
        labels: Mapping[NodeT, str] | None = None,
    ) -> None:
        """Replace the whole membership at once (one rebuild); ``labels`` override labels."""
        labels = labels or {}
        with self._lock:
            self._entries = {}
            if isinstance(nodes, Mapping):
                for node, weight in nodes.items():
                    self._insert(node, weight, labels.get(node))
            else:
                for node in nodes:
                    self._insert(node, None, labels.get(node))
            self._rebuild()

    def _insert(self, node: NodeT, weight: int | None, label: str | None) -> None:
        if weight is None:
            weight = self._default_weights.get(node, 1)
        if isinstance(weight, bool) or not isinstance(weight, int) or weight < 1:
            raise ValueError(f"weight of {node!r} must be a positive integer, got {weight!r}")
        if label is None:
            label = self._default_labels.get(node) or ketama_label(node)
        # Re-adding a node keeps its place in the order (it decides ties, as in the C code).
        self._entries[node] = _NodeEntry(node, label, weight)

    def _rebuild(self) -> None:
        entries = list(self._entries.values())
        total = sum(entry.weight for entry in entries)
        unweighted = self.variant == "ketama" and all(entry.weight == 1 for entry in entries)
        points: list[tuple[int, int, NodeT]] = []
        for order, entry in enumerate(entries):
            if unweighted:
                values = [
                    self._key_hash(f"{entry.label}-{i}".encode())
                    for i in range(POINTS_PER_SERVER_UNWEIGHTED)
                ]
            else:
                count = points_per_node(entry.weight, total, len(entries))
                values = list(_label_points(entry.label, count))
            points.extend((value, order, entry.node) for value in values)
        points.sort(key=lambda point: (point[0], point[1]))
        self._continuum = _Continuum(
            [value for value, _, _ in points], [node for _, _, node in points], len(entries)
        )

    # -- inspection -------------------------------------------------------------------

    @property
    def nodes(self) -> list[NodeT]:
        """The nodes in the order they were added."""
        return list(self._entries)

    def weight(self, node: NodeT) -> int:
        """The weight of ``node``."""
        return self._entries[node].weight

    def label(self, node: NodeT) -> str:
        """The string whose MD5 digests give ``node``'s points."""
        return self._entries[node].label

    def point_counts(self) -> dict[NodeT, int]:
        """How many ring points each node owns."""
        counts: dict[NodeT, int] = dict.fromkeys(self._entries, 0)
        for owner in self._continuum.owners:
            counts[owner] += 1
        return counts

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, node: object) -> bool:
        return node in self._entries

    def __repr__(self) -> str:
        return (
            f"KetamaRing({len(self)} nodes, key_hash={self.key_hash_name!r}, "
            f"variant={self.variant!r})"
        )

    # -- placement --------------------------------------------------------------------

    def key_point(self, key: str | bytes) -> int:
        """The 32-bit ring position of ``key`` (str keys are UTF-8 encoded)."""
        data = key.encode() if isinstance(key, str) else bytes(key)
        if self._hash_tag is not None:
            data = _tagged_part(data, self._hash_tag)
        return self._key_hash(data)

    def get_node(self, key: str | bytes) -> NodeT | None:
        """The node that owns ``key``, or ``None`` when the ring is empty."""
        return self.get_node_for_point(self.key_point(key))

    def get_node_for_point(self, point: int) -> NodeT | None:
        """The owner of the first ring point ``>= point``, wrapping; ``None`` if empty."""
        continuum = self._continuum
        if not continuum.values:
            return None
        index = bisect_left(continuum.values, point)
        if index == len(continuum.values):
            index = 0
        return continuum.owners[index]

    def get_nodes(self, key: str | bytes, count: int) -> list[NodeT]:
        """The first ``count`` distinct nodes met walking the ring from ``key``'s point.

        The first is :meth:`get_node`'s answer; the others are the key's replicas. Fewer are
        returned when the ring has fewer nodes.
        """
        continuum = self._continuum
        values, owners = continuum.values, continuum.owners
        wanted = min(count, continuum.node_count)
        if wanted <= 0:
            return []
        start = bisect_left(values, self.key_point(key))
        found: list[NodeT] = []
        size = len(values)
        for step in range(size):
            owner = owners[(start + step) % size]
            if owner not in found:
                found.append(owner)
                if len(found) == wanted:
                    break
        return found


def _tagged_part(key: bytes, tag: bytes) -> bytes:
    """The part of ``key`` between the hash tag characters, as twemproxy selects it."""
    start = key.find(tag[0:1])
    if start < 0:
        return key
    end = key.find(tag[1:2], start + 1)
    if end < 0 or end - start <= 1:
        return key
    return key[start + 1 : end]
