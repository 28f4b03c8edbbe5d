"""The LRU crawler: expired items freed without reads, in bounded steps; metadump rows."""

from __future__ import annotations

from memcachepy.store.cache import Cache
from memcachepy.store.crawler import CrawlResult
from memcachepy.store.metadump import MetadumpWalk
from memcachepy.store.rebalance import ReassignResult
from memcachepy.store.results import StoreMode
from memcachepy.store.tuning import StoreTuning
from tests.store.clock import FakeClock

MB = 1 << 20


def crawl_until_idle(cache: Cache, budget: int = 100) -> int:
    steps = 0
    for _ in range(100_000):
        if not cache.crawler.step(budget):
            return steps
        steps += 1
    raise AssertionError("the crawler never went idle")


def test_expired_items_are_freed_without_reads() -> None:
    clock = FakeClock()
    cache = Cache(64 * MB, clock=clock)
    crawl_until_idle(cache)  # the start-up crawl of an empty cache
    # A live item before each run of 50 that expire: none of them is at a list tail, where
    # the LRU maintainer would reclaim it first (see the next test).
    for i in range(5000):
        if i % 50 == 0:
            cache.store(StoreMode.SET, b"k%05d" % (i // 50), 0, 0, b"v" * 50)
        cache.store(StoreMode.SET, b"t%05d" % i, 0, 2, b"v" * 50)
    used = cache.bytes
    assert crawl_until_idle(cache) == 0  # nothing is due before the first expiry
    clock.advance(3)
    steps = crawl_until_idle(cache, budget=100)
    assert steps > 10  # bounded work per step
    assert len(cache) == 100
    assert cache.bytes < used / 40
    assert cache.counters.total("crawler_reclaimed") == 5000
    assert cache.counters.total("expired_unfetched") == 5000
    assert cache.counters.total("crawler_items_checked") == 5100
    assert cache.counters.get_expired == 0  # nobody read them
    assert cache.counters.total("reclaimed") == 0
    assert cache.crawler.starts == 2


def test_an_automatic_crawl_leaves_the_tails_to_the_lru_maintainer() -> None:
    """memcached's maintainer reclaims expired items at the tails (``reclaimed``) before
    its crawler comes by; the crawl frees those further up (``crawler_reclaimed``)."""
    clock = FakeClock()
    cache = Cache(64 * MB, clock=clock)
    crawl_until_idle(cache)
    for i in range(300):
        cache.store(StoreMode.SET, b"old%03d" % i, 0, 1, b"v" * 50)
    cache.store(StoreMode.SET, b"live", 0, 0, b"v" * 50)
    for i in range(20):
        cache.store(StoreMode.SET, b"new%03d" % i, 0, 1, b"v" * 50)
    clock.advance(2)
    crawl_until_idle(cache, budget=100)  # the tail run takes three steps of 100
    assert len(cache) == 1
    assert cache.counters.total("reclaimed") == 300
    assert cache.counters.total("crawler_reclaimed") == 20
    assert cache.counters.total("expired_unfetched") == 320


def test_without_the_maintainer_the_crawler_frees_the_tails_too() -> None:
    clock = FakeClock()
    cache = Cache(8 * MB, clock=clock, tuning=StoreTuning(lru_maintainer=False))
    crawl_until_idle(cache)
    for i in range(30):
        cache.store(StoreMode.SET, b"old%03d" % i, 0, 1, b"v")
    clock.advance(2)
    crawl_until_idle(cache)
    assert len(cache) == 0
    assert cache.counters.total("reclaimed") == 0
    assert cache.counters.total("crawler_reclaimed") == 30


def test_automatic_crawls_are_spaced_and_follow_the_soonest_expiry() -> None:
    clock = FakeClock()
    cache = Cache(8 * MB, clock=clock)
    crawl_until_idle(cache)
    cache.store(StoreMode.SET, b"a", 0, 10, b"v")
    clock.advance(5)
    assert crawl_until_idle(cache) == 0
    clock.advance(6)
    assert crawl_until_idle(cache) > 0
    assert len(cache) == 0


def test_flush_all_is_crawled_too() -> None:
    clock = FakeClock()
    cache = Cache(8 * MB, clock=clock)
    for i in range(50):
        cache.store(StoreMode.SET, b"k%d" % i, 0, 0, b"v")
    crawl_until_idle(cache)
    clock.advance(2)
    cache.flush_all()
    clock.advance(2)
    crawl_until_idle(cache)
    assert len(cache) == 0
    # Every flushed item is in one run from a tail: the LRU maintainer's to reclaim.
    assert cache.counters.total("reclaimed") == 50


def test_requested_crawl_and_tocrawl() -> None:
    clock = FakeClock()
    tuning = StoreTuning(lru_crawler_tocrawl=10)
    cache = Cache(8 * MB, clock=clock, tuning=tuning)
    crawl_until_idle(cache)
    for i in range(50):
        cache.store(StoreMode.SET, b"k%d" % i, 0, 1, b"v")
    clock.advance(2)
    tuning.lru_crawler = False  # no automatic crawls: only the one asked for
    assert cache.crawler.request([1]) == CrawlResult.OK
    assert cache.crawler.request([1]) == CrawlResult.RUNNING
    crawl_until_idle(cache)
    assert len(cache) == 40  # lru_crawler_tocrawl items per class
    assert cache.counters.classes[1].crawler_items_checked == 10


def test_metadump_rows() -> None:
    clock = FakeClock()
    cache = Cache(8 * MB, clock=clock)
    cache.store(StoreMode.SET, b"a", 5, 0, b"one")
    cache.store(StoreMode.SET, b"b", 0, 100, b"two")
    cache.store(StoreMode.SET, b"gone", 0, 1, b"x")
    cache.fetch_chunk(b"a")
    clock.advance(2)
    rows = cache.crawler.metadump(list(range(1, 64)))
    assert [r.key for r in rows] == [b"a", b"b"]
    a, b = rows
    assert a.exptime == -1 and a.fetched and a.class_id == 1
    assert a.size == cache.item_total(1, 5, 3)
    assert b.exptime == int(clock.now) - 2 + 100 and not b.fetched
    assert a.last_access == int(clock.now) - 2
    assert a.cas == 1 and b.cas == 2


def test_a_metadump_in_slices_lists_every_item_the_maintainer_would_move() -> None:
    # 500 new items sit in HOT, over its share: each maintainer turn would carry some from
    # the HOT tail, where the walk's cursor is, to the COLD head, behind a COLD walk done.
    clock = FakeClock()
    cache = Cache(64 << 20, clock=clock)
    keys = [b"k%03d" % i for i in range(500)]
    for key in keys:
        cache.store(StoreMode.SET, key, 0, 0, b"v" * 50)
    walk = MetadumpWalk(cache, [1, 2, 3, 4, 5, 6])
    listed: list[bytes] = []
    while not walk.done:
        listed += [row.key for row in walk.rows(7)]
        if not walk.done:
            assert cache.lru.maintain(100) == 0  # held while the walk is under way
    assert sorted(listed) == keys
    assert cache.lru.maintain(100) > 0  # released once it is done


def test_a_metadump_in_slices_lists_every_live_item_the_crawler_does_not_free() -> None:
    # Runs of expired items between live ones: between two slices the crawler frees the
    # items on both sides of the walk's place in a list.
    clock = FakeClock()
    cache = Cache(64 << 20, clock=clock)
    crawl_until_idle(cache)
    live = []
    for i in range(600):
        key = b"k%03d" % i
        if i % 4 == 0:
            live.append(key)
        cache.store(StoreMode.SET, key, 0, 0 if i % 4 == 0 else 1, b"v" * 50)
    walk = MetadumpWalk(cache, [1, 2, 3, 4, 5, 6])
    first = [row.key for row in walk.rows(2)]
    assert first == [b"k000", b"k001"]  # k001 expires later
    clock.advance(2)
    listed: list[bytes] = []
    while not walk.done:
        crawl_until_idle(cache, budget=5)
        listed += [row.key for row in walk.rows(2)]
    assert len(cache) == len(live)  # the crawler freed the rest meanwhile
    assert sorted(first[:1] + listed) == live


def test_a_metadump_in_slices_lists_the_items_a_page_move_rescues() -> None:
    # The slab mover copies each item of the page it empties to a free chunk of the class;
    # the copy takes the item's place in its list, with its CAS.
    cache = Cache(8 * MB, clock=FakeClock())
    per_page = cache.slabs.classes[1].per_page
    keys = [b"k%05d" % i for i in range(2 * per_page - 200)]
    for key in keys:
        cache.store(StoreMode.SET, key, 7, 0, b"v")
    for key in keys[per_page:][::2]:  # room on the second page for the first page's items
        cache.delete(key)
    alive = sorted(set(keys) - set(keys[per_page:][::2]))
    cas = {row.key: row.cas for row in cache.crawler.metadump([1])}
    walk = MetadumpWalk(cache, [1])
    listed = walk.rows(5)
    assert cache.rebalancer.reassign(1, 0) == ReassignResult.OK
    while not walk.done:
        cache.rebalancer.step(40)  # the mover overtakes the walk
        listed += walk.rows(5)
    c = cache.counters
    assert c.slab_reassign_rescues > 0
    survivors = sorted(k for k in alive if cache.fetch_chunk(k) >= 0)
    assert len(survivors) == len(alive) - c.slab_reassign_evictions_nomem
    # Every survivor is listed once, with its CAS; an evicted one at most once.
    keys_listed = [row.key for row in listed]
    assert len(keys_listed) == len(set(keys_listed))
    assert set(survivors) <= set(keys_listed) <= set(alive)
    assert all(row.cas == cas[row.key] for row in listed)


def test_an_abandoned_metadump_releases_the_maintainer() -> None:
    cache = Cache(64 << 20, clock=FakeClock())
    for i in range(100):
        cache.store(StoreMode.SET, b"k%03d" % i, 0, 0, b"v")
    walk = MetadumpWalk(cache, [1])
    walk.rows(3)
    walk.release()
    walk.release()  # twice is once
    assert cache.lru.holds == 0 and cache.lru.maintain(100) > 0
