"""The segmented LRU: HOT/WARM/COLD flows, ACTIVE on the second hit, scan resistance."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from memcachepy.ops.stats_report import segment_counts, segment_hits
from memcachepy.store.cache import Cache
from memcachepy.store.items import SEG_COLD, SEG_HOT, SEG_SHIFT, SEG_TEMP, SEG_WARM
from memcachepy.store.results import StoreMode, StoreResult
from memcachepy.store.tuning import StoreTuning
from tests.store.clock import FakeClock

MB = 1 << 20


def segment_of(cache: Cache, key: bytes) -> int:
    cid = cache._index[key]
    return cache.items.segment(cid)


def test_new_items_enter_hot_and_idle_ones_flow_to_cold() -> None:
    clock = FakeClock()
    cache = Cache(8 * MB, clock=clock)
    for i in range(10):
        cache.store(StoreMode.SET, b"k%d" % i, 0, 0, b"v")
    assert {segment_of(cache, b"k%d" % i) for i in range(10)} == {SEG_HOT}
    assert cache.lru.maintain(1000) > 0
    hot, warm, cold, _ = segment_counts(cache, 1)
    # HOT keeps at most hot_lru_pct (20%) of the class.
    assert (hot, warm, cold) == (2, 0, 8)
    clock.advance(2)  # older than the COLD age x hot_max_factor: the rest leaves HOT too
    cache.lru.maintain(1000)
    assert segment_counts(cache, 1)[:3] == (0, 0, 10)
    assert cache.counters.classes[1].moves_to_cold == 10


def test_a_second_hit_activates_and_the_maintainer_moves_active_items_to_warm() -> None:
    clock = FakeClock()
    cache = Cache(8 * MB, clock=clock)
    cache.store(StoreMode.SET, b"a", 0, 0, b"v")
    cache.store(StoreMode.SET, b"b", 0, 0, b"v")
    for i in range(8):  # limits are shares of the class: give it a few items
        cache.store(StoreMode.SET, b"x%d" % i, 0, 0, b"v")
    assert cache.fetch_chunk(b"a") >= 0  # FETCHED
    assert cache.fetch_chunk(b"a") >= 0  # ACTIVE
    cache.lru.maintain(1000)
    assert segment_of(cache, b"a") == SEG_WARM
    assert segment_of(cache, b"b") == SEG_COLD
    # A COLD item that is hit twice is marked, and goes to WARM when it would be evicted.
    out: list[bytes | bytearray] = []
    cache.collect([b"b"], out)
    cache.collect([b"b"], out)
    assert segment_of(cache, b"b") == SEG_COLD
    cid = cache._index[b"b"]
    cache.lru.pull_tail(1, SEG_COLD, 0, 0, cache.now(), evict=True)
    assert segment_of(cache, b"b") == SEG_WARM and cache._index[b"b"] == cid
    assert cache.counters.classes[1].moves_to_warm == 2
    assert segment_hits(cache, 1)[SEG_HOT] == 2  # hits_to_hot: a's two gets
    assert cache.counters.total("get_hits") == 4


def test_cold_items_read_twice_move_to_warm_at_the_next_turn_while_warm_has_room() -> None:
    """memcached's lru_bump_async: the read queues the move, the maintainer makes it."""
    cache = Cache(8 * MB, clock=FakeClock())
    for i in range(10):
        cache.store(StoreMode.SET, b"k%d" % i, 0, 0, b"v")
    cache.lru.maintain(1000)
    cold = [b"k%d" % i for i in range(8)]  # HOT kept the two newest
    assert {segment_of(cache, key) for key in cold} == {SEG_COLD}
    for key in cold:
        cache.fetch_chunk(key)
        cache.fetch_chunk(key)
    assert {segment_of(cache, key) for key in cold} == {SEG_COLD}  # not on the read path
    cache.delete(b"k0")  # a queued item gone meanwhile is skipped
    cache.lru.maintain(1000)
    # WARM takes up to warm_lru_pct (40%) of the class's 9 items: 3; the rest stay ACTIVE
    # in COLD, for their second chance at the COLD tail.
    assert [segment_of(cache, key) for key in cold[1:]] == [SEG_WARM] * 3 + [SEG_COLD] * 4
    assert cache.counters.classes[1].moves_to_warm == 3
    assert not cache.lru.bumps


def test_the_bump_queue_is_bounded() -> None:
    from memcachepy.store.lru import BUMP_QUEUE

    cache = Cache(8 * MB, clock=FakeClock())
    for _ in range(BUMP_QUEUE + 5):
        cache.lru.bump_later(0)
    assert len(cache.lru.bumps) == BUMP_QUEUE
    assert cache.counters.lru_bumps_dropped == 5
    cache.lru.maintain(1000)  # chunk 0 holds no item: every entry is skipped
    assert cache.counters.total("moves_to_warm") == 0


def test_flat_mode_reclaims_an_expired_cold_tail_at_each_store() -> None:
    """memcached's do_item_alloc_pull without lru_segmented: free memory or not."""
    clock = FakeClock()
    cache = Cache(
        8 * MB, clock=clock, tuning=StoreTuning(lru_segmented=False, lru_maintainer=False)
    )
    cache.store(StoreMode.SET, b"old", 0, 1, b"v")
    clock.advance(2)
    assert cache.store(StoreMode.SET, b"new", 0, 0, b"v") == StoreResult.STORED
    assert len(cache) == 1
    assert cache.counters.classes[1].reclaimed == 1
    assert cache.counters.classes[1].expired_unfetched == 1
    assert cache.counters.get_expired == 0


