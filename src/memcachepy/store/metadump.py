"""``lru_crawler metadump``'s walk over the LRU lists, a bounded slice at a time.

memcached's crawler takes one item from each list in turn (the HOT lists of every class,
then WARM, COLD and TEMP), walking from the tails, with a placeholder item linked into
each list so that it keeps its place while other threads change the lists. Here the walk
holds a place in each list (:class:`~memcachepy.store.items.ListPlaces`): the next item to
visit, which the item memory moves on when that item leaves (freed, moved to another
list, or copied to another chunk when the slab mover empties its page). The LRU
maintainer moves nothing while a walk is under way (it would carry items past the
places, from HOT to COLD behind a COLD walk already done). So, as with memcached's
placeholder, an item changed during a dump may be missed or listed twice; an item left
alone is listed once.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final, NamedTuple

from memcachepy.store.items import FETCHED, OFF_CAS, OFF_IFLAGS, TIMES, ListPlaces
from memcachepy.store.items import SEG_SHIFT as _SEG_SHIFT
from memcachepy.store.slabs import OFFSET_MASK, PAGE_SHIFT

if TYPE_CHECKING:
    from memcachepy.store.host import CacheHost

_SEGMENTS: Final = 4


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
        self.items = cache.items
        wanted = sorted({c for c in classes if 0 < c <= cache.slabs.largest})
        tails = self.items.tails
        # One place per LRU list, in the order memcached's crawler takes them.
        self.lists = [
            class_id | seg << _SEG_SHIFT for seg in range(_SEGMENTS) for class_id in wanted
        ]
        self.places = ListPlaces([tails[lru] for lru in self.lists])
        self.items.walks.append(self.places)
        # Items are linked at the heads while the walk goes on; it still ends.
        self.budget = 2 * len(cache) + 1024
        cache.lru.hold()
        self._held = True

    def release(self) -> None:
        """The walk is over (done, or its reader gone): its places go, and the maintainer
        may move items again."""
        if self._held:
            self._held = False
            self.items.walks.remove(self.places)
            self.cache.lru.release()

    @property
    def done(self) -> bool:
        return self.budget <= 0 or all(cid < 0 for cid in self.places.cids)

    def rows(self, visits: int) -> list[MetadumpRow]:
        """The rows of up to ``visits`` more items looked at (expired ones are skipped)."""
        cache = self.cache
        items = self.items
        pages = cache.slabs.pages
        page_class = cache.slabs.page_class
        now = cache.now()
        started = cache.started
        oldest = cache.oldest_live
        flushing = bool(oldest) and oldest <= now
        places = self.places
        cursors = places.cids
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
                places.set(n, items.toward_head(cid))
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
        if self.done:
            self.release()
        return rows
