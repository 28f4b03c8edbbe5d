"""Cache operations with an injected clock: results, expiry, flush, CAS, eviction."""

from __future__ import annotations

import pytest

from memcachepy.store.cache import Cache
from memcachepy.store.results import DeltaResult, StoreMode, StoreResult
from tests.store.clock import FakeClock

MB = 1 << 20


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def cache(clock: FakeClock) -> Cache:
    return Cache(64 * MB, clock=clock)


def value(cache: Cache, key: bytes) -> bytes | None:
    cid = cache.fetch_chunk(key)
    return None if cid < 0 else cache.value(cid)


def test_store_modes(cache: Cache) -> None:
    assert cache.store(StoreMode.ADD, b"k", 1, 0, b"a") == StoreResult.STORED
    assert cache.store(StoreMode.ADD, b"k", 1, 0, b"b") == StoreResult.NOT_STORED
    assert cache.store(StoreMode.REPLACE, b"x", 1, 0, b"b") == StoreResult.NOT_STORED
    assert cache.store(StoreMode.REPLACE, b"k", 2, 0, b"b") == StoreResult.STORED
    assert cache.store(StoreMode.APPEND, b"k", 9, 0, b"c") == StoreResult.STORED
    assert cache.store(StoreMode.PREPEND, b"k", 9, 0, b"a") == StoreResult.STORED
    cid = cache.fetch_chunk(b"k")
    assert cache.value(cid) == b"abc" and cache.flags_of(cid) == 2  # append keeps flags
    assert cache.store(StoreMode.APPEND, b"none", 0, 0, b"c") == StoreResult.NOT_STORED


def test_cas(cache: Cache) -> None:
    assert cache.store(StoreMode.CAS, b"k", 0, 0, b"v", 1) == StoreResult.NOT_FOUND
    cache.store(StoreMode.SET, b"k", 0, 0, b"v")
    unique = cache.cas_of(cache.fetch_chunk(b"k"))
    assert cache.store(StoreMode.CAS, b"k", 0, 0, b"w", unique + 1) == StoreResult.EXISTS
    assert cache.store(StoreMode.CAS, b"k", 0, 0, b"w", unique) == StoreResult.STORED
    assert cache.store(StoreMode.CAS, b"k", 0, 0, b"x", unique) == StoreResult.EXISTS
    assert cache.cas_of(cache.fetch_chunk(b"k")) > unique


def test_cas_disabled_never_matches(clock: FakeClock) -> None:
    cache = Cache(8 * MB, clock=clock, use_cas=False)
    cache.store(StoreMode.SET, b"k", 0, 0, b"v")
    assert cache.cas_of(cache.fetch_chunk(b"k")) == 0
    assert cache.store(StoreMode.CAS, b"k", 0, 0, b"w", 0) == StoreResult.EXISTS


def test_relative_absolute_and_negative_exptime(cache: Cache, clock: FakeClock) -> None:
    cache.store(StoreMode.SET, b"rel", 0, 10, b"v")
    cache.store(StoreMode.SET, b"abs", 0, int(clock.now) + 20, b"v")
    cache.store(StoreMode.SET, b"neg", 0, -1, b"v")
    cache.store(StoreMode.SET, b"never", 0, 0, b"v")
    assert value(cache, b"neg") is None
    clock.advance(10)
    assert value(cache, b"rel") is None
    assert value(cache, b"abs") == b"v"
    clock.advance(10)
    assert value(cache, b"abs") is None
    clock.advance(10**6)
    assert value(cache, b"never") == b"v"
    assert cache.counters.get_expired == 3


def test_touch_and_gat_change_exptime(cache: Cache, clock: FakeClock) -> None:
    cache.store(StoreMode.SET, b"k", 0, 5, b"v")
    assert cache.touch(b"k", 100)
    assert not cache.touch(b"missing", 100)
    clock.advance(50)
    assert value(cache, b"k") == b"v"
    assert cache.fetch_chunk(b"k", touch_exptime=1) >= 0
    clock.advance(1)
    assert value(cache, b"k") is None


