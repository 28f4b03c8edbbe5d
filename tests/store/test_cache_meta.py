"""The store's meta support: stale items, the recache win token, pre-request read state."""

from __future__ import annotations

import pytest

from memcachepy.store.cache import Cache
from memcachepy.store.meta import (
    MetaResult,
    meta_claim,
    meta_create,
    meta_debug,
    meta_delete,
    meta_find,
    meta_hit,
    meta_incr_decr,
    meta_recache_due,
    meta_store,
    meta_touch,
    meta_ttl,
)
from memcachepy.store.results import StoreMode, StoreResult
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
    item = meta_find(cache, b"k")
    assert item is not None
    assert (item.flags, item.nbytes, item.idle, item.fetched) == (7, 5, 5, False)
    assert meta_ttl(cache, item.exptime) == 95
    assert meta_find(cache, b"k").fetched is False  # type: ignore[union-attr]
    assert cache.counters.total("get_hits") == 0
    assert meta_find(cache, b"missing") is None


def test_hit_marks_fetched_only_when_bumping(cache: Cache) -> None:
    cache.store(StoreMode.SET, b"k", 0, 0, b"v")
    item = meta_find(cache, b"k")
    assert item is not None
    meta_hit(cache, item.cid, bump=False, touched=False)
    assert meta_find(cache, b"k").fetched is False  # type: ignore[union-attr]
    meta_hit(cache, item.cid, bump=True, touched=True)
    assert meta_find(cache, b"k").fetched is True  # type: ignore[union-attr]
    assert cache.counters.total("get_hits") == 1
    assert cache.counters.total("touch_hits") == 1


def test_ttl_reporting(cache: Cache, clock: FakeClock) -> None:
    assert meta_ttl(cache, 0) == -1
    cache.store(StoreMode.SET, b"k", 0, 0, b"v")
    item = meta_find(cache, b"k")
    assert item is not None
    assert meta_ttl(cache, meta_touch(cache, item.cid, 30)) == 30
    assert meta_ttl(cache, meta_find(cache, b"k").exptime) == 30  # type: ignore[union-attr]
    # cid -1: only the conversion, nothing stored
    assert meta_ttl(cache, meta_touch(cache, -1, 50)) == 50
    assert meta_ttl(cache, meta_find(cache, b"k").exptime) == 30  # type: ignore[union-attr]
    clock.advance(30)
    assert meta_find(cache, b"k") is None


def test_vivify_creates_an_empty_item(cache: Cache) -> None:
    item = meta_create(cache, b"k")
    assert item is not None and item.nbytes == 0 and item.exptime == 0
    assert cache.value(cache.fetch_chunk(b"k")) == b""
    assert cache.counters.total("cmd_set") == 0


def test_recache_token(cache: Cache, clock: FakeClock) -> None:
    cache.store(StoreMode.SET, b"k", 0, 10, b"v")
    cache.store(StoreMode.SET, b"forever", 0, 0, b"v")
    cid = meta_find(cache, b"k").cid  # type: ignore[union-attr]
    assert not meta_recache_due(cache, cid, 5)
    assert meta_recache_due(cache, cid, 30)
    assert not meta_recache_due(cache, meta_find(cache, b"forever").cid, 30)  # type: ignore[union-attr]
    assert meta_claim(cache, cid, True) == (True, False, False)
    # once the token is out, nobody else wins it
    assert not meta_recache_due(cache, cid, 30)
    assert meta_claim(cache, cid, False) == (False, False, True)


def test_invalidate_marks_stale_and_frees_the_token(cache: Cache) -> None:
    cache.store(StoreMode.SET, b"k", 0, 100, b"v")
    old = meta_find(cache, b"k")
    assert old is not None
    meta_claim(cache, old.cid, True)
    assert meta_delete(cache, b"k", invalidate=True, exptime=30) == MetaResult.DONE
    item = meta_find(cache, b"k")
    assert item is not None and item.cas > old.cas
    assert meta_ttl(cache, item.exptime) == 30
    # a stale item's token goes to the first reader, then is taken
    assert meta_claim(cache, item.cid, False) == (True, True, False)
    assert meta_claim(cache, item.cid, False) == (False, True, True)


def test_delete_with_cas(cache: Cache) -> None:
    cache.store(StoreMode.SET, b"k", 0, 0, b"v")
    cas = meta_find(cache, b"k").cas  # type: ignore[union-attr]
    assert meta_delete(cache, b"k", cas_unique=cas + 1) == MetaResult.EXISTS
    assert meta_delete(cache, b"k", cas_unique=cas) == MetaResult.DONE
    assert meta_delete(cache, b"k") == MetaResult.NOT_FOUND


