"""Slab page moves between classes, the automover that picks them, and limit shrinking.

As memcached's slabs.c rebalancer: a move empties the oldest page of the source class one
chunk at a time. A live item there is rescued, copied into a free chunk of the same class
elsewhere, with its LRU position, index entry and chunk links repointed; when its class has
no free chunk it is evicted (``slab_reassign_evictions_nomem``). Expired items are dropped.
Chunks freed meanwhile on that page go to no free list, so nothing new is written there.
When the page is empty it is zeroed and carved for the destination class, or put in the
page pool (class 0) from which any class takes its next page.

``slabs automove 1`` runs memcached's window algorithm once a second: a class whose free
chunks exceed 2.5 pages while its window saw no evictions gives a page to the pool; and
when the class that keeps evicting has a COLD tail younger than ``slab_automove_ratio`` x
the oldest class's (averaged over ``slab_automove_window`` seconds), a page of the oldest
moves to it. ``slabs automove 2`` moves a page to a class on each of its evictions.

A lowered ``cache_memlimit`` moves pages of the biggest classes to the pool and gives
their memory back until the cache fits.
"""

from __future__ import annotations

from enum import IntEnum
from typing import TYPE_CHECKING, Final

from memcachepy.store.index import NARROW_LIMIT
from memcachepy.store.items import (
    CONT_ID,
    HEADER_SIZE,
    I64,
    OFF_IFLAGS,
    OFF_NCONT,
    OFF_NKEY,
    OFF_PREV,
    SEG_COLD,
    SEG_SHIFT,
    U16,
)
from memcachepy.store.slabs import OFFSET_MASK, PAGE_SHIFT

if TYPE_CHECKING:
    from memcachepy.store.host import CacheHost

MIN_PAGES_FOR_SOURCE: Final = 2
MIN_PAGES_FOR_RECLAIM: Final = 2.5


class ReassignResult(IntEnum):
    """memcached's reassign_result_type."""

    OK = 0
    RUNNING = 1
    BADCLASS = 2
    NOSPARE = 3
    SAME = 4


