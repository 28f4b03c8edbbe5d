"""Slab page moves: reassign replies, rescue or eviction (never corruption), automove,
and a memory limit that shrinks live."""

from __future__ import annotations

import random

from memcachepy.store.cache import Cache
from memcachepy.store.rebalance import ReassignResult
from memcachepy.store.results import StoreMode, StoreResult
from memcachepy.store.tuning import StoreTuning
from tests.store.clock import FakeClock

MB = 1 << 20


def value_for(key: bytes, size: int) -> bytes:
    return (key + b":") * (size // (len(key) + 1)) + b"!" * (size % (len(key) + 1))


def finish_moves(cache: Cache) -> None:
    for _ in range(100_000):
        if not cache.rebalancer.step(300):
            return
    raise AssertionError("page move never finished")


def test_reassign_replies() -> None:
    cache = Cache(8 * MB, clock=FakeClock())
    assert cache.rebalancer.reassign(1, 1) == ReassignResult.SAME
    assert cache.rebalancer.reassign(1, 99) == ReassignResult.BADCLASS
    assert cache.rebalancer.reassign(-1, 2) == ReassignResult.BADCLASS  # no page to spare
    assert cache.rebalancer.reassign(1, 2) == ReassignResult.NOSPARE
    for i in range(12000):  # two pages of class 1
        cache.store(StoreMode.SET, b"k%05d" % i, 0, 0, b"v")
    assert cache.rebalancer.reassign(1, 2) == ReassignResult.OK
    assert cache.rebalancer.reassign(1, 3) == ReassignResult.RUNNING
    finish_moves(cache)
    assert cache.counters.slabs_moved == 1
    assert len(cache.slabs.classes[2].pages) == 1


def test_page_move_rescues_what_fits_and_evicts_the_rest_intact() -> None:
    cache = Cache(8 * MB, clock=FakeClock())
    per_page = cache.slabs.classes[1].per_page
    keys = [b"k%05d" % i for i in range(2 * per_page - 200)]
    for key in keys:
        cache.store(StoreMode.SET, key, 7, 0, key[-3:])
    cas_before = {k: cache.cas_of(cache._index[k]) for k in keys}
    for k in keys[::3]:  # free some chunks on the first page
        cache.delete(k)
    survivors = [k for i, k in enumerate(keys) if i % 3]
    assert cache.rebalancer.reassign(1, 0) == ReassignResult.OK  # to the page pool
    finish_moves(cache)
    c = cache.counters
    assert c.slabs_moved == 1 and len(cache.slabs.pool) == 1
    assert c.slab_reassign_rescues + c.slab_reassign_evictions_nomem == len(
        [k for k in survivors if keys.index(k) < per_page]
    )
    assert c.slab_reassign_evictions_nomem > 0
    for k in survivors:
        cid = cache.fetch_chunk(k)
        if cid >= 0:  # rescued or never moved: the same value, flags and CAS
            assert cache.value(cid) == k[-3:] and cache.flags_of(cid) == 7
            assert cache.cas_of(cid) == cas_before[k]
    assert len(cache) == len(survivors) - c.slab_reassign_evictions_nomem
    # The pool page serves the next class that needs one.
    assert cache.store(StoreMode.SET, b"big", 0, 0, b"x" * 5000) == StoreResult.STORED
    assert not cache.slabs.pool


def test_chunked_items_survive_a_move_of_the_largest_class() -> None:
    cache = Cache(16 * MB, clock=FakeClock())
    largest = cache.slabs.largest
    values = {b"big%d" % i: value_for(b"big%d" % i, 600_000 + i * 1000) for i in range(8)}
    for key, value in values.items():
        cache.store(StoreMode.SET, key, 1, 0, value)
    for i in range(3):  # free a few chunks elsewhere, so that page 0's can be rescued
        cache.delete(b"big%d" % (i * 3 + 1))
    assert cache.rebalancer.reassign(largest, 0) == ReassignResult.OK
    finish_moves(cache)
    c = cache.counters
    assert c.slab_reassign_rescues + c.slab_reassign_chunk_rescues > 0
    for key, value in values.items():
        cid = cache.fetch_chunk(key)
        if cid >= 0:
            assert cache.value(cid) == value


def test_the_pick_any_source_rule() -> None:
    cache = Cache(8 * MB, clock=FakeClock())
    for i in range(12000):
        cache.store(StoreMode.SET, b"k%05d" % i, 0, 0, b"v")
    assert cache.rebalancer.reassign(-1, 5) == ReassignResult.OK
    finish_moves(cache)
    assert len(cache.slabs.classes[5].pages) == 1


def size_shift(automove: int, seconds: int = 90) -> list[float]:
    """Fill with 100-byte values, then read/fill 20 KB values (cache-aside) each second.

    Returns the 20 KB hit rate of each simulated second.
    """
    clock = FakeClock()
    tuning = StoreTuning(slab_automove=automove, slab_automove_window=10)
    cache = Cache(16 * MB, clock=clock, tuning=tuning)
    for i in range(100_000):
        cache.store(StoreMode.SET, b"small%06d" % i, 0, 0, b"s" * 100)
    rng = random.Random(5)
    big = b"b" * 20_000
    keys = [b"big%04d" % i for i in range(300)]
    rates = []
    for _ in range(seconds):
        hits = 0
        for _ in range(300):
            key = rng.choice(keys)
            if cache.fetch_chunk(key) >= 0:
                hits += 1
            else:
                cache.store(StoreMode.SET, key, 0, 0, big)
        rates.append(hits / 300)
        cache.lru.maintain(1000)
        cache.rebalancer.automove_tick()
        finish_moves(cache)
        clock.advance(1)
    return rates


def recovery_second(rates: list[float], level: float = 0.9) -> int | None:
    for second, rate in enumerate(rates):
        if rate >= level and all(r >= level for r in rates[second:]):
            return second
    return None


def test_automove_moves_pages_to_the_starving_class() -> None:
    with_automove = size_shift(1)
    without = size_shift(0)
    recovered = recovery_second(with_automove)
    assert recovered is not None and recovered < 60
    assert max(without[-20:]) < 0.5


def test_automove_2_moves_a_page_on_evictions() -> None:
    rates = size_shift(2, seconds=20)
    assert recovery_second(rates) is not None


def test_a_lower_memory_limit_is_reached_in_the_background() -> None:
    cache = Cache(16 * MB, clock=FakeClock())
    for i in range(40_000):
        cache.store(StoreMode.SET, b"s%06d" % i, 0, 0, b"s" * 300)
    for i in range(20):
        cache.store(StoreMode.SET, b"b%d" % i, 0, 0, b"b" * 30_000)
    assert cache.slabs.malloced == 16 * MB
    assert cache.rebalancer.set_limit(8 * MB)
    finish_moves(cache)
    assert cache.slabs.malloced <= 8 * MB
    assert cache.bytes <= 8 * MB
    for i in range(40_000):
        cid = cache.fetch_chunk(b"s%06d" % i)
        assert cid < 0 or cache.value(cid) == b"s" * 300
    # And it grows again into a larger limit.
    assert cache.rebalancer.set_limit(32 * MB)
    for i in range(60_000):
        assert cache.store(StoreMode.SET, b"t%06d" % i, 0, 0, b"t" * 300) == StoreResult.STORED
    assert 16 * MB < cache.slabs.malloced <= 32 * MB
