"""The flash tier over a cache: writing out, reading back, what items on flash refuse,
compaction and recache. Small pages (2 MiB) and a fake clock keep it fast."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from memcachepy.dispatch.text import TEXT_FRAMING
from memcachepy.store.cache import Cache
from memcachepy.store.extstore import Extstore, ExtstoreOutOfMemory
from memcachepy.store.extstore_config import MB, ExtstoreConfig, ExtstoreFile
from memcachepy.store.meta import meta_find, meta_value
from memcachepy.store.results import DeltaResult, StoreMode, StoreResult
from tests.store.clock import FakeClock

VALUE = bytes(range(65, 91)) * 400  # 10,400 bytes


def extstore_cache(tmp_path: Path, pages: int = 6, **options: object) -> tuple[Cache, FakeClock]:
    config = ExtstoreConfig(
        files=[ExtstoreFile(str(tmp_path / "ext"), pages)],
        page_size=2 * MB,
        wbuf_size=2 * MB,
        item_age=1,
        recache_rate=0,
    )
    for name, value in options.items():
        setattr(config, name, value)
    config.apply_defaults()
    clock = FakeClock()
    cache = Cache(16 * MB, clock=clock, framing=TEXT_FRAMING, extstore=config)
    return cache, clock


def ext_of(cache: Cache) -> Extstore:
    """The cache's flash tier (every cache here has one)."""
    assert cache.extstore is not None
    return cache.extstore


def settle(cache: Cache, clock: FakeClock, rounds: int = 5) -> None:
    """Let items age past ext_item_age and run the maintainer and the writer."""
    for _ in range(rounds):
        clock.advance(2)
        cache.lru.maintain(10_000)
        while ext_of(cache).step(cache.now(), 1000):
            pass


def get(cache: Cache, key: bytes) -> bytes:
    out: list[bytes | bytearray] = []
    cache.collect([key], out)
    return b"".join(out)


def test_old_large_items_go_to_flash_and_come_back(tmp_path: Path) -> None:
    cache, clock = extstore_cache(tmp_path)
    assert cache.extstore is not None
    for i in range(50):
        assert cache.store(StoreMode.SET, b"k%d" % i, 7, 0, VALUE) == StoreResult.STORED
    cache.store(StoreMode.SET, b"small", 0, 0, b"hi")
    settle(cache, clock)
    stats = ext_of(cache).pages.stats
    assert stats.objects_written == 50  # the small one stays in memory
    assert ext_of(cache).holds(b"k1") and not ext_of(cache).holds(b"small")
    assert get(cache, b"k1") == b"VALUE k1 7 %d\r\n" % len(VALUE) + VALUE + b"\r\n"
    assert ext_of(cache).counters.get_extstore == 1
    # gets with CAS frame the value the same way
    out: list[bytes | bytearray] = []
    cache.collect([b"k2"], out, with_cas=True)
    assert b"".join(out).startswith(b"VALUE k2 7 %d " % len(VALUE))
    # the header items are small: all 51 items sit in the two smallest classes
    counts = list(cache.items.counts)
    assert sum(counts[3:]) == 0 and sum(counts) == 51
    cache.close()


def test_items_on_flash_refuse_incr_append_and_prepend(tmp_path: Path) -> None:
    cache, clock = extstore_cache(tmp_path)
    cache.store(StoreMode.SET, b"n", 0, 0, b"1" * 600)
    settle(cache, clock)
    assert ext_of(cache).holds(b"n")
    assert cache.incr_decr(b"n", True, 1)[0] == DeltaResult.NON_NUMERIC
    assert cache.store(StoreMode.APPEND, b"n", 0, 0, b"x") == StoreResult.NOT_STORED
    assert cache.store(StoreMode.PREPEND, b"n", 0, 0, b"x") == StoreResult.NOT_STORED
    assert cache.store(StoreMode.SET, b"n", 0, 0, b"5") == StoreResult.STORED  # set replaces
    assert cache.incr_decr(b"n", True, 1) == (DeltaResult.OK, 6)
    cache.close()


def test_deleting_frees_flash_space_and_an_empty_page(tmp_path: Path) -> None:
    cache, clock = extstore_cache(tmp_path)
    assert cache.extstore is not None
    for i in range(400):
        cache.store(StoreMode.SET, b"d%d" % i, 0, 0, VALUE)
    settle(cache, clock)
    stats = ext_of(cache).pages.stats
    used = stats.bytes_used
    assert stats.objects_used == 400
    for i in range(0, 400, 2):
        cache.delete(b"d%d" % i)
    assert stats.objects_used == 200 and stats.bytes_used < used
    for i in range(1, 400, 2):
        cache.delete(b"d%d" % i)
    assert stats.objects_used == 0 and stats.page_reclaims >= 1
    cache.close()


def test_a_corrupted_record_is_a_miss_and_the_header_goes(tmp_path: Path) -> None:
    cache, clock = extstore_cache(tmp_path)
    assert cache.extstore is not None
    cache.store(StoreMode.SET, b"c", 0, 0, VALUE)
    for i in range(300):  # enough to push the first buffer out to the file
        cache.store(StoreMode.SET, b"f%d" % i, 0, 0, VALUE)
    settle(cache, clock)
    version, number, offset, length, _ = ext_of(cache).location(cache.index.get(b"c"))
    page = ext_of(cache).pages.pages[number]
    assert page.written > offset
    os.pwrite(page.fd, b"\xff" * 8, page.base + offset + length - 8)
    assert get(cache, b"c") == b""
    counters = ext_of(cache).counters
    assert (counters.badcrc_from_extstore, counters.miss_from_extstore) == (1, 1)
    assert cache.index.get(b"c") < 0
    cache.close()


