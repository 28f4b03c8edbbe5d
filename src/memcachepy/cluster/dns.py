"""Cluster membership from DNS: Kubernetes headless Services, Consul, any SRV publisher.

A name that starts with ``_`` (``_memcache._tcp.cache.example``) is resolved as SRV
records: each record is one node, named by its target and listening on its port (the
target's address from the same resolver). Any other name is resolved as A and AAAA
records, one node per address, all on the same ``port``. Priorities and weights of SRV
records are not used: every node listed is a member with weight 1.

The nodes are :class:`~memcachepy.cluster.discovery.ClusterNode` objects, so the ring
places keys on them exactly as it does for a membership file or ``config get cluster``
(a node is labelled by its SRV target, or by its address for A/AAAA records). Client and
daemon resolving the same name build the same ring.

:class:`DnsPoller` resolves the name at an interval in a daemon thread and calls back when
the set of nodes changes; :meth:`ClusterClient.from_dns` and the daemon's
``--cluster-dns`` use it. A failed lookup (timeout, SERVFAIL, no such name, no records)
keeps the last membership: a resolver hiccup never empties a cluster.

dnspython does the DNS (imported on first use). ``nameservers``, a list of
``(host, port)``, replaces the system's resolver (``/etc/resolv.conf``).
"""

from __future__ import annotations

import ipaddress
import logging
import socket
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from memcachepy.cluster.discovery import ClusterConfig, ClusterNode, DiscoveryError
from memcachepy.cluster.endpoint import ConfigEndpoint, ConfigSetRefused

__all__ = ["DnsEndpoint", "DnsPoller", "parse_nameserver", "resolve_members"]

logger = logging.getLogger(__name__)

Nameservers = Sequence[tuple[str, int]]


def parse_nameserver(text: str) -> tuple[str, int]:
    """``host:port``, ``[v6addr]:port`` or ``host`` (port 53) as a (host, port) pair."""
    if text.startswith("["):
        host, bracket, rest = text[1:].partition("]")
        if not bracket or (rest and not rest.startswith(":")):
            raise ValueError(f"bad DNS server {text!r}")
        port = rest[1:] or "53"
    elif text.count(":") == 1:
        host, _, port = text.partition(":")
    else:  # a name, an IPv4 address, or an IPv6 address without brackets
        host, port = text, "53"
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"bad DNS server {text!r} (want HOST:PORT)")
    return host, int(port)


def _resolver(nameservers: Nameservers | None, timeout: float) -> Any:
    import dns.nameserver
    import dns.resolver

    if nameservers is None:
        resolver = dns.resolver.Resolver()
    else:
        resolver = dns.resolver.Resolver(configure=False)
        servers = []
        for host, port in nameservers:
            try:
                address = str(ipaddress.ip_address(host))
            except ValueError:  # a name: dnspython wants an address
                address = str(socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM)[0][4][0])
            servers.append(dns.nameserver.Do53Nameserver(address, port))
        resolver.nameservers = servers
    resolver.lifetime = timeout
    resolver.timeout = timeout
    return resolver


def _addresses(resolver: Any, name: str) -> list[str]:
    """A then AAAA addresses of ``name`` (an empty answer for one kind is fine)."""
    import dns.exception
    import dns.resolver

    found: list[str] = []
    errors: list[str] = []
    for kind in ("A", "AAAA"):
        try:
            answer = resolver.resolve(name, kind, search=False)
        except (
            dns.resolver.NoAnswer,
            dns.resolver.NXDOMAIN,
            dns.resolver.NoNameservers,
            dns.exception.Timeout,
        ) as error:
            errors.append(f"{kind}: {error}")
            continue
        found += sorted(record.address for record in answer)
    if not found:
        raise DiscoveryError(f"no address for {name}: {'; '.join(errors)}")
    return found


