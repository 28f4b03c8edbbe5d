"""A set of a key that exists may write the new item over the old one's chunk
(ItemLifecycle._rewrite): only where memcached's allocate-then-free ends in the same state.
"""

from __future__ import annotations

import pytest

from memcachepy.store.cache import Cache
from memcachepy.store.items import SEG_COLD, SEG_HOT, SEG_SHIFT
from memcachepy.store.results import StoreMode, StoreResult
from memcachepy.store.slabs import PAGE_SHIFT
from tests.store.clock import FakeClock

MB = 1 << 20


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def value(cache: Cache, key: bytes) -> bytes | None:
    cid = cache.fetch_chunk(key)
    return None if cid < 0 else cache.value(cid)


def shape(cache: Cache, class_id: int) -> tuple[int, ...]:
    """What stats report of a class and the cache: items, bytes, chunks, evictions."""
    slabs = cache.slabs
    cls = slabs.classes[class_id]
    counters = cache.counters
    return (
        len(cache),
        cache.bytes,
        counters.classes[class_id].mem_requested,
        len(cls.free),
        cls.total_chunks,
        counters.total("evicted"),
        counters.total_items,
    )


def test_a_set_over_a_key_of_the_same_class_keeps_every_count_of_a_new_item(
    clock: FakeClock,
) -> None:
    cache = Cache(8 * MB, clock=clock)
    for i in range(10):
        cache.store(StoreMode.SET, b"k%d" % i, 0, 0, b"a" * 100)
    old = cache.index[b"k3"]
    class_id = cache.slabs.page_class[old >> PAGE_SHIFT]
    old_cas = cache.cas_of(old)
    before = shape(cache, class_id)
    clock.advance(5)
    assert cache.store(StoreMode.SET, b"k3", 7, 100, b"b" * 101) == StoreResult.STORED
    cid = cache.index[b"k3"]
    assert cid == old  # written over the old item
    items, size, requested, free, chunks, evicted, total = before
    # As memcached's new item: one more item set, its bytes (one more byte of value, and
    # client flags now: 4 more), the old one's chunk free again.
    grown = cache.item_total(2, 7, 101) - cache.item_total(2, 0, 100)
    assert grown == 5
    assert shape(cache, class_id) == (
        items,
        size + grown,
        requested + grown,
        free,
        chunks,
        evicted,
        total + 1,
    )
    assert cache.cas_of(cid) > old_cas
    assert value(cache, b"k3") == b"b" * 101
    assert cache.flags_of(cid) == 7
    # Linked once, at the HOT head, and nowhere else.
    items_ = cache.items
    assert items_.heads[class_id | SEG_HOT << SEG_SHIFT] == cid
    order = []
    at = items_.heads[class_id | SEG_HOT << SEG_SHIFT]
    while at >= 0:
        order.append(at)
        at = items_.toward_tail(at)
    assert len(order) == len(set(order)) == 10
    # Its expiry is its own.
    clock.advance(101)
    assert value(cache, b"k3") is None
    assert value(cache, b"k4") == b"a" * 100


def test_a_full_class_evicts_for_a_set_of_a_key_it_holds_as_memcached_does(
    clock: FakeClock,
) -> None:
    cache = Cache(1 * MB, clock=clock)
    i = 0
    while cache.slabs.can_grow() or i < 20000:
        cache.store(StoreMode.SET, b"f%05d" % i, 0, 0, b"v" * 100)
        i += 1
    class_id = cache.slabs.page_class[cache.index[b"f%05d" % (i - 1)] >> PAGE_SHIFT]
    cache.slabs.classes[class_id].free.clear()  # the class is full
    evicted = cache.counters.total("evicted")
    last = b"f%05d" % (i - 1)
    old = cache.index[last]
    assert cache.store(StoreMode.SET, last, 0, 0, b"w" * 100) == StoreResult.STORED
    # memcached allocates before it frees: the COLD tail goes, and the old chunk is free.
    assert cache.counters.total("evicted") == evicted + 1
    assert cache.index[last] != old
    assert cache.slabs.classes[class_id].free == [old]
    assert value(cache, last) == b"w" * 100