def test_filling_flash_evicts_the_oldest_page_not_memory(tmp_path: Path) -> None:
    cache, clock = extstore_cache(tmp_path, pages=4)
    assert cache.extstore is not None
    for i in range(900):  # 9 MB into 6 MB of usable flash
        cache.store(StoreMode.SET, b"e%d" % i, 0, 0, VALUE)
        if i % 100 == 99:
            settle(cache, clock, rounds=1)
    settle(cache, clock)
    stats = ext_of(cache).pages.stats
    assert stats.page_evictions > 0 and stats.objects_evicted > 0
    assert get(cache, b"e0") == b""  # its page was evicted: a miss from flash
    assert ext_of(cache).counters.miss_from_extstore == 1
    assert get(cache, b"e899").endswith(VALUE + b"\r\n")
    cache.close()


def test_compaction_rescues_live_items_of_fragmented_pages(tmp_path: Path) -> None:
    cache, clock = extstore_cache(tmp_path, pages=6, compact_under=5, max_frag=0.9)
    assert cache.extstore is not None
    for i in range(700):
        cache.store(StoreMode.SET, b"m%d" % i, 0, 0, VALUE)
    settle(cache, clock)
    for i in range(0, 700, 3):
        cache.delete(b"m%d" % i)
    settle(cache, clock, rounds=10)
    assert ext_of(cache).counters.compact_rescues > 0
    for i in range(1, 700, 3):
        assert get(cache, b"m%d" % i).endswith(VALUE + b"\r\n"), i
    assert ext_of(cache).counters.miss_from_extstore == 0
    cache.close()


def test_recache_brings_a_hot_value_back_into_memory(tmp_path: Path) -> None:
    cache, clock = extstore_cache(tmp_path, recache_rate=1)
    assert cache.extstore is not None
    cache.store(StoreMode.SET, b"r", 3, 0, VALUE)
    settle(cache, clock)
    assert ext_of(cache).holds(b"r")
    cas = cache.cas_of(cache.index.get(b"r"))
    get(cache, b"r")  # fetched
    assert ext_of(cache).holds(b"r")
    assert get(cache, b"r").endswith(VALUE + b"\r\n")  # active: recached
    assert not ext_of(cache).holds(b"r") and ext_of(cache).counters.recache_from_extstore == 1
    assert cache.cas_of(cache.index.get(b"r")) == cas
    assert cache.value(cache.index.get(b"r")) == VALUE
    cache.close()


def test_no_memory_to_read_into_raises(tmp_path: Path) -> None:
    cache, clock = extstore_cache(tmp_path)
    assert cache.extstore is not None
    cache.store(StoreMode.SET, b"big", 0, 0, b"z" * 600_000)
    settle(cache, clock)
    assert ext_of(cache).holds(b"big")
    slabs = cache.slabs
    # Take every free page and chunk of the large class away.
    slabs.pool.clear()
    slabs.limit = slabs.malloced
    slabs.classes[slabs.largest].free.clear()
    with pytest.raises(ExtstoreOutOfMemory):
        get(cache, b"big")
    assert ext_of(cache).counters.get_oom_extstore == 1
    assert cache.fetch_chunk(b"big") < 0  # binary get: a miss, the header stays
    assert ext_of(cache).holds(b"big")
    cache.close()


def test_binary_gets_and_meta_reads_see_the_value(tmp_path: Path) -> None:
    cache, clock = extstore_cache(tmp_path)
    cache.store(StoreMode.SET, b"b", 9, 0, VALUE)
    settle(cache, clock)
    cid = cache.fetch_chunk(b"b")
    assert cid >= 0 and cache.value(cid) == VALUE and cache.flags_of(cid) == 9
    item = meta_find(cache, b"b")  # meta works on memory: the value comes back first
    assert item is not None and not ext_of(cache).holds(b"b")
    assert meta_value(cache, cache.index.get(b"b")) == VALUE
    cache.close()


def test_the_crawler_reclaims_headers_whose_page_is_gone(tmp_path: Path) -> None:
    cache, clock = extstore_cache(tmp_path, pages=4)
    assert cache.extstore is not None
    for i in range(900):
        cache.store(StoreMode.SET, b"g%d" % i, 0, 0, VALUE)
        if i % 100 == 99:
            settle(cache, clock, rounds=1)
    settle(cache, clock)
    assert ext_of(cache).pages.stats.page_evictions > 0
    stale = [i for i in range(900) if not ext_of(cache).valid(cache.index.get(b"g%d" % i))]
    assert stale and cache.index.get(b"g%d" % stale[0]) >= 0
    assert cache.crawler.request([c.id for c in cache.slabs.classes if c.pages]).name == "OK"
    for _ in range(100):
        if not cache.crawler.step(10_000):
            break
    assert all(cache.index.get(b"g%d" % i) < 0 for i in stale)
    assert ext_of(cache).counters.miss_from_extstore == 0
    assert get(cache, b"g899").endswith(VALUE + b"\r\n")
    cache.close()
