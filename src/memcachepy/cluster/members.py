"""Cluster members: how a server is written, where to connect, what the ring hashes."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from memcachepy.cluster.discovery import ClusterNode
from memcachepy.cluster.hashing import KeyHash
from memcachepy.cluster.ring import DEFAULT_PORT, KetamaRing, ketama_label

__all__ = ["Member", "ServerSpec", "build_ring", "to_server"]


@dataclass(frozen=True, slots=True)
class Member:
    """One cluster member: where it is, its ring weight and its ketama label.

    ``host`` is the name the ring hashes (with the port unless it is 11211); ``ip``, when
    set, is where to connect instead (ElastiCache's ip field); ``name`` replaces the label,
    as a twemproxy server name does. Two servers are the same member when host, port and
    ip match.
    """

    host: str
    port: int = DEFAULT_PORT
    ip: str = ""
    weight: int = field(default=1, compare=False)
    name: str | None = field(default=None, compare=False)

    @property
    def address(self) -> tuple[str, int]:
        """Where to connect."""
        return (self.ip or self.host, self.port)

    @property
    def label(self) -> str:
        """The string hashed for this server's ring points."""
        return self.name or ketama_label((self.host, self.port))

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    @classmethod
    def parse(cls, spec: str) -> Member:
        """Parse ``host``, ``host:port`` or ``host:port:weight`` (IPv6 as ``[addr]:port``)."""
        if spec.startswith("["):
            host, bracket, rest = spec[1:].partition("]")
            if not bracket or (rest and not rest.startswith(":")):
                raise ValueError(f"bad server spec {spec!r}")
            parts = [host, *rest[1:].split(":")] if rest else [host]
        else:
            parts = spec.split(":")
        if not parts[0] or len(parts) > 3 or not all(p.isdigit() for p in parts[1:]):
            raise ValueError(f"bad server spec {spec!r} (want host[:port[:weight]])")
        port = int(parts[1]) if len(parts) > 1 else DEFAULT_PORT
        weight = int(parts[2]) if len(parts) > 2 else 1
        return cls(parts[0], port, weight=weight)


#: Everything :func:`to_server` accepts.
ServerSpec = str | tuple[str, int] | tuple[str, int, int] | Member | ClusterNode


def to_server(spec: ServerSpec) -> Member:
    """A :class:`Member` from ``"host[:port[:weight]]"``, ``(host, port[, weight])``, a
    :class:`~memcachepy.cluster.discovery.ClusterNode` or a :class:`Member`."""
    if isinstance(spec, Member):
        return spec
    if isinstance(spec, ClusterNode):
        return Member(spec.host, spec.port, ip=spec.ip)
    if isinstance(spec, str):
        return Member.parse(spec)
    if isinstance(spec, tuple) and len(spec) in (2, 3):
        return Member(spec[0], int(spec[1]), weight=int(spec[2]) if len(spec) == 3 else 1)
    raise TypeError(f"unsupported server spec {spec!r}")


def build_ring(
    servers: Iterable[ServerSpec],
    *,
    key_hash: str | KeyHash = "md5",
    hash_tag: str | None = None,
    variant: str = "ketama_weighted",
) -> KetamaRing[Member]:
    """A ring of ``servers`` with their weights and labels (no connection is made)."""
    members = [to_server(spec) for spec in servers]
    ring: KetamaRing[Member] = KetamaRing(key_hash=key_hash, hash_tag=hash_tag, variant=variant)
    ring.set_nodes(
        {server: server.weight for server in members},
        labels={server: server.label for server in members},
    )
    return ring
