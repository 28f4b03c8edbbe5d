"""Cache operations over slab memory, returning result values as memcached's items.c does.

The cache knows nothing of any wire protocol. Callers may give it a
:class:`Framing` so that each item is stored already wrapped the way a reply
sends it (for the text protocol ``VALUE <key> <flags> <bytes>\\r\\n`` ...
``\\r\\n``): a cache hit is then one slice of slab memory.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import IntEnum

from memcachepy.store.items import (
    CONTINUATION,
    FETCHED,
    HEADER,
    HEADER_SIZE,
    HOT,
    I32,
    I64,
    LINKED,
    OFF_ATIME,
    OFF_CAS,
    OFF_EXPTIME,
    OFF_FLAGS,
    OFF_IFLAGS,
    OFF_NKEY,
    OFF_PREFIX,
    OFF_PREV,
    TIMES,
    U16,
    U64,
    ItemMemory,
)
from memcachepy.store.slabs import OFFSET_MASK, PAGE_SHIFT, SlabAllocator

# Relative exptimes up to 30 days; larger values are absolute Unix times.
REALTIME_MAXDELTA = 60 * 60 * 24 * 30
# An item's LRU position is refreshed at most this often (memcached's ITEM_UPDATE_INTERVAL).
ITEM_UPDATE_INTERVAL = 60
# How many items from an LRU tail are searched for an expired one before evicting.
TAIL_SEARCH = 5
_U64_MOD = 1 << 64


class StoreMode(IntEnum):
    SET = 0
    ADD = 1
    REPLACE = 2
    APPEND = 3
    PREPEND = 4
    CAS = 5


class StoreResult(IntEnum):
    STORED = 0
    NOT_STORED = 1
    EXISTS = 2
    NOT_FOUND = 3
    TOO_LARGE = 4
    NO_MEMORY = 5


class DeltaResult(IntEnum):
    OK = 0
    NOT_FOUND = 1
    NON_NUMERIC = 2
    NO_MEMORY = 3


@dataclass(frozen=True, slots=True)
class Framing:
    """How stored values are wrapped: ``prefix(key, flags, nbytes)`` before, ``suffix`` after.

    A read that asks for the CAS value gets ``cas_format % cas`` spliced into the prefix
    ``cas_at`` bytes before its end (for the text protocol: before the VALUE line's CRLF).
    """

    prefix: Callable[[bytes, int, int], bytes]
    suffix: bytes
    cas_at: int = 0
    cas_format: bytes = b"%d"


def _no_prefix(key: bytes, flags: int, nbytes: int) -> bytes:
    return b""


NO_FRAMING = Framing(_no_prefix, b"")


@dataclass(slots=True)
class ClassCounters:
    """Per slab class figures, named as memcached's ``stats items`` / ``stats slabs``."""

    evicted: int = 0
    evicted_nonzero: int = 0
    evicted_time: int = 0
    evicted_unfetched: int = 0
    outofmemory: int = 0
    reclaimed: int = 0
    expired_unfetched: int = 0
    get_hits: int = 0
    cmd_set: int = 0
    delete_hits: int = 0
    incr_hits: int = 0
    decr_hits: int = 0
    cas_hits: int = 0
    cas_badval: int = 0
    touch_hits: int = 0
    mem_requested: int = 0


@dataclass(slots=True)
class CacheCounters:
    """Whole-cache figures that are not per class."""

    total_items: int = 0
    get_expired: int = 0
    get_flushed: int = 0
    slabs_moved: int = 0
    classes: list[ClassCounters] = field(default_factory=list)

    def total(self, name: str) -> int:
        return sum(getattr(c, name) for c in self.classes)


def parse_stored_number(data: bytes | bytearray) -> int | None:
    """The unsigned number incr/decr see in a value (strtoull rules), or None if non-numeric."""
    text = bytes(data).lstrip(b" \t\n\v\f\r")
    if text[:1] == b"+":
        text = text[1:]
    digits = len(text) - len(text.lstrip(b"0123456789"))
    if digits == 0 or (digits < len(text) and text[digits] not in b" \t\n\v\f\r"):
        return None
    value = int(text[:digits])
    return value if value < _U64_MOD else None


class Cache:
    """A memcached-style cache: slab memory, per-class LRU, lazy expiry, 64-bit CAS."""

    def __init__(
        self,
        limit: int,
        *,
        growth_factor: float = 1.25,
        min_chunk: int = 48,
        item_size_max: int = 1 << 20,
        use_cas: bool = True,
        evict: bool = True,
        clock: Callable[[], float] = time.time,
        framing: Framing = NO_FRAMING,
    ) -> None:
        self.slabs = SlabAllocator(limit, growth_factor, min_chunk)
        self.items = ItemMemory(self.slabs)
        self.item_size_max = item_size_max
        self.use_cas = use_cas
        self.evict = evict
        self.framing = framing
        self._clock = clock
        # memcached's process_started: relative times count from here and are never 0.
        self.started = int(clock()) - ITEM_UPDATE_INTERVAL - 2
        self._index: dict[bytes, int] = {}
        self._cas = 0
        self._oldest_live = 0
        self._oldest_cas = 0
        self.bytes = 0
        self.counters = CacheCounters(classes=[ClassCounters() for _ in self.slabs.classes])

    # -- time -------------------------------------------------------------------------

    def now(self) -> int:
        """Seconds on the relative clock (memcached's current_time)."""
        return int(self._clock()) - self.started

    def realtime(self, exptime: int, now: int) -> int:
        """A client exptime on the relative clock: 0 never, else the second it expires."""
        if exptime < 0:
            exptime = REALTIME_MAXDELTA + 1
        if exptime == 0:
            return 0
        if exptime > REALTIME_MAXDELTA:
            return 1 if exptime <= self.started else exptime - self.started
        return exptime + now

    # -- sizes ---------------------------------------------------------------------------

    def item_total(self, nkey: int, flags: int, nbytes: int) -> int:
        """memcached's ITEM_ntotal for an item of this shape: what ``bytes`` counts."""
        total = HEADER_SIZE + nkey + 1 + (4 if flags else 0) + nbytes + 2
        return total + 8 if self.use_cas else total

    def item_fits(self, nkey: int, flags: int, nbytes: int) -> bool:
        """Whether memcached (same -I, same -C) would accept an item of this shape."""
        return self.item_total(nkey, flags, nbytes) <= self.item_size_max

    def __len__(self) -> int:
        return len(self._index)

    @property
    def curr_items(self) -> int:
        return len(self._index)

    # -- reads ----------------------------------------------------------------------------

    def collect(
        self,
        keys: list[bytes],
        out: list[bytes | bytearray],
        with_cas: bool = False,
        touch_exptime: int | None = None,
    ) -> int:
        """Append the framed value of every live key to ``out``; return how many hit.

        The multi-get hot path: what :meth:`get` and :meth:`wire` do, fused into one loop
        with one header unpack per hit. Values are copied out of slab memory, so a reply
        waiting to be sent never sees a later write to the same chunk.
        """
        now = self.now()
        index_get = self._index.get
        pages = self.slabs.pages
        page_class = self.slabs.page_class
        classes = self.counters.classes
        oldest = self._oldest_live
        flushing = bool(oldest) and oldest <= now
        stale_atime = now - ITEM_UPDATE_INTERVAL
        suffix_len = len(self.framing.suffix)
        cas_at = self.framing.cas_at
        cas_format = self.framing.cas_format
        exptime_rel = None if touch_exptime is None else self.realtime(touch_exptime, now)
        hits = 0
        for key in keys:
            cid = index_get(key)
            if cid is None:
                continue
            page = pages[cid >> PAGE_SHIFT]
            off = cid & OFFSET_MASK
            cas, exptime, atime, _, nbytes, nkey, iflags, plen, ncont = HOT.unpack_from(
                page, off + OFF_CAS
            )
            if (flushing and self._flushed(cas, atime)) or (exptime and exptime <= now):
                self._live(key, now)  # removes and counts it
                continue
            hits += 1
            if not iflags & FETCHED:
                page[off + OFF_IFLAGS] = iflags | FETCHED
            if atime < stale_atime:
                self.items.bump(cid, page_class[cid >> PAGE_SHIFT])
                I32.pack_into(page, off + OFF_ATIME, now)
            counters = classes[page_class[cid >> PAGE_SHIFT]]
            if exptime_rel is None:
                counters.get_hits += 1
            else:
                I32.pack_into(page, off + OFF_EXPTIME, exptime_rel)
                counters.touch_hits += 1
            start = off + HEADER_SIZE + nkey
            end = start + plen + nbytes + suffix_len
            if ncont:
                wire = self.items.read(cid, nkey, end - start)
                start, end, page = 0, end - start, wire  # type: ignore[assignment]
            if with_cas:
                split = start + plen - cas_at
                out.append(page[start:split])
                out.append(cas_format % cas)
                out.append(page[split:end])
            else:
                out.append(page[start:end])
        return hits

    def get(self, key: bytes, touch_exptime: int | None = None) -> int:
        """The live item for ``key`` (an id for :meth:`wire` and friends) or -1.

        A hit marks the item fetched and refreshes its LRU position; with
        ``touch_exptime`` it also takes that exptime (gat).
        """
        now = self.now()
        cid = self._live(key, now)
        if cid < 0:
            return -1
        page = self.slabs.pages[cid >> PAGE_SHIFT]
        off = cid & OFFSET_MASK
        page[off + OFF_IFLAGS] |= FETCHED
        self._update(cid, page, off, now)
        counters = self.counters.classes[self.slabs.page_class[cid >> PAGE_SHIFT]]
        if touch_exptime is None:
            counters.get_hits += 1
        else:
            I32.pack_into(page, off + OFF_EXPTIME, self.realtime(touch_exptime, now))
            counters.touch_hits += 1
        return cid

    def wire(self, cid: int) -> bytes | bytearray:
        """The framed value of an item: prefix, data, suffix."""
        page = self.slabs.pages[cid >> PAGE_SHIFT]
        off = cid & OFFSET_MASK
        _, _, _, _, _, _, nbytes, nkey, _, plen, ncont = HEADER.unpack_from(page, off)
        length = plen + nbytes + len(self.framing.suffix)
        if not ncont:
            start = off + HEADER_SIZE + nkey
            return page[start : start + length]
        return self.items.read(cid, nkey, length)

    def framing_prefix_len(self, cid: int) -> int:
        page = self.slabs.pages[cid >> PAGE_SHIFT]
        return int(U16.unpack_from(page, (cid & OFFSET_MASK) + OFF_PREFIX)[0])

    def cas_of(self, cid: int) -> int:
        page = self.slabs.pages[cid >> PAGE_SHIFT]
        return int(U64.unpack_from(page, (cid & OFFSET_MASK) + OFF_CAS)[0])

    def flags_of(self, cid: int) -> int:
        page = self.slabs.pages[cid >> PAGE_SHIFT]
        return int(I32.unpack_from(page, (cid & OFFSET_MASK) + OFF_FLAGS)[0]) & 0xFFFFFFFF

    def value(self, cid: int) -> bytes:
        """The data of an item, unframed."""
        page = self.slabs.pages[cid >> PAGE_SHIFT]
        _, _, _, _, _, _, nbytes, nkey, _, plen, _ = HEADER.unpack_from(page, cid & OFFSET_MASK)
        return bytes(self.items.read(cid, nkey + plen, nbytes))

    def key_of(self, cid: int) -> bytes:
        page = self.slabs.pages[cid >> PAGE_SHIFT]
        return bytes(self.items.read(cid, 0, page[(cid & OFFSET_MASK) + OFF_NKEY]))

    # -- writes ---------------------------------------------------------------------------

    def store(
        self,
        mode: StoreMode,
        key: bytes,
        flags: int,
        exptime: int,
        data: bytes,
        cas_unique: int = 0,
    ) -> StoreResult:
        """set/add/replace/append/prepend/cas, with memcached's do_store_item rules."""
        now = self.now()
        old = self._live(key, now)
        slabs = self.slabs
        if not self.item_fits(len(key), flags, len(data)):
            if mode == StoreMode.SET and old >= 0:
                self._remove(old)
            return StoreResult.TOO_LARGE
        if old >= 0:
            page = slabs.pages[old >> PAGE_SHIFT]
            off = old & OFFSET_MASK
            counters = self.counters.classes[slabs.page_class[old >> PAGE_SHIFT]]
            if mode == StoreMode.ADD:
                self._update(old, page, off, now)
                return StoreResult.NOT_STORED
            if mode == StoreMode.CAS:
                # A cas of 0, or CAS disabled (-C), never matches.
                if not self.use_cas or cas_unique == 0 or cas_unique != self.cas_of(old):
                    counters.cas_badval += 1
                    return StoreResult.EXISTS
                counters.cas_hits += 1
            rel_exptime = self.realtime(exptime, now)
            if mode == StoreMode.APPEND or mode == StoreMode.PREPEND:
                old_data = self.value(old)
                data = old_data + data if mode == StoreMode.APPEND else data + old_data
                flags = self.flags_of(old)
                rel_exptime = I32.unpack_from(page, off + OFF_EXPTIME)[0]
                if not self.item_fits(len(key), flags, len(data)):
                    return StoreResult.NOT_STORED
        else:
            if mode == StoreMode.CAS:
                return StoreResult.NOT_FOUND
            if mode != StoreMode.SET and mode != StoreMode.ADD:
                return StoreResult.NOT_STORED
            rel_exptime = self.realtime(exptime, now)
        is_set = mode == StoreMode.SET
        cid = self._write(key, flags, rel_exptime, data, now, replace_on_failure=is_set)
        if cid < 0:
            return (
                StoreResult.NOT_STORED
                if mode in (StoreMode.APPEND, StoreMode.PREPEND)
                else StoreResult.NO_MEMORY
            )
        self.counters.classes[slabs.page_class[cid >> PAGE_SHIFT]].cmd_set += 1
        return StoreResult.STORED

    def delete(self, key: bytes) -> bool:
        cid = self._live(key, self.now())
        if cid < 0:
            return False
        self.counters.classes[self.slabs.page_class[cid >> PAGE_SHIFT]].delete_hits += 1
        self._remove(cid)
        return True

    def touch(self, key: bytes, exptime: int) -> bool:
        return self.get(key, touch_exptime=exptime) >= 0

    def incr_decr(self, key: bytes, incr: bool, delta: int) -> tuple[DeltaResult, int]:
        """incr (wraps at 2**64) or decr (stops at 0); the new value on success."""
        now = self.now()
        cid = self._live(key, now)
        if cid < 0:
            return DeltaResult.NOT_FOUND, 0
        page = self.slabs.pages[cid >> PAGE_SHIFT]
        off = cid & OFFSET_MASK
        _, _, _, exptime, _, flags, nbytes, nkey, _, plen, ncont = HEADER.unpack_from(page, off)
        if nbytes == 0 or ncont:
            return DeltaResult.NON_NUMERIC, 0
        start = off + HEADER_SIZE + nkey + plen
        current = parse_stored_number(page[start : start + nbytes])
        if current is None:
            return DeltaResult.NON_NUMERIC, 0
        value = (current + delta) % _U64_MOD if incr else max(current - delta, 0)
        counters = self.counters.classes[self.slabs.page_class[cid >> PAGE_SHIFT]]
        if incr:
            counters.incr_hits += 1
        else:
            counters.decr_hits += 1
        digits = b"%d" % value
        if len(digits) <= nbytes:
            # memcached rewrites in place and pads with spaces, keeping the length.
            page[start : start + nbytes] = digits.ljust(nbytes, b" ")
            U64.pack_into(page, off + OFF_CAS, self._next_cas())
            self._update(cid, page, off, now)
            return DeltaResult.OK, value
        if self._write(key, flags & 0xFFFFFFFF, exptime, digits, now, replace_on_failure=False) < 0:
            return DeltaResult.NO_MEMORY, 0
        return DeltaResult.OK, value

    def flush_all(self, delay: int = 0) -> None:
        """Invalidate every item now, or at ``delay`` (an exptime), as memcached does."""
        now = self.now()
        new_oldest = self.realtime(delay, now) if delay > 0 else now
        if self.use_cas:
            self._oldest_live = new_oldest - 1
            if self._oldest_live <= now:
                self._oldest_cas = self._next_cas()
        else:
            self._oldest_live = new_oldest

    def set_limit(self, limit: int) -> None:
        """Change the memory limit; the cache grows into a larger one (pages are not shrunk)."""
        self.slabs.set_limit(limit)

    # -- internals ----------------------------------------------------------------------

    def _next_cas(self) -> int:
        if not self.use_cas:
            return 0
        self._cas += 1
        return self._cas

    def _live(self, key: bytes, now: int) -> int:
        """The item for ``key`` unless absent, expired or flushed (those are removed here)."""
        cid = self._index.get(key)
        if cid is None:
            return -1
        page = self.slabs.pages[cid >> PAGE_SHIFT]
        cas, exptime, atime = TIMES.unpack_from(page, (cid & OFFSET_MASK) + OFF_CAS)
        oldest = self._oldest_live
        if oldest and oldest <= now and (
            atime <= oldest or (self._oldest_cas and cas and cas < self._oldest_cas)
        ):
            self._remove(cid)
            self.counters.get_flushed += 1
            return -1
        if exptime and exptime <= now:
            self._remove(cid)
            self.counters.get_expired += 1
            return -1
        return cid

    def _flushed(self, cas: int, atime: int) -> bool:
        """Whether flush_all invalidated an item (only asked once oldest_live has passed)."""
        return atime <= self._oldest_live or bool(
            self._oldest_cas and cas and cas < self._oldest_cas
        )

    def _is_dead(self, cid: int, now: int) -> bool:
        page = self.slabs.pages[cid >> PAGE_SHIFT]
        cas, exptime, atime = TIMES.unpack_from(page, (cid & OFFSET_MASK) + OFF_CAS)
        oldest = self._oldest_live
        if oldest and oldest <= now and (
            atime <= oldest or (self._oldest_cas and cas and cas < self._oldest_cas)
        ):
            return True
        return bool(exptime and exptime <= now)

    def _update(self, cid: int, page: bytearray, off: int, now: int) -> None:
        """memcached's do_item_update: refresh LRU position at most once a minute."""
        if I32.unpack_from(page, off + OFF_ATIME)[0] < now - ITEM_UPDATE_INTERVAL:
            self.items.bump(cid, self.slabs.page_class[cid >> PAGE_SHIFT])
            I32.pack_into(page, off + OFF_ATIME, now)

    def _write(
        self, key: bytes, flags: int, rel_exptime: int, data: bytes, now: int,
        replace_on_failure: bool,
    ) -> int:
        """Allocate and link a new item for ``key``, replacing any old one; -1 if no memory."""
        prefix = self.framing.prefix(key, flags, len(data))
        suffix = self.framing.suffix
        stream_len = len(key) + len(prefix) + len(data) + len(suffix)
        class_id, ncont = self.items.plan(stream_len)
        chunks = self._alloc(class_id, 1 + ncont, now)
        old = self._index.get(key)
        if chunks is None:
            self.counters.classes[class_id].outofmemory += 1
            if replace_on_failure and old is not None:
                self._remove(old)  # memcached drops the old value when a set fails
            return -1
        if old is not None:
            self._remove(old)
        head = chunks[0]
        cas = self._next_cas()
        header = (-1, -1, cas, rel_exptime, now, flags, len(data), len(key), LINKED,
                  len(prefix), ncont)
        self.items.write(head, chunks[1:], (key, prefix, data, suffix), header)
        self.items.link(head, class_id)
        self._index[key] = head
        size = self.item_total(len(key), flags, len(data))
        self.bytes += size
        self.counters.total_items += 1
        self.counters.classes[class_id].mem_requested += size
        return head

    def _remove(self, cid: int) -> None:
        """Unlink an item: index, LRU, chunks, accounting."""
        slabs = self.slabs
        page = slabs.pages[cid >> PAGE_SHIFT]
        off = cid & OFFSET_MASK
        _, _, _, _, _, _, nbytes, nkey, _, plen, ncont = HEADER.unpack_from(page, off)
        del self._index[bytes(self.items.read(cid, 0, nkey))]
        class_id = slabs.page_class[cid >> PAGE_SHIFT]
        self.items.unlink(cid, class_id)
        conts = self.items.continuations(cid) if ncont else []
        for chunk in (cid, *conts):
            slabs.pages[chunk >> PAGE_SHIFT][(chunk & OFFSET_MASK) + OFF_IFLAGS] = 0
            slabs.free(chunk, class_id)
        flags = I32.unpack_from(page, off + OFF_FLAGS)[0]
        size = self.item_total(nkey, flags, nbytes)
        self.bytes -= size
        self.counters.classes[class_id].mem_requested -= size

    def _alloc(self, class_id: int, count: int, now: int) -> list[int] | None:
        """``count`` chunks of ``class_id``, reclaiming or evicting as memcached does."""
        slabs = self.slabs
        got: list[int] = []
        while len(got) < count:
            cid = slabs.alloc(class_id)
            if cid >= 0:
                got.append(cid)
                continue
            if self._pull_tail(class_id, now):
                continue
            if self.evict and self.items.counts[class_id] == 0 and self._move_page_to(class_id):
                continue
            for chunk in got:
                slabs.free(chunk, class_id)
            return None
        return got

    def _pull_tail(self, class_id: int, now: int) -> bool:
        """Free one item of the class: an expired one near the tail, else evict the tail."""
        items = self.items
        cid = items.tails[class_id]
        counters = self.counters.classes[class_id]
        for _ in range(TAIL_SEARCH):
            if cid < 0:
                break
            if self._is_dead(cid, now):
                counters.reclaimed += 1
                if not self._fetched(cid):
                    counters.expired_unfetched += 1
                self._remove(cid)
                return True
            cid = items.toward_head(cid)
        tail = items.tails[class_id]
        if tail < 0 or not self.evict:
            return False
        self._evict(tail, now)
        return True

    def _evict(self, cid: int, now: int) -> None:
        page = self.slabs.pages[cid >> PAGE_SHIFT]
        off = cid & OFFSET_MASK
        counters = self.counters.classes[self.slabs.page_class[cid >> PAGE_SHIFT]]
        counters.evicted += 1
        counters.evicted_time = now - I32.unpack_from(page, off + OFF_ATIME)[0]
        if I32.unpack_from(page, off + OFF_EXPTIME)[0] != 0:
            counters.evicted_nonzero += 1
        if not self._fetched(cid):
            counters.evicted_unfetched += 1
        self._remove(cid)

    def _fetched(self, cid: int) -> bool:
        page = self.slabs.pages[cid >> PAGE_SHIFT]
        return bool(page[(cid & OFFSET_MASK) + OFF_IFLAGS] & FETCHED)

    def _move_page_to(self, class_id: int) -> bool:
        """Give a starving class (no items, no free memory) a page taken from the largest class.

        The items on that page are evicted first. memcached avoids this case by
        granting every class its first page beyond the limit; moving a page keeps
        the hard memory cap instead.
        """
        slabs = self.slabs
        donors = [c for c in slabs.classes if c.id != class_id and c.pages]
        if not donors:
            return False
        donor = max(donors, key=lambda c: len(c.pages))
        number = donor.pages[-1]
        now = self.now()
        for chunk in slabs.chunks_of_page(number):
            page = slabs.pages[chunk >> PAGE_SHIFT]
            off = chunk & OFFSET_MASK
            iflags = page[off + OFF_IFLAGS]
            if not iflags & LINKED:
                continue
            head = chunk
            if iflags & CONTINUATION:
                head = int(I64.unpack_from(page, off + OFF_PREV)[0])
                hpage = slabs.pages[head >> PAGE_SHIFT]
                if not hpage[(head & OFFSET_MASK) + OFF_IFLAGS] & LINKED:
                    continue
            self._evict(head, now)
        slabs.take_page(number)
        slabs.give_page(number, class_id)
        self.counters.slabs_moved += 1
        return True

    # -- introspection for stats --------------------------------------------------------------

    @property
    def oldest_live(self) -> int:
        """The flush horizon on the relative clock (0: no flush_all yet)."""
        return self._oldest_live

    def reset_counters(self) -> None:
        """``stats reset``: zero the history counters; what describes the present stays."""
        for counters in self.counters.classes:
            mem_requested = counters.mem_requested
            for name in counters.__slots__:
                setattr(counters, name, 0)
            counters.mem_requested = mem_requested
        self.counters.total_items = 0
        self.counters.get_expired = 0
        self.counters.get_flushed = 0

    def class_item_counts(self) -> list[int]:
        return list(self.items.counts)

    def oldest_age(self, class_id: int) -> int:
        """Seconds since the LRU tail of a class was last used (``stats items`` age)."""
        tail = self.items.tails[class_id]
        if tail < 0:
            return 0
        page = self.slabs.pages[tail >> PAGE_SHIFT]
        return self.now() - int(I32.unpack_from(page, (tail & OFFSET_MASK) + OFF_ATIME)[0])

    def dump_class(self, class_id: int, limit: int) -> list[tuple[bytes, int, int]]:
        """(key, data length, absolute exptime or 0) from the LRU head; ``limit`` 0 = all."""
        if not 0 < class_id < len(self.slabs.classes):
            return []
        rows: list[tuple[bytes, int, int]] = []
        cid = self.items.heads[class_id]
        while cid >= 0 and (limit == 0 or len(rows) < limit):
            page = self.slabs.pages[cid >> PAGE_SHIFT]
            off = cid & OFFSET_MASK
            _, nxt, _, exptime, _, _, nbytes, _, _, _, _ = HEADER.unpack_from(page, off)
            rows.append((self.key_of(cid), nbytes, exptime + self.started if exptime else 0))
            cid = nxt
        return rows
