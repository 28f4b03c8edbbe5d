"""The key index against a dict model: keys live in real slab chunks, as in the cache."""

from __future__ import annotations

import mmap

from hypothesis import given, settings
from hypothesis import strategies as st

from memcachepy.store.index import KeyIndex
from memcachepy.store.items import HEADER, HEADER_SIZE
from memcachepy.store.slabs import PAGE_SHIFT, PAGE_SIZE, Page

CHUNK = 64  # bytes per test chunk: a header and a key of up to 16 bytes


class Chunks:
    """One page of chunks, each holding an item header and its key, as the cache writes them."""

    def __init__(self) -> None:
        self.pages: list[Page] = [mmap.mmap(-1, PAGE_SIZE)]
        self.next = 0

    def put(self, key: bytes) -> int:
        cid = self.next * CHUNK
        self.next += 1
        HEADER.pack_into(self.pages[0], cid, -1, -1, 0, 0, 0, 0, 0, len(key), 1, 0, 0)
        self.pages[0][cid + HEADER_SIZE : cid + HEADER_SIZE + len(key)] = key
        return cid


keys = st.binary(min_size=1, max_size=16)
ops = st.lists(st.tuples(st.sampled_from(["set", "pop", "step", "replace"]), keys), max_size=300)


def check(index: KeyIndex, model: dict[bytes, int], universe: set[bytes]) -> None:
    assert len(index) == len(model)
    for key in universe:
        assert index.get(key) == model.get(key, -1)
        assert (key in index) == (key in model)
    assert sorted(index.values()) == sorted(model.values())


@settings(max_examples=150, deadline=None)
@given(ops, st.integers(min_value=1, max_value=4))
def test_index_matches_a_dict(script: list[tuple[str, bytes]], power: int) -> None:
    # A table of 2..16 slots: collisions, wrapped clusters and growth in almost every run.
    chunks = Chunks()
    index = KeyIndex(chunks.pages, power)
    model: dict[bytes, int] = {}
    seen: set[bytes] = set()
    for op, key in script:
        seen.add(key)
        # A set's second lookup (again) is answered from this find unless the index changed.
        assert index.find(key) == model.get(key, -1)
        if op == "set":
            cid = chunks.put(key)
            index[key] = cid
            model[key] = cid
        elif op == "pop":
            assert index.pop(key, -1) == model.pop(key, -1)
        elif op == "replace":
            # A set that replaced an item: the key's entry, in whichever table, is pointed
            # at the new chunk; naming a chunk that is not the key's entry is a plain set.
            cid = chunks.put(key)
            index.replace(key, model.get(key, 1 << 20), cid)
            model[key] = cid
        else:
            index.expand_step(1)
        assert index.again(key) == model.get(key, -1)
        check(index, model, seen)
    index.finish()
    assert not index.expanding
    check(index, model, seen)
    assert len(index._tags) * 3 >= len(model) * 4  # noqa: SLF001 - load stays at most 3/4


def test_lookups_stay_right_while_the_index_grows_in_steps() -> None:
    chunks = Chunks()
    index = KeyIndex(chunks.pages, 11)  # 4,096 slots: 2 per bucket of memcached's level 11
    model = {}
    for i in range(3073):  # one past 3/4 of 4,096 slots: the table doubles
        key = b"key:%d" % i
        model[key] = index[key] = chunks.put(key)
    assert index.expanding and index.power == 12
    assert index.nbytes == (4096 + 8192) * 5
    steps = 0
    while index.expanding:
        assert index.expand_step(100) > 0
        steps += 1
        for key in list(model)[::7]:  # mid-move: every key found, in whichever table
            assert index.get(key) == model[key]
        victim = b"key:%d" % (steps * 11)
        assert index.pop(victim) == model.pop(victim)
        assert index.get(victim) == -1
        fresh = b"new:%d" % steps
        model[fresh] = index[fresh] = chunks.put(fresh)
        kept = b"key:%d" % (steps * 13 + 1)  # often still in the old table
        if kept in model:
            renewed = chunks.put(kept)
            index.replace(kept, model[kept], renewed)
            model[kept] = renewed
            assert index.get(kept) == renewed
    assert 20 <= steps <= 60
    assert index.expand_step(100) == 0 and index.nbytes == 8192 * 5
    check(index, model, set(model) | {b"key:%d" % i for i in range(3073)})


def test_page_numbers_past_32_gib_need_the_wide_table() -> None:
    chunks = Chunks()
    index = KeyIndex(chunks.pages, 12)
    index.widen()
    far = (40 << 30 >> PAGE_SHIFT) << PAGE_SHIFT
    unused = mmap.mmap(-1, mmap.PAGESIZE)
    chunks.pages.extend(unused for _ in range(far >> PAGE_SHIFT))
    chunks.pages[far >> PAGE_SHIFT] = chunks.pages[0]  # the same memory, far away
    cid = chunks.put(b"far")
    index[b"far"] = far | cid
    assert index.get(b"far") == far | cid


@settings(max_examples=300, deadline=None)
@given(st.binary(min_size=1, max_size=250), st.data())
def test_holds_key_compares_every_byte(key: bytes, data: st.DataObject) -> None:
    # The word-at-a-time compare must see a difference in any byte, including the bytes the
    # overlapping last word covers twice, for every key length.
    from memcachepy.store.index import _holds_key

    chunk = bytes(HEADER_SIZE) + key + b"tail"
    assert _holds_key(chunk, key, len(key))
    at = data.draw(st.integers(min_value=0, max_value=len(key) - 1))
    flip = data.draw(st.integers(min_value=1, max_value=255))
    other = key[:at] + bytes([key[at] ^ flip]) + key[at + 1 :]
    assert not _holds_key(chunk, other, len(key))
