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
    Non-idempotent operations (add, replace, append, prepend, incr, decr, cas) run on the
    first available replica; the others then get the same result (a ``set`` of the value,
    or the same operation, whose result must match) or lose the key, so a replica holds
    the primary's value or nothing. The record lives in this client process: several
    processes writing the same keys each keep their own, and a client restarted while a
    node was away knows nothing of it (operators flush a node returning from a long outage).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar

from pymemcache.client.base import (  # type: ignore[import-untyped, unused-ignore]
    PooledClient,
    check_key_helper,
)
from pymemcache.exceptions import (  # type: ignore[import-untyped, unused-ignore]
    MemcacheError,
    MemcacheUnexpectedCloseError,
    MemcacheUnknownError,
)

from memcachepy.cluster.discovery import ClusterConfig, ClusterNode, ConfigPoller
from memcachepy.cluster.hashing import KeyHash
from memcachepy.cluster.ring import DEFAULT_PORT, KetamaRing, ketama_label

__all__ = [
    "ClusterClient",
    "ClusterError",
    "NoAvailableNodesError",
    "NodeStatus",
    "Server",
    "replica_servers",
    "to_server",
]

logger = logging.getLogger(__name__)

Key = str | bytes
T = TypeVar("T")

# Errors that mean "this node is not answering", as opposed to errors about the request.
_NODE_ERRORS: tuple[type[BaseException], ...] = (
    OSError, MemcacheUnexpectedCloseError, MemcacheUnknownError)
_MISS = object()


class ClusterError(MemcacheError):  # type: ignore[misc, unused-ignore]
    """Base of the errors raised by :class:`ClusterClient` itself."""


class NoAvailableNodesError(ClusterError):
    """Every node of the cluster is down (or the cluster has no nodes)."""


class _NodeUnavailable(Exception):
    """Internal: the node was skipped or the request to it failed."""


@dataclass(frozen=True, slots=True)
class Server:
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
    def parse(cls, spec: str) -> Server:
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


ServerSpec = str | tuple[str, int] | tuple[str, int, int] | Server | ClusterNode


def to_server(spec: ServerSpec) -> Server:
    """A :class:`Server` from any accepted spec (string, tuple, ClusterNode, Server)."""
    if isinstance(spec, Server):
        return spec
    if isinstance(spec, ClusterNode):
        return Server(spec.host, spec.port, ip=spec.ip)
    if isinstance(spec, str):
        return Server.parse(spec)
    if isinstance(spec, tuple) and len(spec) in (2, 3):
        return Server(spec[0], int(spec[1]), weight=int(spec[2]) if len(spec) == 3 else 1)
    raise TypeError(f"unsupported server spec {spec!r}")


@dataclass(frozen=True, slots=True)
class NodeStatus:
    """A node's health as the client sees it."""

    server: Server
    state: str  # "up", "failing" (skipped until retry_in) or "ejected"
    failures: int
    retry_in: float
    missed_writes: int
    needs_flush: bool


class _Node:
    """A member's connection pool and health bookkeeping."""

    def __init__(self, server: Server, client: Any) -> None:
        self.server = server
        self.client = client
        self.lock = threading.Lock()
        self.settle_lock = threading.Lock()
        self.failures = 0
        self.retry_at = 0.0
        self.missed: set[Key] = set()
        self.needs_flush = False


@dataclass(frozen=True, slots=True)
class _View:
    ring: KetamaRing[Server]
    nodes: Mapping[Server, _Node]


