"""The LRU crawler: frees expired items in the background, and lists items for metadump.

memcached's crawler.c walks each LRU from its tail with a placeholder item linked into
the list. Here a crawl walks the slab pages of each class instead: a (page, chunk) cursor
stays valid whatever is linked, unlinked or moved between two steps, so the work can be
cut into small bounded steps that the server runs between requests.

An automatic crawl starts when the soonest known expiry (or a flush_all deadline) has
passed; every store with a TTL lowers that deadline, so expired items are found within a
second or so of expiring. Consecutive automatic crawls are spaced by at least a second plus
one second per 100,000 items checked by the previous one, which bounds the crawler's share
of the CPU on big caches. ``lru_crawler crawl <classes|all>`` starts one at once.
With the LRU maintainer on, an automatic crawl first lets it reclaim the expired items at
the list tails (memcached's ``reclaimed``); the crawl frees the rest (``crawler_reclaimed``).
"""

from __future__ import annotations

from enum import IntEnum
from typing import TYPE_CHECKING, Final

from memcachepy.store.items import (
    CONTINUATION,
    EXT,
    FETCHED,
    LINKED,
    OFF_CAS,
    OFF_IFLAGS,
    TIMES,
)
from memcachepy.store.metadump import MetadumpRow, MetadumpWalk
from memcachepy.store.slabs import PAGE_SHIFT

if TYPE_CHECKING:
    from memcachepy.store.host import CacheHost

# Items checked per automatic crawl that cost one more second of pause before the next.
ITEMS_PER_PAUSE_SECOND: Final = 100_000
NEVER: Final = 1 << 62


class CrawlResult(IntEnum):
    """memcached's crawler_result_type."""

    OK = 0
    RUNNING = 1
    BADCLASS = 2
    NOTSTARTED = 3


class Crawler:
    """Bounded-step expiry crawler over slab pages."""

    def __init__(self, cache: CacheHost) -> None:
        self.cache = cache
        self.queue: list[int] = []  # classes still to crawl in this run
        self.page_index = 0
        self.chunk = 0
        self.checked_in_class = 0
        self.limit = 0  # items to check per class in this run; 0 = all
        self.automatic = False
        self.due = 0  # relative second from which an automatic crawl is due
        self.not_before = 0  # the pause after the previous automatic crawl
        self.soonest = NEVER
        self.run_checked = 0
        self.starts = 0

    @property
    def running(self) -> bool:
        return bool(self.queue)

    def expiry_seen(self, rel_exptime: int) -> None:
        """An item that expires at ``rel_exptime`` was stored: crawl then."""
        if rel_exptime < self.due:
            self.due = rel_exptime

    def request(self, classes: list[int]) -> CrawlResult:
        """``lru_crawler crawl``: crawl these classes now, checking ``lru_crawler_tocrawl``."""
        if self.running:
            return CrawlResult.RUNNING
        self._start(sorted(set(classes)), self.cache.tuning.lru_crawler_tocrawl, False)
        return CrawlResult.OK

    def _start(self, classes: list[int], limit: int, automatic: bool) -> None:
        largest = self.cache.slabs.largest
        self.queue = [c for c in classes if 0 < c <= largest] or [0]
        self.page_index = self.chunk = self.checked_in_class = 0
        self.limit = limit
        self.automatic = automatic
        self.soonest = NEVER
        self.run_checked = 0
        self.starts += 1

    def step(self, budget: int) -> int:
        """Look at up to ``budget`` chunks; returns how many (0: nothing to do now)."""
        cache = self.cache
        now = cache.now()
        if not self.queue:
            tuning = cache.tuning
            if not tuning.lru_crawler or now < self.due or now < self.not_before:
                return 0
            if tuning.lru_maintainer and tuning.lru_segmented:
                # memcached's maintainer meets expired items at the list tails within a
                # second and reclaims them before its crawler's next run: so here too.
                freed = cache.lru.reclaim_tails(now, budget)
                if freed >= budget:
                    return freed
            self.due = NEVER
            classes = [c.id for c in cache.slabs.classes if c.pages]
            self._start(classes, 0, True)
        slabs = cache.slabs
        pages = slabs.pages
        oldest = cache.oldest_live
        flushing = bool(oldest) and oldest <= now
        oldest_cas = cache.oldest_cas
        ext = cache.extstore
        visited = 0
        while self.queue and visited < budget:
            class_id = self.queue[0]
            cls = slabs.classes[class_id]
            limit = self.limit
            if self.page_index >= len(cls.pages) or (limit and self.checked_in_class >= limit):
                self._class_done()
                continue
            number = cls.pages[self.page_index]
            page = pages[number]
            size = cls.chunk_size
            base = number << PAGE_SHIFT
            end = min(cls.per_page, self.chunk + budget - visited)
            counters = cache.counters.classes[class_id]
            for i in range(self.chunk, end):
                off = i * size
                iflags = page[off + OFF_IFLAGS]
                if not iflags & LINKED or iflags & CONTINUATION:
                    continue
                self.checked_in_class += 1
                counters.crawler_items_checked += 1
                cas, exptime, atime = TIMES.unpack_from(page, off + OFF_CAS)
                flushed = flushing and (
                    atime <= oldest or bool(oldest_cas and cas and cas < oldest_cas)
                )
                # A header item whose flash page is gone is reclaimed too (memcached's
                # storage_validate_item in the crawler).
                if (
                    flushed
                    or (exptime and exptime <= now)
                    or (iflags & EXT and ext is not None and not ext.valid(base | off))
                ):
                    counters.crawler_reclaimed += 1
                    if not iflags & FETCHED and not flushed:
                        counters.expired_unfetched += 1
                    cache.remove(base | off)
                elif exptime and exptime < self.soonest:
                    self.soonest = exptime
                if limit and self.checked_in_class >= limit:
                    end = i + 1
                    break
            visited += end - self.chunk
            self.chunk = end
            if end >= cls.per_page:
                self.page_index += 1
                self.chunk = 0
        return visited

    def _class_done(self) -> None:
        self.queue.pop(0)
        self.run_checked += self.checked_in_class
        self.page_index = self.chunk = self.checked_in_class = 0
        if self.queue:
            return
        now = self.cache.now()
        if self.automatic:
            self.not_before = now + 1 + self.run_checked // ITEMS_PER_PAUSE_SECOND
        self.due = min(self.due, self.soonest)
        oldest = self.cache.oldest_live
        if oldest > now:
            self.due = min(self.due, oldest + 1)

    def metadump(self, classes: list[int]) -> list[MetadumpRow]:
        """Every row of a metadump of these classes at once (see store/metadump.py)."""
        walk = MetadumpWalk(self.cache, classes)
        return walk.rows(walk.budget)
