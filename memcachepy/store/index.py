"""The key index: key -> head chunk of every linked item, outside the Python object heap.

A Python dict costs about 140 bytes per item (its entry, a bytes object for the key and an
int for the chunk id). This table costs 5 bytes per slot: an ``array`` of chunk ids (divided
by 8: chunks are 8-byte aligned) and a ``bytearray`` of 8-bit hash tags, 0 marking an empty
slot. Keys are not copied: a probe whose tag matches compares the key where the item holds
it, in slab memory. Collisions are resolved by linear probing, deletions by backward shift
(no tombstones), so a probe stops at the first empty slot.

The table has two slots for each bucket memcached's chained table has at the same
``hash_power_level``: a bucket holds 1.5 items on average when assoc.c doubles, a slot at
most one, so at 3/4 full both double at the same item count and report the same level
(``power``, memcached's hash_power_level; the table has ``2 << power`` slots).

Growth follows memcached's assoc.c: past 3/4 full the table doubles, the old table stays
beside the new one, and :meth:`KeyIndex.expand_step` moves a bounded number of its slots
per call, from the background. Lookups look in both meanwhile; new keys go to the new
table. Should the new table fill up before the move is done, the move finishes at once.
"""

from __future__ import annotations

from array import array
from collections.abc import Iterator
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    # mypyc's native 64-bit int, for hash arithmetic: a hash spans 64 bits, and as a plain
    # int half of them leave mypyc's 63-bit fast path. Only annotations use it (they are
    # not evaluated at run time), so pure Python needs no mypy_extensions.
    from mypy_extensions import i64

from memcachepy.store.items import HEADER_SIZE, OFF_NCONT, OFF_NKEY
from memcachepy.store.slabs import OFFSET_MASK, PAGE_SHIFT, Page

DEFAULT_HASHPOWER: Final = 16  # memcached's HASHPOWER_DEFAULT
# Chunk ids are stored >> 3: 32-bit slots name any chunk of up to 32 GiB of pages.
NARROW_LIMIT: Final = 1 << 35


def _table(typecode: str, size: int) -> array[int]:
    return array(typecode, [0]) * size


