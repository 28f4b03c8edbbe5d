"""The store's own counters, named as memcached's ``stats``, ``stats items`` and ``stats slabs``."""

from __future__ import annotations

from dataclasses import dataclass, field

from librt.vecs import vec
from mypy_extensions import i64


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
    get_hits_other: int = 0  # get hits not counted per LRU segment (see get_hits)
    cmd_set: int = 0
    delete_hits: int = 0
    incr_hits: int = 0
    decr_hits: int = 0
    cas_hits: int = 0
    cas_badval: int = 0
    touch_hits: int = 0
    mem_requested: int = 0
    evicted_active: int = 0
    crawler_reclaimed: int = 0
    crawler_items_checked: int = 0
    moves_to_cold: int = 0
    moves_to_warm: int = 0
    moves_within_lru: int = 0
    direct_reclaims: int = 0
    # The cache's get hits per LRU id, where the get paths count this class's hits: one
    # increment per hit gives both ``get_hits`` and ``stats items``' hits_to_*. A vector of
    # native ints: compiled, an increment allocates no int object once a count passes 256.
    lru_hits: vec[i64] = field(default_factory=lambda: vec[i64](), repr=False)
    class_id: int = 0

    @property
    def get_hits(self) -> int:
        hits, c = self.lru_hits, self.class_id
        if not hits:
            return self.get_hits_other
        total: int = hits[c] + hits[c | 64] + hits[c | 128] + hits[c | 192]
        return self.get_hits_other + total

    @get_hits.setter
    def get_hits(self, value: int) -> None:
        self.get_hits_other += value - self.get_hits


@dataclass(slots=True)
class CacheCounters:
    """Whole-cache figures that are not per class."""

    total_items: int = 0
    get_expired: int = 0
    get_flushed: int = 0
    slabs_moved: int = 0
    slab_reassign_rescues: int = 0
    slab_reassign_chunk_rescues: int = 0
    slab_reassign_evictions_nomem: int = 0
    slab_reassign_inline_reclaim: int = 0
    slab_reassign_busy_items: int = 0
    slab_reassign_busy_deletes: int = 0
    lru_maintainer_juggles: int = 0
    lru_bumps_dropped: int = 0
    classes: list[ClassCounters] = field(default_factory=list)

    def total(self, name: str) -> int:
        return sum(getattr(c, name) for c in self.classes)
