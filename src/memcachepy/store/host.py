"""The small interface through which the store's background helpers use the cache.

The LRU maintainer (:mod:`.lru`), the crawler (:mod:`.crawler`), the slab rebalancer
(:mod:`.rebalance`) and warm restart (:mod:`.persist`) each work on a :class:`CacheHost`,
which :class:`~memcachepy.store.cache.Cache` is. They read the cache's memory (``slabs``,
``items``), its clocks and counters, and change it only through the item operations below,
so the cache's own bookkeeping (index, byte counts, size histogram) stays in one place.
Declaring it here rather than importing the cache keeps the helpers below the cache: no
import cycle, not even for type checking.
"""

from __future__ import annotations

import builtins
from typing import Protocol

from memcachepy.store.counters import CacheCounters
from memcachepy.store.framing import Framing
from memcachepy.store.index import KeyIndex
from memcachepy.store.items import ItemMemory
from memcachepy.store.slabs import SlabAllocator
from memcachepy.store.tuning import StoreTuning


class PageMover(Protocol):
    """What the LRU maintainer asks of the rebalancer (``slab_automove=2``)."""

    def reassign(self, src: int, dst: int) -> object: ...


class TailAges(Protocol):
    """What the rebalancer's automove and the crawler ask of the LRU maintainer."""

    def tail_age(self, lru: int, now: int) -> int: ...

    def reclaim_tails(self, now: int, budget: int) -> int: ...

    def hold(self) -> None:
        """A metadump walk begins: the maintainer moves nothing until :meth:`release`."""

    def release(self) -> None: ...


class ExtstoreView(Protocol):
    """What the crawler asks of extstore."""

    def valid(self, cid: int) -> bool:
        """Whether a header item's value is still on flash (its page not freed)."""


class CacheHost(Protocol):
    """The cache as its background helpers see it."""

    slabs: SlabAllocator
    items: ItemMemory
    tuning: StoreTuning
    counters: CacheCounters
    started: int
    """Unix time of relative second 0 (memcached's process_started)."""
    bytes: int
    """memcached's ``bytes``: the ITEM_ntotal sum of linked items."""
    sizes: list[int] | None
    evict: bool
    """False under ``-M``: memory is never taken from a live item."""

    @property
    def framing(self) -> Framing: ...

    @property
    def rebalancer(self) -> PageMover: ...

    @property
    def lru(self) -> TailAges: ...

    @property
    def extstore(self) -> ExtstoreView | None:
        """Extstore (``-o ext_path``), if any."""

    @property
    def index(self) -> KeyIndex:
        """Key -> head chunk of every linked item."""

    @property
    def oldest_live(self) -> int: ...

    @property
    def oldest_cas(self) -> int: ...

    @property
    def memory_file(self) -> str | None: ...

    def __len__(self) -> int:
        """How many items are linked."""

    def now(self) -> int: ...

    def item_total(self, nkey: int, flags: int, nbytes: int) -> int: ...
    def count_item(self, class_id: int, size: int, sign: int) -> None: ...

    def key_of(self, cid: int) -> builtins.bytes: ...

    def size_of(self, cid: int) -> int: ...

    def is_flushed(self, cas: int, atime: int) -> bool:
        """Whether flush_all invalidated an item with this CAS and access time."""

    def is_dead(self, cid: int, now: int) -> bool:
        """Whether an item is expired or flushed."""

    def remove(self, cid: int) -> None:
        """Unlink an item: index, LRU, chunks, accounting."""

    def evict_item(self, cid: int, now: int) -> None:
        """Remove a live item to make room, counting it as memcached counts evictions."""

    def restore_clocks(self, started: int, cas: int, oldest_live: int, oldest_cas: int) -> None:
        """Warm restart: take back the clocks and CAS counter of a saved cache."""
