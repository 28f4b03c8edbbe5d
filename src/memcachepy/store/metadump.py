"""``lru_crawler metadump``'s walk over the LRU lists, a bounded slice at a time.

memcached's crawler takes one item from each list in turn (the HOT lists of every class,
then WARM, COLD and TEMP), walking from the tails, with a placeholder item linked into
each list so that it keeps its place while other threads change the lists. Here the walk
keeps, for each list, the next item to visit and the item it visited last, each with its
CAS. Between two slices the lists may change (items unlinked, bumped, moved between
segments, pages moved between classes); a cursor whose item is no longer where it was
resumes after the last item visited, and if that one is gone too the list's walk ends.
The LRU maintainer moves nothing while a walk is under way (it would carry items past the
cursors, from HOT to COLD behind a COLD walk already done). So, as with memcached's
placeholder, an item changed during a dump may be missed or listed twice; an item left
alone is listed once.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final, NamedTuple

from memcachepy.store.items import CONTINUATION, FETCHED, LINKED, OFF_CAS, OFF_IFLAGS, TIMES
from memcachepy.store.items import SEG_SHIFT as _SEG_SHIFT
from memcachepy.store.slabs import OFFSET_MASK, PAGE_SHIFT

if TYPE_CHECKING:
    from memcachepy.store.host import CacheHost

_SEGMENTS: Final = 4
_NONE: Final = -1


class MetadumpRow(NamedTuple):
    """One ``lru_crawler metadump`` line's facts (times are absolute Unix seconds)."""

    key: bytes
    exptime: int  # -1: never
    last_access: int
    cas: int
    fetched: bool
    class_id: int
    size: int


class MetadumpWalk:
    """The live items of some classes, in memcached's metadump order, slice by slice."""

    def __init__(self, cache: CacheHost, classes: list[int]) -> None:
        self.cache = cache
        wanted = sorted({c for c in classes if 0 < c <= cache.slabs.largest})
        tails = cache.items.tails
        # One cursor per LRU list, in the order memcached's crawler takes them.
        self.lists = [
            class_id | seg << _SEG_SHIFT for seg in range(_SEGMENTS) for class_id in wanted
        ]
        self.next = [tails[lru] for lru in self.lists]  # the item to visit next, or -1
        self.next_cas = [self._cas(cid) for cid in self.next]
        self.last = [_NONE] * len(self.lists)  # the item visited last
        self.last_cas = [0] * len(self.lists)
        # Items are linked at the heads while the walk goes on; it still ends.
        self.budget = 2 * len(cache) + 1024
        cache.lru.hold()
        self._held = True

    def release(self) -> None:
        """The walk is over (done, or its reader gone): the maintainer may move items again."""
        if self._held:
            self._held = False
            self.cache.lru.release()

    @property
    def done(self) -> bool:
        return self.budget <= 0 or all(cid < 0 for cid in self.next)

    def rows(self, visits: int) -> list[MetadumpRow]:
        """The rows of up to ``visits`` more items looked at (expired ones are skipped)."""
        self._revalidate()
        cache = self.cache
        items = cache.items
        pages = cache.slabs.pages
        page_class = cache.slabs.page_class
        now = cache.now()
        started = cache.started
        oldest = cache.oldest_live
        flushing = bool(oldest) and oldest <= now
        cursors = self.next
        rows: list[MetadumpRow] = []
        visits = min(visits, self.budget)
        left = visits
        # The lists still being walked: most of the 4 x 63 are empty or done, and a turn
        # over all of them for every item made a dump of few classes quadratic.
        active = [n for n, cid in enumerate(cursors) if cid >= 0]
        while left > 0 and active:
            for n in active:
                if left <= 0:
                    break
                cid = cursors[n]
                left -= 1
                page = pages[cid >> PAGE_SHIFT]
                off = cid & OFFSET_MASK
                cas, exptime, atime = TIMES.unpack_from(page, off + OFF_CAS)
                self.last[n] = cid
                self.last_cas[n] = cas
                cursors[n] = items.toward_head(cid)
                # memcached's metadump skips items that expired before this second (a get
                # also misses those expiring in it) and flushed ones.
                if (exptime and exptime < now) or (flushing and cache.is_flushed(cas, atime)):
                    continue
                rows.append(
                    MetadumpRow(
                        cache.key_of(cid),
                        exptime + started if exptime else -1,
                        atime + started,
                        cas,
                        bool(page[off + OFF_IFLAGS] & FETCHED),
                        page_class[cid >> PAGE_SHIFT],
                        cache.size_of(cid),
                    )
                )
            active = [n for n in active if cursors[n] >= 0]
        self.budget -= visits - left
        for n, cid in enumerate(cursors):
            self.next_cas[n] = self._cas(cid)
        if self.done:
            self.release()
        return rows

    def _cas(self, cid: int) -> int:
        if cid < 0:
            return 0
        cas: int = TIMES.unpack_from(
            self.cache.slabs.pages[cid >> PAGE_SHIFT], (cid & OFFSET_MASK) + OFF_CAS
        )[0]
        return cas

    def _in_list(self, cid: int, cas: int, lru: int) -> bool:
        """Whether ``cid`` still holds the item with ``cas``, linked in list ``lru``."""
        if cid < 0:
            return False
        slabs = self.cache.slabs
        number = cid >> PAGE_SHIFT
        if slabs.page_class[number] != lru & ((1 << _SEG_SHIFT) - 1):
            return False  # the page moved to another class
        page = slabs.pages[number]
        off = cid & OFFSET_MASK
        iflags = page[off + OFF_IFLAGS]
        if not iflags & LINKED or iflags & CONTINUATION:
            return False
        if TIMES.unpack_from(page, off + OFF_CAS)[0] != cas:
            return False
        return self.cache.items.segment(cid) == lru >> _SEG_SHIFT

    def _revalidate(self) -> None:
        """Find each list's place again after the lists changed between two slices."""
        items = self.cache.items
        for n, lru in enumerate(self.lists):
            cid = self.next[n]
            if cid < 0 or self._in_list(cid, self.next_cas[n], lru):
                continue
            last = self.last[n]
            if last >= 0 and self._in_list(last, self.last_cas[n], lru):
                self.next[n] = items.toward_head(last)
            else:
                self.next[n] = _NONE