def test_incr_decr(cache: Cache) -> None:
    cache.store(StoreMode.SET, b"n", 0, 0, b"10")
    assert cache.incr_decr(b"n", False, 1) == (DeltaResult.OK, 9)
    assert value(cache, b"n") == b"9 "  # memcached keeps the length, padding with spaces
    assert cache.incr_decr(b"n", True, 991) == (DeltaResult.OK, 1000)
    assert value(cache, b"n") == b"1000"
    assert cache.incr_decr(b"n", False, 5000) == (DeltaResult.OK, 0)
    cache.store(StoreMode.SET, b"n", 0, 0, b"18446744073709551615")
    assert cache.incr_decr(b"n", True, 2) == (DeltaResult.OK, 1)
    cache.store(StoreMode.SET, b"s", 0, 0, b"abc")
    assert cache.incr_decr(b"s", True, 1)[0] == DeltaResult.NON_NUMERIC
    cache.store(StoreMode.SET, b"e", 0, 0, b"")
    assert cache.incr_decr(b"e", True, 1)[0] == DeltaResult.NON_NUMERIC
    assert cache.incr_decr(b"zz", True, 1)[0] == DeltaResult.NOT_FOUND


def test_flush_all_now_and_delayed(cache: Cache, clock: FakeClock) -> None:
    cache.store(StoreMode.SET, b"a", 0, 0, b"v")
    cache.flush_all()
    assert value(cache, b"a") is None
    cache.store(StoreMode.SET, b"b", 0, 0, b"v")  # same second, after the flush
    assert value(cache, b"b") == b"v"
    cache.flush_all(5)
    # With CAS on, memcached sets oldest_live to the flush time minus one second.
    clock.advance(3)
    assert value(cache, b"b") == b"v"
    clock.advance(1)
    assert value(cache, b"b") is None


def test_too_large_set_drops_old_value(cache: Cache) -> None:
    cache.store(StoreMode.SET, b"k", 0, 0, b"v")
    huge = b"x" * MB
    assert cache.store(StoreMode.ADD, b"k", 0, 0, huge) == StoreResult.TOO_LARGE
    assert value(cache, b"k") == b"v"
    assert cache.store(StoreMode.SET, b"k", 0, 0, huge) == StoreResult.TOO_LARGE
    assert value(cache, b"k") is None


def test_item_size_limit_matches_memcached_formula(cache: Cache) -> None:
    # 48-byte header, key + NUL, value + CRLF, 8-byte CAS: exactly 1 MiB fits.
    limit = MB - 48 - 2 - 2 - 8
    assert cache.item_fits(1, 0, limit)
    assert not cache.item_fits(1, 0, limit + 1)
    assert not cache.item_fits(1, 1, limit)  # non-zero flags take 4 bytes


def test_large_chunked_values_round_trip(cache: Cache) -> None:
    data = bytes(range(256)) * 4000  # 1,024,000 bytes: spans several chunks
    assert cache.store(StoreMode.SET, b"big", 3, 0, data) == StoreResult.STORED
    cid = cache.fetch_chunk(b"big")
    assert cache.value(cid) == data
    assert cache.store(StoreMode.APPEND, b"big", 0, 0, b"tail") == StoreResult.STORED
    assert value(cache, b"big") == data + b"tail"
    assert cache.delete(b"big")
    assert cache.bytes == 0


def test_eviction_keeps_memory_under_the_limit(clock: FakeClock) -> None:
    cache = Cache(4 * MB, clock=clock)
    for i in range(60000):
        assert cache.store(StoreMode.SET, b"key%06d" % i, 0, 0, b"v" * 100) == StoreResult.STORED
    assert cache.slabs.malloced <= 4 * MB
    assert cache.bytes <= 4 * MB
    evicted = cache.counters.total("evicted")
    assert evicted > 0 and len(cache) == 60000 - evicted
    assert value(cache, b"key059999") == b"v" * 100
    assert value(cache, b"key000000") is None  # the oldest went first


def test_lru_keeps_recently_read_items(clock: FakeClock) -> None:
    cache = Cache(2 * MB, clock=clock)
    cache.store(StoreMode.SET, b"hot", 0, 0, b"v" * 100)
    for i in range(30000):
        clock.advance(0.01)
        if i % 1000 == 0:
            clock.advance(61)  # past the update interval, so a read moves it to the head
            assert cache.fetch_chunk(b"hot") >= 0
        cache.store(StoreMode.SET, b"k%d" % i, 0, 0, b"v" * 100)
    assert value(cache, b"hot") == b"v" * 100
    assert cache.counters.total("evicted") > 0


def test_expired_items_are_reclaimed_before_evicting(clock: FakeClock) -> None:
    cache = Cache(1 * MB, clock=clock)
    cache.store(StoreMode.SET, b"t00000", 0, 1, b"v" * 100)
    class_id = next(c.id for c in cache.slabs.classes if c.pages)
    for i in range(1, cache.slabs.classes[class_id].per_page):
        cache.store(StoreMode.SET, b"t%05d" % i, 0, 1, b"v" * 100)
    clock.advance(2)
    cache.store(StoreMode.SET, b"new000", 0, 0, b"v" * 100)
    # As memcached's lru_pull_tail: expired items met at the tail are all reclaimed, up to 5.
    assert cache.counters.total("reclaimed") == 5
    assert cache.counters.total("evicted") == 0


