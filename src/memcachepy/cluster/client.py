"""A memcached cluster client: ketama placement, replication, failure handling.

Built on pymemcache: each node is a :class:`pymemcache.client.base.PooledClient`; this
module only decides which nodes a request goes to and what to do when one fails.

Placement
    Keys are placed on a :class:`~memcachepy.cluster.ring.KetamaRing` of every configured
    node, as libmemcached and twemproxy place them. With ``replicas=R`` a key lives on the
    first R distinct nodes met walking the ring from its point (its *replica list*).
    Writes and deletes go to every replica; reads try the replicas in order and return
    the first hit, so with R >= 2 one node's death loses no cached key.

Failures
    A request that fails on a node with a connection error or timeout counts as a
    failure. After a failure the node is skipped for ``retry_timeout`` seconds, then tried
    again; ``failure_limit`` failures in a row eject it for ``dead_timeout`` seconds, after
    which the next request tries it again (one success re-admits it). Placement never
    changes while a node is away: its keys are not moved to other nodes, they miss (R=1) or
    are served by the other replicas. Every request tries each replica at most once, so
    none waits longer than ``connect_timeout + timeout`` per replica, and a dead node that
    refuses connections costs nothing once skipped. When every node is down, requests raise
    :class:`NoAvailableNodesError`.

A node that comes back (stale-value policy)
    A node must never serve a value that was overwritten or deleted while it was away (a
    network partition leaves its old data in place; a restart leaves it empty). So every
    write or delete that a replica missed, because it was skipped or the request to it
    failed, is recorded against that node. Before the node serves anything again it is
    sent a delete for each recorded key; if more than ``max_missed_writes`` keys piled up,
    it is flushed (``flush_all``) instead. Until that succeeds the node stays out of use.
    With read repair on (R >= 2), each key so deleted is then copied back from another
    replica that has it, with the same CAS checks (Read repair, below), before the request
    that found the node back goes on: the key has its R copies again at once, not only
    after its next read (at most ``MAX_REFILL`` keys each time).
    Non-idempotent operations (add, replace, append, prepend, incr, decr, cas) run on the
    first available replica; the others then get the same result (a ``set`` of the value,
    or the same operation, whose result must match) or lose the key, so a replica holds
    the primary's value or nothing. The record lives in this client process: several
    processes writing the same keys each keep their own, and a client restarted while a
    node was away knows nothing of it (operators flush a node returning from a long outage).

Read repair (R >= 2)
    A read that misses on a reachable replica and hits on a later one copies the item back
    to the replicas that missed, with its flags and remaining TTL, using ``add`` so that it
    never overwrites a newer write (:mod:`memcachepy.cluster.repair`). So a node restarted
    empty fills up again with the keys that are read, and a second fault does not lose them.
    :meth:`ClusterClient.stats` counts the repairs.

Membership changes
    A node that stops being a replica of a key keeps its copy; should a later change make
    it a replica again (a node added, then removed), that copy would be served although
    the key was overwritten or deleted meanwhile. So for ``membership_horizon`` seconds
    after a change (at most the last ``MAX_FORMER_VIEWS`` memberships) every write and
    delete of a key is also recorded as missed on the members that were its replicas in
    those earlier memberships and are not now, and they drop the key before serving again.
    A node that leaves the membership and rejoins later knows nothing of this: flush it
    before adding it back.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from pymemcache.client.base import (  # type: ignore[import-untyped, unused-ignore]
    PooledClient,
    check_key_helper,
)
from pymemcache.exceptions import MemcacheError  # type: ignore[import-untyped, unused-ignore]

from memcachepy.cluster.discovery import ClusterConfig, ClusterNode, ConfigPoller
from memcachepy.cluster.hashing import KeyHash
from memcachepy.cluster.health import HealthPolicy, Node, NodeStatus, NodeUnavailable
from memcachepy.cluster.members import Member, ServerSpec, build_ring, to_server
from memcachepy.cluster.repair import ReadRepair
from memcachepy.cluster.ring import KetamaRing

if TYPE_CHECKING:
    from memcachepy.cluster.dns import DnsPoller

__all__ = ["ClusterClient", "ClusterError", "NoAvailableNodesError"]

logger = logging.getLogger(__name__)

Key = str | bytes
T = TypeVar("T")
_MISS = object()
MAX_FORMER_VIEWS = 4
# Keys a returning node gets copied back at once (see _refill); read repair does the rest.
MAX_REFILL = 1000


class ClusterError(MemcacheError):  # type: ignore[misc, unused-ignore]
    """Base of the errors raised by :class:`ClusterClient` itself."""


class NoAvailableNodesError(ClusterError):
    """Every node of the cluster is down (or the cluster has no nodes)."""


@dataclass(frozen=True, slots=True)
class _View:
    ring: KetamaRing[Member]
    nodes: Mapping[Member, Node]
    # Rings of recent earlier memberships, newest first, with when each was replaced.
    former: tuple[tuple[KetamaRing[Member], float], ...] = ()


class ClusterClient:
    """Client for a memcached cluster (module docstring: placement, failures, stale policy).

    ``servers``: ``"host:port[:weight]"`` strings, ``(host, port[, weight])`` tuples,
    :class:`Member` or :class:`~memcachepy.cluster.discovery.ClusterNode` objects.
    ``replicas``: copies kept of each key (R). ``key_hash``, ``hash_tag``, ``variant``:
    passed to :class:`~memcachepy.cluster.ring.KetamaRing`. ``failure_limit``,
    ``retry_timeout``, ``dead_timeout``: the failure policy. ``connect_timeout``,
    ``timeout``, ``max_pool_size``: per node connection settings; ``client_kwargs`` go to
    every ``PooledClient`` (``serde``, ``key_prefix``, ``allow_unicode_keys``, ...).
    Requests always wait for replies (``noreply`` would hide a dead node).
    ``client_factory(address, **options)`` makes each node's client (default
    ``PooledClient``; it must be thread-safe). ``max_workers`` bounds the threads that
    send multi-key requests to several nodes at once; ``clock`` is for tests.
    ``read_repair`` (on by default, used with R >= 2) copies a hit back to the replicas
    that missed it; for ``repair_window`` seconds after a node returns from failures, hits
    elsewhere also probe it for the keys it should hold (:mod:`memcachepy.cluster.repair`).

    Keys are placed by the key as given, without ``key_prefix``, as libmemcached and
    pymemcache's ``HashClient`` do. The client is thread-safe.
    """

    def __init__(
        self,
        servers: Iterable[ServerSpec],
        *,
        replicas: int = 1,
        key_hash: str | KeyHash = "md5",
        hash_tag: str | None = None,
        variant: str = "ketama_weighted",
        failure_limit: int = 2,
        retry_timeout: float = 1.0,
        dead_timeout: float = 30.0,
        connect_timeout: float = 1.0,
        timeout: float = 1.0,
        max_pool_size: int | None = None,
        max_missed_writes: int = 10_000,
        max_workers: int = 8,
        read_repair: bool = True,
        repair_window: float = 60.0,
        membership_horizon: float = 600.0,
        client_kwargs: Mapping[str, Any] | None = None,
        client_factory: Callable[..., Any] = PooledClient,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if replicas < 1:
            raise ValueError("replicas must be at least 1")
        self.replicas = replicas
        self._policy = HealthPolicy(
            failure_limit, retry_timeout, dead_timeout, max_missed_writes, clock
        )
        self._ring_options: dict[str, Any] = {
            "key_hash": key_hash,
            "hash_tag": hash_tag,
            "variant": variant,
        }
        self._client_kwargs: dict[str, Any] = {
            **(client_kwargs or {}),
            "connect_timeout": connect_timeout,
            "timeout": timeout,
            "max_pool_size": max_pool_size,
            "default_noreply": False,
        }
        self._allow_unicode_keys = bool(self._client_kwargs.get("allow_unicode_keys", False))
        prefix = self._client_kwargs.get("key_prefix", b"")
        self._key_prefix = prefix.encode() if isinstance(prefix, str) else prefix
        self._repair = ReadRepair(self._key_prefix, self._allow_unicode_keys)
        self._read_repair = read_repair and replicas >= 2
        self._repair_window = repair_window
        self._membership_horizon = membership_horizon
        self._client_factory = client_factory
        self._update_lock = threading.Lock()
        self._view = _View(build_ring([], **self._ring_options), {})
        self._executor = ThreadPoolExecutor(
            max_workers=max_workers, thread_name_prefix="memcachepy-cluster"
        )
        self._poller: ConfigPoller | DnsPoller | None = None
        self.update_servers(servers)

    # -- membership ---------------------------------------------------------------------

    def update_servers(self, servers: Iterable[ServerSpec]) -> None:
        """Replace the membership; nodes that stay keep their connections and health."""
        wanted = [to_server(spec) for spec in servers]
        with self._update_lock:
            old = self._view.nodes
            nodes: dict[Member, Node] = {}
            for server in wanted:
                if server in nodes:
                    raise ValueError(f"server {server} listed twice")
                node = old.get(server)
                if node is None:
                    client = self._client_factory(server.address, **self._client_kwargs)
                    node = Node(
                        server,
                        client,
                        self._policy,
                        on_settled=self._refill if self._read_repair else None,
                    )
                else:
                    node.server = server  # same member; its weight or name may have changed
                nodes[server] = node
            now = self._policy.clock()
            former = ((self._view.ring, now), *self._view.former) if old else ()
            former = tuple(
                (ring, at)
                for ring, at in former[:MAX_FORMER_VIEWS]
                if now - at < self._membership_horizon
            )
            self._view = _View(build_ring(nodes, **self._ring_options), nodes, former)
        for server, node in old.items():
            if server not in nodes:
                node.client.close()

    @property
    def servers(self) -> list[Member]:
        """The current members."""
        return list(self._view.nodes)

    @property
    def ring(self) -> KetamaRing[Member]:
        """The placement ring of the current members."""
        return self._view.ring

    @classmethod
    def from_config_endpoint(
        cls,
        endpoint: tuple[str, int],
        *,
        poll_interval: float = 60.0,
        poll_timeout: float = 2.0,
        **kwargs: Any,
    ) -> ClusterClient:
        """A client whose membership follows a ``config get cluster`` endpoint.

        The endpoint is asked once now (errors propagate), then every ``poll_interval``
        seconds in a background thread; :meth:`close` stops the polling.
        """
        client = cls([], **kwargs)

        def apply(config: ClusterConfig) -> None:
            logger.info("cluster config version %d: %d nodes", config.version, len(config.nodes))
            client.update_servers(config.nodes)

        poller = ConfigPoller(endpoint, apply, interval=poll_interval, timeout=poll_timeout)
        try:
            poller.check()
        except BaseException:
            poller.stop()
            client.close()
            raise
        poller.start()
        client._poller = poller
        return client

    @classmethod
    def from_dns(
        cls,
        name: str,
        *,
        port: int = 11211,
        nameservers: Sequence[tuple[str, int]] | None = None,
        poll_interval: float = 60.0,
        **client_options: Any,
    ) -> ClusterClient:
        """A client whose membership follows DNS records (:mod:`memcachepy.cluster.dns`).

        A name starting with ``_`` is resolved as SRV records, any other as A and AAAA
        records on ``port``; ``nameservers`` (``(host, port)`` pairs) replace the system's
        resolver. The name is resolved once now (errors propagate), then every
        ``poll_interval`` seconds in a background thread, and the ring is rebuilt when the
        set of nodes changes; a failed lookup keeps the nodes. :meth:`close` stops it.
        """
        from memcachepy.cluster.dns import DnsPoller

        client = cls([], **client_options)

        def apply(nodes: tuple[ClusterNode, ...]) -> None:
            logger.info("cluster DNS %s: %d nodes", name, len(nodes))
            client.update_servers(nodes)

        poller = DnsPoller(name, apply, port=port, nameservers=nameservers, interval=poll_interval)
        try:
            poller.check()
        except BaseException:
            client.close()
            raise
        poller.start()
        client._poller = poller
        return client

    # -- health -------------------------------------------------------------------------

    def node_status(self) -> list[NodeStatus]:
        """Each member's health."""
        return [node.status() for node in self._view.nodes.values()]

    def _all_down(self, view: _View) -> bool:
        now = self._policy.clock()
        return all(node.skipped(now) for node in view.nodes.values())

    def _unavailable_error(self, view: _View) -> NoAvailableNodesError:
        if not view.nodes:
            return NoAvailableNodesError("the cluster has no nodes")
        names = ", ".join(str(server) for server in view.nodes)
        return NoAvailableNodesError(f"all {len(view.nodes)} memcached nodes are down: {names}")

    def stats(self) -> dict[str, int]:
        """The client's own counters: what read repair did (see :class:`ReadRepairStats`)."""
        return self._repair.stats()

    def _nothing_reached(self, view: _View) -> None:
        """Called when no replica of a key could be reached: raise if the cluster is down."""
        if self._all_down(view):
            raise self._unavailable_error(view)

    # -- placement ----------------------------------------------------------------------

    def _check_key(self, key: Key) -> None:
        check_key_helper(key, self._allow_unicode_keys, self._key_prefix)

    def _replicas(self, view: _View, key: Key) -> list[Node]:
        self._check_key(key)
        servers = view.ring.get_nodes(key, self.replicas)
        if not servers:
            raise self._unavailable_error(view)
        return [view.nodes[server] for server in servers]

    def _record_for_former(self, view: _View, key: Key, replicas: list[Node]) -> None:
        """A write of ``key``: members that were its replicas lately, and are not now,
        must drop their copy before they serve again (see Membership changes)."""
        if not view.former:
            return
        now = self._policy.clock()
        current = {node.server for node in replicas}
        for ring, at in view.former:
            if now - at >= self._membership_horizon:
                break
            for server in ring.get_nodes(key, self.replicas):
                node = view.nodes.get(server)
                if node is not None and server not in current:
                    node.record_missed([key])

    def replica_servers(self, key: Key) -> list[Member]:
        """The servers holding ``key``, first the one reads try first."""
        return [node.server for node in self._replicas(self._view, key)]

    # -- single-key operations ----------------------------------------------------------

    def get(self, key: Key, default: Any = None) -> Any:
        """The value of ``key`` from the first replica that has it, else ``default``."""
        view = self._view
        reached = False
        missed: list[Node] = []
        replicas = self._replicas(view, key)
        for index, node in enumerate(replicas):
            try:
                value = node.attempt(lambda c: c.get(key, _MISS))
            except NodeUnavailable:
                continue
            reached = True
            if value is not _MISS:
                if self._read_repair:
                    self._repair_after_hit(key, node, missed, replicas[index + 1 :])
                return value
            missed.append(node)
        if not reached:
            self._nothing_reached(view)
        return default

    def _returned(self, nodes: list[Node]) -> list[Node]:
        """Those of ``nodes`` in use that came back from failures within the repair window."""
        now = self._policy.clock()
        return [
            n for n in nodes if n.returned_within(self._repair_window, now) and not n.skipped(now)
        ]

    def _repair_after_hit(self, key: Key, hit: Node, missed: list[Node], later: list[Node]) -> None:
        """Copy ``key`` to the replicas that missed it, or that returned lately and lack it."""
        lacking = list(missed)
        for node in self._returned(later):
            lacking += [node] if self._repair.missing(node, [key]) else []
        if lacking:
            self._repair.repair(key, hit, lacking)

    def _refill(self, node: Node, keys: list[Key]) -> None:
        """A node just deleted the keys whose writes it missed: copy their current values
        back from another replica (read repair's copy, CAS-checked), so that they have R
        copies again before the next fault rather than after their next read."""
        view = self._view
        for key in keys[:MAX_REFILL]:
            try:
                replicas = self._replicas(view, key)
            except (MemcacheError, ValueError, TypeError):
                continue
            if node not in replicas:
                continue
            now = self._policy.clock()
            for source in replicas:
                if source is not node and not source.skipped(now):
                    self._repair.repair(key, source, [node])
                    break

    def gets(self, key: Key) -> tuple[Any, Any]:
        """``(value, cas)`` from the first reachable replica (``(None, None)`` on a miss).

        Only that replica is asked: a cas token means nothing on another node.
        """
        view = self._view
        for node in self._replicas(view, key):
            try:
                result: tuple[Any, Any] = node.attempt(lambda c: c.gets(key))
            except NodeUnavailable:
                continue
            return result
        self._nothing_reached(view)
        return (None, None)

    def _write_all(self, key: Key, operation: Callable[[Any], Any]) -> list[Any]:
        """Run an idempotent write on every replica; results of those reached."""
        view = self._view
        replicas = self._replicas(view, key)
        self._record_for_former(view, key, replicas)
        results = []
        try:
            for node in replicas:
                try:
                    results.append(node.attempt(operation))
                except NodeUnavailable:
                    node.record_missed([key])
        except MemcacheError:
            # A refused write (value too large...) may have removed the value on one
            # replica: drop it everywhere so no replica keeps an older one.
            self._delete_quietly(view, key)
            raise
        if not results:
            self._nothing_reached(view)
        return results

    def _delete_quietly(self, view: _View, key: Key) -> None:
        for node in self._replicas(view, key):
            try:
                node.attempt(lambda c: c.delete(key, noreply=False))
            except (NodeUnavailable, MemcacheError):
                node.record_missed([key])

    def set(self, key: Key, value: Any, expire: int = 0, flags: int | None = None) -> bool:
        """Store on every replica; True if at least one stored it."""
        results = self._write_all(
            key, lambda c: c.set(key, value, expire=expire, noreply=False, flags=flags)
        )
        return any(results)

    def delete(self, key: Key) -> bool:
        """Delete from every replica; True if one of them had the key."""
        return any(self._write_all(key, lambda c: c.delete(key, noreply=False)))

    def touch(self, key: Key, expire: int = 0) -> bool:
        """Update the expiry on every replica; True if one of them had the key."""
        return any(self._write_all(key, lambda c: c.touch(key, expire, noreply=False)))

    def _primary_write(
        self,
        key: Key,
        operation: Callable[[Any], T],
        succeeded: Callable[[T], bool],
        mirror: Callable[[Any, T], bool],
        failed: T,
    ) -> T:
        """Run a non-idempotent write on the first reachable replica, then mirror it.

        ``mirror(client, result)`` brings another replica to the primary's result and says
        whether it did; a replica it could not bring there loses the key.
        """
        view = self._view
        replicas = self._replicas(view, key)
        self._record_for_former(view, key, replicas)
        for index, node in enumerate(replicas):
            try:
                result = node.attempt(operation)
            except NodeUnavailable:
                node.record_missed([key])
                continue
            except MemcacheError:
                self._delete_quietly(view, key)
                raise
            if succeeded(result):
                for other in replicas[index + 1 :]:
                    self._mirror(other, key, mirror, result)
            return result
        self._nothing_reached(view)
        return failed

    def _mirror(self, node: Node, key: Key, mirror: Callable[[Any, T], bool], result: T) -> None:
        """Bring one more replica to the primary's ``result``, or drop the key there."""
        try:
            if node.attempt(lambda c: mirror(c, result)):
                return
            node.attempt(lambda c: c.delete(key, noreply=False))
        except (NodeUnavailable, MemcacheError):
            node.record_missed([key])

    def add(self, key: Key, value: Any, expire: int = 0, flags: int | None = None) -> bool:
        """Store only if absent (decided by the first reachable replica)."""
        result: bool = self._primary_write(
            key,
            lambda c: c.add(key, value, expire=expire, noreply=False, flags=flags),
            bool,
            lambda c, _: c.set(key, value, expire=expire, noreply=False, flags=flags),
            False,
        )
        return result

    def replace(self, key: Key, value: Any, expire: int = 0, flags: int | None = None) -> bool:
        """Store only if present (decided by the first reachable replica)."""
        result: bool = self._primary_write(
            key,
            lambda c: c.replace(key, value, expire=expire, noreply=False, flags=flags),
            bool,
            lambda c, _: c.set(key, value, expire=expire, noreply=False, flags=flags),
            False,
        )
        return result

    def append(self, key: Key, value: Any, expire: int = 0, flags: int | None = None) -> bool:
        """Append to the value on every replica that has it."""
        result: bool = self._primary_write(
            key,
            lambda c: c.append(key, value, expire=expire, noreply=False, flags=flags),
            bool,
            lambda c, _: c.append(key, value, expire=expire, noreply=False, flags=flags),
            False,
        )
        return result

    def prepend(self, key: Key, value: Any, expire: int = 0, flags: int | None = None) -> bool:
        """Prepend to the value on every replica that has it."""
        result: bool = self._primary_write(
            key,
            lambda c: c.prepend(key, value, expire=expire, noreply=False, flags=flags),
            bool,
            lambda c, _: c.prepend(key, value, expire=expire, noreply=False, flags=flags),
            False,
        )
        return result

    def cas(
        self, key: Key, value: Any, cas: Any, expire: int = 0, flags: int | None = None
    ) -> bool | None:
        """Compare-and-set on the first reachable replica (token from :meth:`gets`)."""
        result: bool | None = self._primary_write(
            key,
            lambda c: c.cas(key, value, cas, expire=expire, noreply=False, flags=flags),
            bool,
            lambda c, _: c.set(key, value, expire=expire, noreply=False, flags=flags),
            None,
        )
        return result

    def incr(self, key: Key, value: int) -> int | None:
        """Increment; the new value, or None if the key is missing."""
        result: int | None = self._primary_write(
            key,
            lambda c: c.incr(key, value, noreply=False),
            lambda r: r is not None,
            lambda c, r: c.incr(key, value, noreply=False) == r,
            None,
        )
        return result

    def decr(self, key: Key, value: int) -> int | None:
        """Decrement (stopping at 0); the new value, or None if the key is missing."""
        result: int | None = self._primary_write(
            key,
            lambda c: c.decr(key, value, noreply=False),
            lambda r: r is not None,
            lambda c, r: c.decr(key, value, noreply=False) == r,
            None,
        )
        return result

    # -- multi-key operations -----------------------------------------------------------

    def _per_node(
        self,
        batches: Mapping[Node, T],
        operation: Callable[[Any, T], Any],
    ) -> dict[Node, Any]:
        """Run ``operation(client, batch)`` on every node in parallel.

        The value for a node is its result, or the NodeUnavailable raised for it.
        """

        def run(node: Node, batch: T) -> Any:
            try:
                return node.attempt(lambda c: operation(c, batch))
            except NodeUnavailable as unavailable:
                return unavailable

        items = list(batches.items())
        if len(items) == 1:
            node, batch = items[0]
            return {node: run(node, batch)}
        futures: dict[Node, Future[Any]] = {
            node: self._executor.submit(run, node, batch) for node, batch in items
        }
        return {node: future.result() for node, future in futures.items()}

    def get_many(self, keys: Iterable[Key]) -> dict[Key, Any]:
        """Values of the keys found, asking each node once per round, nodes in parallel.

        Round one asks every key's first reachable replica; keys that missed there, or
        whose node failed, go to their next replica in the next round (at most R rounds).
        """
        view = self._view
        pending: dict[Key, list[Node]] = {}
        for key in keys:
            pending[key] = self._replicas(view, key)
        found: dict[Key, Any] = {}
        missed: dict[Key, list[Node]] = {}  # reachable replicas that did not have the key
        hit_on: dict[Key, Node] = {}
        reached = not pending
        for _ in range(self.replicas):
            now = self._policy.clock()
            batches: dict[Node, list[Key]] = {}
            for key, candidates in pending.items():
                while candidates:
                    node = candidates.pop(0)
                    if not node.skipped(now):
                        batches.setdefault(node, []).append(key)
                        break
            if not batches:
                break
            outcomes = self._per_node(batches, lambda c, b: c.get_many(b))
            for node, outcome in outcomes.items():
                if isinstance(outcome, NodeUnavailable):
                    continue
                reached = True
                for key, value in outcome.items():
                    found[key] = value
                    pending.pop(key, None)
                    hit_on[key] = node
                for key in batches[node]:
                    if key not in outcome:
                        missed.setdefault(key, []).append(node)
        if not reached:
            self._nothing_reached(view)
        if self._read_repair:
            self._repair_many(view, hit_on, missed)
        return found

    def _repair_many(
        self, view: _View, hit_on: Mapping[Key, Node], missed: Mapping[Key, list[Node]]
    ) -> None:
        """Read repair after a get_many; the probes go to each returned node once, batched."""
        lacking = {key: list(missed[key]) for key in hit_on if key in missed}
        if any(n.returned_within(self._repair_window) for n in view.nodes.values()):
            probes: dict[Node, list[Key]] = {}
            for key, hit in hit_on.items():
                replicas = self._replicas(view, key)
                for node in self._returned(replicas[replicas.index(hit) + 1 :]):
                    probes.setdefault(node, []).append(key)
            for node, keys in probes.items():
                for key in self._repair.missing(node, keys):
                    lacking.setdefault(key, []).append(node)
        for key, nodes in lacking.items():
            self._repair.repair(key, hit_on[key], nodes)

    def set_many(
        self, values: Mapping[Key, Any], expire: int = 0, flags: int | None = None
    ) -> list[Key]:
        """Store every pair on all its replicas, nodes in parallel; keys stored nowhere."""
        view = self._view
        now = self._policy.clock()
        batches: dict[Node, dict[Key, Any]] = {}
        for key, value in values.items():
            replicas = self._replicas(view, key)
            self._record_for_former(view, key, replicas)
            for node in replicas:
                if node.skipped(now):
                    node.record_missed([key])
                else:
                    batches.setdefault(node, {})[key] = value
        stored: set[Key] = set()
        outcomes = self._per_node(
            batches, lambda c, b: c.set_many(b, expire=expire, noreply=False, flags=flags)
        )
        for node, outcome in outcomes.items():
            batch = batches[node]
            if isinstance(outcome, NodeUnavailable):
                node.record_missed(batch)
                continue
            not_stored = set(outcome)
            stored.update(key for key in batch if key not in not_stored)
        if values and not any(not isinstance(o, NodeUnavailable) for o in outcomes.values()):
            self._nothing_reached(view)
        return [key for key in values if key not in stored]

    def delete_many(self, keys: Iterable[Key]) -> bool:
        """Delete every key from all its replicas, nodes in parallel."""
        view = self._view
        now = self._policy.clock()
        batches: dict[Node, list[Key]] = {}
        seen = False
        for key in keys:
            seen = True
            replicas = self._replicas(view, key)
            self._record_for_former(view, key, replicas)
            for node in replicas:
                if node.skipped(now):
                    node.record_missed([key])
                else:
                    batches.setdefault(node, []).append(key)
        outcomes = self._per_node(batches, lambda c, b: c.delete_many(b, noreply=False))
        for node, outcome in outcomes.items():
            if isinstance(outcome, NodeUnavailable):
                node.record_missed(batches[node])
        if seen and not any(not isinstance(o, NodeUnavailable) for o in outcomes.values()):
            self._nothing_reached(view)
        return True

    def flush_all(self) -> bool:
        """Flush every node; a node that is down is flushed before it serves again."""
        view = self._view
        outcomes = self._per_node(
            {node: None for node in view.nodes.values()}, lambda c, _: c.flush_all(noreply=False)
        )
        for node, outcome in outcomes.items():
            if isinstance(outcome, NodeUnavailable):
                node.require_flush()
        return all(not isinstance(o, NodeUnavailable) for o in outcomes.values())

    # -- lifetime -----------------------------------------------------------------------

    def close(self) -> None:
        """Stop discovery polling and close every connection."""
        if self._poller is not None:
            self._poller.stop()
            self._poller = None
        for node in self._view.nodes.values():
            node.client.close()
        self._executor.shutdown(wait=True)

    def __enter__(self) -> ClusterClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
