"""The store's meta support: stale items, the recache win token, pre-request read state."""

from __future__ import annotations

import pytest

from memcachepy.store.cache import Cache, MetaResult, StoreMode, StoreResult
from tests.store.clock import FakeClock

MB = 1 << 20


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def cache(clock: FakeClock) -> Cache:
    return Cache(8 * MB, clock=clock)


def test_find_neither_bumps_nor_counts(cache: Cache, clock: FakeClock) -> None:
    cache.store(StoreMode.SET, b"k", 7, 100, b"value")
    clock.advance(5)
    item = cache.meta_find(b"k")
    assert item is not None
    assert (item.flags, item.nbytes, item.idle, item.fetched) == (7, 5, 5, False)
    assert cache.meta_ttl(item.exptime) == 95
    assert cache.meta_find(b"k").fetched is False  # type: ignore[union-attr]
    assert cache.counters.total("get_hits") == 0
    assert cache.meta_find(b"missing") is None


def test_hit_marks_fetched_only_when_bumping(cache: Cache) -> None:
    cache.store(StoreMode.SET, b"k", 0, 0, b"v")
    item = cache.meta_find(b"k")
    assert item is not None
    cache.meta_hit(item.cid, bump=False, touched=False)
    assert cache.meta_find(b"k").fetched is False  # type: ignore[union-attr]
    cache.meta_hit(item.cid, bump=True, touched=True)
    assert cache.meta_find(b"k").fetched is True  # type: ignore[union-attr]
    assert cache.counters.total("get_hits") == 1
    assert cache.counters.total("touch_hits") == 1


def test_ttl_reporting(cache: Cache, clock: FakeClock) -> None:
    assert cache.meta_ttl(0) == -1
    cache.store(StoreMode.SET, b"k", 0, 0, b"v")
    item = cache.meta_find(b"k")
    assert item is not None
    assert cache.meta_ttl(cache.meta_touch(item.cid, 30)) == 30
    assert cache.meta_ttl(cache.meta_find(b"k").exptime) == 30  # type: ignore[union-attr]
    # cid -1: only the conversion, nothing stored
    assert cache.meta_ttl(cache.meta_touch(-1, 50)) == 50
    assert cache.meta_ttl(cache.meta_find(b"k").exptime) == 30  # type: ignore[union-attr]
    clock.advance(30)
    assert cache.meta_find(b"k") is None


def test_vivify_creates_an_empty_item(cache: Cache) -> None:
    item = cache.meta_create(b"k")
    assert item is not None and item.nbytes == 0 and item.exptime == 0
    assert cache.value(cache.get(b"k")) == b""
    assert cache.counters.total("cmd_set") == 0


def test_recache_token(cache: Cache, clock: FakeClock) -> None:
    cache.store(StoreMode.SET, b"k", 0, 10, b"v")
    cache.store(StoreMode.SET, b"forever", 0, 0, b"v")
    cid = cache.meta_find(b"k").cid  # type: ignore[union-attr]
    assert not cache.meta_recache_due(cid, 5)
    assert cache.meta_recache_due(cid, 30)
    assert not cache.meta_recache_due(cache.meta_find(b"forever").cid, 30)  # type: ignore[union-attr]
    assert cache.meta_claim(cid, True) == (True, False, False)
    # once the token is out, nobody else wins it
    assert not cache.meta_recache_due(cid, 30)
    assert cache.meta_claim(cid, False) == (False, False, True)


def test_invalidate_marks_stale_and_frees_the_token(cache: Cache) -> None:
    cache.store(StoreMode.SET, b"k", 0, 100, b"v")
    old = cache.meta_find(b"k")
    assert old is not None
    cache.meta_claim(old.cid, True)
    assert cache.meta_delete(b"k", invalidate=True, exptime=30) == MetaResult.DONE
    item = cache.meta_find(b"k")
    assert item is not None and item.cas > old.cas
    assert cache.meta_ttl(item.exptime) == 30
    # a stale item's token goes to the first reader, then is taken
    assert cache.meta_claim(item.cid, False) == (True, True, False)
    assert cache.meta_claim(item.cid, False) == (False, True, True)


def test_delete_with_cas(cache: Cache) -> None:
    cache.store(StoreMode.SET, b"k", 0, 0, b"v")
    cas = cache.meta_find(b"k").cas  # type: ignore[union-attr]
    assert cache.meta_delete(b"k", cas_unique=cas + 1) == MetaResult.EXISTS
    assert cache.meta_delete(b"k", cas_unique=cas) == MetaResult.DONE
    assert cache.meta_delete(b"k") == MetaResult.NOT_FOUND