class KeyIndex:
    """Key -> chunk id of the item holding that key, with a dict's interface.

    ``pages`` is the slab allocator's page list (shared, so pages added later are seen).
    """

    def __init__(self, pages: list[Page], hashpower: int = DEFAULT_HASHPOWER,
                 limit: int = 0) -> None:
        self._pages = pages
        self._code = "I" if limit < NARROW_LIMIT else "q"
        self.power = hashpower  # memcached's hash_power_level: 2 << power slots
        self._mask = (2 << hashpower) - 1
        self._tags = bytearray(2 << hashpower)
        self._ids = _table(self._code, 2 << hashpower)
        self._count = 0
        # During an expansion: the old table and how far its slots have been moved.
        self._old_tags: bytearray | None = None
        self._old_ids: array[int] = _table(self._code, 0)
        self._old_mask = 0
        self._moved = 0
        self.expand = True  # False: memcached's -o no_hashexpand

    # -- the dict interface ---------------------------------------------------------------

    def __len__(self) -> int:
        return self._count

    def __contains__(self, key: bytes) -> bool:
        return self.get(key) >= 0

    def __getitem__(self, key: bytes) -> int:
        cid = self.get(key)
        if cid < 0:
            raise KeyError(key)
        return cid

    def get(self, key: bytes, default: int = -1) -> int:
        """The chunk id for ``key``, or ``default``."""
        h: i64 = hash(key)
        tag: i64 = h >> 56 & 255 or 1
        tags = self._tags
        mask: i64 = self._mask
        i: i64 = h & mask
        t: i64 = tags[i]
        n = len(key)
        while t:
            if t == tag:
                # _holds, inlined: this is every read's path.
                cid = self._ids[i] << 3
                page = self._pages[cid >> PAGE_SHIFT]
                off = cid & OFFSET_MASK
                if page[off + OFF_NKEY] == n:
                    start = off + HEADER_SIZE
                    if page[off + OFF_NCONT] or page[off + OFF_NCONT + 1]:
                        return cid if self._holds(cid, key) else self._next(key, i, h, tag,
                                                                             default)
                    if page[start : start + n] == key:
                        return cid
            i = (i + 1) & mask
            t = tags[i]
        if self._old_tags is not None:
            return self._old_find(key, h, tag, default)
        return default

    def __setitem__(self, key: bytes, cid: int) -> None:
        self.set(key, cid)

    def set(self, key: bytes, cid: int) -> None:
        """Point ``key`` at ``cid`` (whose item must hold ``key``), replacing any entry."""
        h = hash(key)
        tag = h >> 56 & 255 or 1
        if self._old_tags is not None:
            at = self._old_slot(key, h, tag)
            if at >= 0:
                self._old_ids[at] = cid >> 3
                return
        tags = self._tags
        mask = self._mask
        i = h & mask
        t = tags[i]
        while t:
            if t == tag and self._holds(self._ids[i] << 3, key):
                self._ids[i] = cid >> 3
                return
            i = (i + 1) & mask
            t = tags[i]
        self._count += 1
        if self._count * 4 > (mask + 1) * 3 and self._grow():
            self._insert_new(key, cid)
            return
        tags[i] = tag
        self._ids[i] = cid >> 3

    def pop(self, key: bytes, default: int | None = None) -> int:
        """Remove ``key``; its chunk id (``default`` if absent, KeyError without one)."""
        h = hash(key)
        tag = h >> 56 & 255 or 1
        i = self._slot(self._tags, self._ids, self._mask, key, h, tag)
        if i >= 0:
            cid = self._ids[i] << 3
            self._delete(self._tags, self._ids, self._mask, i)
        else:
            old_tags = self._old_tags
            i = -1 if old_tags is None else self._old_slot(key, h, tag)
            if i < 0:
                if default is None:
                    raise KeyError(key)
                return default
            assert old_tags is not None
            cid = self._old_ids[i] << 3
            self._delete(old_tags, self._old_ids, self._old_mask, i)
        self._count -= 1
        return cid

    def __delitem__(self, key: bytes) -> None:
        self.pop(key)

    def values(self) -> Iterator[int]:
        """Every chunk id (the index must not change while this runs)."""
        for tags, ids in ((self._tags, self._ids), (self._old_tags, self._old_ids)):
            if tags is not None:
                # By index, not enumerate(): mypyc (2.4) fails on iterating a bytearray.
                for i in range(len(tags)):
                    if tags[i]:
                        yield ids[i] << 3

    # -- growth -------------------------------------------------------------------------------

    @property
    def expanding(self) -> bool:
        return self._old_tags is not None

    @property
    def nbytes(self) -> int:
        """Memory held by the table(s): memcached's hash_bytes (both tables while moving)."""
        size = len(self._tags) * (1 + self._ids.itemsize)
        if self._old_tags is not None:
            size += len(self._old_tags) * (1 + self._old_ids.itemsize)
        return size

    def expand_step(self, budget: int) -> int:
        """Move about ``budget`` slots of the old table to the new one; 0 if none is moving.

        A step moves whole clusters (runs of full slots): taking every entry of a run
        breaks no other entry's probe, so nothing is shifted or rehashed in the old table.
        Slots before the move's position stay empty, as new keys go to the new table.
        """
        old_tags = self._old_tags
        if old_tags is None:
            return 0
        old_ids = self._old_ids
        size = self._old_mask + 1
        start = i = self._moved
        end = min(start + budget, size)
        while i < end or (i < size and old_tags[i]):
            if old_tags[i]:
                cid = old_ids[i] << 3
                self._insert_new(self._key_at(cid), cid)
                old_tags[i] = 0
            i += 1
        self._moved = i
        if i >= size:
            self._old_tags = None
            self._old_ids = _table(self._code, 0)
        return max(i - start, 1)

    def finish(self) -> None:
        """Complete a move under way at once."""
        while self._old_tags is not None:
            self.expand_step(1 << 16)

    def widen(self) -> None:
        """Take chunk ids of pages past 32 GiB (the memory limit was raised)."""
        if self._code == "q":
            return
        self._code = "q"
        self._ids = array("q", self._ids)
        self._old_ids = array("q", self._old_ids)

    def _grow(self) -> bool:
        """Double the table (if allowed) before it passes 3/4 full; True if it did."""
        if not self.expand and self._count < len(self._tags) - 1:
            return False  # -o no_hashexpand, until a full table could no longer probe
        self.finish()
        self._old_tags, self._old_ids, self._old_mask = self._tags, self._ids, self._mask
        self._moved = 0
        self.power += 1
        self._mask = (2 << self.power) - 1
        self._tags = bytearray(2 << self.power)
        self._ids = _table(self._code, 2 << self.power)
        return True

    # -- internals ------------------------------------------------------------------------------

    def _holds(self, cid: int, key: bytes) -> bool:
        """Whether the item at ``cid`` has ``key`` (compared in slab memory)."""
        page = self._pages[cid >> PAGE_SHIFT]
        off = cid & OFFSET_MASK
        n = len(key)
        if page[off + OFF_NKEY] != n:
            return False
        start = off + HEADER_SIZE
        if page[off + OFF_NCONT] or page[off + OFF_NCONT + 1]:  # chunked: ids come first
            start += 8 * (page[off + OFF_NCONT] | page[off + OFF_NCONT + 1] << 8)
        return page[start : start + n] == key

    def _next(self, key: bytes, i: int, h: int, tag: int, default: int) -> int:
        """:meth:`get` past slot ``i`` of the new table (a chunked item's key differed)."""
        tags = self._tags
        mask = self._mask
        i = (i + 1) & mask
        while tags[i]:
            if tags[i] == tag and self._holds(self._ids[i] << 3, key):
                return self._ids[i] << 3
            i = (i + 1) & mask
        return default if self._old_tags is None else self._old_find(key, h, tag, default)

    def _key_at(self, cid: int) -> bytes:
        page = self._pages[cid >> PAGE_SHIFT]
        off = cid & OFFSET_MASK
        start = off + HEADER_SIZE + 8 * (page[off + OFF_NCONT] | page[off + OFF_NCONT + 1] << 8)
        return bytes(page[start : start + page[off + OFF_NKEY]])

    def _slot(self, tags: bytearray, ids: array[int], mask: int, key: bytes, h: int,
              tag: int) -> int:
        i = h & mask
        t = tags[i]
        while t:
            if t == tag and self._holds(ids[i] << 3, key):
                return i
            i = (i + 1) & mask
            t = tags[i]
        return -1

    def _old_slot(self, key: bytes, h: int, tag: int) -> int:
        tags = self._old_tags
        return -1 if tags is None else self._slot(tags, self._old_ids, self._old_mask, key,
                                                  h, tag)

    def _old_find(self, key: bytes, h: int, tag: int, default: int) -> int:
        i = self._old_slot(key, h, tag)
        return default if i < 0 else self._old_ids[i] << 3

    def _insert_new(self, key: bytes, cid: int) -> None:
        """Put a key known to be absent into the new table (no growth check)."""
        h = hash(key)
        tags = self._tags
        mask = self._mask
        i = h & mask
        while tags[i]:
            i = (i + 1) & mask
        tags[i] = h >> 56 & 255 or 1
        self._ids[i] = cid >> 3

    def _delete(self, tags: bytearray, ids: array[int], mask: int, i: int) -> None:
        """Empty slot ``i``, moving back later entries of its cluster whose probe passes it."""
        j = i
        while True:
            j = (j + 1) & mask
            if not tags[j]:
                break
            home = hash(self._key_at(ids[j] << 3)) & mask
            # The entry at j stays unless its home lies cyclically outside (i, j].
            if (j > i and (home <= i or home > j)) or (j < i and i >= home > j):
                tags[i] = tags[j]
                ids[i] = ids[j]
                i = j
        tags[i] = 0
        ids[i] = 0
