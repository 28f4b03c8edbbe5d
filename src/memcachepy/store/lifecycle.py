"""The cache's state and the lifecycle of its items, as memcached's items.c.

:class:`ItemLifecycle` holds the slab memory, the key index, the clocks and the counters,
and does what happens to an item between the operations: allocation (reclaiming an
expired tail item, evicting, moving a page), link and replace, unlink and release, the
expiry and flush checks of a lookup, the LRU updates of a hit or a write, the CAS counter.
:class:`~memcachepy.store.cache.Cache` adds the operations on top. It is a subclass, not a
holder of one: compiled, both are native classes, so the operations call these methods
and read these fields directly, with no attribute lookup or extra call per request.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Final

from librt.strings import read_i16_le, read_i32_le
from librt.time import time as wall_time
from librt.vecs import vec
from mypy_extensions import i64

from memcachepy.store.counters import CacheCounters, ClassCounters
from memcachepy.store.crawler import Crawler
from memcachepy.store.extstore import Extstore
from memcachepy.store.extstore_config import ExtstoreConfig
from memcachepy.store.framing import NO_FRAMING, Framing
from memcachepy.store.index import DEFAULT_HASHPOWER, KeyIndex
from memcachepy.store.items import (
    ACTIVE,
    EXT,
    FETCHED,
    HEADER,
    HEADER_SIZE,
    ITEM_UPDATE_INTERVAL,
    LINKED,
    OFF_ATIME,
    OFF_CAS,
    OFF_EXPTIME,
    OFF_FLAGS,
    OFF_IFLAGS,
    OFF_LRU,
    OFF_NBYTES,
    OFF_NCONT,
    OFF_NKEY,
    PACK_I32,
    SEG_COLD,
    SEG_MASK,
    SEG_SHIFT,
    SEG_WARM,
    TIMES,
    U16,
    U64,
    UNPACK_I32,
    UNPACK_READ_FIELDS_LRU,
    ItemMemory,
    ReadFields,
)
from memcachepy.store.lru import LruMaintainer
from memcachepy.store.persist import Layout, MemoryFile, layout_tag, restore_items
from memcachepy.store.rebalance import Rebalancer
from memcachepy.store.slabs import OFFSET_MASK, PAGE_SHIFT, Page, SlabAllocator
from memcachepy.store.tuning import StoreTuning

log = logging.getLogger("memcachepy.store")

# Relative exptimes up to 30 days; larger values are absolute Unix times.
REALTIME_MAXDELTA: Final = 60 * 60 * 24 * 30
# Tail pulls an allocation may make per chunk it needs before it answers out of memory.
ALLOC_TRIES = 64


class ItemLifecycle:
    """A memcached-style cache without its operations: slab memory, segmented LRU per
    class, expiry, 64-bit CAS.

    Background work belongs to its helpers, which the server runs in bounded steps between
    requests: :attr:`lru` (the LRU maintainer), :attr:`crawler`, :attr:`rebalancer` (page
    moves, automove), :attr:`index` (its expansion) and :attr:`extstore`. With
    ``memory_file`` the slab pages live in that file, and the next start with the same
    settings restores every item.
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
        extstore: ExtstoreConfig | None = None,
    ) -> None:
        self.item_size_max = item_size_max
        self.use_cas = use_cas
        self.evict = evict
        self.framing = framing
        # The last framing prefix made, and the shape it was made for (see _prefix).
        self._prefix_flags = -1
        self._prefix_nbytes = -1
        self._prefix_last = b""
        self._wire_shape = (len(framing.suffix), framing.cas_at, framing.cas_format, framing.lead)
        self.tuning = tuning if tuning is not None else StoreTuning()
        self._clock = clock
        # The system clock is read through librt's time(): compiled, a C call returning a
        # C double, where calling the stored time.time is a generic call and a boxed float.
        self.wall_clock = clock is time.time
        #: Told (key, item, class id) of each eviction before it happens, while the item is
        #: still linked; set while a client runs ``watch evictions`` (memcachepy.server.watch),
        #: None otherwise.
        self.on_evict: Callable[[bytes, int, int], None] | None = None
        self._memory: MemoryFile | None = None
        if memory_file is not None:
            layout = Layout(
                limit, growth_factor, min_chunk, item_size_max, use_cas, layout_tag(framing)
            )
            self._memory = MemoryFile(memory_file, layout)
        self.lru = LruMaintainer(self)
        self.crawler = Crawler(self)
        self.rebalancer = Rebalancer(self)
        restored = self._memory.restored if self._memory is not None else None
        # A warm restart keeps the index's size, as memcached's restores its hashpower.
        self._hashpower = (
            restored.hashpower
            if restored is not None and restored.hashpower
            else self.tuning.hashpower_init or DEFAULT_HASHPOWER
        )
        self._empty(limit, growth_factor, min_chunk)
        if self._memory is not None:
            if self._memory.restored is not None:
                try:
                    restore_items(self, self._memory.restored)
                except ValueError as exc:
                    log.warning(
                        "[restart] memory file content is inconsistent (%s): "
                        "starting with a clean cache",
                        exc,
                    )
                    self._memory.wipe()
                    self._empty(limit, growth_factor, min_chunk)
            self._memory.mark_in_use()
        # Extstore (-o ext_path=...): None without it, so a get pays one test.
        self.extstore: Extstore | None = None
        if extstore is not None and extstore.enabled:
            self.extstore = Extstore(self, extstore)
            self.slabs.prefill_pool()

    def _empty(self, limit: int, growth_factor: float, min_chunk: int) -> None:
        """An empty cache: no pages, no items, the clock starting now."""
        page_source = self._memory.page if self._memory is not None else None
        self.slabs = SlabAllocator(
            limit,
            growth_factor,
            min_chunk,
            page_source,
            self.tuning.slab_chunk_max,
            self.tuning.slab_sizes,
        )
        self.items = ItemMemory(self.slabs)
        # memcached's process_started: relative times count from here and are never 0.
        self.started = int(self._clock()) - ITEM_UPDATE_INTERVAL - 2
        self._index = KeyIndex(
            self.slabs.pages,
            self._hashpower,
            limit,
            self.slabs.page_class,
            [cls.chunk_size for cls in self.slabs.classes],
        )
        self._index.expand = self.tuning.hash_expand
        self._cas = 0
        self._oldest_live = 0
        self._oldest_cas = 0
        self.bytes = 0
        # Get hits per LRU id (class | segment << SEG_SHIFT): stats items' hits_to_*.
        self.lru_hits = vec[i64]([0] * len(self.items.heads))
        self.counters = CacheCounters(
            classes=[
                ClassCounters(lru_hits=self.lru_hits, class_id=cls.id) for cls in self.slabs.classes
            ]
        )
        # What every collect reads, fetched in one load (these lists only change in place).
        self._collect_tables = (
            self.slabs.pages,
            self.slabs.page_class,
            self.counters.classes,
            self.lru_hits,
        )
        # stats sizes: items per 32-byte size bucket, with -o track_sizes.
        self.sizes: list[int] | None = (
            [0] * (self.item_size_max // 32 + 2) if self.tuning.track_sizes else None
        )
        self.lru.rebind()

    # -- time -------------------------------------------------------------------------

    def now(self) -> int:
        """Seconds on the relative clock (memcached's current_time)."""
        if self.wall_clock:
            return int(wall_time()) - self.started
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
        """How many items are linked (``curr_items``)."""
        return len(self._index)

    # -- item fields -----------------------------------------------------------------

    def cas_of(self, cid: int) -> int:
        page = self.slabs.pages[cid >> PAGE_SHIFT]
        return int(U64.unpack_from(page, (cid & OFFSET_MASK) + OFF_CAS)[0])

    def flags_of(self, cid: int) -> int:
        page = self.slabs.pages[cid >> PAGE_SHIFT]
        return int(UNPACK_I32(page, (cid & OFFSET_MASK) + OFF_FLAGS)[0]) & 0xFFFFFFFF

    def key_of(self, cid: int) -> bytes:
        page = self.slabs.pages[cid >> PAGE_SHIFT]
        return bytes(self.items.read(cid, 0, page[(cid & OFFSET_MASK) + OFF_NKEY]))

    # -- the lifecycle (those without an underscore are the helpers' too) ----------------

    def next_cas(self) -> int:
        if not self.use_cas:
            return 0
        self._cas += 1
        return self._cas

    def find_live(self, key: bytes, now: int) -> int:
        """The item for ``key`` unless absent, expired or flushed (those are removed here)."""
        index = self._index
        cid = index.find(key)
        if cid < 0:
            return -1
        exptime = read_i32_le(index.found, OFF_EXPTIME)
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
        if (
            oldest
            and oldest <= now
            and (atime <= oldest or (self._oldest_cas and cas and cas < self._oldest_cas))
        ):
            return True
        return bool(exptime and exptime <= now)

    def _update(self, cid: int, page: Page, off: int, now: int) -> None:
        """memcached's do_item_update (a write or touch kept the item).

        Segmented: the access time is refreshed, and an ACTIVE item in COLD goes to WARM.
        Flat: the item moves to the LRU head, at most once a minute.
        """
        if self.tuning.lru_segmented:
            PACK_I32(page, off + OFF_ATIME, now)
            lru = page[off + OFF_LRU]
            if lru & SEG_MASK == SEG_COLD and lru & ACTIVE:
                page[off + OFF_LRU] = lru & ~ACTIVE
                class_id = self.slabs.page_class[cid >> PAGE_SHIFT]
                self.items.move(cid, class_id, SEG_WARM)
                self.counters.classes[class_id].moves_to_warm += 1
        elif UNPACK_I32(page, off + OFF_ATIME)[0] < now - ITEM_UPDATE_INTERVAL:
            self.items.bump(cid, self.slabs.page_class[cid >> PAGE_SHIFT])
            PACK_I32(page, off + OFF_ATIME, now)

    def bump(self, cid: int, page: Page, off: int, now: int) -> None:
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

    def write_item(
        self,
        key: bytes,
        flags: int,
        rel_exptime: int,
        data: bytes,
        now: int,
        replace_on_failure: bool,
        reclaimed: bool = False,
        prefix: bytes | None = None,
        iflags: int = LINKED,
    ) -> int:
        """Allocate and link a new item for ``key``, replacing any old one; -1 if no memory.

        ``reclaimed``: the caller made the flat LRU's tail reclaim already. ``prefix`` and
        ``iflags``: extstore's header items keep the framing of the value they
        stand for.
        """
        if prefix is None:
            prefix = self._prefix(flags, len(data))
        suffix = self.framing.suffix
        stream_len = len(key) + len(prefix) + len(data) + len(suffix)
        class_id, ncont = self.items.plan(stream_len)
        if not reclaimed and not self.tuning.lru_segmented:
            self._reclaim_flat(class_id, now)
        if not ncont and iflags == LINKED:
            found: tuple[int, bytes] = self._index.again_found(key)  # store() looked
            old, header = found
            if old >= 0 and self._rewrite(
                old, header, key, flags, rel_exptime, data, now, prefix, class_id
            ):
                return old
        chunks = self.alloc_chunks(class_id, 1 + ncont, now)
        old = self._index.again(key)  # store() looked it up; alloc_chunks may have evicted
        if chunks is None:
            self.counters.classes[class_id].outofmemory += 1
            if replace_on_failure and old >= 0:
                self.remove(old)  # memcached drops the old value when a set fails
            return -1
        if old >= 0:
            self._release(old)  # its index entry is pointed at the new item below
        head = chunks[0]
        self._fill(head, chunks[1:], key, flags, rel_exptime, data, now, prefix, iflags, class_id)
        if old >= 0:
            self._index.replace(key, old, head)
        else:
            self._index[key] = head
        return head

    def _fill(
        self,
        head: int,
        conts: list[int],
        key: bytes,
        flags: int,
        rel_exptime: int,
        data: bytes,
        now: int,
        prefix: bytes,
        iflags: int,
        class_id: int,
        linked_in: int = -1,
    ) -> None:
        """Write a new item into ``head`` and ``conts`` (chunks of ``class_id`` out of every
        list), link it where memcached's do_item_alloc puts one, and count it. An expiry
        sooner than any the crawler knows of is noted for it. ``linked_in``: the list where
        ``head`` is linked still, holding the item this one replaces; it is moved from there
        (one relink, where an unlink and a link each follow the neighbours' links)."""
        seg = self.lru.new_item_segment(rel_exptime, now)
        if rel_exptime and rel_exptime < self.crawler.due:
            self.crawler.due = rel_exptime
        # The header's links are written only for a memory file (ItemMemory.links_to_headers).
        header = (
            -1,
            -1,
            self.next_cas(),
            rel_exptime,
            now,
            flags,
            len(data),
            len(key),
            iflags,
            len(prefix),
            len(conts),
        )
        items = self.items
        lru = class_id | seg << SEG_SHIFT
        if linked_in >= 0:
            items.relink(head, linked_in, lru)
        items.write(head, conts, (key, prefix, data, self.framing.suffix), header, seg)
        if linked_in < 0:
            items.link_new(head, lru)
        self.counters.total_items += 1
        self.count_item(class_id, self.item_total(len(key), flags, len(data)), 1)

    def count_item(self, class_id: int, size: int, sign: int) -> None:
        """Count an item of ``size`` (memcached's ITEM_ntotal) in (``sign`` 1) or out (-1):
        ``bytes``, the class's ``mem_requested`` and ``stats sizes``."""
        # Negated, not multiplied by sign: compiled, a product with a negative operand
        # takes CPython's generic multiply.
        delta = size if sign > 0 else -size
        self.bytes += delta
        self.counters.classes[class_id].mem_requested += delta
        if self.sizes is not None:
            self.sizes[(size + 31) // 32] += sign

    def _rewrite(
        self,
        cid: int,
        header: bytes,
        key: bytes,
        flags: int,
        rel_exptime: int,
        data: bytes,
        now: int,
        prefix: bytes,
        class_id: int,
    ) -> bool:
        """:meth:`write_item` over the item in ``cid``, which holds ``key`` (``header``: the
        copy of its header the key index read): a new CAS, header and value, linked at the head
        of its list. False, doing nothing, where that would differ from memcached's set.

        memcached allocates the new item, then frees the old one. When the class has a free
        chunk, that allocation takes it and evicts nothing, and the old chunk is free after:
        the same counts, stats and lists as writing the new item over the old one, which
        skips the allocation, the free and the index update. Not for a chunked item, one on
        flash, or one on a page being emptied (the mover may have passed its chunk).
        """
        slabs = self.slabs
        number = cid >> PAGE_SHIFT
        if (
            self.extstore is not None
            or slabs.page_class[number] != class_id
            or number == slabs.moving
            or not slabs.classes[class_id].free
        ):
            return False
        if read_i16_le(header, OFF_NCONT):  # continuations
            return False
        page = slabs.pages[number]
        off = cid & OFFSET_MASK
        # Of the client flags only whether they are 0 counts (ITEM_ntotal).
        old_flags = read_i32_le(header, OFF_FLAGS)
        nbytes = read_i32_le(header, OFF_NBYTES)
        self.count_item(class_id, self.item_total(header[OFF_NKEY], old_flags, nbytes), -1)
        # Read here, not taken from ``header``: the caller may have bumped the item since.
        lru_byte: int = page[off + OFF_LRU]
        linked_in = class_id | (lru_byte & SEG_MASK) << SEG_SHIFT
        self._fill(cid, [], key, flags, rel_exptime, data, now, prefix, LINKED, class_id, linked_in)
        self._index.forget_found()
        return True

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
        header: ReadFields = UNPACK_READ_FIELDS_LRU(page, off + OFF_CAS)  # typed: C ints
        flags, nbytes, nkey, iflags, ncont = header[3], header[4], header[5], header[6], header[8]
        if iflags & EXT and self.extstore is not None:
            self.extstore.forget(cid)
        class_id = slabs.page_class[cid >> PAGE_SHIFT]
        self.items.unlink(cid, class_id)
        conts = self.items.continuations(cid) if ncont else None  # read before the free
        page[off + OFF_IFLAGS] = 0
        slabs.free(cid, class_id)
        if conts is not None:
            for chunk in conts:
                slabs.pages[chunk >> PAGE_SHIFT][(chunk & OFFSET_MASK) + OFF_IFLAGS] = 0
                slabs.free(chunk, class_id)
        self.count_item(class_id, self.item_total(nkey, flags, nbytes), -1)

    def alloc_chunks(
        self, class_id: int, count: int, now: int, move_pages: bool = True
    ) -> list[int] | None:
        """``count`` chunks of ``class_id``, reclaiming or evicting as memcached does.

        ``move_pages``: a class with no items may take a page from another (the flash
        tier, reading a value back, makes room within the class only)."""
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
            if (
                move_pages
                and self.evict
                and self.items.counts[class_id] == 0
                and self.rebalancer.move_page_to(class_id)
            ):
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
        extstore, the COLD tail is written out instead while flash takes it."""
        if self.extstore is not None and self.extstore.make_room(class_id, now):
            return True
        return self.lru.free_one(class_id, now)

    def evict_item(self, cid: int, now: int) -> None:
        page = self.slabs.pages[cid >> PAGE_SHIFT]
        off = cid & OFFSET_MASK
        if self.on_evict is not None:  # a client runs `watch evictions`
            self.on_evict(self.key_of(cid), cid, self.slabs.page_class[cid >> PAGE_SHIFT])
        counters = self.counters.classes[self.slabs.page_class[cid >> PAGE_SHIFT]]
        counters.evicted += 1
        counters.evicted_time = now - UNPACK_I32(page, off + OFF_ATIME)[0]
        if UNPACK_I32(page, off + OFF_EXPTIME)[0] != 0:
            counters.evicted_nonzero += 1
        if not self._fetched(cid):
            counters.evicted_unfetched += 1
        self.remove(cid)

    def _fetched(self, cid: int) -> bool:
        page = self.slabs.pages[cid >> PAGE_SHIFT]
        return bool(page[(cid & OFFSET_MASK) + OFF_IFLAGS] & FETCHED)

    # -- what the helpers read (store/host.py) ---------------------------------------------

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

    def size_of(self, cid: int) -> int:
        """memcached's ITEM_ntotal of an item (what ``bytes`` counts for it)."""
        page = self.slabs.pages[cid >> PAGE_SHIFT]
        _, _, _, _, _, flags, nbytes, nkey, _, _, _ = HEADER.unpack_from(page, cid & OFFSET_MASK)
        return self.item_total(nkey, flags, nbytes)

    @property
    def memory_file(self) -> str | None:
        return None if self._memory is None else self._memory.path
