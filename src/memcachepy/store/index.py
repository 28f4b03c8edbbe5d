"""The key index: key -> head chunk of every linked item, outside the Python object heap.

A Python dict costs about 140 bytes per item (its entry, a bytes object for the key and an
int for the chunk id). This table costs 5 bytes per slot: a vector of 32-bit chunk ids
(divided by 8: chunks are 8-byte aligned) and one of 8-bit hash tags, 0 marking an empty
slot. The vectors are librt's ``vec[i32]`` and ``vec[u8]``: as compact as an ``array`` and a
``bytearray``, but compiled, mypyc reads and writes their items in C, where it indexes a
``bytearray`` or an ``array`` through CPython's generic, boxed path (pure Python, they cost
the same). Keys are not copied: a probe whose tag matches compares the key where the item holds
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

from collections.abc import Iterator, Sequence
from typing import Final

from librt.strings import read_i16_le, read_i64_le
from librt.vecs import extend, vec

# mypyc's native ints: i64 for hash arithmetic (a hash spans 64 bits, and as a plain int half
# of them leave mypyc's 63-bit fast path), u8 and i32 the vectors' items. Code converts them
# by annotation (``x: int = ids[i]``), never by a call: pure Python, a call would cost.
from mypy_extensions import i32, i64, u8

from memcachepy.store.items import (
    HEADER_SIZE,
    KEY_MAX,
    OFF_NCONT,
    OFF_NKEY,
)
from memcachepy.store.slabs import OFFSET_MASK, PAGE_SHIFT, Page

DEFAULT_HASHPOWER: Final = 16  # memcached's HASHPOWER_DEFAULT
# Chunk ids are stored >> 3: 32-bit slots name any chunk of up to 32 GiB of pages. Past that
# (widen), a second vector holds the bits above 32 (8 bytes a slot in all, as an int64 would).
NARROW_LIMIT: Final = 1 << 35
_LOW: Final = 0xFFFFFFFF
# What _probe returns where only _find_general can answer.
_GENERAL: Final = -2
_SIGN: Final = 1 << 31
# How much of a chunk lookup() copies: all of an item up to about this size, only the
# start of a larger one (whose stream the caller slices from the page).
READ_WINDOW: Final = 4096


def _holds_key(chunk: bytes, key: bytes, n: i64) -> bool:
    """Whether the item in ``chunk`` (which has room for it) has ``key``, of length ``n``,
    after its header. Compiled, eight bytes at a time in C, without a slice's copy."""
    if n < 8:
        return chunk[HEADER_SIZE : HEADER_SIZE + n] == key
    j: i64 = 0
    while j + 8 < n:
        if read_i64_le(chunk, HEADER_SIZE + j) != read_i64_le(key, j):
            return False
        j += 8
    # The last eight bytes, overlapping the words before them when n is not a multiple.
    return read_i64_le(chunk, HEADER_SIZE + n - 8) == read_i64_le(key, n - 8)


def _tag(h: i64) -> int:
    """The 8-bit tag of hash ``h``, 1-255 (0 marks an empty slot)."""
    tag: int = h >> 56 & 255
    return tag if tag else 1


def _tags(size: int) -> vec[u8]:
    return vec[u8](bytes(size))


def _ids(size: int) -> vec[i32]:
    """``size`` zeros (a power of two, or 0), built by doubling: no list of ``size`` ints."""
    ids = vec[i32]([0] * min(size, 1024))
    while len(ids) < size:
        ids = extend(ids, ids)
    return ids


def _load(ids: vec[i32], high: vec[i32], i: int) -> int:
    """The chunk id in slot ``i``."""
    low: int = ids[i]
    if not high:
        return (low & _LOW) << 3
    top: int = high[i]
    return ((low & _LOW) | top << 32) << 3


def _store(ids: vec[i32], high: vec[i32], i: int, cid: int) -> None:
    """Put chunk id ``cid`` in slot ``i`` (the low 32 bits of cid >> 3 as a signed i32)."""
    value = cid >> 3
    low = value & _LOW
    ids[i] = low - (1 << 32) if low >= _SIGN else low
    if high:
        high[i] = value >> 32