def test_meta_store_cas_rules(cache: Cache) -> None:
    assert meta_store(cache, StoreMode.SET, b"k", 0, 0, b"a", 5) == (StoreResult.NOT_FOUND, 0)
    result, cas = meta_store(cache, StoreMode.SET, b"k", 0, 0, b"a")
    assert result == StoreResult.STORED and cas == meta_find(cache, b"k").cas  # type: ignore[union-attr]
    assert meta_store(cache, StoreMode.SET, b"k", 0, 0, b"b", 0)[0] == StoreResult.EXISTS
    assert meta_store(cache, StoreMode.REPLACE, b"k", 0, 0, b"b", cas + 9)[0] == StoreResult.EXISTS
    assert meta_store(cache, StoreMode.APPEND, b"k", 0, 0, b"b", cas + 9)[0] == StoreResult.EXISTS
    result, cas = meta_store(cache, StoreMode.APPEND, b"k", 0, 0, b"b", cas)
    assert result == StoreResult.STORED
    assert meta_store(cache, StoreMode.ADD, b"k", 0, 0, b"c", cas)[0] == StoreResult.NOT_STORED
    assert meta_store(cache, StoreMode.SET, b"k", 0, 0, b"c", cas)[0] == StoreResult.STORED
    assert cache.value(cache.fetch_chunk(b"k")) == b"c"


def test_meta_store_invalidate_with_older_cas_keeps_value_stale(
    cache: Cache, clock: FakeClock
) -> None:
    cache.store(StoreMode.SET, b"k", 0, 100, b"old")
    first = meta_find(cache, b"k").cas  # type: ignore[union-attr]
    meta_delete(cache, b"k", invalidate=True)
    item = meta_find(cache, b"k")
    assert item is not None
    meta_claim(cache, item.cid, False)  # a reader takes the token
    result, cas = meta_store(cache, StoreMode.SET, b"k", 3, 5, b"new", first, invalidate=True)
    assert result == StoreResult.STORED and cas > item.cas
    item = meta_find(cache, b"k")
    assert item is not None and cache.value(item.cid) == b"new"
    assert meta_ttl(cache, item.exptime) == 100  # the old exptime, not 5
    assert meta_claim(cache, item.cid, False) == (False, True, True)  # still stale, token out
    # a matching CAS clears it
    assert meta_store(cache, StoreMode.SET, b"k", 0, 0, b"fresh", cas)[0] == StoreResult.STORED
    assert meta_claim(cache, meta_find(cache, b"k").cid, False) == (False, False, False)  # type: ignore[union-attr]


def test_binary_key_flag(cache: Cache) -> None:
    meta_store(cache, StoreMode.SET, b"\x00\xff", 0, 0, b"v", binary_key=True)
    assert meta_find(cache, b"\x00\xff").binary_key is True  # type: ignore[union-attr]
    meta_store(cache, StoreMode.APPEND, b"\x00\xff", 0, 0, b"w", binary_key=True)
    assert meta_find(cache, b"\x00\xff").binary_key is False  # type: ignore[union-attr]
    debug = meta_debug(cache, b"\x00\xff")
    assert debug is not None and debug.key == b"\x00\xff" and debug.size == cache.bytes


def test_incr_decr_with_cas_and_growth(cache: Cache) -> None:
    assert meta_incr_decr(cache, b"n", True, 1)[0] == MetaResult.NOT_FOUND
    cache.store(StoreMode.SET, b"n", 0, 0, b"98")
    cas = meta_find(cache, b"n").cas  # type: ignore[union-attr]
    assert meta_incr_decr(cache, b"n", True, 1, cas + 5)[0] == MetaResult.EXISTS
    result, value, item, moved = meta_incr_decr(cache, b"n", True, 1, cas)
    assert (result, value, moved) == (MetaResult.DONE, 99, False)
    assert item is not None and item.cas > cas
    result, value, item, moved = meta_incr_decr(cache, b"n", True, 1)
    assert (result, value, moved) == (MetaResult.DONE, 100, True)
    cache.store(StoreMode.SET, b"s", 0, 0, b"abc")
    assert meta_incr_decr(cache, b"s", True, 1)[0] == MetaResult.NON_NUMERIC
    cache.store(StoreMode.SET, b"e", 0, 0, b"")
    # an empty value is non-numeric before the CAS is even compared
    assert meta_incr_decr(cache, b"e", True, 1, 12345)[0] == MetaResult.NON_NUMERIC


def test_classic_store_clears_meta_flags(cache: Cache) -> None:
    meta_store(cache, StoreMode.SET, b"k", 0, 0, b"1", binary_key=True)
    meta_delete(cache, b"k", invalidate=True)
    cache.incr_decr(b"k", True, 1)  # in place: the flags stay
    item = meta_find(cache, b"k")
    assert item is not None and item.binary_key
    assert meta_claim(cache, item.cid, False)[1] is True
    cache.store(StoreMode.SET, b"k", 0, 0, b"x")  # a new item: they go
    item = meta_find(cache, b"k")
    assert item is not None and not item.binary_key
    assert meta_claim(cache, item.cid, False) == (False, False, False)