def test_no_evict_mode_answers_no_memory_and_keeps_data(clock: FakeClock) -> None:
    cache = Cache(1 * MB, clock=clock, evict=False)
    stored = 0
    while cache.store(StoreMode.SET, b"k%05d" % stored, 0, 0, b"v" * 100) == StoreResult.STORED:
        stored += 1
    assert stored > 1000
    assert cache.store(StoreMode.SET, b"m%05d" % 0, 0, 0, b"v" * 100) == StoreResult.NO_MEMORY
    assert all(value(cache, b"k%05d" % i) == b"v" * 100 for i in range(stored))


def test_a_starving_class_gets_a_page_moved_to_it(clock: FakeClock) -> None:
    cache = Cache(2 * MB, clock=clock)
    i = 0
    while cache.slabs.can_grow() or i < 20000:
        cache.store(StoreMode.SET, b"s%d" % i, 0, 0, b"v" * 50)
        i += 1
    assert cache.store(StoreMode.SET, b"big", 0, 0, b"x" * 5000) == StoreResult.STORED
    assert value(cache, b"big") == b"x" * 5000
    assert cache.counters.slabs_moved == 1
    assert cache.slabs.malloced <= 2 * MB


def test_collect_frames_hits_and_skips_misses(clock: FakeClock) -> None:
    from memcachepy.dispatch.text import TEXT_FRAMING

    cache = Cache(8 * MB, clock=clock, framing=TEXT_FRAMING)
    big = b"b" * 700_000  # chunked
    cache.store(StoreMode.SET, b"a", 5, 0, b"one")
    cache.store(StoreMode.SET, b"big", 0, 0, big)
    cache.store(StoreMode.SET, b"gone", 0, 1, b"x")
    clock.advance(2)
    out: list[bytes | bytearray] = []
    assert cache.collect([b"a", b"nope", b"gone", b"big"], out) == 2
    assert b"".join(out) == b"VALUE a 5 3\r\none\r\nVALUE big 0 700000\r\n" + big + b"\r\n"
    out.clear()
    cas = cache.cas_of(cache.fetch_chunk(b"a"))
    assert cache.collect([b"a"], out, with_cas=True, touch_exptime=1) == 1
    assert b"".join(out) == b"VALUE a 5 3 %d\r\none\r\n" % cas
    clock.advance(1)
    assert cache.collect([b"a"], out) == 0  # the touch gave it one second
    assert cache.counters.get_expired == 2


@pytest.mark.parametrize("size", [1, 3_900, 4_000, 4_100, 9_000, 200_000])
def test_collect_serves_items_inside_and_past_the_read_window(clock: FakeClock, size: int) -> None:
    # A get copies at most READ_WINDOW bytes of an item's chunk and slices small items'
    # replies from that copy; a larger item's stream is sliced from the page instead.
    # Either way the reply, with and without the CAS, is the item's.
    from memcachepy.dispatch.text import TEXT_FRAMING
    from memcachepy.store.index import READ_WINDOW

    assert 3_900 < READ_WINDOW < 9_000
    cache = Cache(8 * MB, clock=clock, framing=TEXT_FRAMING)
    data = bytes(range(256)) * (size // 256) + b"z" * (size % 256)
    key = b"k" * 40
    cache.store(StoreMode.SET, key, 7, 0, data)
    out: list[bytes | bytearray] = []
    assert cache.collect([key, key], out) == 2
    one = b"VALUE %s 7 %d\r\n%s\r\n" % (key, size, data)
    assert b"".join(out) == one * 2
    out.clear()
    cas = cache.cas_of(cache.fetch_chunk(key))
    assert cache.collect([key], out, with_cas=True) == 1
    assert b"".join(out) == b"VALUE %s 7 %d %d\r\n%s\r\n" % (key, size, cas, data)


def test_collect_tells_apart_keys_that_differ_in_one_byte(cache: Cache) -> None:
    keys = [b"user:%030d" % 7, b"user:%030d" % 8, b"x" + b"user:%029d" % 7, b"abc", b"abd"]
    for n, key in enumerate(keys):
        cache.store(StoreMode.SET, key, 0, 0, b"value-%d" % n)
    for n, key in enumerate(keys):
        out: list[bytes | bytearray] = []
        assert cache.collect([key], out) == 1
        assert b"".join(out).endswith(b"value-%d" % n)
    assert cache.collect([b"user:%030d" % 9, b"abe"], []) == 0