def test_a_set_that_changes_class_or_lies_on_a_page_being_emptied_takes_a_new_chunk(
    clock: FakeClock,
) -> None:
    cache = Cache(8 * MB, clock=clock)
    cache.store(StoreMode.SET, b"k", 0, 0, b"a" * 100)
    old = cache.index[b"k"]
    cache.store(StoreMode.SET, b"k", 0, 0, b"b" * 3000)
    assert cache.index[b"k"] >> PAGE_SHIFT != old >> PAGE_SHIFT
    assert value(cache, b"k") == b"b" * 3000
    # Two pages of one class, the first being emptied: its item's set goes to the other,
    # which has free chunks, so that the first can be emptied.
    cache.store(StoreMode.SET, b"p00000", 0, 0, b"a" * 100)
    class_id = cache.slabs.page_class[cache.index[b"p00000"] >> PAGE_SHIFT]
    n = 1
    while len(cache.slabs.classes[class_id].pages) < 2 or n % 10:
        cache.store(StoreMode.SET, b"p%05d" % n, 0, 0, b"a" * 100)
        n += 1
    first = cache.index[b"p00000"] >> PAGE_SHIFT
    assert len(cache.slabs.classes[class_id].pages) == 2
    cache.slabs.begin_move(first)
    assert cache.slabs.classes[class_id].free  # the second page's
    assert cache.store(StoreMode.SET, b"p00000", 0, 0, b"c" * 100) == StoreResult.STORED
    assert cache.index[b"p00000"] >> PAGE_SHIFT != first
    assert value(cache, b"p00000") == b"c" * 100
    # Off the moving page, a set is written in place again.
    last = cache.index[b"p%05d" % (n - 1)]
    cache.store(StoreMode.SET, b"p%05d" % (n - 1), 0, 0, b"d" * 100)
    assert cache.index[b"p%05d" % (n - 1)] == last


def test_an_item_of_cold_rewritten_starts_again_in_hot(clock: FakeClock) -> None:
    cache = Cache(8 * MB, clock=clock)
    for i in range(200):
        cache.store(StoreMode.SET, b"k%d" % i, 0, 0, b"a" * 100)
    cache.lru.maintain(1000)  # HOT over its share: the oldest go to COLD
    cid = cache.index[b"k0"]
    class_id = cache.slabs.page_class[cid >> PAGE_SHIFT]
    cold = class_id | SEG_COLD << SEG_SHIFT
    in_cold = cache.items.seg_counts[cold]
    assert in_cold > 0 and cache.items.tails[cold] == cid
    cache.store(StoreMode.SET, b"k0", 0, 0, b"b" * 100)
    assert cache.index[b"k0"] == cid
    assert cache.items.seg_counts[cold] == in_cold - 1
    assert cache.items.heads[class_id | SEG_HOT << SEG_SHIFT] == cid


def test_a_rewrite_counts_the_size_of_the_item_it_writes_over(clock: FakeClock) -> None:
    # A one-byte key is one bytes object in CPython: the second write below finds it the
    # same key as the set before it, without a lookup of its own in between.
    key = b"k"
    cache = Cache(8 * MB, clock=clock)
    cache.store(StoreMode.SET, key, 0, 0, b"a" * 100)
    first = cache.index[key]
    cache.store(StoreMode.SET, b"x", 0, 0, b"x" * 100)
    cache.delete(b"x")  # a free chunk in the class: the writes below go over the first
    cache.store(StoreMode.SET, key, 0, 0, b"b" * 101)
    cid = cache.write_item(key, 0, 0, b"c" * 102, cache.now(), replace_on_failure=False)
    assert cid == cache.index[key] == first
    assert value(cache, key) == b"c" * 102
    assert cache.bytes == cache.item_total(1, 0, 102)
    class_id = cache.slabs.page_class[cid >> PAGE_SHIFT]
    assert cache.counters.classes[class_id].mem_requested == cache.bytes