class KeyIndex:
    """Key -> chunk id of the item holding that key, with a dict's interface.

    ``pages`` is the slab allocator's page list (shared, so pages added later are seen).
    :meth:`lookup` also needs its ``page_class`` list and the chunk size of each class.
    """

    def __init__(
        self,
        pages: list[Page],
        hashpower: int = DEFAULT_HASHPOWER,
        limit: int = 0,
        page_class: list[int] | None = None,
        chunk_sizes: Sequence[int] = (),
    ) -> None:
        self._pages = pages
        # For lookup(): each page's class (shared, so pages carved later are seen) and each
        # class's chunk size, capped at READ_WINDOW.
        self._page_class = page_class if page_class is not None else []
        self._spans = [min(size, READ_WINDOW) for size in chunk_sizes]
        self._wide = limit >= NARROW_LIMIT
        self.power = hashpower  # memcached's hash_power_level: 2 << power slots
        self._mask = (2 << hashpower) - 1
        self._tags = _tags(2 << hashpower)
        self._ids = _ids(2 << hashpower)
        # The bits of cid >> 3 above 32, once wide; empty (and never read) until then.
        self._high = _ids(2 << hashpower if self._wide else 0)
        self._count = 0
        # During an expansion: the old table and how far its slots have been moved.
        self._expanding = False
        self._old_tags = _tags(0)
        self._old_ids = _ids(0)
        self._old_high = _ids(0)
        self._old_mask = 0
        self._moved = 0
        self.expand = True  # False: memcached's -o no_hashexpand
        # What the last hit of find() copied of the item's chunk: its header, and its key
        # unless it is chunked.
        self.found = b""
        # The last find(), for again(): its key, its answer, and _changes at the time.
        self._changes = 0  # set(), pop() and replace() each count one
        self._memo_key = b""
        self._memo_cid = -1
        self._memo_changes = -1

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
        tag: int = h >> 56 & 255  # _tag(h), inlined
        if not tag:
            tag = 1
        tags = self._tags
        mask: i64 = self._mask
        i: i64 = h & mask
        t: int = tags[i]
        n = len(key)
        while t:
            if t == tag:
                # _holds, inlined: this is every read's path.
                low: int = self._ids[i]
                cid = (low & _LOW) << 3
                if self._wide:
                    cid = _load(self._ids, self._high, i)
                page = self._pages[cid >> PAGE_SHIFT]
                off = cid & OFFSET_MASK
                nkey: int = page[off + OFF_NKEY]
                if nkey == n:
                    start = off + HEADER_SIZE
                    ncont: int = page[off + OFF_NCONT]
                    ncont_high: int = page[off + OFF_NCONT + 1]
                    if ncont or ncont_high:
                        return cid if self._holds(cid, key) else self._next(key, i, h, tag, default)
                    if page[start : start + n] == key:
                        return cid
            i = (i + 1) & mask
            t = tags[i]
        if self._expanding:
            return self._old_find(key, h, tag, default)
        return default

    def find(self, key: bytes) -> int:
        """:meth:`get` for a read: the chunk id or -1, and on a hit a copy of the item's
        header and key in :attr:`found` (read its fields with librt's ``read_*_le``:
        compiled, C loads).
        """
        found = self._probe(key, False)
        cid, chunk = found
        if cid == _GENERAL:
            return self._find_general(key)
        if cid >= 0:
            self.found = chunk
        self._memo_key = key
        self._memo_cid = cid
        self._memo_changes = self._changes
        return cid

    def lookup(self, key: bytes) -> tuple[int, bytes]:
        """:meth:`find` for the multi-get path: (chunk id or -1, a copy of the item's chunk),
        without the note :meth:`again` reads (a read is never followed by a store's second
        lookup).

        The copy is the chunk from its start, up to :data:`READ_WINDOW` bytes: the header,
        the key and, for all but large items, the whole stream. Compiled, the caller reads
        the header's fields from it as C loads and slices the reply out of it natively,
        where each field unpacked from the page, and each slice of it, is a generic CPython
        call with its offsets boxed as ints.
        """
        found = self._probe(key, True)
        if found[0] != _GENERAL:
            return found
        cid = self._find_general(key)
        return (cid, self._copy(cid, True)) if cid >= 0 else (-1, b"")

    def _probe(self, key: bytes, whole: bool) -> tuple[int, bytes]:
        """The probe of :meth:`find` and :meth:`lookup`: (chunk id, a copy of its chunk
        (``whole``) or of its header and key), (-1, b"") if no item has ``key``, or
        (_GENERAL, b"") where only :meth:`_find_general` can tell: a long key, a chunked
        item on the probe, the old table while it moves."""
        n = len(key)
        if n > KEY_MAX:
            return _GENERAL, b""
        h: i64 = hash(key)
        tag: int = h >> 56 & 255  # _tag(h), inlined
        if not tag:
            tag = 1
        tags = self._tags
        mask: i64 = self._mask
        i: i64 = h & mask
        t: int = tags[i]
        end = HEADER_SIZE + n
        while t:
            if t == tag:
                low: int = self._ids[i]
                cid = (low & _LOW) << 3
                if self._wide:
                    cid = _load(self._ids, self._high, i)
                number = cid >> PAGE_SHIFT
                off = cid & OFFSET_MASK
                # A page of no class (span 0) holds no item: the copy is empty.
                span = self._spans[self._page_class[number]] if whole else end
                chunk: bytes = self._pages[number][off : off + span]
                if len(chunk) >= end and chunk[OFF_NKEY] == n:
                    if read_i16_le(chunk, OFF_NCONT):  # the key follows continuation ids
                        return _GENERAL, b""
                    if _holds_key(chunk, key, n):
                        return cid, chunk
            i = (i + 1) & mask
            t = tags[i]
        if self._expanding:
            return _GENERAL, b""
        return -1, b""

    def _copy(self, cid: int, whole: bool) -> bytes:
        """A copy of chunk ``cid``: up to READ_WINDOW bytes (``whole``), or its header."""
        number = cid >> PAGE_SHIFT
        off = cid & OFFSET_MASK
        span = self._spans[self._page_class[number]] if whole else HEADER_SIZE
        return self._pages[number][off : off + span]

    def _find_general(self, key: bytes) -> int:
        cid = self.get(key)
        if cid >= 0:
            self.found = self._copy(cid, False)
        self._memo_key = key
        self._memo_cid = cid
        self._memo_changes = self._changes
        return cid

    def again(self, key: bytes) -> int:
        """:meth:`get` of the key the last :meth:`find` looked up, answered from that find
        while the index has not changed since (a set looks its key up once to check it,
        and again after making room, which may have evicted it)."""
        if key is self._memo_key and self._changes == self._memo_changes:
            return self._memo_cid
        return self.get(key)

    def again_found(self, key: bytes) -> tuple[int, bytes]:
        """:meth:`again`, with the copy of the item's header :meth:`find` keeps in
        :attr:`found` (when the chunk id is not -1)."""
        if key is self._memo_key and self._changes == self._memo_changes:
            return self._memo_cid, self.found
        cid = self._find_general(key)
        return cid, self.found

    def forget_found(self) -> None:
        """The item the last find read was written over in its chunk (the entry stands,
        the fields do not): :meth:`again_found` looks again."""
        self._memo_changes = -1

    def __setitem__(self, key: bytes, cid: int) -> None:
        self.set(key, cid)

    def set(self, key: bytes, cid: int) -> None:
        """Point ``key`` at ``cid`` (whose item must hold ``key``), replacing any entry."""
        self._changes += 1
        h: i64 = hash(key)
        tag: int = _tag(h)
        if self._expanding:
            at = self._slot(
                self._old_tags, self._old_ids, self._old_high, self._old_mask, key, h, tag
            )
            if at >= 0:
                _store(self._old_ids, self._old_high, at, cid)
                return
        tags = self._tags
        mask: i64 = self._mask
        i: i64 = h & mask
        t: int = tags[i]
        while t:
            if t == tag and self._holds(_load(self._ids, self._high, i), key):
                _store(self._ids, self._high, i, cid)
                return
            i = (i + 1) & mask
            t = tags[i]
        self._count += 1
        if self._count * 4 > (mask + 1) * 3 and self._grow():
            self._insert_new(key, cid)
            return
        tags[i] = tag
        _store(self._ids, self._high, i, cid)

    def replace(self, key: bytes, old: int, cid: int) -> None:
        """Point ``key``'s entry, which names chunk ``old``, at ``cid`` (a set that replaced
        an item): the probe compares chunk ids only, as one entry names ``old``, and no
        slot empties, so nothing shifts back as a pop and a set would."""
        self._changes += 1
        h: i64 = hash(key)
        tag: int = h >> 56 & 255  # _tag(h), inlined
        if not tag:
            tag = 1
        if self._replace(self._tags, self._ids, self._high, self._mask, h, tag, old, cid):
            return
        if self._expanding and self._replace(
            self._old_tags, self._old_ids, self._old_high, self._old_mask, h, tag, old, cid
        ):
            return
        self.set(key, cid)  # ``old`` was not key's entry: as a plain set

    def _replace(
        self,
        tags: vec[u8],
        ids: vec[i32],
        high: vec[i32],
        mask: i64,
        h: i64,
        tag: int,
        old: int,
        cid: int,
    ) -> bool:
        i: i64 = h & mask
        t: int = tags[i]
        while t:
            if t == tag and _load(ids, high, i) == old:
                _store(ids, high, i, cid)
                return True
            i = (i + 1) & mask
            t = tags[i]
        return False

    def pop(self, key: bytes, default: int | None = None) -> int:
        """Remove ``key``; its chunk id (``default`` if absent, KeyError without one)."""
        self._changes += 1
        h: i64 = hash(key)
        tag: int = _tag(h)
        i = self._slot(self._tags, self._ids, self._high, self._mask, key, h, tag)
        if i >= 0:
            cid = _load(self._ids, self._high, i)
            self._delete(self._tags, self._ids, self._high, self._mask, i)
        else:
            if self._expanding:
                i = self._slot(
                    self._old_tags, self._old_ids, self._old_high, self._old_mask, key, h, tag
                )
            if i < 0:
                if default is None:
                    raise KeyError(key)
                return default
            cid = _load(self._old_ids, self._old_high, i)
            self._delete(self._old_tags, self._old_ids, self._old_high, self._old_mask, i)
        self._count -= 1
        return cid

    def __delitem__(self, key: bytes) -> None:
        self.pop(key)

    def values(self) -> Iterator[int]:
        """Every chunk id (the index must not change while this runs)."""
        tables = [(self._tags, self._ids, self._high)]
        if self._expanding:
            tables.append((self._old_tags, self._old_ids, self._old_high))
        for tags, ids, high in tables:
            for i in range(len(tags)):
                if tags[i]:
                    yield _load(ids, high, i)

    # -- growth -------------------------------------------------------------------------------

    @property
    def expanding(self) -> bool:
        return self._expanding

    @property
    def nbytes(self) -> int:
        """Memory held by the table(s): memcached's hash_bytes (both tables while moving)."""
        per_slot = 9 if self._wide else 5
        size = len(self._tags) * per_slot
        if self._expanding:
            size += len(self._old_tags) * per_slot
        return size

    def expand_step(self, budget: int) -> int:
        """Move about ``budget`` slots of the old table to the new one; 0 if none is moving.

        A step moves whole clusters (runs of full slots): taking every entry of a run
        breaks no other entry's probe, so nothing is shifted or rehashed in the old table.
        Slots before the move's position stay empty, as new keys go to the new table.
        """
        if not self._expanding:
            return 0
        old_tags = self._old_tags
        size = self._old_mask + 1
        start = i = self._moved
        end = min(start + budget, size)
        while i < end or (i < size and old_tags[i]):
            if old_tags[i]:
                cid = _load(self._old_ids, self._old_high, i)
                self._insert_new(self._key_at(cid), cid)
                old_tags[i] = 0
            i += 1
        self._moved = i
        if i >= size:
            self._expanding = False
            self._old_tags = _tags(0)
            self._old_ids = _ids(0)
            self._old_high = _ids(0)
        return max(i - start, 1)

    def finish(self) -> None:
        """Complete a move under way at once."""
        while self._expanding:
            self.expand_step(1 << 16)

    def widen(self) -> None:
        """Take chunk ids of pages past 32 GiB (the memory limit was raised)."""
        if self._wide:
            return
        self._wide = True
        self._high = _ids(len(self._ids))
        self._old_high = _ids(len(self._old_ids))

    def _grow(self) -> bool:
        """Double the table (if allowed) before it passes 3/4 full; True if it did."""
        if not self.expand and self._count < len(self._tags) - 1:
            return False  # -o no_hashexpand, until a full table could no longer probe
        self.finish()
        self._old_tags, self._old_ids, self._old_high = self._tags, self._ids, self._high
        self._old_mask = self._mask
        self._expanding = True
        self._moved = 0
        self.power += 1
        self._mask = (2 << self.power) - 1
        self._tags = _tags(2 << self.power)
        self._ids = _ids(2 << self.power)
        self._high = _ids(2 << self.power if self._wide else 0)
        return True

    # -- internals ------------------------------------------------------------------------------

    def _holds(self, cid: int, key: bytes) -> bool:
        """Whether the item at ``cid`` has ``key`` (compared in slab memory)."""
        page = self._pages[cid >> PAGE_SHIFT]
        off = cid & OFFSET_MASK
        n = len(key)
        nkey: int = page[off + OFF_NKEY]
        if nkey != n:
            return False
        start = off + HEADER_SIZE
        ncont: int = page[off + OFF_NCONT] | page[off + OFF_NCONT + 1] << 8
        if ncont:  # chunked: ids come first
            start += 8 * ncont
        return page[start : start + n] == key

    def _next(self, key: bytes, i: i64, h: i64, tag: int, default: int) -> int:
        """:meth:`get` past slot ``i`` of the new table (a chunked item's key differed)."""
        tags = self._tags
        mask: i64 = self._mask
        i = (i + 1) & mask
        t: int = tags[i]
        while t:
            if t == tag:
                cid = _load(self._ids, self._high, i)
                if self._holds(cid, key):
                    return cid
            i = (i + 1) & mask
            t = tags[i]
        return self._old_find(key, h, tag, default) if self._expanding else default

    def _key_at(self, cid: int) -> bytes:
        page = self._pages[cid >> PAGE_SHIFT]
        off = cid & OFFSET_MASK
        ncont: int = page[off + OFF_NCONT] | page[off + OFF_NCONT + 1] << 8
        nkey: int = page[off + OFF_NKEY]
        start = off + HEADER_SIZE + 8 * ncont
        return bytes(page[start : start + nkey])

    def _slot(
        self, tags: vec[u8], ids: vec[i32], high: vec[i32], mask: i64, key: bytes, h: i64, tag: int
    ) -> i64:
        i: i64 = h & mask
        t: int = tags[i]
        while t:
            if t == tag and self._holds(_load(ids, high, i), key):
                return i
            i = (i + 1) & mask
            t = tags[i]
        return -1

    def _old_find(self, key: bytes, h: i64, tag: int, default: int) -> int:
        i = self._slot(self._old_tags, self._old_ids, self._old_high, self._old_mask, key, h, tag)
        return default if i < 0 else _load(self._old_ids, self._old_high, i)

    def _insert_new(self, key: bytes, cid: int) -> None:
        """Put a key known to be absent into the new table (no growth check)."""
        h: i64 = hash(key)
        tags = self._tags
        mask: i64 = self._mask
        i: i64 = h & mask
        while tags[i]:
            i = (i + 1) & mask
        tag: int = _tag(h)
        tags[i] = tag
        _store(self._ids, self._high, i, cid)

    def _delete(self, tags: vec[u8], ids: vec[i32], high: vec[i32], mask: i64, i: i64) -> None:
        """Empty slot ``i``, moving back later entries of its cluster whose probe passes it."""
        j = i
        while True:
            j = (j + 1) & mask
            if not tags[j]:
                break
            home: i64 = hash(self._key_at(_load(ids, high, j))) & mask
            # The entry at j stays unless its home lies cyclically outside (i, j].
            if (j > i and (home <= i or home > j)) or (j < i and i >= home > j):
                tags[i] = tags[j]
                ids[i] = ids[j]
                if high:
                    high[i] = high[j]
                i = j
        tags[i] = 0
        ids[i] = 0
        if high:
            high[i] = 0