class Rebalancer:
    """Moves one slab page at a time, in bounded steps."""

    def __init__(self, cache: CacheHost) -> None:
        self.cache = cache
        self.src = 0
        self.dst = 0
        self.page = -1
        self.pos = 0
        self._pick = 0
        # Automover state: per class a window of (age, dirty, evicted ratio, evicted seen).
        self._window_size = 0
        self._windows: list[list[tuple[int, int, float, int]]] = []
        self._cur = 0
        self._before: list[tuple[int, int, int]] = []
        self._last_check = -1

    @property
    def running(self) -> bool:
        return self.page >= 0

    def reassign(self, src: int, dst: int) -> ReassignResult:
        """``slabs reassign <src> <dst>``: start moving a page (-1: any source with spare)."""
        slabs = self.cache.slabs
        if self.running:
            return ReassignResult.RUNNING
        if src == dst:
            return ReassignResult.SAME
        if src == -1:
            src = self._pick_any(dst)
        largest = slabs.largest
        if not (0 <= src <= largest and 0 <= dst <= largest):
            return ReassignResult.BADCLASS
        spare = len(slabs.pool) if src == 0 else len(slabs.classes[src].pages)
        if spare < MIN_PAGES_FOR_SOURCE:
            return ReassignResult.NOSPARE
        self._begin(src, dst)
        return ReassignResult.OK

    def _pick_any(self, dst: int) -> int:
        """A class other than ``dst`` with a page to spare, taken in turn (memcached's)."""
        classes = self.cache.slabs.classes
        largest = len(classes) - 1
        for _ in range(largest):
            self._pick = self._pick % largest + 1
            if self._pick != dst and len(classes[self._pick].pages) > 1:
                return self._pick
        return -1

    def _begin(self, src: int, dst: int) -> None:
        slabs = self.cache.slabs
        if src == 0:
            slabs.give_page(slabs.pool.pop(0), dst)
            self.cache.counters.slabs_moved += 1
            return
        number = slabs.classes[src].pages[0]  # the oldest page holds the oldest items
        slabs.begin_move(number)
        self.src, self.dst, self.page, self.pos = src, dst, number, 0

    def step(self, budget: int) -> int:
        """Empty up to ``budget`` chunks of the page being moved; returns the chunks seen."""
        self._fit_limit()
        if not self.running:
            return 0
        cache = self.cache
        slabs = cache.slabs
        cls = slabs.classes[self.src]
        base = self.page << PAGE_SHIFT
        end = min(cls.per_page, self.pos + budget)
        now = cache.now()
        for i in range(self.pos, end):
            self._empty_chunk(base + i * cls.chunk_size, now)
        seen = end - self.pos
        self.pos = end
        if end >= cls.per_page:
            self._finish()
        return seen

    def set_limit(self, limit: int) -> bool:
        """Change the memory limit (``cache_memlimit``); False if it cannot change (``-e``).

        The cache grows into a larger limit at once. Under a smaller one, :meth:`step`
        empties pages, evicting what does not fit, and gives their memory back.
        """
        cache = self.cache
        if cache.slabs.fixed_memory:
            return False
        if limit >= NARROW_LIMIT:
            cache.index.widen()
        cache.slabs.set_limit(limit)
        return True

    def move_page_to(self, class_id: int) -> bool:
        """Give a starving class (no items, no free memory) a page taken from the largest class.

        The items on that page are evicted first. memcached avoids this case by
        granting every class its first page beyond the limit; moving a page keeps
        the hard memory cap instead.
        """
        cache = self.cache
        slabs = cache.slabs
        self.finish_now()  # a page half emptied must not be taken from under it
        donors = [c for c in slabs.classes if c.id != class_id and c.pages]
        if not donors:
            return False
        donor = max(donors, key=lambda c: len(c.pages))
        number = donor.pages[-1]
        now = cache.now()
        for chunk in slabs.chunks_of_page(number):
            head = cache.items.head_of(chunk)
            if head >= 0:
                cache.evict_item(head, now)
        slabs.take_page(number)
        slabs.give_page(number, class_id)
        cache.counters.slabs_moved += 1
        return True

    def finish_now(self) -> None:
        """Complete the move under way at once."""
        for _ in range(1 << 20):
            if not self.running:
                return
            self.step(1 << 20)

    def _empty_chunk(self, chunk: int, now: int) -> None:
        cache = self.cache
        slabs = cache.slabs
        counters = cache.counters
        head = cache.items.head_of(chunk)
        if head < 0:
            return
        page = slabs.pages[chunk >> PAGE_SHIFT]
        off = chunk & OFFSET_MASK
        if cache.is_dead(head, now):
            cache.remove(head)
            return
        new = slabs.alloc_existing(self.src)
        if new < 0:
            counters.slab_reassign_evictions_nomem += 1
            cache.remove(head)
            return
        size = slabs.classes[self.src].chunk_size
        new_page = slabs.pages[new >> PAGE_SHIFT]
        new_off = new & OFFSET_MASK
        new_page[new_off : new_off + size] = page[off : off + size]
        page[off + OFF_IFLAGS] = 0
        if head != chunk:
            self._repoint_continuation(head, chunk, new)
            counters.slab_reassign_chunk_rescues += 1
            return
        cache.items.replace(chunk, new, self.src)
        nkey = new_page[new_off + OFF_NKEY]
        cache.index[bytes(cache.items.read(new, 0, nkey))] = new
        if U16.unpack_from(new_page, new_off + OFF_NCONT)[0]:
            for cont in cache.items.continuations(new):
                cpage = slabs.pages[cont >> PAGE_SHIFT]
                I64.pack_into(cpage, (cont & OFFSET_MASK) + OFF_PREV, new)
        counters.slab_reassign_rescues += 1

    def _repoint_continuation(self, head: int, old: int, new: int) -> None:
        page = self.cache.slabs.pages[head >> PAGE_SHIFT]
        off = head & OFFSET_MASK
        ncont = U16.unpack_from(page, off + OFF_NCONT)[0]
        for i in range(ncont):
            at = off + HEADER_SIZE + i * CONT_ID.size
            if CONT_ID.unpack_from(page, at)[0] == old:
                CONT_ID.pack_into(page, at, new)
                return

    def _finish(self) -> None:
        slabs = self.cache.slabs
        number, dst = self.page, self.dst
        self.page = -1
        slabs.take_page(number)
        slabs.give_page(number, dst)
        self.cache.counters.slabs_moved += 1
        self._fit_limit()

    def _fit_limit(self) -> None:
        """After ``cache_memlimit`` lowered the limit: free pool pages, then empty pages."""
        slabs = self.cache.slabs
        while slabs.malloced > slabs.limit and slabs.release_pool_page():
            pass
        if slabs.malloced <= slabs.limit or self.running or slabs.fixed_memory:
            return
        donor = max(slabs.classes[1:], key=lambda c: len(c.pages))
        if donor.pages:
            number = donor.pages[0]
            slabs.begin_move(number)
            self.src, self.dst, self.page, self.pos = donor.id, 0, number, 0

    # -- automove ------------------------------------------------------------------------

    def automove_tick(self) -> bool:
        """Once a second with ``slab_automove 1``: maybe start a move. True: check again soon."""
        cache = self.cache
        tuning = cache.tuning
        now = cache.now()
        if tuning.slab_automove != 1 or not tuning.slab_reassign or now == self._last_check:
            return False
        src, dst = self._decide(now)
        if src >= 0 and dst >= 0:
            self.reassign(src, dst)
        if dst != 0:
            self._last_check = now
            return False
        return True  # a page went to the pool: memcached looks again right away

    def _snapshot(self) -> list[tuple[int, int, int]]:
        cache = self.cache
        return [
            (k.evicted, k.outofmemory, len(cls.pages))
            for k, cls in zip(cache.counters.classes, cache.slabs.classes, strict=True)
        ]

    def _decide(self, now: int) -> tuple[int, int]:
        cache = self.cache
        slabs = cache.slabs
        size = max(cache.tuning.slab_automove_window, 1)
        n_classes = len(slabs.classes)
        if size != self._window_size or len(self._before) != n_classes:
            self._window_size = size
            self._windows = [[(0, 0, 0.0, 0)] * size for _ in range(n_classes)]
            self._before = self._snapshot()
            self._cur = 0
        after = self._snapshot()
        evicted_total = sum(a[0] - b[0] for a, b in zip(after, self._before, strict=True))
        self._cur += 1
        src = dst = -1
        oldest, oldest_age = -1, 0
        youngest, youngest_age, youngest_evicting = -1, 1 << 62, False
        for n in range(1, n_classes):
            cls = slabs.classes[n]
            evicted_delta = after[n][0] - self._before[n][0]
            dirty = seen = 0
            ratio = 0.0
            if evicted_delta > 0:
                ratio = evicted_delta / evicted_total
                seen = dirty = 1
            if after[n][1] > self._before[n][1] or after[n][2] > self._before[n][2]:
                dirty = 1
            age = cache.lru.tail_age(n | SEG_COLD << SEG_SHIFT, now)
            window = self._windows[n]
            window[self._cur % size] = (age, dirty, ratio, seen)
            avg_age = sum(w[0] for w in window) // size
            if len(cls.free) > cls.per_page * MIN_PAGES_FOR_RECLAIM and not any(
                w[1] for w in window
            ):
                src, dst = n, 0
                oldest = youngest = -1
                break
            if avg_age > oldest_age and len(cls.pages) > MIN_PAGES_FOR_SOURCE:
                oldest, oldest_age = n, avg_age
            evicted_seen = sum(w[3] for w in window)
            if avg_age < youngest_age and (
                evicted_seen > size / 2 or sum(w[2] for w in window) / size > 0.25
            ):
                youngest, youngest_age, youngest_evicting = n, avg_age, bool(seen)
        self._before = after
        if youngest != -1 and oldest != -1 and self._cur > size:
            ratio_limit = oldest_age * cache.tuning.slab_automove_ratio
            if youngest_age < ratio_limit and youngest_evicting:
                src, dst = oldest, youngest
        return src, dst
