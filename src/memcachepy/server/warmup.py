"""The daemon's warm-up from peers: when to run it, and what it must see of local writes.

A node started with a membership (``--cluster-config`` or ``--cluster-dns``) and
``--cluster-replicas R`` (R >= 2) that holds no item when it starts (no ``-e`` memory
file restored, or an empty one) copies its share of items from its peers:
:class:`memcachepy.cluster.warmup.Warmer` runs in a worker thread and hands each batch to
:class:`LocalTarget`, which stores it in the event loop's thread, between requests.

Never stale
    A copy is added only when the key is absent (any write this node got is newer), and
    never for a key deleted on this node since it started: :class:`LocalDeletes` is a
    request hook on every command that removes a key (``delete``, ``md``, a too-large
    ``set`` or ``ms``) and on ``flush_all``, which stops the warm-up (items copied after a
    flush would come back from before it). The hook stays on from the start until the
    warm-up ends, then unwraps itself. Deletes sent with the binary protocol are not seen
    (cluster clients use the text protocol).

Visible
    ``stats`` gains ``warmup_state`` (idle, waiting, running, done, aborted),
    ``warmup_items``, ``warmup_bytes``, ``warmup_dropped``, ``warmup_peers``,
    ``warmup_peer_failures`` and ``warmup_seconds``, and so does ``/metrics``; the log
    says when it starts and ends, at the default level.
"""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Final, Protocol

import trio

from memcachepy.config import Settings
from memcachepy.ops.hooks import Handler
from memcachepy.protocol import events as ev
from memcachepy.store import meta
from memcachepy.store.cache import Cache
from memcachepy.store.meta import MetaResult
from memcachepy.store.results import StoreMode, StoreResult

if TYPE_CHECKING:
    from memcachepy.cluster.discovery import ClusterConfig
    from memcachepy.cluster.members import Member
    from memcachepy.cluster.warmup import CopiedItem, WarmupProgress
    from memcachepy.ops.hooks import RequestHooks

log = logging.getLogger("memcachepy")

MEMBERSHIP_POLL: Final = 1.0  # seconds between looks for this node in the membership
# Past this many deletes the record costs more than the warm-up saves: it stops.
MAX_TRACKED_DELETES: Final = 1_000_000
_REMOVING: Final = (ev.Delete, ev.MetaDelete, ev.MetaSetTooLarge)


class Membership(Protocol):
    """The membership a node serves (a ConfigEndpoint or the DNS one)."""

    @property
    def config(self) -> ClusterConfig: ...


class WarmupHost(Protocol):
    """What the warm-up uses of the server that runs it."""

    settings: Settings
    cache: Cache
    listeners: list[socket.socket]
    ports: list[int]


class LocalDeletes:
    """Keys removed on this node, and whether it was flushed, while a warm-up may copy.

    A :mod:`memcachepy.ops.hooks` layer: it wraps the removing commands only while
    :attr:`tracking`, so afterwards the request path is as without it.
    """

    def __init__(self) -> None:
        self.keys: set[bytes] = set()
        self.flushed = False
        self.overflowed = False
        self.tracking = True

    def wants(self, event_type: type) -> bool:
        return self.tracking and (
            event_type in _REMOVING or event_type is ev.StoreTooLarge or event_type is ev.FlushAll
        )

    def __call__(self, event: Any, out: list[Any], call: Handler) -> int:
        kind = type(event)
        if kind is ev.FlushAll:
            self.flushed = True
        elif kind in _REMOVING or (kind is ev.StoreTooLarge and event.command == b"set"):
            if len(self.keys) < MAX_TRACKED_DELETES:
                self.keys.add(bytes(event.key))
            else:
                self.overflowed = True
        return call(event, out)

    def aborted(self) -> str | None:
        if self.flushed:
            return "flush_all on this node"
        if self.overflowed:
            return f"more than {MAX_TRACKED_DELETES} deletes during the warm-up"
        return None


