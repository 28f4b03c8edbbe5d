"""The segmented LRU's tail pulls and the background maintainer, as memcached's items.c.

Every slab class has HOT, WARM, COLD and TEMP lists. New items enter HOT (TEMP when their
TTL is short and ``temp_lru`` is on). A read only sets bits in the item header: FETCHED on
the first hit, ACTIVE on the next. The maintainer then moves items between lists:

- HOT tail: ACTIVE -> WARM; else, when HOT holds more than ``hot_lru_pct`` of the class or
  the item is older than ``hot_max_factor`` x the COLD tail's age -> COLD.
- WARM tail: over ``warm_lru_pct`` or older than ``warm_max_factor`` x the COLD age ->
  COLD (memcached first moves ACTIVE ones back to the WARM head).
- COLD tail, when the class is short of memory: ACTIVE -> WARM, a second chance.
- An item read twice while in COLD is queued (memcached's lru_bump_async) and moved to
  WARM at the maintainer's next turn, while WARM is under its share; once WARM is full it
  stays in COLD, marked ACTIVE, and has its second chance at the COLD tail. memcached
  moves it anyway and lets WARM push its tail back down: with every item of a busy class
  read again that is two list moves per read, which here would cost the readers.

Expired and flushed items at the tails are the maintainer's (memcached's ``reclaimed``);
an automatic crawl hands it the tails first (:meth:`LruMaintainer.reclaim_tails`) and then
frees those further up (``crawler_reclaimed``).

Evictions take the COLD tail, skipping (and moving to WARM) items read again, so items
read at least twice live on and a one-pass scan of new keys flows HOT -> COLD -> out
without touching them. Expired items met at any
tail are reclaimed on the way. ``lru_segmented`` off is memcached's flat mode: every item
lives in COLD and a read moves it to the head at most once a minute.

memcached weighs the segments by bytes; within one slab class items have nearly the same
size, so the counts of items are used here instead.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from memcachepy.store.counters import CacheCounters
from memcachepy.store.items import (
    ACTIVE,
    CONTINUATION,
    FETCHED,
    LINKED,
    OFF_ATIME,
    OFF_CAS,
    OFF_IFLAGS,
    OFF_LRU,
    PACK_I32,
    SEG_COLD,
    SEG_HOT,
    SEG_MASK,
    SEG_SHIFT,
    SEG_TEMP,
    SEG_WARM,
    TIMES,
    UNPACK_I32,
    ItemMemory,
)
from memcachepy.store.slabs import OFFSET_MASK, PAGE_SHIFT, Page, SlabAllocator
from memcachepy.store.tuning import StoreTuning

if TYPE_CHECKING:
    from memcachepy.store.host import CacheHost


# Items looked at from a tail per pull (memcached's lru_pull_tail "tries").
TAIL_SEARCH: Final = 5
# Juggles of one class per maintainer turn (memcached's lru_maintainer_juggle loop bound).
JUGGLES_PER_CLASS: Final = 500
# Items a read may queue for a move to WARM before the maintainer's next turn (memcached's
# LRU_BUMP_BUF_SIZE per worker thread); past it the move is dropped (lru_bumps_dropped).
BUMP_QUEUE: Final = 8192
# What _live_atime answers for an expired or flushed item: below any 32-bit access time.
DEAD: Final = -(1 << 40)


class LruMaintainer:
    """Moves items between the segments of each class; evicts and reclaims at the tails."""

    # The cache's parts, typed as the classes they are: compiled, each use is a native
    # attribute read instead of a lookup through the CacheHost protocol. Set by rebind.
    items: ItemMemory
    slabs: SlabAllocator
    tuning: StoreTuning
    counters: CacheCounters

    def __init__(self, cache: CacheHost) -> None:
        self.cache = cache
        self._start = 0
        self.bumps: list[int] = []  # COLD items read twice, to move to WARM
        # Metadump walks under way: while one is, the maintainer moves nothing, so that
        # the walk lists every item nobody changes (memcached's crawler holds its place in
        # each list with a placeholder item; a cursor here would lose it).
        self.holds = 0

    def hold(self) -> None:
        """A walk over the lists begins: keep items where they are until :meth:`release`."""
        self.holds += 1

    def release(self) -> None:
        if self.holds > 0:
            self.holds -= 1

    def rebind(self) -> None:
        """Take the cache's memory, tuning and counters (again, once it has made new ones)."""
        cache = self.cache
        self.items = cache.items
        self.slabs = cache.slabs
        self.tuning = cache.tuning
        self.counters = cache.counters
        self.bumps = []

    def bump_later(self, cid: int) -> None:
        """Queue an item of COLD that just became ACTIVE for a move to WARM."""
        if len(self.bumps) < BUMP_QUEUE:
            self.bumps.append(cid)
        else:
            self.counters.lru_bumps_dropped += 1

    def apply_bumps(self, now: int) -> int:
        """Move the queued items still ACTIVE in COLD to WARM (memcached's
        lru_maintainer_bumps, then do_item_update); returns the moves made.

        An entry may be stale: the item freed, its chunk reused, its page given to another
        class. Only a chunk that still starts an item of its page's class, linked, in COLD
        and ACTIVE, is moved.
        """
        bumps, self.bumps = self.bumps, []
        slabs = self.slabs
        items = self.items
        pages = slabs.pages
        classes = self.counters.classes
        warm_pct = self.tuning.warm_lru_pct
        moves = 0
        for cid in bumps:
            number = cid >> PAGE_SHIFT
            class_id = slabs.page_class[number] if number < len(pages) else 0
            off = cid & OFFSET_MASK
            if not class_id or off % slabs.classes[class_id].chunk_size:
                continue
            page = pages[number]
            lru_byte = page[off + OFF_LRU]
            iflags = page[off + OFF_IFLAGS]
            if (
                not iflags & LINKED
                or iflags & CONTINUATION
                or not lru_byte & ACTIVE
                or lru_byte & SEG_MASK != SEG_COLD
            ):
                continue
            warm = items.seg_counts[class_id | SEG_WARM << SEG_SHIFT]
            if warm >= items.counts[class_id] * warm_pct // 100:
                continue  # WARM is full: the COLD tail gives it its second chance
            page[off + OFF_LRU] = lru_byte & ~ACTIVE
            PACK_I32(page, off + OFF_ATIME, now)
            items.move(cid, class_id, SEG_WARM)
            classes[class_id].moves_to_warm += 1
            moves += 1
        return moves

    def reclaim_tails(self, now: int, budget: int) -> int:
        """Free the expired and flushed items at the tail of every list, as memcached's
        maintainer does on its turns (counted as ``reclaimed``); returns how many.

        Each list is searched from its tail up to its first live item, so this costs
        about one look per freed item.
        """
        cache = self.cache
        items = self.items
        pages = self.slabs.pages
        counts = items.counts
        oldest = cache.oldest_live
        freed = 0
        for class_id in range(1, len(counts)):
            if not counts[class_id]:
                continue
            counters = self.counters.classes[class_id]
            for seg in (SEG_HOT, SEG_WARM, SEG_COLD, SEG_TEMP):
                lru = class_id | seg << SEG_SHIFT
                cid = items.tails[lru]
                while cid >= 0 and freed < budget:
                    page = pages[cid >> PAGE_SHIFT]
                    off = cid & OFFSET_MASK
                    if self._live_atime(page, off, now, oldest) != DEAD:
                        break
                    nxt = items.toward_head(cid)
                    counters.reclaimed += 1
                    if not page[off + OFF_IFLAGS] & FETCHED:
                        counters.expired_unfetched += 1
                    cache.remove(cid)
                    freed += 1
                    cid = nxt
                if freed >= budget:
                    return freed
        return freed

    def _live_atime(self, page: Page, off: int, now: int, oldest: int) -> int:
        """The access time of a live item; :data:`DEAD` for one expired or flushed (the
        cache's ``is_dead``, with the flush horizon read once per pull, not per item)."""
        cas, exptime, atime = TIMES.unpack_from(page, off + OFF_CAS)
        if exptime and exptime <= now:
            return DEAD
        if oldest and oldest <= now and self.cache.is_flushed(cas, atime):
            return DEAD
        return int(atime)

    def pull_tail(
        self, class_id: int, seg: int, total: int, max_age: int, now: int, evict: bool
    ) -> int:
        """memcached's lru_pull_tail: reclaim, move or evict at the tail of one list.

        ``total`` is the class's item count the HOT/WARM limits are taken from (0 pushes
        every inactive item on), ``max_age`` their age limit. Returns how many items were
        removed or moved.
        """
        cache = self.cache
        items = self.items
        pages = self.slabs.pages
        tuning = self.tuning
        lru = class_id | seg << SEG_SHIFT
        counters = self.counters.classes[class_id]
        oldest = cache.oldest_live
        cid = items.tails[lru]
        removed = 0
        for _ in range(TAIL_SEARCH):
            if cid < 0:
                break
            nxt = items.toward_head(cid)
            page = pages[cid >> PAGE_SHIFT]
            off = cid & OFFSET_MASK
            atime = self._live_atime(page, off, now, oldest)
            if atime == DEAD:
                counters.reclaimed += 1
                if not page[off + OFF_IFLAGS] & FETCHED:
                    counters.expired_unfetched += 1
                cache.remove(cid)
                removed += 1
                cid = nxt
                continue  # only expired items let the search go on up the list
            lru_byte = page[off + OFF_LRU]
            if seg == SEG_HOT or seg == SEG_WARM:
                pct = tuning.hot_lru_pct if seg == SEG_HOT else tuning.warm_lru_pct
                over = items.seg_counts[lru] > total * pct // 100 or now - atime > max_age
                if seg == SEG_HOT and lru_byte & ACTIVE:
                    page[off + OFF_LRU] = lru_byte & ~ACTIVE
                    counters.moves_to_warm += 1
                    items.move(cid, class_id, SEG_WARM)
                    removed += 1
                elif over:
                    # memcached keeps cycling ACTIVE WARM items back to the WARM head. With
                    # every item of a busy class read again within moments, that costs
                    # many moves per item shed; here WARM sheds its oldest member to COLD,
                    # where one more read before it reaches the tail keeps it.
                    page[off + OFF_LRU] = lru_byte & ~ACTIVE
                    counters.moves_to_cold += 1
                    items.move(cid, class_id, SEG_COLD)
                    removed += 1
                break
            if seg == SEG_COLD:
                if lru_byte & ACTIVE and tuning.lru_segmented:
                    # Read again while in COLD: a second chance in WARM rather than out.
                    counters.moves_to_warm += 1
                    page[off + OFF_LRU] = lru_byte & ~ACTIVE
                    items.move(cid, class_id, SEG_WARM)
                    removed += 1
                    if evict:
                        cid = nxt
                        continue
                elif evict:
                    if not cache.evict:
                        break
                    if lru_byte & ACTIVE:
                        counters.evicted_active += 1
                    cache.evict_item(cid, now)
                    removed += 1
                    if tuning.slab_automove == 2:
                        cache.rebalancer.reassign(-1, class_id)
                break
            # TEMP: only reclaims, unless memory must be found at any price.
            if evict and cache.evict:
                cache.evict_item(cid, now)
                removed += 1
            break
        return removed

    def free_one(self, class_id: int, now: int) -> bool:
        """One step of making room in a full class (memcached's do_item_alloc_pull)."""
        if self.pull_tail(class_id, SEG_COLD, 0, 0, now, evict=True):
            return True
        if not self.tuning.lru_segmented and not self._stray_items(class_id):
            return False
        # COLD is empty: push HOT (then WARM) items down so the next pull finds one.
        # memcached stops at HOT; going on keeps a class whose items all sit in WARM
        # from answering out of memory.
        return bool(
            self.pull_tail(class_id, SEG_HOT, 0, 0, now, evict=False)
            or self.pull_tail(class_id, SEG_WARM, 0, 0, now, evict=False)
            or self.pull_tail(class_id, SEG_TEMP, 0, 0, now, evict=True)
        )

    def _stray_items(self, class_id: int) -> bool:
        """Items left in HOT/WARM/TEMP after a switch to flat mode."""
        counts = self.items.seg_counts
        return any(counts[class_id | seg << SEG_SHIFT] for seg in (SEG_HOT, SEG_WARM, SEG_TEMP))

    def juggle(self, class_id: int, now: int, budget: int) -> int:
        """memcached's lru_maintainer_juggle for one class; returns the moves made."""
        items = self.items
        tuning = self.tuning
        moves = 0
        if tuning.temp_lru or items.seg_counts[class_id | SEG_TEMP << SEG_SHIFT]:
            for _ in range(budget):
                if not self.pull_tail(class_id, SEG_TEMP, 0, 0, now, evict=False):
                    break
                moves += 1
        total = 0
        hot_age = warm_age = 0
        if tuning.lru_segmented:
            cold_age = self.tail_age(class_id | SEG_COLD << SEG_SHIFT, now)
            hot_age = int(cold_age * tuning.hot_max_factor)
            warm_age = int(cold_age * tuning.warm_max_factor)
            total = items.counts[class_id]
        if tuning.lru_segmented:
            moves += self.drain(class_id, SEG_HOT, total, hot_age, now, budget - moves)
            moves += self.drain(class_id, SEG_WARM, total, warm_age, now, budget - moves)
        # ACTIVE items at the COLD tail go back to WARM only when the class is short of
        # memory: with room for everything they may as well stay where they are.
        slabs = self.slabs
        pressed = tuning.lru_segmented and not slabs.classes[class_id].free and not slabs.can_grow()
        for _ in range(JUGGLES_PER_CLASS):
            if moves >= budget:
                break
            did = self.pull_tail(class_id, SEG_HOT, total, hot_age, now, evict=False)
            if not did:
                did = self.pull_tail(class_id, SEG_WARM, total, warm_age, now, evict=False)
            if pressed:
                did += self.pull_tail(class_id, SEG_COLD, total, 0, now, evict=False)
            if not did:
                break
            moves += did
        return moves

    def maintain(self, budget: int) -> int:
        """One maintainer turn over every class with items; returns the moves made."""
        if self.holds:
            return 0
        now = self.cache.now()
        counts = self.items.counts
        n = len(counts) - 1
        moves = self.apply_bumps(now) if self.bumps else 0
        # Each turn starts one class further, so a busy class cannot starve the others.
        self._start = self._start % n + 1
        for i in range(n):
            class_id = (self._start + i - 1) % n + 1
            if counts[class_id] and moves < budget:
                moves += self.juggle(class_id, now, budget - moves)
        self.counters.lru_maintainer_juggles += 1
        return moves

    def drain(
        self, class_id: int, seg: int, total: int, max_age: int, now: int, budget: int
    ) -> int:
        """Move the run of items at a HOT or WARM tail that are due for COLD in one splice.

        The common case of :meth:`pull_tail`, at a fraction of the cost per item: it stops
        at the first item that is within the limits, ACTIVE in HOT, or expired (those are
        left to :meth:`pull_tail`). Returns how many items moved.
        """
        cache = self.cache
        items = self.items
        pages = self.slabs.pages
        tuning = self.tuning
        lru = class_id | seg << SEG_SHIFT
        pct = tuning.hot_lru_pct if seg == SEG_HOT else tuning.warm_lru_pct
        excess = items.seg_counts[lru] - total * pct // 100
        oldest = cache.oldest_live
        flushing = bool(oldest) and oldest <= now
        cid = items.tails[lru]
        first = -1
        run = 0
        while cid >= 0 and run < budget:
            page = pages[cid >> PAGE_SHIFT]
            off = cid & OFFSET_MASK
            lru_byte = page[off + OFF_LRU]
            if seg == SEG_HOT and lru_byte & ACTIVE:
                break
            prev = items.toward_head(cid)
            cas, exptime, atime = TIMES.unpack_from(page, off + OFF_CAS)
            if run >= excess and now - atime <= max_age:
                break
            if (exptime and exptime <= now) or (flushing and cache.is_flushed(cas, atime)):
                break
            page[off + OFF_LRU] = SEG_COLD  # ACTIVE cleared
            first = cid
            run += 1
            cid = prev
        if run:
            items.splice_tail(lru, class_id | SEG_COLD << SEG_SHIFT, first, run)
            self.counters.classes[class_id].moves_to_cold += run
        return run

    def tail_age(self, lru: int, now: int) -> int:
        """Seconds since the tail item of one list was last used; 0 if the list is empty."""
        tail = self.items.tails[lru]
        if tail < 0:
            return 0
        page = self.slabs.pages[tail >> PAGE_SHIFT]
        return now - int(UNPACK_I32(page, (tail & OFFSET_MASK) + OFF_ATIME)[0])

    def new_item_segment(self, rel_exptime: int, now: int) -> int:
        """Where a new item is linked (memcached's do_item_alloc)."""
        tuning = self.tuning
        if tuning.temp_lru and rel_exptime and rel_exptime - now <= tuning.temporary_ttl:
            return SEG_TEMP
        return SEG_HOT if tuning.lru_segmented else SEG_COLD
