"""Cache operations over slab memory, returning result values as memcached's items.c does.

The cache knows nothing of any wire protocol. Callers may give it a
:class:`Framing` so that each item is stored already wrapped the way a reply
sends it (for the text protocol ``VALUE <key> <flags> <bytes>\\r\\n`` ...
``\\r\\n``): a cache hit is then one slice of slab memory.
"""

from __future__ import annotations

import logging
import time
import zlib
from collections.abc import Callable
from dataclasses import fields
from enum import IntEnum
from typing import Final, NamedTuple

from librt.vecs import vec
from mypy_extensions import i64

from memcachepy.store.counters import CacheCounters, ClassCounters
from memcachepy.store.crawler import Crawler, CrawlResult, MetadumpRow
from memcachepy.store.ext_config import ExtConfig
from memcachepy.store.extstore import ExtStore, FlashOutOfMemory
from memcachepy.store.framing import NO_FRAMING, Framing
from memcachepy.store.index import DEFAULT_HASHPOWER, NARROW_LIMIT, KeyIndex
from memcachepy.store.items import (
    ACTIVE,
    EXT,
    FETCHED,
    HEADER,
    HEADER_SIZE,
    HOT_LRU,
    I32,
    KEY_BINARY,
    LINKED,
    OFF_ATIME,
    OFF_CAS,
    OFF_EXPTIME,
    OFF_FLAGS,
    OFF_IFLAGS,
    OFF_LRU,
    OFF_NCONT,
    OFF_NKEY,
    OFF_PREFIX,
    PACK_I32,
    SEG_COLD,
    SEG_HOT,
    SEG_MASK,
    SEG_SHIFT,
    SEG_TEMP,
    SEG_WARM,
    STALE,
    TIMES,
    U16,
    U64,
    UNPACK_HOT_LRU,
    WIN_SENT,
    HotFields,
    HotKeyFields,
    ItemMemory,
)
from memcachepy.store.lru import LruMaintainer
from memcachepy.store.persist import Layout, MemoryFile, SavedState, restore_items
from memcachepy.store.rebalance import ReassignResult, Rebalancer
from memcachepy.store.slabs import OFFSET_MASK, PAGE_SHIFT, Page, SlabAllocator
from memcachepy.store.tuning import StoreTuning

log = logging.getLogger("memcachepy.store")