def resolve_members(
    name: str, *, port: int = 11211, nameservers: Nameservers | None = None, timeout: float = 2.0
) -> tuple[ClusterNode, ...]:
    """The nodes ``name`` lists now (module docstring: SRV or A/AAAA), sorted.

    Raises :class:`~memcachepy.cluster.discovery.DiscoveryError` when the name has no
    usable records or the resolver fails.
    """
    import dns.exception
    import dns.resolver

    resolver = _resolver(nameservers, timeout)
    try:
        if not name.startswith("_"):
            return tuple(
                sorted(
                    {ClusterNode(address, address, port) for address in _addresses(resolver, name)}
                )
            )
        answer = resolver.resolve(name, "SRV", search=False)
        nodes = set()
        for record in answer:
            target = record.target.to_text(omit_final_dot=True)
            nodes.add(ClusterNode(target, _addresses(resolver, target)[0], record.port))
        return tuple(sorted(nodes))
    except dns.exception.DNSException as error:
        raise DiscoveryError(f"DNS lookup of {name} failed: {error}") from None


class DnsPoller:
    """Resolves ``name`` every ``interval`` seconds and reports a changed node set.

    ``on_change(nodes)`` is called in the polling thread when the set differs from the
    last one (the first successful lookup counts as a change). :meth:`check` looks once
    in the caller's thread (errors propagate); :meth:`start` polls in a daemon thread
    until :meth:`stop`, logging failed lookups and keeping the last nodes.
    """

    def __init__(
        self,
        name: str,
        on_change: Callable[[tuple[ClusterNode, ...]], None],
        *,
        port: int = 11211,
        nameservers: Nameservers | None = None,
        interval: float = 60.0,
        timeout: float = 2.0,
    ) -> None:
        self.name = name
        self.port = port
        self.nameservers = list(nameservers) if nameservers is not None else None
        self.interval = interval
        self.timeout = timeout
        self._on_change = on_change
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.current: tuple[ClusterNode, ...] | None = None

    def resolve(self) -> tuple[ClusterNode, ...]:
        return resolve_members(
            self.name, port=self.port, nameservers=self.nameservers, timeout=self.timeout
        )

    def check(self) -> bool:
        """Look once; call ``on_change`` and return True if the node set changed."""
        nodes = self.resolve()
        if nodes == self.current:
            return False
        self.current = nodes
        self._on_change(nodes)
        return True

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.check()
            except Exception as error:  # keep polling whatever one lookup did
                logger.warning(
                    "DNS poll of %s failed, keeping %d nodes: %s",
                    self.name,
                    len(self.current or ()),
                    error,
                )

    def start(self) -> None:
        """Poll in a background thread every ``interval`` seconds (the first poll after
        one interval: call :meth:`check` first for an answer now)."""
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="memcachepy-dns-poller", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None


class DnsEndpoint(ConfigEndpoint):
    """What a node started with ``--cluster-dns`` answers to ``config get cluster``.

    The node set is the last DNS answer (:meth:`update`, called by the daemon's poll
    task); the version is the Unix time of the first answer, then one more (or the time,
    whichever is higher) at each change, so it rises across restarts too. ``config set
    cluster`` is refused: DNS is the source. Until the first answer the node set is empty.
    """

    def __init__(
        self, name: str, port: int, nameservers: Nameservers | None = None, timeout: float = 2.0
    ) -> None:
        # Not ConfigEndpoint.__init__: there is no file to read.
        self.path = ""
        self.admin = None
        self.poller = DnsPoller(
            name, lambda nodes: None, port=port, nameservers=nameservers, timeout=timeout
        )
        self._set(ClusterConfig(int(time.time()), ()))

    @property
    def name(self) -> str:
        return self.poller.name

    def resolve(self) -> tuple[ClusterNode, ...]:
        """Look the name up now (blocking; the daemon calls it in a worker thread)."""
        return self.poller.resolve()

    def update(self, nodes: Sequence[ClusterNode]) -> bool:
        """Serve ``nodes``; returns whether the node set changed (and the version rose)."""
        new = tuple(sorted(set(nodes)))
        if new == self.config.nodes:
            return False
        self._set(ClusterConfig(max(self.config.version + 1, int(time.time())), new))
        return True

    def reload(self) -> bool:
        """SIGHUP: nothing to re-read (the poll task follows DNS)."""
        return False

    def set_cluster(self, body: bytes, credential: bytes | None) -> None:
        raise ConfigSetRefused(
            "config set cluster is disabled: the membership comes from "
            f"DNS (--cluster-dns {self.name})"
        )