def test_flat_mode_keeps_every_item_in_cold() -> None:
    cache = Cache(8 * MB, clock=FakeClock(), tuning=StoreTuning(lru_segmented=False))
    cache.store(StoreMode.SET, b"a", 0, 0, b"v")
    cache.fetch_chunk(b"a")
    cache.fetch_chunk(b"a")
    cache.lru.maintain(1000)
    assert segment_of(cache, b"a") == SEG_COLD


def test_switching_to_flat_mode_drains_hot_and_warm() -> None:
    tuning = StoreTuning()
    cache = Cache(8 * MB, clock=FakeClock(), tuning=tuning)
    cache.store(StoreMode.SET, b"a", 0, 0, b"v")
    for i in range(8):
        cache.store(StoreMode.SET, b"x%d" % i, 0, 0, b"v")
    cache.fetch_chunk(b"a")
    cache.fetch_chunk(b"a")
    cache.lru.maintain(1000)
    assert segment_of(cache, b"a") == SEG_WARM
    tuning.lru_segmented = False
    cache.lru.maintain(1000)
    assert segment_of(cache, b"a") == SEG_COLD


def test_short_ttl_items_go_to_temp_with_temp_lru() -> None:
    clock = FakeClock()
    cache = Cache(8 * MB, clock=clock, tuning=StoreTuning(temp_lru=True, temporary_ttl=10))
    cache.store(StoreMode.SET, b"short", 0, 5, b"v")
    cache.store(StoreMode.SET, b"long", 0, 100, b"v")
    assert segment_of(cache, b"short") == SEG_TEMP
    assert segment_of(cache, b"long") == SEG_HOT
    clock.advance(6)
    cache.lru.maintain(1000)  # TEMP is only reclaimed, never moved
    assert b"short" not in cache._index
    assert cache.counters.classes[1].reclaimed == 1


def test_eviction_takes_cold_before_warm() -> None:
    cache = Cache(1 * MB, clock=FakeClock())
    cache.store(StoreMode.SET, b"keep00", 0, 0, b"v" * 100)
    cache.fetch_chunk(b"keep00")
    cache.fetch_chunk(b"keep00")
    for i in range(20000):  # no maintainer: allocations alone push HOT down and evict COLD
        assert cache.store(StoreMode.SET, b"s%05d" % i, 0, 0, b"v" * 100) == StoreResult.STORED
    assert cache.fetch_chunk(b"keep00") >= 0
    assert cache.counters.total("evicted") > 0
    assert cache.counters.total("direct_reclaims") > 0


def scan_hit_rate(segmented: bool) -> tuple[float, float]:
    """A working set read continuously while a scan writes 5x the cache of one-hit keys.

    Returns the working set's hit rate over the whole scan and over its second half.
    Time moves 1 ms per operation; the maintainer runs every 20 operations, as the server's
    background task would. Reads that miss are not written back.
    """
    clock = FakeClock()
    cache = Cache(4 * MB, clock=clock, tuning=StoreTuning(lru_segmented=segmented))
    value = b"v" * 200
    capacity = 4 * MB // 304  # items of this size the cache holds (304-byte chunks)
    working = [b"w%05d" % i for i in range(capacity // 5)]
    for key in working:
        cache.store(StoreMode.SET, key, 0, 0, value)
    out: list[bytes | bytearray] = []
    for key in working * 2:  # read twice: the working set is in use before the scan
        cache.collect([key], out)
    hits = reads = late_hits = late_reads = 0
    scan = 5 * capacity
    for i in range(scan):
        cache.store(StoreMode.SET, b"scan%07d" % i, 0, 0, value)
        if i % 2 == 0:  # one working-set read per two scan writes
            out.clear()
            hit = cache.collect([working[(i // 2) % len(working)]], out)
            hits += hit
            reads += 1
            if i >= scan // 2:
                late_hits += hit
                late_reads += 1
        if i % 20 == 0:
            cache.lru.maintain(1000)
        clock.advance(0.001)
    return hits / reads, late_hits / late_reads


def test_scan_resistance_segmented_versus_flat() -> None:
    segmented, _ = scan_hit_rate(True)
    flat, flat_late = scan_hit_rate(False)
    assert segmented > 0.9
    assert flat < 0.3 and flat_late < 0.05


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 11), st.sampled_from([SEG_HOT, SEG_WARM, SEG_COLD]))))
def test_moves_keep_every_list_whole_in_both_directions(
    moves: list[tuple[int, int]],
) -> None:
    cache = Cache(8 * MB, clock=FakeClock())
    cache.tuning.lru_maintainer = False
    for i in range(12):
        cache.store(StoreMode.SET, b"k%d" % i, 0, 0, b"v")
    items = cache.items
    cids = [cache._index[b"k%d" % i] for i in range(12)]
    model: dict[int, list[int]] = {seg: [] for seg in (SEG_HOT, SEG_WARM, SEG_COLD)}
    model[SEG_HOT] = list(reversed(cids))  # stored last: at the head
    for which, seg in moves:
        cid = cids[which]
        for members in model.values():
            if cid in members:
                members.remove(cid)
        model[seg].insert(0, cid)
        items.move(cid, 1, seg)
        for each, members in model.items():
            lru = 1 | each << SEG_SHIFT
            forward, cid_at = [], items.heads[lru]
            while cid_at >= 0:
                forward.append(cid_at)
                cid_at = items.toward_tail(cid_at)
            backward, cid_at = [], items.tails[lru]
            while cid_at >= 0:
                backward.append(cid_at)
                cid_at = items.toward_head(cid_at)
            assert forward == members and backward == members[::-1]
            assert items.seg_counts[lru] == len(members)
            assert all(items.segment(c) == each for c in members)
    assert items.counts[1] == 12