class ClusterClient:
    """Client for a memcached cluster (module docstring: placement, failures, stale policy).

    ``servers``: ``"host:port[:weight]"`` strings, ``(host, port[, weight])`` tuples,
    :class:`Server` or :class:`~memcachepy.cluster.discovery.ClusterNode` objects.
    ``replicas``: copies kept of each key (R). ``key_hash``, ``hash_tag``, ``variant``:
    passed to :class:`~memcachepy.cluster.ring.KetamaRing`. ``failure_limit``,
    ``retry_timeout``, ``dead_timeout``: the failure policy. ``connect_timeout``,
    ``timeout``, ``max_pool_size``: per node connection settings; ``client_kwargs`` go to
    every ``PooledClient`` (``serde``, ``key_prefix``, ``allow_unicode_keys``, ...).
    Requests always wait for replies (``noreply`` would hide a dead node).

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
        client_kwargs: Mapping[str, Any] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if replicas < 1:
            raise ValueError("replicas must be at least 1")
        if failure_limit < 1:
            raise ValueError("failure_limit must be at least 1")
        self.replicas = replicas
        self.failure_limit = failure_limit
        self.retry_timeout = retry_timeout
        self.dead_timeout = dead_timeout
        self.max_missed_writes = max_missed_writes
        self._ring_options: dict[str, Any] = {
            "key_hash": key_hash, "hash_tag": hash_tag, "variant": variant}
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
        self._clock = clock
        self._update_lock = threading.Lock()
        self._view = _View(KetamaRing(**self._ring_options), {})
        self._executor = ThreadPoolExecutor(max_workers=max_workers,
                                            thread_name_prefix="memcachepy-cluster")
        self._poller: ConfigPoller | None = None
        self.update_servers(servers)

    # -- membership ---------------------------------------------------------------------

    def update_servers(self, servers: Iterable[ServerSpec]) -> None:
        """Replace the membership; nodes that stay keep their connections and health."""
        wanted = [to_server(spec) for spec in servers]
        with self._update_lock:
            old = self._view.nodes
            nodes: dict[Server, _Node] = {}
            for server in wanted:
                if server in nodes:
                    raise ValueError(f"server {server} listed twice")
                kept = old.get(server)
                if kept is not None and kept.server.weight == server.weight and (
                        kept.server.label == server.label):
                    nodes[server] = kept
                else:
                    client = kept.client if kept is not None else PooledClient(
                        server.address, **self._client_kwargs)
                    nodes[server] = _Node(server, client)
            ring: KetamaRing[Server] = KetamaRing(**self._ring_options)
            ring.set_nodes({server: server.weight for server in nodes},
                           labels={server: server.label for server in nodes})
            self._view = _View(ring, nodes)
        for server, node in old.items():
            if server not in nodes:
                node.client.close()

    @property
    def servers(self) -> list[Server]:
        """The current members."""
        return list(self._view.nodes)

    @property
    def ring(self) -> KetamaRing[Server]:
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
            logger.info("cluster config version %d: %d nodes", config.version,
                        len(config.nodes))
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

    # -- health -------------------------------------------------------------------------

    def node_status(self) -> list[NodeStatus]:
        """Each member's health."""
        now = self._clock()
        statuses = []
        for node in self._view.nodes.values():
            with node.lock:
                if node.failures == 0:
                    state = "up"
                elif node.failures >= self.failure_limit:
                    state = "ejected"
                else:
                    state = "failing"
                statuses.append(NodeStatus(node.server, state, node.failures,
                                           max(0.0, node.retry_at - now) if node.failures else 0.0,
                                           len(node.missed), node.needs_flush))
        return statuses

    def _skipped(self, node: _Node, now: float) -> bool:
        return node.failures > 0 and now < node.retry_at

    def _record_failure(self, node: _Node, error: BaseException) -> None:
        now = self._clock()
        with node.lock:
            node.failures += 1
            ejected = node.failures >= self.failure_limit
            node.retry_at = now + (self.dead_timeout if ejected else self.retry_timeout)
            failures = node.failures
        if failures == self.failure_limit:
            logger.warning("ejecting %s for %.1fs after %d failures: %s", node.server,
                           self.dead_timeout, failures, error)
        else:
            logger.info("%s failed (%d/%d): %s", node.server, failures, self.failure_limit,
                        error)

    def _record_success(self, node: _Node) -> None:
        if node.failures:
            with node.lock:
                if node.failures:
                    logger.warning("%s is back after %d failures", node.server, node.failures)
                node.failures = 0

    def _record_missed(self, node: _Node, keys: Iterable[Key]) -> None:
        with node.lock:
            if node.needs_flush:
                return
            node.missed.update(keys)
            if len(node.missed) > self.max_missed_writes:
                node.missed.clear()
                node.needs_flush = True

    def _settle(self, node: _Node) -> None:
        """Invalidate what the node missed before it serves again (see module docstring)."""
        while node.missed or node.needs_flush:
            with node.settle_lock:
                with node.lock:
                    keys, flush = node.missed, node.needs_flush
                    node.missed, node.needs_flush = set(), False
                if not keys and not flush:
                    return
                try:
                    if flush:
                        node.client.flush_all(noreply=False)
                    else:
                        node.client.delete_many(list(keys), noreply=False)
                except BaseException:
                    with node.lock:
                        node.needs_flush = node.needs_flush or flush
                    self._record_missed(node, keys)
                    raise
                logger.info("%s: invalidated %s missed while away", node.server,
                            "everything" if flush else f"{len(keys)} keys")

    def _attempt(self, node: _Node, operation: Callable[[Any], T]) -> T:
        """Run ``operation(node.client)``; raise _NodeUnavailable if skipped or failing."""
        if self._skipped(node, self._clock()):
            raise _NodeUnavailable
        try:
            self._settle(node)
            result = operation(node.client)
        except _NODE_ERRORS as error:
            self._record_failure(node, error)
            raise _NodeUnavailable from error
        self._record_success(node)
        return result

    def _all_down(self, view: _View) -> bool:
        now = self._clock()
        return all(self._skipped(node, now) for node in view.nodes.values())

    def _unavailable_error(self, view: _View) -> NoAvailableNodesError:
        if not view.nodes:
            return NoAvailableNodesError("the cluster has no nodes")
        names = ", ".join(str(server) for server in view.nodes)
        return NoAvailableNodesError(f"all {len(view.nodes)} memcached nodes are down: {names}")

    def _nothing_reached(self, view: _View) -> None:
        """Called when no replica of a key could be reached: raise if the cluster is down."""
        if self._all_down(view):
            raise self._unavailable_error(view)

    # -- placement ----------------------------------------------------------------------

    def _check_key(self, key: Key) -> None:
        check_key_helper(key, self._allow_unicode_keys, self._key_prefix)

    def _replicas(self, view: _View, key: Key) -> list[_Node]:
        self._check_key(key)
        servers = view.ring.get_nodes(key, self.replicas)
        if not servers:
            raise self._unavailable_error(view)
        return [view.nodes[server] for server in servers]

    def replica_servers(self, key: Key) -> list[Server]:
        """The servers holding ``key``, first the one reads try first."""
        return [node.server for node in self._replicas(self._view, key)]

    # -- single-key operations ----------------------------------------------------------

    def get(self, key: Key, default: Any = None) -> Any:
        """The value of ``key`` from the first replica that has it, else ``default``."""
        view = self._view
        reached = False
        for node in self._replicas(view, key):
            try:
                value = self._attempt(node, lambda c: c.get(key, _MISS))
            except _NodeUnavailable:
                continue
            reached = True
            if value is not _MISS:
                return value
        if not reached:
            self._nothing_reached(view)
        return default

    def gets(self, key: Key) -> tuple[Any, Any]:
        """``(value, cas)`` from the first reachable replica (``(None, None)`` on a miss).

        Only that replica is asked: a cas token means nothing on another node.
        """
        view = self._view
        for node in self._replicas(view, key):
            try:
                result: tuple[Any, Any] = self._attempt(node, lambda c: c.gets(key))
            except _NodeUnavailable:
                continue
            return result
        self._nothing_reached(view)
        return (None, None)

    def _write_all(self, key: Key, operation: Callable[[Any], Any]) -> list[Any]:
        """Run an idempotent write on every replica; results of those reached."""
        view = self._view
        replicas = self._replicas(view, key)
        results = []
        try:
            for node in replicas:
                try:
                    results.append(self._attempt(node, operation))
                except _NodeUnavailable:
                    self._record_missed(node, [key])
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
                self._attempt(node, lambda c: c.delete(key, noreply=False))
            except (_NodeUnavailable, MemcacheError):
                self._record_missed(node, [key])

    def set(self, key: Key, value: Any, expire: int = 0, flags: int | None = None) -> bool:
        """Store on every replica; True if at least one stored it."""
        results = self._write_all(
            key, lambda c: c.set(key, value, expire=expire, noreply=False, flags=flags))
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
        for index, node in enumerate(replicas):
            try:
                result = self._attempt(node, operation)
            except _NodeUnavailable:
                self._record_missed(node, [key])
                continue
            except MemcacheError:
                self._delete_quietly(view, key)
                raise
            if succeeded(result):
                primary_result = result
                for other in replicas[index + 1:]:
                    try:
                        if self._attempt(other, lambda c: mirror(c, primary_result)):
                            continue
                        self._attempt(other, lambda c: c.delete(key, noreply=False))
                    except (_NodeUnavailable, MemcacheError):
                        self._record_missed(other, [key])
            return result
        self._nothing_reached(view)
        return failed

    def add(self, key: Key, value: Any, expire: int = 0, flags: int | None = None) -> bool:
        """Store only if absent (decided by the first reachable replica)."""
        result: bool = self._primary_write(
            key,
            lambda c: c.add(key, value, expire=expire, noreply=False, flags=flags),
            bool,
            lambda c, _: c.set(key, value, expire=expire, noreply=False, flags=flags),
            False)
        return result

    def replace(self, key: Key, value: Any, expire: int = 0, flags: int | None = None) -> bool:
        """Store only if present (decided by the first reachable replica)."""
        result: bool = self._primary_write(
            key,
            lambda c: c.replace(key, value, expire=expire, noreply=False, flags=flags),
            bool,
            lambda c, _: c.set(key, value, expire=expire, noreply=False, flags=flags),
            False)
        return result

    def append(self, key: Key, value: Any, expire: int = 0, flags: int | None = None) -> bool:
        """Append to the value on every replica that has it."""
        result: bool = self._primary_write(
            key,
            lambda c: c.append(key, value, expire=expire, noreply=False, flags=flags),
            bool,
            lambda c, _: c.append(key, value, expire=expire, noreply=False, flags=flags),
            False)
        return result

    def prepend(self, key: Key, value: Any, expire: int = 0, flags: int | None = None) -> bool:
        """Prepend to the value on every replica that has it."""
        result: bool = self._primary_write(
            key,
            lambda c: c.prepend(key, value, expire=expire, noreply=False, flags=flags),
            bool,
            lambda c, _: c.prepend(key, value, expire=expire, noreply=False, flags=flags),
            False)
        return result

    def cas(self, key: Key, value: Any, cas: Any, expire: int = 0,
            flags: int | None = None) -> bool | None:
        """Compare-and-set on the first reachable replica (token from :meth:`gets`)."""
        result: bool | None = self._primary_write(
            key,
            lambda c: c.cas(key, value, cas, expire=expire, noreply=False, flags=flags),
            bool,
            lambda c, _: c.set(key, value, expire=expire, noreply=False, flags=flags),
            None)
        return result

    def incr(self, key: Key, value: int) -> int | None:
        """Increment; the new value, or None if the key is missing."""
        result: int | None = self._primary_write(
            key,
            lambda c: c.incr(key, value, noreply=False),
            lambda r: r is not None,
            lambda c, r: c.incr(key, value, noreply=False) == r,
            None)
        return result

    def decr(self, key: Key, value: int) -> int | None:
        """Decrement (stopping at 0); the new value, or None if the key is missing."""
        result: int | None = self._primary_write(
            key,
            lambda c: c.decr(key, value, noreply=False),
            lambda r: r is not None,
            lambda c, r: c.decr(key, value, noreply=False) == r,
            None)
        return result

    # -- multi-key operations -----------------------------------------------------------

    def _per_node(
        self,
        batches: Mapping[_Node, T],
        operation: Callable[[Any, T], Any],
    ) -> dict[_Node, Any]:
        """Run ``operation(client, batch)`` on every node in parallel.

        The value for a node is its result, or the _NodeUnavailable raised for it.
        """
        def run(node: _Node, batch: T) -> Any:
            try:
                return self._attempt(node, lambda c: operation(c, batch))
            except _NodeUnavailable as unavailable:
                return unavailable

        items = list(batches.items())
        if len(items) == 1:
            node, batch = items[0]
            return {node: run(node, batch)}
        futures: dict[_Node, Future[Any]] = {
            node: self._executor.submit(run, node, batch) for node, batch in items}
        return {node: future.result() for node, future in futures.items()}

    def get_many(self, keys: Iterable[Key]) -> dict[Key, Any]:
        """Values of the keys found, asking each node once per round, nodes in parallel.

        Round one asks every key's first reachable replica; keys that missed there, or
        whose node failed, go to their next replica in the next round (at most R rounds).
        """
        view = self._view
        pending: dict[Key, list[_Node]] = {}
        for key in keys:
            pending[key] = self._replicas(view, key)
        found: dict[Key, Any] = {}
        reached = not pending
        for _ in range(self.replicas):
            now = self._clock()
            batches: dict[_Node, list[Key]] = {}
            for key, candidates in pending.items():
                while candidates:
                    node = candidates.pop(0)
                    if not self._skipped(node, now):
                        batches.setdefault(node, []).append(key)
                        break
            if not batches:
                break
            for outcome in self._per_node(batches, lambda c, b: c.get_many(b)).values():
                if isinstance(outcome, _NodeUnavailable):
                    continue
                reached = True
                for key, value in outcome.items():
                    found[key] = value
                    pending.pop(key, None)
        if not reached:
            self._nothing_reached(view)
        return found

    def set_many(self, values: Mapping[Key, Any], expire: int = 0,
                 flags: int | None = None) -> list[Key]:
        """Store every pair on all its replicas, nodes in parallel; keys stored nowhere."""
        view = self._view
        now = self._clock()
        batches: dict[_Node, dict[Key, Any]] = {}
        for key, value in values.items():
            for node in self._replicas(view, key):
                if self._skipped(node, now):
                    self._record_missed(node, [key])
                else:
                    batches.setdefault(node, {})[key] = value
        stored: set[Key] = set()
        outcomes = self._per_node(
            batches, lambda c, b: c.set_many(b, expire=expire, noreply=False, flags=flags))
        for node, outcome in outcomes.items():
            batch = batches[node]
            if isinstance(outcome, _NodeUnavailable):
                self._record_missed(node, batch)
                continue
            not_stored = set(outcome)
            stored.update(key for key in batch if key not in not_stored)
        if values and not any(not isinstance(o, _NodeUnavailable) for o in outcomes.values()):
            self._nothing_reached(view)
        return [key for key in values if key not in stored]

    def delete_many(self, keys: Iterable[Key]) -> bool:
        """Delete every key from all its replicas, nodes in parallel."""
        view = self._view
        now = self._clock()
        batches: dict[_Node, list[Key]] = {}
        seen = False
        for key in keys:
            seen = True
            for node in self._replicas(view, key):
                if self._skipped(node, now):
                    self._record_missed(node, [key])
                else:
                    batches.setdefault(node, []).append(key)
        outcomes = self._per_node(batches, lambda c, b: c.delete_many(b, noreply=False))
        for node, outcome in outcomes.items():
            if isinstance(outcome, _NodeUnavailable):
                self._record_missed(node, batches[node])
        if seen and not any(not isinstance(o, _NodeUnavailable) for o in outcomes.values()):
            self._nothing_reached(view)
        return True

    def flush_all(self) -> bool:
        """Flush every node; a node that is down is flushed before it serves again."""
        view = self._view
        outcomes = self._per_node({node: None for node in view.nodes.values()},
                                  lambda c, _: c.flush_all(noreply=False))
        for node, outcome in outcomes.items():
            if isinstance(outcome, _NodeUnavailable):
                with node.lock:
                    node.missed.clear()
                    node.needs_flush = True
        return all(not isinstance(o, _NodeUnavailable) for o in outcomes.values())

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


def replica_servers(
    servers: Sequence[ServerSpec], key: Key, replicas: int = 1, **ring_options: Any,
) -> list[Server]:
    """Where a cluster of ``servers`` keeps ``key`` (without connecting anywhere)."""
    ring: KetamaRing[Server] = KetamaRing(**ring_options)
    members = [to_server(spec) for spec in servers]
    ring.set_nodes({server: server.weight for server in members},
                   labels={server: server.label for server in members})
    return ring.get_nodes(key, replicas)
