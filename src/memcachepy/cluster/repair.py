"""Read repair: a replica that missed a key gets the value another replica still has.

With R >= 2 a node restarted empty misses every key it held, and those keys then live on
one replica only, so a second fault loses them. When a read misses on a reachable replica
and a later replica hits, :meth:`ReadRepair.repair` copies the item back:

1. ``gets`` on the replica that hit: the value and its CAS token.
2. ``mg <key> f t c`` there: the client flags and the remaining TTL of the same item (the
   CAS must match step 1, else the item changed in between and is left for a later read).
3. ``add`` on each replica that missed, with those flags and that TTL. ``add`` never
   overwrites: a newer write that reached the replica first wins.
4. ``mg <key> c`` on the replica that hit again. If the item is gone or changed there, a
   write or delete raced the copy, and the copies just added are deleted again: a miss is
   always safe, a resurrected value is not.

What remains possible: another client's delete that runs between steps 3 and 4, on the
repaired replica first and on the source only after step 4, leaves the old value on the
repaired replica, as in any read repair without a coordinator. Every write of this client
to a key happens before or after its own reads, so a client never sees that for its keys.

A read that hits on its first replica never learns that a later one lost the key. So for
``repair_window`` seconds after a node comes back from failures (restarted empty, or
invalidating the writes it missed), a hit also probes that node when it is a later
replica of the key (one multi-key ``get`` per node: one round trip) and repairs the keys
it lacks. After the window the probes stop.

Nodes that do not speak the meta protocol (``mg``) are not repaired: without the
remaining TTL a copy could outlive the original.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pymemcache.exceptions import MemcacheError  # type: ignore[import-untyped, unused-ignore]

from memcachepy.cluster.health import Node, NodeUnavailable

__all__ = ["ReadRepair", "ReadRepairStats"]

# A node client without raw_command (a custom client_factory) cannot be repaired either.
_CANNOT = (NodeUnavailable, MemcacheError, AttributeError)

logger = logging.getLogger(__name__)

Key = str | bytes
# memcached reads an exptime above 30 days as a Unix time.
RELATIVE_TTL_MAX = 60 * 60 * 24 * 30


@dataclass(slots=True)
class ReadRepairStats:
    """What read repair did, for :meth:`ClusterClient.stats`."""

    read_repairs: int = 0  # copies written back to a replica that missed
    read_repair_refused: int = 0  # add refused: the replica already had a (newer) value
    read_repair_undone: int = 0  # copies deleted again: the source changed meanwhile
    read_repair_skipped: int = 0  # not attempted: source changed, expiring, or no meta
    read_repair_failed: int = 0  # a node failed during the repair
    read_repair_probes: int = 0  # keys probed on a replica that recently came back

    def as_dict(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in self.__slots__}


@dataclass(frozen=True, slots=True)
class _Source:
    value: Any
    cas: bytes
    flags: int
    ttl: int  # remaining seconds, -1 for none


class ReadRepair:
    """Copies a hit back to the replicas that missed it, and counts what it did."""

    def __init__(self, key_prefix: bytes, allow_unicode_keys: bool) -> None:
        self._prefix = key_prefix
        self._encoding = "utf8" if allow_unicode_keys else "ascii"
        self._lock = threading.Lock()
        self._stats = ReadRepairStats()

    def stats(self) -> dict[str, int]:
        with self._lock:
            return self._stats.as_dict()

    def _count(self, name: str, n: int = 1) -> None:
        with self._lock:
            setattr(self._stats, name, getattr(self._stats, name) + n)

    def _wire_key(self, key: Key) -> bytes:
        raw = key.encode(self._encoding) if isinstance(key, str) else key
        return self._prefix + raw

    def _meta(self, node: Node, key: Key, flags: bytes) -> dict[str, bytes] | None:
        """``mg`` of ``key`` with ``flags``: the returned flags by letter, None on a miss."""
        reply = node.attempt(
            lambda c: c.raw_command(b"mg " + self._wire_key(key) + b" " + flags, b"\r\n")
        )
        words = reply.split()
        if not words or words[0] == b"EN":
            return None
        if words[0] != b"HD":
            raise MemcacheError(f"unexpected mg reply {reply[:60]!r}")
        return {word[:1].decode(): word[1:] for word in words[1:]}

    def missing(self, node: Node, keys: Sequence[Key]) -> list[Key]:
        """Which of ``keys`` ``node`` lacks, in one round trip (none if it cannot tell)."""
        if not keys:
            return []
        self._count("read_repair_probes", len(keys))
        # A multi-get, not pipelined ``mg`` lines read with raw_command: pymemcache 4.0's
        # raw_command keeps only the last recv() of a reply, so a reply that the server
        # sends in parts (memcached and memcachepy both send every -R requests) loses its
        # head. get_many reads the whole reply; the values it also carries are the price.
        try:
            found = node.attempt(lambda c: c.get_many(keys))
        except _CANNOT:
            return []
        return [key for key in keys if key not in found]

    def _source(self, node: Node, key: Key) -> _Source | None:
        value, cas = node.attempt(lambda c: c.gets(key))
        if value is None or cas is None:
            return None
        meta = self._meta(node, key, b"f t c")
        if meta is None or meta.get("c") != cas:
            return None
        return _Source(value, cas, int(meta["f"]), int(meta["t"]))

    def repair(self, key: Key, source: Node, missed: Sequence[Node]) -> None:
        """Copy ``key`` from ``source`` to the ``missed`` replicas (never raises)."""
        try:
            item = self._source(source, key)
        except _CANNOT as error:
            # A server without meta commands answers ERROR: MemcacheUnknownCommandError.
            logger.debug("read repair of %r: source %s: %s", key, source, error)
            self._count("read_repair_skipped")
            return
        if item is None or item.ttl == 0 or item.ttl < -1:
            self._count("read_repair_skipped")  # changed meanwhile, or expiring this second
            return
        expire = 0 if item.ttl == -1 else item.ttl
        if expire > RELATIVE_TTL_MAX:
            expire += int(time.time())
        added: list[Node] = []
        for node in missed:
            try:
                stored = node.attempt(
                    lambda c: c.add(key, item.value, expire=expire, noreply=False, flags=item.flags)
                )
            except (NodeUnavailable, MemcacheError):
                self._count("read_repair_failed")
                continue
            if stored:
                added.append(node)
            else:
                self._count("read_repair_refused")
        if not added:
            return
        try:
            now = self._meta(source, key, b"c")
            unchanged = now is not None and now.get("c") == item.cas
        except _CANNOT:
            unchanged = False  # cannot tell: a miss is safe, a stale copy is not
        if unchanged:
            self._count("read_repairs", len(added))
            return
        for node in added:
            try:
                node.attempt(lambda c: c.delete(key, noreply=False))
            except (NodeUnavailable, MemcacheError):
                node.record_missed([key])
        self._count("read_repair_undone", len(added))
