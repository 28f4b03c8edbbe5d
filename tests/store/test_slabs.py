"""Slab memory: class sizes as memcached computes them, pages on demand, the hard cap."""

from memcachepy.store.slabs import PAGE_SIZE, SlabAllocator, class_sizes


def test_class_sizes_match_memcached_defaults() -> None:
    sizes = class_sizes(1.25, 48, PAGE_SIZE // 2)
    # memcached 1.6.18 -vv prints these for the defaults (-f 1.25 -n 48).
    assert sizes == [
        96,
        120,
        152,
        192,
        240,
        304,
        384,
        480,
        600,
        752,
        944,
        1184,
        1480,
        1856,
        2320,
        2904,
        3632,
        4544,
        5680,
        7104,
        8880,
        11104,
        13880,
        17352,
        21696,
        27120,
        33904,
        42384,
        52984,
        66232,
        82792,
        103496,
        129376,
        161720,
        202152,
        252696,
        315872,
        394840,
        524288,
    ]


def test_growth_factor_and_min_chunk_change_the_classes() -> None:
    sizes = class_sizes(2.0, 100, PAGE_SIZE // 2)
    assert sizes[:3] == [152, 304, 608]


def test_pages_are_assigned_on_demand_within_the_limit() -> None:
    slabs = SlabAllocator(2 * PAGE_SIZE)
    assert slabs.malloced == 0
    first = slabs.alloc(1)
    assert first >= 0 and slabs.malloced == PAGE_SIZE
    cls = slabs.classes[1]
    assert cls.total_chunks == PAGE_SIZE // 96
    chunks = [slabs.alloc(1) for _ in range(cls.per_page - 1)]
    assert len(set(chunks + [first])) == cls.per_page
    assert slabs.alloc(2) >= 0  # second page, other class
    assert slabs.alloc(1) == -1  # class 1 full, budget spent
    slabs.free(first, 1)
    assert slabs.alloc(1) == first


def test_class_for_picks_the_smallest_fitting_class() -> None:
    slabs = SlabAllocator(PAGE_SIZE)
    assert slabs.class_for(1) == 1
    assert slabs.class_for(96) == 1
    assert slabs.class_for(97) == 2
    assert slabs.class_for(10**9) == slabs.largest