def test_meta_store_cas_rules(cache: Cache) -> None:
    assert cache.meta_store(StoreMode.SET, b"k", 0, 0, b"a", 5) == (StoreResult.NOT_FOUND, 0)
    result, cas = cache.meta_store(StoreMode.SET, b"k", 0, 0, b"a")
    assert result == StoreResult.STORED and cas == cache.meta_find(b"k").cas  # type: ignore[union-attr]
    assert cache.meta_store(StoreMode.SET, b"k", 0, 0, b"b", 0)[0] == StoreResult.EXISTS
    assert cache.meta_store(StoreMode.REPLACE, b"k", 0, 0, b"b", cas + 9)[0] == StoreResult.EXISTS
    assert cache.meta_store(StoreMode.APPEND, b"k", 0, 0, b"b", cas + 9)[0] == StoreResult.EXISTS
    result, cas = cache.meta_store(StoreMode.APPEND, b"k", 0, 0, b"b", cas)
    assert result == StoreResult.STORED
    assert cache.meta_store(StoreMode.ADD, b"k", 0, 0, b"c", cas)[0] == StoreResult.NOT_STORED
    assert cache.meta_store(StoreMode.SET, b"k", 0, 0, b"c", cas)[0] == StoreResult.STORED
    assert cache.value(cache.get(b"k")) == b"c"


def test_meta_store_invalidate_with_older_cas_keeps_value_stale(
    cache: Cache, clock: FakeClock
) -> None:
    cache.store(StoreMode.SET, b"k", 0, 100, b"old")
    first = cache.meta_find(b"k").cas  # type: ignore[union-attr]
    cache.meta_delete(b"k", invalidate=True)
    item = cache.meta_find(b"k")
    assert item is not None
    cache.meta_claim(item.cid, False)  # a reader takes the token
    result, cas = cache.meta_store(StoreMode.SET, b"k", 3, 5, b"new", first, invalidate=True)
    assert result == StoreResult.STORED and cas > item.cas
    item = cache.meta_find(b"k")
    assert item is not None and cache.value(item.cid) == b"new"
    assert cache.meta_ttl(item.exptime) == 100  # the old exptime, not 5
    assert cache.meta_claim(item.cid, False) == (False, True, True)  # still stale, token out
    # a matching CAS clears it
    assert cache.meta_store(StoreMode.SET, b"k", 0, 0, b"fresh", cas)[0] == StoreResult.STORED
    assert cache.meta_claim(cache.meta_find(b"k").cid, False) == (False, False, False)  # type: ignore[union-attr]


def test_binary_key_flag(cache: Cache) -> None:
    cache.meta_store(StoreMode.SET, b"\x00\xff", 0, 0, b"v", binary_key=True)
    assert cache.meta_find(b"\x00\xff").binary_key is True  # type: ignore[union-attr]
    cache.meta_store(StoreMode.APPEND, b"\x00\xff", 0, 0, b"w", binary_key=True)
    assert cache.meta_find(b"\x00\xff").binary_key is False  # type: ignore[union-attr]
    debug = cache.meta_debug(b"\x00\xff")
    assert debug is not None and debug.key == b"\x00\xff" and debug.size == cache.bytes


def test_incr_decr_with_cas_and_growth(cache: Cache) -> None:
    assert cache.meta_incr_decr(b"n", True, 1)[0] == MetaResult.NOT_FOUND
    cache.store(StoreMode.SET, b"n", 0, 0, b"98")
    cas = cache.meta_find(b"n").cas  # type: ignore[union-attr]
    assert cache.meta_incr_decr(b"n", True, 1, cas + 5)[0] == MetaResult.EXISTS
    result, value, item, moved = cache.meta_incr_decr(b"n", True, 1, cas)
    assert (result, value, moved) == (MetaResult.DONE, 99, False)
    assert item is not None and item.cas > cas
    result, value, item, moved = cache.meta_incr_decr(b"n", True, 1)
    assert (result, value, moved) == (MetaResult.DONE, 100, True)
    cache.store(StoreMode.SET, b"s", 0, 0, b"abc")
    assert cache.meta_incr_decr(b"s", True, 1)[0] == MetaResult.NON_NUMERIC
    cache.store(StoreMode.SET, b"e", 0, 0, b"")
    # an empty value is non-numeric before the CAS is even compared
    assert cache.meta_incr_decr(b"e", True, 1, 12345)[0] == MetaResult.NON_NUMERIC


def test_classic_store_clears_meta_flags(cache: Cache) -> None:
    cache.meta_store(StoreMode.SET, b"k", 0, 0, b"1", binary_key=True)
    cache.meta_delete(b"k", invalidate=True)
    cache.incr_decr(b"k", True, 1)  # in place: the flags stay
    item = cache.meta_find(b"k")
    assert item is not None and item.binary_key
    assert cache.meta_claim(item.cid, False)[1] is True
    cache.store(StoreMode.SET, b"k", 0, 0, b"x")  # a new item: they go
    item = cache.meta_find(b"k")
    assert item is not None and not item.binary_key
    assert cache.meta_claim(item.cid, False) == (False, False, False)