# Relative exptimes up to 30 days; larger values are absolute Unix times.
REALTIME_MAXDELTA: Final = 60 * 60 * 24 * 30
# An item's LRU position is refreshed at most this often (memcached's ITEM_UPDATE_INTERVAL).
ITEM_UPDATE_INTERVAL: Final = 60
# How many items from an LRU tail are searched for an expired one before evicting.
TAIL_SEARCH = 5
# Tail pulls an allocation may make per chunk it needs before it answers out of memory.
ALLOC_TRIES = 64
# The version of the item layout, part of what a memory file must match.
ITEM_LAYOUT_VERSION = 2
_U64_MOD: Final = 1 << 64


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
    """A memcached-style cache: slab memory, segmented LRU per class, expiry, 64-bit CAS.

    Background work is exposed as bounded steps for the server to run between requests:
    :meth:`maintain_lru`, :meth:`crawl_step`, :meth:`rebalance_step` and
    :meth:`automove_tick`. With ``memory_file`` the slab pages live in that file and
    :meth:`save` (on a graceful stop) lets the next start with the same settings restore
    every item.
    """

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
        tuning: StoreTuning | None = None,
        memory_file: str | None = None,
        ext: ExtConfig | None = None,
    ) -> None:
        self.item_size_max = item_size_max
        self.use_cas = use_cas
        self.evict = evict
        self.framing = framing
        # The last framing prefix made, and the shape it was made for (see _prefix).
        self._prefix_flags = -1
        self._prefix_nbytes = -1
        self._prefix_last = b""
        self._wire_shape = (len(framing.suffix), framing.cas_at, framing.cas_format,
                            framing.lead)
        self.tuning = tuning if tuning is not None else StoreTuning()
        self._clock = clock
        #: Told (key, item, class id) of each eviction before it happens; set while a client
        #: runs ``watch evictions`` (memcachepy.server.watch), None otherwise.
        self.on_evict: Callable[[bytes, MetaItem, int], None] | None = None
        self._memory: MemoryFile | None = None
        if memory_file is not None:
            layout = Layout(limit, growth_factor, min_chunk, item_size_max, use_cas,
                            self._layout_tag())
            self._memory = MemoryFile(memory_file, layout)
        self.lru = LruMaintainer(self)
        self.crawler = Crawler(self)
        self.rebalancer = Rebalancer(self)
        restored = self._memory.restored if self._memory is not None else None
        # A warm restart keeps the index's size, as memcached's restores its hashpower.
        self._hashpower = (restored.hashpower if restored is not None and restored.hashpower
                           else self.tuning.hashpower_init or DEFAULT_HASHPOWER)
        self._empty(limit, growth_factor, min_chunk)
        if self._memory is not None:
            if self._memory.restored is not None:
                try:
                    restore_items(self, self._memory.restored)
                except ValueError as exc:
                    log.warning("[restart] memory file content is inconsistent (%s): "
                                "starting with a clean cache", exc)
                    self._memory.wipe()
                    self._empty(limit, growth_factor, min_chunk)
            self._memory.mark_in_use()
        # The flash tier (-o ext_path=...): None without it, so a get pays one test.
        self.ext: ExtStore | None = None
        # The value the last get() read back from flash, for value() to hand out.
        self._flash_value: tuple[int, bytes] | None = None
        if ext is not None and ext.enabled:
            self.ext = ExtStore(self, ext)
            self.slabs.prefill_pool()

    def _empty(self, limit: int, growth_factor: float, min_chunk: int) -> None:
        """An empty cache: no pages, no items, the clock starting now."""
        page_source = self._memory.page if self._memory is not None else None
        self.slabs = SlabAllocator(limit, growth_factor, min_chunk, page_source,
                                   self.tuning.slab_chunk_max, self.tuning.slab_sizes)
        self.items = ItemMemory(self.slabs)
        # memcached's process_started: relative times count from here and are never 0.
        self.started = int(self._clock()) - ITEM_UPDATE_INTERVAL - 2
        self._index = KeyIndex(self.slabs.pages, self._hashpower, limit)
        self._index.expand = self.tuning.hash_expand
        self._cas = 0
        self._oldest_live = 0
        self._oldest_cas = 0
        self.bytes = 0
        # Get hits per LRU id (class | segment << SEG_SHIFT): stats items' hits_to_*.
        self.lru_hits = vec[i64]([0] * len(self.items.heads))
        self.counters = CacheCounters(classes=[
            ClassCounters(lru_hits=self.lru_hits, class_id=cls.id) for cls in self.slabs.classes
        ])
        # What every collect reads, fetched in one load (these lists only change in place).
        self._collect_tables = (self.slabs.pages, self.slabs.page_class,
                                self.counters.classes, self.lru_hits)
        # stats sizes: items per 32-byte size bucket, with -o track_sizes.
        self.sizes: list[int] | None = (
            [0] * (self.item_size_max // 32 + 2) if self.tuning.track_sizes else None
        )

    def _layout_tag(self) -> int:
        """What else shapes stored items: the layout version and the reply framing."""
        f = self.framing
        sample = f.prefix(1, 2) + f.suffix + f.cas_format + bytes([f.cas_at])
        return zlib.crc32(sample, ITEM_LAYOUT_VERSION)

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
        now = int(self._clock()) - self.started  # self.now(), inlined: every get's path
        # The index itself, not its bound .get: compiled, a method of a native class is a
        # direct C call, a bound method a Python call.
        index = self._index
        pages, page_class, classes, lru_hits = self._collect_tables
        suffix_len, cas_at, cas_format, lead = self._wire_shape
        oldest = self._oldest_live
        flushing = bool(oldest) and oldest <= now
        stale_atime = now - ITEM_UPDATE_INTERVAL
        exptime_rel = None if touch_exptime is None else self.realtime(touch_exptime, now)
        segmented = self.tuning.lru_segmented
        flash = self.ext is not None
        hits = 0
        for key in keys:
            # The item and its header, read while checking the key. Typed: compiled, the
            # fields are C ints from here on, not objects.
            found: tuple[int, HotKeyFields] = index.lookup(key)
            cid, header = found
            if cid < 0:
                continue
            page = pages[cid >> PAGE_SHIFT]
            off = cid & OFFSET_MASK
            exptime, nbytes, nkey, iflags, plen, ncont, lru, _ = header
            if (exptime and exptime <= now) or (flushing and self.is_dead(cid, now)):
                self._live(key, now)  # removes and counts it
                continue
            hits += 1
            # EXT (64), the highest item flag, is set: the value is on flash. Without the
            # tier the test is one local bool; with it, a compare with a literal (CPython
            # specializes it, where `&` takes the generic path).
            if flash and iflags >= 64:
                self._collect_flash(cid, page, off, out, with_cas, exptime_rel, now)
                continue
            class_id = page_class[cid >> PAGE_SHIFT]
            if segmented:
                # memcached's do_item_bump: the first hit sets FETCHED, the next ACTIVE;
                # an ACTIVE item costs nothing more, the maintainer moves it later.
                if not lru & 4:  # ACTIVE
                    if not iflags & FETCHED:
                        page[off + OFF_IFLAGS] = iflags | FETCHED
                    else:
                        self._activate(cid, page, off, class_id, lru, now)
            else:
                if not iflags & FETCHED:
                    page[off + OFF_IFLAGS] = iflags | FETCHED
                if I32.unpack_from(page, off + OFF_ATIME)[0] < stale_atime:
                    self.items.bump(cid, class_id)
                    I32.pack_into(page, off + OFF_ATIME, now)
            if exptime_rel is None:
                slot = class_id | (lru & 3) << 6  # get_hits, per segment
                lru_hits[slot] = lru_hits[slot] + 1  # not +=: compiled, that is generic
            else:
                I32.pack_into(page, off + OFF_EXPTIME, exptime_rel)
                classes[class_id].touch_hits += 1
            if lead is None:
                start = off + HEADER_SIZE + nkey
                end = start + plen + nbytes + suffix_len
            else:
                out.append(lead)
                start = off + HEADER_SIZE
                end = start + nkey + plen + nbytes + suffix_len
            if ncont:  # a chunked item: its stream gathered from its chunks
                wire = self.items.read(cid, nkey if lead is None else 0, end - start)
                if with_cas:
                    split = len(wire) - nbytes - suffix_len - cas_at
                    out.append(wire[:split])
                    out.append(cas_format % self.cas_of(cid))
                    out.append(wire[split:])
                else:
                    out.append(wire)
            elif with_cas:
                cas = U64.unpack_from(page, off + OFF_CAS)[0]
                split = end - nbytes - suffix_len - cas_at
                out.append(page[start:split])
                out.append(cas_format % cas)
                out.append(page[split:end])
            else:
                out.append(page[start:end])
        return hits

    def get(self, key: bytes, touch_exptime: int | None = None, read_flash: bool = True) -> int:
        """The live item for ``key`` (an id for :meth:`wire` and friends) or -1.

        A hit marks the item fetched and refreshes its LRU position; with
        ``touch_exptime`` it also takes that exptime (gat). A value on flash is read back
        here (``read_flash``; a touch needs none): -1 if it cannot be.
        """
        now = self.now()
        cid = self._live(key, now)
        if cid < 0:
            return -1
        page = self.slabs.pages[cid >> PAGE_SHIFT]
        off = cid & OFFSET_MASK
        class_id = self.slabs.page_class[cid >> PAGE_SHIFT]
        if touch_exptime is None:
            self.lru_hits[class_id | (page[off + OFF_LRU] & SEG_MASK) << SEG_SHIFT] += 1
        self._bump(cid, page, off, now)
        counters = self.counters.classes[class_id]
        if touch_exptime is not None:
            I32.pack_into(page, off + OFF_EXPTIME, self.realtime(touch_exptime, now))
            counters.touch_hits += 1
        if page[off + OFF_IFLAGS] & EXT and read_flash:
            return self._get_flash(cid, now)
        return cid

    def wire(self, cid: int) -> bytes | bytearray:
        """The framed value of an item: prefix, data, suffix."""
        page = self.slabs.pages[cid >> PAGE_SHIFT]
        off = cid & OFFSET_MASK
        _, _, _, _, _, _, nbytes, nkey, _, plen, ncont = HEADER.unpack_from(page, off)
        lead = self.framing.lead
        flash = self._flash_value
        if flash is not None and flash[0] == cid:
            head = self.items.read(cid, 0 if lead is not None else nkey,
                                   plen + (nkey if lead is not None else 0))
            return (lead or b"") + head + flash[1] + self.framing.suffix
        length = plen + nbytes + len(self.framing.suffix)
        if lead is not None:  # the stored key is part of the reply
            return lead + self.items.read(cid, 0, nkey + length)
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
        flash = self._flash_value
        if flash is not None and flash[0] == cid:
            return flash[1]
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
        flat = not self.tuning.lru_segmented
        if flat:
            # memcached allocates the new item before it looks the key up, and a flat LRU
            # reclaims an expired or flushed COLD tail item at every allocation.
            self._reclaim_flat(self.items.plan(self.stream_len(len(key), flags, len(data)))[0], now)
        old = self._live(key, now)
        slabs = self.slabs
        if not self.item_fits(len(key), flags, len(data)):
            if mode == StoreMode.SET and old >= 0:
                self.remove(old)
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
                if page[off + OFF_IFLAGS] & EXT:
                    return StoreResult.NOT_STORED  # as memcached: not for items on flash
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
        cid = self._write(key, flags, rel_exptime, data, now, replace_on_failure=is_set,
                          reclaimed=flat)
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
        self.remove(cid)
        return True

    def touch(self, key: bytes, exptime: int) -> bool:
        return self.get(key, touch_exptime=exptime, read_flash=False) >= 0

    def incr_decr(self, key: bytes, incr: bool, delta: int) -> tuple[DeltaResult, int]:
        """incr (wraps at 2**64) or decr (stops at 0); the new value on success."""
        now = self.now()
        cid = self._live(key, now)
        if cid < 0:
            return DeltaResult.NOT_FOUND, 0
        page = self.slabs.pages[cid >> PAGE_SHIFT]
        off = cid & OFFSET_MASK
        _, _, _, exptime, _, flags, nbytes, nkey, iflags, plen, ncont = HEADER.unpack_from(
            page, off)
        if nbytes == 0 or ncont or iflags & EXT:
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
        self.crawler.due = min(self.crawler.due, self._oldest_live + 1)

    def set_limit(self, limit: int) -> bool:
        """Change the memory limit (``cache_memlimit``); False if it cannot change (``-e``).

        The cache grows into a larger limit at once. Under a smaller one the rebalancer
        empties pages in the background (:meth:`rebalance_step`), evicting what does not
        fit, and gives their memory back.
        """
        if self.slabs.fixed_memory:
            return False
        if limit >= NARROW_LIMIT:
            self._index.widen()
        self.slabs.set_limit(limit)
        return True

    # -- internals ----------------------------------------------------------------------

    def _next_cas(self) -> int:
        if not self.use_cas:
            return 0
        self._cas += 1
        return self._cas

    def _live(self, key: bytes, now: int) -> int:
        """The item for ``key`` unless absent, expired or flushed (those are removed here)."""
        index = self._index
        cid = index.find(key)
        if cid < 0:
            return -1
        header: HotKeyFields = index.found  # typed: compiled, C ints
        exptime = header[0]
        oldest = self._oldest_live
        if oldest and oldest <= now and self._flushed(cid):
            self.remove(cid)
            self.counters.get_flushed += 1
            return -1
        if exptime and exptime <= now:
            self.remove(cid)
            self.counters.get_expired += 1
            return -1
        return cid

    def is_flushed(self, cas: int, atime: int) -> bool:
        """Whether flush_all invalidated an item (only asked once oldest_live has passed)."""
        return atime <= self._oldest_live or bool(
            self._oldest_cas and cas and cas < self._oldest_cas
        )

    def _flushed(self, cid: int) -> bool:
        """:meth:`is_flushed` of an item, read from its header."""
        page = self.slabs.pages[cid >> PAGE_SHIFT]
        cas, _, atime = TIMES.unpack_from(page, (cid & OFFSET_MASK) + OFF_CAS)
        return self.is_flushed(cas, atime)

    def is_dead(self, cid: int, now: int) -> bool:
        page = self.slabs.pages[cid >> PAGE_SHIFT]
        cas, exptime, atime = TIMES.unpack_from(page, (cid & OFFSET_MASK) + OFF_CAS)
        oldest = self._oldest_live
        if oldest and oldest <= now and (
            atime <= oldest or (self._oldest_cas and cas and cas < self._oldest_cas)
        ):
            return True
        return bool(exptime and exptime <= now)

    def _update(self, cid: int, page: Page, off: int, now: int) -> None:
        """memcached's do_item_update (a write or touch kept the item).

        Segmented: the access time is refreshed, and an ACTIVE item in COLD goes to WARM.
        Flat: the item moves to the LRU head, at most once a minute.
        """
        if self.tuning.lru_segmented:
            I32.pack_into(page, off + OFF_ATIME, now)
            lru = page[off + OFF_LRU]
            if lru & SEG_MASK == SEG_COLD and lru & ACTIVE:
                page[off + OFF_LRU] = lru & ~ACTIVE
                class_id = self.slabs.page_class[cid >> PAGE_SHIFT]
                self.items.move(cid, class_id, SEG_WARM)
                self.counters.classes[class_id].moves_to_warm += 1
        elif I32.unpack_from(page, off + OFF_ATIME)[0] < now - ITEM_UPDATE_INTERVAL:
            self.items.bump(cid, self.slabs.page_class[cid >> PAGE_SHIFT])
            I32.pack_into(page, off + OFF_ATIME, now)

    def _bump(self, cid: int, page: Page, off: int, now: int) -> None:
        """memcached's do_item_bump: what a read hit does to an item's LRU state."""
        class_id = self.slabs.page_class[cid >> PAGE_SHIFT]
        lru = page[off + OFF_LRU]
        iflags = page[off + OFF_IFLAGS]
        if not self.tuning.lru_segmented:
            page[off + OFF_IFLAGS] = iflags | FETCHED
            self._update(cid, page, off, now)
        elif not lru & ACTIVE:
            if not iflags & FETCHED:
                page[off + OFF_IFLAGS] = iflags | FETCHED
            else:
                self._activate(cid, page, off, class_id, lru, now)

    def _activate(self, cid: int, page: Page, off: int, class_id: int, lru: int, now: int) -> None:
        """A second hit: ACTIVE, and the access time.

        As memcached, an item of COLD is queued for the maintainer to move to WARM (no
        list move on the read path); it moves only while WARM has room (:mod:`.lru`).
        """
        page[off + OFF_LRU] = lru | ACTIVE
        PACK_I32(page, off + OFF_ATIME, now)
        if lru & SEG_MASK == SEG_COLD and self.tuning.lru_maintainer:
            self.lru.bump_later(cid)

    def stream_len(self, nkey: int, flags: int, nbytes: int) -> int:
        """Bytes an item of this shape takes after its header (key, framing, value)."""
        return nkey + len(self._prefix(flags, nbytes)) + nbytes + len(self.framing.suffix)

    def _prefix(self, flags: int, nbytes: int) -> bytes:
        """The framing prefix for a value of this shape; the last one made is reused (a
        client's writes tend to repeat a shape, and the prefix is formatted text)."""
        if nbytes == self._prefix_nbytes and flags == self._prefix_flags:
            return self._prefix_last
        prefix = self.framing.prefix(flags, nbytes)
        self._prefix_flags = flags
        self._prefix_nbytes = nbytes
        self._prefix_last = prefix
        return prefix

    def _reclaim_flat(self, class_id: int, now: int) -> None:
        """memcached's flat LRU (do_item_alloc_pull): before any allocation, free memory
        or not, an expired or flushed item at the class's COLD tail is reclaimed."""
        self.lru.pull_tail(class_id, SEG_COLD, 0, 0, now, evict=False)

    def _write(
        self, key: bytes, flags: int, rel_exptime: int, data: bytes, now: int,
        replace_on_failure: bool, reclaimed: bool = False, prefix: bytes | None = None,
        iflags: int = LINKED,
    ) -> int:
        """Allocate and link a new item for ``key``, replacing any old one; -1 if no memory.

        ``reclaimed``: the caller made the flat LRU's tail reclaim already. ``prefix`` and
        ``iflags``: the flash tier's header items keep the framing of the value they
        stand for.
        """
        if prefix is None:
            prefix = self._prefix(flags, len(data))
        suffix = self.framing.suffix
        stream_len = len(key) + len(prefix) + len(data) + len(suffix)
        class_id, ncont = self.items.plan(stream_len)
        if not reclaimed and not self.tuning.lru_segmented:
            self._reclaim_flat(class_id, now)
        chunks = self._alloc(class_id, 1 + ncont, now)
        old = self._index.again(key)  # store() looked it up; _alloc may have evicted it
        if chunks is None:
            self.counters.classes[class_id].outofmemory += 1
            if replace_on_failure and old >= 0:
                self.remove(old)  # memcached drops the old value when a set fails
            return -1
        if old >= 0:
            self._release(old)  # its index entry is pointed at the new item below
        head = chunks[0]
        cas = self._next_cas()
        tuning = self.tuning
        seg = SEG_HOT if tuning.lru_segmented else SEG_COLD
        if rel_exptime:
            if tuning.temp_lru and rel_exptime - now <= tuning.temporary_ttl:
                seg = SEG_TEMP
            if rel_exptime < self.crawler.due:
                self.crawler.due = rel_exptime
        lru = class_id | seg << SEG_SHIFT
        items = self.items
        # The header's links are written only for a memory file (ItemMemory.links_to_headers).
        header = (-1, -1, cas, rel_exptime, now, flags, len(data), len(key),
                  iflags, len(prefix), ncont)
        items.write(head, chunks[1:], (key, prefix, data, suffix), header, seg)
        items.link_new(head, lru)
        if old >= 0:
            self._index.replace(key, old, head)
        else:
            self._index[key] = head
        size = self.item_total(len(key), flags, len(data))
        self.bytes += size
        self.counters.total_items += 1
        self.counters.classes[class_id].mem_requested += size
        if self.sizes is not None:
            self.sizes[(size + 31) // 32] += 1
        return head

    def remove(self, cid: int) -> None:
        """Unlink an item: index, LRU, chunks, accounting."""
        page = self.slabs.pages[cid >> PAGE_SHIFT]
        off = cid & OFFSET_MASK
        nkey: int = page[off + OFF_NKEY]
        if U16.unpack_from(page, off + OFF_NCONT)[0]:
            key = bytes(self.items.read(cid, 0, nkey))
        else:
            key = bytes(page[off + HEADER_SIZE : off + HEADER_SIZE + nkey])
        self._index.pop(key)
        self._release(cid)

    def _release(self, cid: int) -> None:
        """:meth:`remove` but for the index entry, which the caller points elsewhere."""
        slabs = self.slabs
        page = slabs.pages[cid >> PAGE_SHIFT]
        off = cid & OFFSET_MASK
        header: HotFields = UNPACK_HOT_LRU(page, off + OFF_CAS)  # typed: C ints
        flags, nbytes, nkey, iflags, ncont = header[3], header[4], header[5], header[6], header[8]
        if iflags & EXT and self.ext is not None:
            self.ext.forget(cid)
            self._flash_value = None  # the chunk may hold another item next
        class_id = slabs.page_class[cid >> PAGE_SHIFT]
        self.items.unlink(cid, class_id)
        conts = self.items.continuations(cid) if ncont else None  # read before the free
        page[off + OFF_IFLAGS] = 0
        slabs.free(cid, class_id)
        if conts is not None:
            for chunk in conts:
                slabs.pages[chunk >> PAGE_SHIFT][(chunk & OFFSET_MASK) + OFF_IFLAGS] = 0
                slabs.free(chunk, class_id)
        size = self.item_total(nkey, flags, nbytes)
        self.bytes -= size
        self.counters.classes[class_id].mem_requested -= size
        if self.sizes is not None:
            self.sizes[(size + 31) // 32] -= 1

    def _alloc(self, class_id: int, count: int, now: int,
               move_pages: bool = True) -> list[int] | None:
        """``count`` chunks of ``class_id``, reclaiming or evicting as memcached does."""
        slabs = self.slabs
        got: list[int] = []
        pulls = 0
        while len(got) < count:
            cid = slabs.alloc(class_id)
            if cid >= 0:
                got.append(cid)
                continue
            pulls += 1
            if pulls <= ALLOC_TRIES * count and self._pull_tail(class_id, now):
                continue
            if (move_pages and self.evict and self.items.counts[class_id] == 0
                    and self._move_page_to(class_id)):
                continue
            for chunk in got:
                slabs.free(chunk, class_id)
            got = []
            break
        if pulls:
            self.counters.classes[class_id].direct_reclaims += pulls
        return got or None

    def _pull_tail(self, class_id: int, now: int) -> bool:
        """One step of making room in a full class: reclaim an expired item at a tail,
        push HOT/WARM items down to COLD, or evict the COLD tail (see :mod:`.lru`). With
        the flash tier, the COLD tail is written out instead while flash takes it."""
        if self.ext is not None and self.ext.make_room(class_id, now):
            return True
        return self.lru.free_one(class_id, now)

    def evict_item(self, cid: int, now: int) -> None:
        page = self.slabs.pages[cid >> PAGE_SHIFT]
        off = cid & OFFSET_MASK
        if self.on_evict is not None:  # a client runs `watch evictions`
            self.on_evict(self.key_of(cid), self._meta_item(cid),
                          self.slabs.page_class[cid >> PAGE_SHIFT])
        counters = self.counters.classes[self.slabs.page_class[cid >> PAGE_SHIFT]]
        counters.evicted += 1
        counters.evicted_time = now - I32.unpack_from(page, off + OFF_ATIME)[0]
        if I32.unpack_from(page, off + OFF_EXPTIME)[0] != 0:
            counters.evicted_nonzero += 1
        if not self._fetched(cid):
            counters.evicted_unfetched += 1
        self.remove(cid)

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
        self.rebalancer.finish_now()  # a page half emptied must not be taken from under it
        donors = [c for c in slabs.classes if c.id != class_id and c.pages]
        if not donors:
            return False
        donor = max(donors, key=lambda c: len(c.pages))
        number = donor.pages[-1]
        now = self.now()
        for chunk in slabs.chunks_of_page(number):
            head = self.items.head_of(chunk)
            if head >= 0:
                self.evict_item(head, now)
        slabs.take_page(number)
        slabs.give_page(number, class_id)
        self.counters.slabs_moved += 1
        return True

    # -- reads for the binary protocol ---------------------------------------------------------

    def peek(self, key: bytes) -> tuple[int, int, bool] | None:
        """(cas, data length, chunked) of the live item for ``key``, or None.

        memcached's item_get with DONT_UPDATE, which the binary protocol uses to check a
        CAS before deleting, appending or counting: an expired or flushed item is removed
        and counted as usual, but a live one keeps its LRU position and hit counters.
        """
        cid = self._live(key, self.now())
        if cid < 0:
            return None
        page = self.slabs.pages[cid >> PAGE_SHIFT]
        _, _, cas, _, _, _, nbytes, _, _, _, ncont = HEADER.unpack_from(page, cid & OFFSET_MASK)
        return int(cas), int(nbytes), bool(ncont)

    # -- meta support ---------------------------------------------------------------------
    # What memcached's meta commands need beyond the classic operations: items marked
    # stale (md I, ms I), the recache win token (mg N/R: WIN_SENT), keys that arrived
    # base64-encoded (KEY_BINARY), and reads that report an item's last access and
    # hit-before state as they were before the request (the bump comes last). The classic
    # operations ignore these item flags: a new item starts without them.

    def lookup_state(self, key: bytes) -> tuple[int, int, int]:
        """What memcached's do_item_get would meet for ``key``, changing nothing:
        (0 not found, 1 found, 2 flushed, 3 expired; the class; the value length).

        ``watch fetchers`` logs it for the lookup every store, delete and incr/decr makes
        first. The class and length are those of a found item only, as memcached's log.
        """
        cid = self._index.get(key)
        if cid < 0:
            return 0, 0, 0
        page = self.slabs.pages[cid >> PAGE_SHIFT]
        off = cid & OFFSET_MASK
        cas, exptime, atime = TIMES.unpack_from(page, off + OFF_CAS)
        now = self.now()
        oldest = self._oldest_live
        if oldest and oldest <= now and self.is_flushed(cas, atime):
            return 2, 0, 0
        if exptime and exptime <= now:
            return 3, 0, 0
        _, _, _, _, _, _, nbytes, _, _, _, _ = HEADER.unpack_from(page, off)
        return 1, self.slabs.page_class[cid >> PAGE_SHIFT], int(nbytes)

    def meta_find(self, key: bytes) -> MetaItem | None:
        """The live item for ``key`` without bumping or counting it (memcached's locked get)."""
        cid = self._live(key, self.now())
        if cid >= 0 and self.ext is not None:
            cid = self.ext.unflash(cid, self.now())  # meta works on values in memory
        return None if cid < 0 else self._meta_item(cid)

    def meta_create(self, key: bytes, data: bytes = b"") -> MetaItem | None:
        """Link a new item (flags 0, no expiry) for a key that missed: mg N, ma N.

        None if memory is short. Unlike :meth:`store` it counts no set.
        """
        cid = self._write(key, 0, 0, data, self.now(), replace_on_failure=False)
        return None if cid < 0 else self._meta_item(cid)

    def meta_touch(self, cid: int, exptime: int) -> int:
        """Give a linked item a client exptime (``cid`` -1: none); the relative exptime."""
        rel_exptime = self.realtime(exptime, self.now())
        if cid >= 0:
            page = self.slabs.pages[cid >> PAGE_SHIFT]
            I32.pack_into(page, (cid & OFFSET_MASK) + OFF_EXPTIME, rel_exptime)
        return rel_exptime

    def meta_ttl(self, rel_exptime: int) -> int:
        """Seconds left before a relative exptime as memcached reports them (-1: never).

        An exptime already past wraps as an unsigned 32-bit number, as memcached's does.
        """
        if rel_exptime == 0:
            return -1
        return (rel_exptime - self.now()) & 0xFFFFFFFF

    def meta_recache_due(self, cid: int, exptime: int) -> bool:
        """mg R: no win token sent yet and the item expires before the client exptime."""
        page = self.slabs.pages[cid >> PAGE_SHIFT]
        off = cid & OFFSET_MASK
        if page[off + OFF_IFLAGS] & WIN_SENT:
            return False
        rel_exptime = int(I32.unpack_from(page, off + OFF_EXPTIME)[0])
        return rel_exptime != 0 and rel_exptime < self.realtime(exptime, self.now())

    def meta_claim(self, cid: int, win: bool) -> tuple[bool, bool, bool]:
        """Settle the recache token after a read: (won, stale, token already sent).

        A stale item whose token nobody holds yet is won by this reader; a win marks the
        token sent, so the next reader learns that someone else is recaching.
        """
        page = self.slabs.pages[cid >> PAGE_SHIFT]
        off = cid & OFFSET_MASK
        iflags = page[off + OFF_IFLAGS]
        sent = bool(iflags & WIN_SENT)
        stale = bool(iflags & STALE)
        won = win or (stale and not sent)
        if won:
            page[off + OFF_IFLAGS] = iflags | WIN_SENT
        return won, stale, sent

    def meta_hit(self, cid: int, bump: bool, touched: bool) -> None:
        """Count a meta read hit (as a touch if its TTL was set); with ``bump`` do what a
        get's hit does to the item (fetched, LRU state), after the reply read the old state."""
        page = self.slabs.pages[cid >> PAGE_SHIFT]
        off = cid & OFFSET_MASK
        counters = self.counters.classes[self.slabs.page_class[cid >> PAGE_SHIFT]]
        if touched:
            counters.touch_hits += 1
        else:
            counters.get_hits += 1
        if bump:
            self._bump(cid, page, off, self.now())

    def meta_value(self, cid: int) -> bytes | bytearray:
        """An item's data, unframed (a copy: later writes to the chunk do not show)."""
        page = self.slabs.pages[cid >> PAGE_SHIFT]
        off = cid & OFFSET_MASK
        header: HotFields = HOT_LRU.unpack_from(page, off + OFF_CAS)  # typed: C ints
        nbytes, nkey, plen, ncont = header[4], header[5], header[7], header[8]
        if ncont:
            return self.items.read(cid, nkey + plen, nbytes)
        start = off + HEADER_SIZE + nkey + plen
        return page[start : start + nbytes]

    def meta_store(
        self,
        mode: StoreMode,
        key: bytes,
        flags: int,
        exptime: int,
        data: bytes,
        cas_unique: int | None = None,
        *,
        invalidate: bool = False,
        binary_key: bool = False,
    ) -> tuple[StoreResult, int]:
        """ms: :meth:`store` with the meta rules; (result, the new item's CAS or 0).

        A CAS (even 0) turns set and replace into cas; a non-zero one must also match for
        append and prepend (EXISTS otherwise), and is ignored by add. With ``invalidate``
        a cas older than the item's still stores, but the new value is marked stale and
        keeps the old exptime and win token (memcached's CAS_STALE).
        """
        if cas_unique is not None and mode in (StoreMode.SET, StoreMode.REPLACE):
            mode = StoreMode.CAS
        now = self.now()
        old = self._live(key, now)
        if old >= 0 and cas_unique and self.use_cas:
            old_cas = self.cas_of(old)
            if mode in (StoreMode.APPEND, StoreMode.PREPEND) and cas_unique != old_cas:
                return StoreResult.EXISTS, 0
            if mode == StoreMode.CAS and invalidate and cas_unique < old_cas:
                return self._meta_store_stale(old, key, flags, data, now)
        result = self.store(mode, key, flags, exptime, data, cas_unique or 0)
        if result != StoreResult.STORED:
            return result, 0
        cid = self._index[key]
        if binary_key and mode not in (StoreMode.APPEND, StoreMode.PREPEND):
            self.slabs.pages[cid >> PAGE_SHIFT][(cid & OFFSET_MASK) + OFF_IFLAGS] |= KEY_BINARY
        return result, self.cas_of(cid)

    def meta_delete(
        self, key: bytes, cas_unique: int | None = None, invalidate: bool = False,
        exptime: int | None = None,
    ) -> MetaResult:
        """md: delete, or with ``invalidate`` mark stale (new CAS, token free again, and
        ``exptime`` if given). A given CAS must match (EXISTS otherwise)."""
        cid = self._live(key, self.now())
        if cid < 0:
            return MetaResult.NOT_FOUND
        if cas_unique is not None and cas_unique != self.cas_of(cid):
            return MetaResult.EXISTS
        page = self.slabs.pages[cid >> PAGE_SHIFT]
        off = cid & OFFSET_MASK
        if not invalidate:
            self.counters.classes[self.slabs.page_class[cid >> PAGE_SHIFT]].delete_hits += 1
            self.remove(cid)
            return MetaResult.DONE
        if exptime is not None:
            self.meta_touch(cid, exptime)
        page[off + OFF_IFLAGS] = (page[off + OFF_IFLAGS] | STALE) & ~WIN_SENT
        U64.pack_into(page, off + OFF_CAS, self._next_cas())
        return MetaResult.DONE

    def meta_incr_decr(
        self, key: bytes, incr: bool, delta: int, cas_unique: int = 0
    ) -> tuple[MetaResult, int, MetaItem | None, bool]:
        """ma: :meth:`incr_decr` gated by a CAS (0: none).

        Returns (result, new value, the item now holding it, whether that is a new item:
        a longer number does not fit in place).
        """
        cid = self._live(key, self.now())
        if cid < 0:
            return MetaResult.NOT_FOUND, 0, None, False
        page = self.slabs.pages[cid >> PAGE_SHIFT]
        _, _, cas, _, _, _, nbytes, _, _, _, ncont = HEADER.unpack_from(page, cid & OFFSET_MASK)
        # memcached checks an empty or chunked value before the CAS, the number after it.
        if cas_unique and nbytes and not ncont and cas != cas_unique:
            return MetaResult.EXISTS, 0, None, False
        result, value = self.incr_decr(key, incr, delta)
        if result != DeltaResult.OK:
            return _META_DELTA[result], 0, None, False
        now_cid = self._index[key]
        return MetaResult.DONE, value, self._meta_item(now_cid), now_cid != cid

    def meta_debug(self, key: bytes) -> ItemDebug | None:
        """me: what memcached shows of an item (no bump, no hit counted)."""
        now = self.now()
        cid = self._live(key, now)
        if cid < 0:
            return None
        page = self.slabs.pages[cid >> PAGE_SHIFT]
        _, _, cas, exptime, atime, flags, nbytes, nkey, iflags, _, _ = HEADER.unpack_from(
            page, cid & OFFSET_MASK
        )
        size = self.item_total(nkey, flags, nbytes)
        # The class memcached files an item of this size under (chunked ones: the largest).
        # Ours may be another: a stored item here also holds its reply framing.
        return ItemDebug(
            key=self.key_of(cid), binary_key=bool(iflags & KEY_BINARY),
            exptime=exptime, idle=(now - atime) & 0xFFFFFFFF, cas=cas,
            fetched=bool(iflags & FETCHED), class_id=self.slabs.class_for(size), size=size,
        )

    def _meta_item(self, cid: int) -> MetaItem:
        page = self.slabs.pages[cid >> PAGE_SHIFT]
        header: HotFields = HOT_LRU.unpack_from(page, (cid & OFFSET_MASK) + OFF_CAS)
        cas, exptime, atime, flags, nbytes, _, iflags, _, _, _ = header  # typed: C ints
        return MetaItem(cid, cas, flags, nbytes, exptime, (self.now() - atime) & 0xFFFFFFFF,
                        bool(iflags & FETCHED), bool(iflags & KEY_BINARY))

    def _meta_store_stale(
        self, old: int, key: bytes, flags: int, data: bytes, now: int
    ) -> tuple[StoreResult, int]:
        """ms I with an older CAS: store, keeping the exptime and win token, marked stale."""
        if not self.item_fits(len(key), flags, len(data)):
            return StoreResult.TOO_LARGE, 0
        page = self.slabs.pages[old >> PAGE_SHIFT]
        off = old & OFFSET_MASK
        rel_exptime = I32.unpack_from(page, off + OFF_EXPTIME)[0]
        sent = page[off + OFF_IFLAGS] & WIN_SENT
        self.counters.classes[self.slabs.page_class[old >> PAGE_SHIFT]].cas_hits += 1
        cid = self._write(key, flags, rel_exptime, data, now, replace_on_failure=False)
        if cid < 0:
            return StoreResult.NO_MEMORY, 0
        self.slabs.pages[cid >> PAGE_SHIFT][(cid & OFFSET_MASK) + OFF_IFLAGS] |= STALE | sent
        self.counters.classes[self.slabs.page_class[cid >> PAGE_SHIFT]].cmd_set += 1
        return StoreResult.STORED, self.cas_of(cid)

    # -- introspection for stats --------------------------------------------------------------

    @property
    def oldest_live(self) -> int:
        """The flush horizon on the relative clock (0: no flush_all yet)."""
        return self._oldest_live

    @property
    def oldest_cas(self) -> int:
        """Items with a CAS below this were flushed by a delayed flush_all (0: none)."""
        return self._oldest_cas

    @property
    def index(self) -> KeyIndex:
        """Key -> head chunk of every linked item (for the background helpers)."""
        return self._index

    def restore_clocks(self, started: int, cas: int, oldest_live: int, oldest_cas: int) -> None:
        """Warm restart: take back the clocks and CAS counter of a saved cache."""
        self.started = started
        self._cas = cas
        self._oldest_live = oldest_live
        self._oldest_cas = oldest_cas

    def reset_counters(self) -> None:
        """``stats reset``: zero the history counters; what describes the present stays."""
        for counters in self.counters.classes:
            for name in (f.name for f in fields(counters)):
                if name not in ("mem_requested", "lru_hits", "class_id"):
                    setattr(counters, name, 0)
        c = self.counters
        c.total_items = c.get_expired = c.get_flushed = c.slabs_moved = 0
        c.slab_reassign_rescues = c.slab_reassign_chunk_rescues = 0
        c.slab_reassign_evictions_nomem = c.slab_reassign_inline_reclaim = 0
        c.slab_reassign_busy_items = c.slab_reassign_busy_deletes = 0
        c.lru_maintainer_juggles = 0
        self.crawler.starts = 0
        hits = self.lru_hits  # zeroed in place: the class counters share it
        for slot in range(len(hits)):
            hits[slot] = 0
        if self.ext is not None:
            self.ext.reset_counters()

    def class_item_counts(self) -> list[int]:
        return list(self.items.counts)

    def segment_counts(self, class_id: int) -> tuple[int, int, int, int]:
        """Items of a class in its HOT, WARM, COLD and TEMP lists."""
        counts = self.items.seg_counts
        hot, warm, cold, temp = (class_id | seg << SEG_SHIFT for seg in range(4))
        return counts[hot], counts[warm], counts[cold], counts[temp]

    def segment_ages(self, class_id: int) -> tuple[int, int, int]:
        """Seconds since the tail items of HOT, WARM and COLD were last used."""
        now = self.now()
        return (
            self.lru.tail_age(class_id | SEG_HOT << SEG_SHIFT, now),
            self.lru.tail_age(class_id | SEG_WARM << SEG_SHIFT, now),
            self.lru.tail_age(class_id | SEG_COLD << SEG_SHIFT, now),
        )

    def segment_hits(self, class_id: int) -> tuple[int, int, int, int]:
        """Read hits on items of a class while in HOT, WARM, COLD and TEMP."""
        hits = self.lru_hits
        hot: int = hits[class_id | SEG_HOT << SEG_SHIFT]
        warm: int = hits[class_id | SEG_WARM << SEG_SHIFT]
        cold: int = hits[class_id | SEG_COLD << SEG_SHIFT]
        temp: int = hits[class_id | SEG_TEMP << SEG_SHIFT]
        return hot, warm, cold, temp

    def oldest_age(self, class_id: int) -> int:
        """Seconds since the COLD tail of a class was last used (``stats items`` age)."""
        return self.lru.tail_age(class_id | SEG_COLD << SEG_SHIFT, self.now())

    def size_of(self, cid: int) -> int:
        """memcached's ITEM_ntotal of an item (what ``bytes`` counts for it)."""
        page = self.slabs.pages[cid >> PAGE_SHIFT]
        _, _, _, _, _, flags, nbytes, nkey, _, _, _ = HEADER.unpack_from(page, cid & OFFSET_MASK)
        return self.item_total(nkey, flags, nbytes)

    def size_histogram(self) -> list[tuple[int, int]] | None:
        """``stats sizes``: (bucket bytes, items) for non-empty 32-byte buckets; None if off."""
        if self.sizes is None:
            return None
        return [(n * 32, count) for n, count in enumerate(self.sizes) if count]

    def track_sizes(self, enable: bool) -> None:
        """``stats sizes_enable|disable``: start counting (items stored from now) or stop."""
        self.tuning.track_sizes = enable
        if not enable:
            self.sizes = None
        elif self.sizes is None:
            self.sizes = [0] * (self.item_size_max // 32 + 2)

    def dump_class(self, class_id: int, limit: int) -> list[tuple[bytes, int, int]]:
        """(key, data length, absolute exptime or 0) from the COLD head; ``limit`` 0 = all.

        memcached's item_cachedump walks the COLD list only; so does this.
        """
        if not 0 < class_id < len(self.slabs.classes):
            return []
        rows: list[tuple[bytes, int, int]] = []
        cid = self.items.heads[class_id | SEG_COLD << SEG_SHIFT]
        while cid >= 0 and (limit == 0 or len(rows) < limit):
            page = self.slabs.pages[cid >> PAGE_SHIFT]
            off = cid & OFFSET_MASK
            _, _, _, exptime, _, _, nbytes, _, _, _, _ = HEADER.unpack_from(page, off)
            rows.append((self.key_of(cid), nbytes, exptime + self.started if exptime else 0))
            cid = self.items.toward_tail(cid)
        return rows

    # -- the flash tier (memcachepy.store.extstore) ---------------------------------------------

    def _collect_flash(self, cid: int, page: Page, off: int, out: list[bytes | bytearray],
                       with_cas: bool, exptime_rel: int | None, now: int) -> None:
        """collect's hit on a header item: count and bump it, then read the value back.

        A value its page no longer holds is left out of the reply (the hit stays counted,
        as memcached counts it); no memory to read it into raises FlashOutOfMemory.
        """
        ext = self.ext
        assert ext is not None
        class_id = self.slabs.page_class[cid >> PAGE_SHIFT]
        if exptime_rel is None:
            self.lru_hits[class_id | (page[off + OFF_LRU] & SEG_MASK) << SEG_SHIFT] += 1
        else:
            I32.pack_into(page, off + OFF_EXPTIME, exptime_rel)
            self.counters.classes[class_id].touch_hits += 1
        self._bump(cid, page, off, now)
        data = ext.fetch(cid, now)
        if data is None:
            return
        ext.frame(cid, data, out, with_cas)
        ext.recache(cid, data, now)

    def _get_flash(self, cid: int, now: int) -> int:
        """get()'s hit on a header item: read the value for value() and wire(); -1 if it
        cannot be read (gone from its page, or no memory to read it into)."""
        assert self.ext is not None
        try:
            data = self.ext.fetch(cid, now)
        except FlashOutOfMemory:
            return -1
        if data is None:
            return -1
        key = self.key_of(cid)
        if self.ext.recache(cid, data, now):
            return self._index.get(key)  # the value is in memory again
        self._flash_value = (cid, data)
        return cid

    def flash_stale(self, cid: int) -> bool:
        """Whether a header item's value is gone from flash (the crawler reclaims it)."""
        return self.ext is not None and not self.ext.valid(cid)

    def on_flash(self, key: bytes) -> bool:
        """Whether ``key``'s item is a header item (its value on flash); no side effects."""
        cid = self._index.get(key)
        return cid >= 0 and bool(
            self.slabs.pages[cid >> PAGE_SHIFT][(cid & OFFSET_MASK) + OFF_IFLAGS] & EXT)

    def write_item(self, key: bytes, flags: int, rel_exptime: int, data: bytes, now: int,
                   prefix: bytes, iflags: int, cas: int) -> int:
        """Link an item with a given framing prefix, item flags and CAS (the flash tier's
        header items and recached values); -1 if there is no memory."""
        cid = self._write(key, flags, rel_exptime, data, now, replace_on_failure=False,
                          prefix=prefix, iflags=iflags)
        if cid >= 0:
            U64.pack_into(self.slabs.pages[cid >> PAGE_SHIFT], (cid & OFFSET_MASK) + OFF_CAS,
                          cas)
        return cid

    def alloc_chunks(self, class_id: int, count: int, now: int) -> list[int] | None:
        """Chunks of ``class_id`` made room for within the class (no page moves)."""
        return self._alloc(class_id, count, now, move_pages=False)

    def ext_step(self, budget: int = 50) -> int:
        """One turn of the flash tier's background work (write out, page maintenance,
        compaction); 0 when it found nothing to do or there is no flash tier."""
        if self.ext is None:
            return 0
        return self.ext.step(self.now(), budget)

    # -- background work, in bounded steps ---------------------------------------------------

    def maintain_lru(self, budget: int = 1000) -> int:
        """One LRU maintainer turn (memcached's lru_maintainer_thread loop); returns moves."""
        return self.lru.maintain(budget)

    def crawl_step(self, budget: int = 500) -> int:
        """Check up to ``budget`` chunks for expired items; 0 when no crawl is due."""
        return self.crawler.step(budget)

    def rebalance_step(self, budget: int = 500) -> int:
        """Empty up to ``budget`` chunks of the slab page being moved; 0 when none is."""
        return self.rebalancer.step(budget)

    def index_step(self, budget: int = 1000) -> int:
        """Move up to ``budget`` slots of a growing key index (memcached's assoc
        maintenance thread); 0 when it is not growing."""
        return self._index.expand_step(budget)

    def automove_tick(self) -> bool:
        """The automover's once-a-second look (``slab_automove 1``); True: look again soon."""
        return self.rebalancer.automove_tick()

    @property
    def background_busy(self) -> bool:
        """A page move or a crawl is under way (their steps should run again soon)."""
        return self.rebalancer.running or self.crawler.running or (
            self.slabs.malloced > self.slabs.limit
        )

    # -- admin commands ---------------------------------------------------------------------

    def reassign(self, src: int, dst: int) -> ReassignResult:
        """``slabs reassign``: start moving a page of ``src`` (-1: any) to ``dst`` (0: pool)."""
        return self.rebalancer.reassign(src, dst)

    def crawl(self, classes: list[int]) -> CrawlResult:
        """``lru_crawler crawl``: look for expired items in these classes now."""
        return self.crawler.request(classes)

    def metadump(self, classes: list[int]) -> list[MetadumpRow]:
        """``lru_crawler metadump``: the live items of these classes."""
        return self.crawler.metadump(classes)

    # -- warm restart -------------------------------------------------------------------------

    @property
    def memory_file(self) -> str | None:
        return None if self._memory is None else self._memory.path

    def save(self) -> None:
        """Graceful stop with a memory file: write what the next start needs to restore."""
        if self._memory is None:
            return
        self.items.links_to_headers()
        classes = list(self.slabs.page_class)
        classes += [0] * (self._memory.npages - len(classes))
        self._memory.save(
            SavedState(self.started, self._cas, self._oldest_live, self._oldest_cas, classes,
                       self._index.power)
        )

    def close(self) -> None:
        """Release the memory file and the flash files (the cache must not be used
        afterwards)."""
        if self._memory is not None:
            self._memory.close()
        if self.ext is not None:
            self.ext.close()


# -- meta support: result types -------------------------------------------------------------


class MetaItem:
    """What a meta command reads of an item before acting on it.

    A plain class, not a NamedTuple: compiled, a native class is built by a C call where a
    NamedTuple's constructor is a Python-level call (every mg paid one)."""

    def __init__(self, cid: int, cas: int, flags: int, nbytes: int, exptime: int, idle: int,
                 fetched: bool, binary_key: bool) -> None:
        self.cid = cid
        self.cas = cas
        self.flags = flags
        self.nbytes = nbytes
        self.exptime = exptime  # relative clock, 0 = never
        self.idle = idle  # seconds since last access (memcached's current_time - it->time)
        self.fetched = fetched  # hit before (read by a get that bumped it)
        self.binary_key = binary_key


class ItemDebug(NamedTuple):
    """An item as the ``me`` command describes it."""

    key: bytes
    binary_key: bool
    exptime: int  # relative clock, 0 = never
    idle: int
    cas: int
    fetched: bool
    class_id: int
    size: int  # memcached's ITEM_ntotal, as the ``bytes`` statistic counts it


class MetaResult(IntEnum):
    """Outcomes of md and ma (ms uses :class:`StoreResult`)."""

    DONE = 0
    NOT_FOUND = 1
    EXISTS = 2  # the CAS given did not match
    NON_NUMERIC = 3
    NO_MEMORY = 4


_META_DELTA = {
    DeltaResult.NOT_FOUND: MetaResult.NOT_FOUND,
    DeltaResult.NON_NUMERIC: MetaResult.NON_NUMERIC,
    DeltaResult.NO_MEMORY: MetaResult.NO_MEMORY,
}