class LocalTarget:
    """Stores copies in this node's cache; called from the warm-up's worker thread, it
    runs each batch in the event loop's thread (trio.from_thread)."""

    def __init__(self, cache: Cache, deletes: LocalDeletes) -> None:
        self.cache = cache
        self.deletes = deletes

    def add(self, items: Sequence[CopiedItem]) -> list[int | None]:
        result: list[int | None] = trio.from_thread.run_sync(self.add_now, items)
        return result

    def add_now(self, items: Sequence[CopiedItem]) -> list[int | None]:
        cache, deleted = self.cache, self.deletes.keys
        stored: list[int | None] = []
        for item in items:
            if item.key in deleted or self.deletes.aborted():
                stored.append(None)
                continue
            outcome = cache.store(StoreMode.ADD, item.key, item.flags, item.exptime(), item.value)
            found = meta.peek(cache, item.key) if outcome == StoreResult.STORED else None
            stored.append(found[0] if found is not None else None)
        return stored

    def undo(self, copies: Sequence[tuple[bytes, int]]) -> int:
        removed: int = trio.from_thread.run_sync(self.undo_now, copies)
        return removed

    def undo_now(self, copies: Sequence[tuple[bytes, int]]) -> int:
        return sum(meta.meta_delete(self.cache, key, cas) == MetaResult.DONE for key, cas in copies)

    def aborted(self) -> str | None:
        return self.deletes.aborted()


class Warmup:
    """Runs one warm-up for a node that starts empty (module docstring)."""

    def __init__(
        self,
        host: WarmupHost,
        membership: Membership,
        hooks: RequestHooks,
        add_stats: Callable[[Callable[[], list[tuple[str, object]]]], None],
    ) -> None:
        from memcachepy.cluster.warmup import WarmupProgress

        self.host = host
        self.membership = membership
        self.settings = host.settings
        self.progress: WarmupProgress = WarmupProgress()
        self.deletes = LocalDeletes()
        self._hooks = hooks
        self._stop = threading.Event()
        # Decided now, before the listeners serve: items restored from -e mean no warm-up.
        self.restored = len(host.cache)
        hooks.add("warm-up deletes", self.deletes, self.deletes.wants)
        hooks.refresh()
        add_stats(self.progress.stats)

    def _stop_tracking(self) -> None:
        self.deletes.tracking = False
        self._hooks.refresh()

    async def run(self) -> None:
        """The warm-up task: wait to be a member, copy, then unwrap the delete hook."""
        try:
            if self.restored:
                log.info("warm-up skipped: %d items restored from the memory file", self.restored)
                return
            me = await self._wait_for_membership()
            await self._warm(me)
        finally:
            self._stop.set()
            self._stop_tracking()

    async def _wait_for_membership(self) -> Member:
        self.progress.state = "waiting"
        announced = False
        while True:
            config = self.membership.config
            me = await trio.to_thread.run_sync(self._find_self, config)
            if me is not None:
                return me
            if not announced:
                log.info(
                    "warm-up waits: this node (port %s) is not among the %d nodes of "
                    "the membership",
                    ",".join(map(str, self.host.ports)),
                    len(config.nodes),
                )
                announced = True
            await trio.sleep(MEMBERSHIP_POLL)

    def _find_self(self, config: ClusterConfig) -> Member | None:
        from memcachepy.cluster.warmup import find_self

        listen = [
            str(sock.getsockname()[0])
            for sock in self.host.listeners
            if sock.family in (socket.AF_INET, socket.AF_INET6)
        ]
        return find_self(config.nodes, self.host.ports, listen)

    async def _warm(self, me: Member) -> None:
        from memcachepy.cluster.warmup import DEFAULT_BYTE_RATE, Warmer

        nodes = self.membership.config.nodes
        target = LocalTarget(self.host.cache, self.deletes)
        warmer = Warmer(
            me,
            nodes,
            self.settings.cluster_replicas,
            target,
            item_rate=self.settings.warm_up_rate,
            byte_rate=DEFAULT_BYTE_RATE,
            progress=self.progress,
            stop=self._stop,
        )
        # At the default level (WARNING): a node that lost its cache is worth a line.
        log.warning(
            "warm-up started: %s copies its share (replicas=%d) from %d peers, at most %d items/s",
            me,
            self.settings.cluster_replicas,
            len(warmer.peers()),
            self.settings.warm_up_rate,
        )
        try:
            await trio.to_thread.run_sync(warmer.run, abandon_on_cancel=True)
        finally:
            self._stop.set()
        p = self.progress
        reason = self.deletes.aborted()
        log.warning(
            "warm-up %s after %.1f s: %d items (%d bytes) copied, %d dropped, %d of %d peers%s",
            p.state,
            p.seconds,
            p.items,
            p.bytes,
            p.dropped,
            p.peers,
            len(warmer.peers()),
            f" ({reason})" if reason else "",
        )


def warmup_wanted(settings: Settings) -> bool:
    """Whether this node warms up when it starts empty (R >= 2, a membership, not off)."""
    return (
        settings.warm_up
        and settings.cluster_replicas >= 2
        and bool(settings.cluster_config or settings.cluster_dns)
    )
