"""The memory file (-e): a graceful save restores every live item; anything else starts
clean (logged) or is refused, and never restores half a cache."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from memcachepy.dispatch.text import TEXT_FRAMING
from memcachepy.store.cache import Cache
from memcachepy.store.items import SEG_WARM
from memcachepy.store.persist import FIXED, MemoryFileError
from memcachepy.store.results import StoreMode, StoreResult
from tests.store.clock import FakeClock

MB = 1 << 20


def open_cache(path: Path, clock: FakeClock, limit: int = 48 * MB, **options: object) -> Cache:
    return Cache(limit, clock=clock, framing=TEXT_FRAMING, memory_file=str(path), **options)  # type: ignore[arg-type]


def fill(cache: Cache) -> dict[bytes, tuple[bytes, int, int]]:
    """Items of many sizes (one chunked), TTLs and flags; returns key -> (value, flags, cas)."""
    expected = {}
    for i in range(3000):
        size = (i * 37) % 3000
        key = b"k%05d" % i
        value = bytes([i % 251]) * size
        exptime = [0, 0, 100, 2][i % 4]
        assert cache.store(StoreMode.SET, key, i * 7, exptime, value) == StoreResult.STORED
        if exptime != 2:
            expected[key] = (value, i * 7, cache.cas_of(cache._index[key]))
    big = bytes(range(256)) * 3000  # 768,000 bytes: chunked
    cache.store(StoreMode.SET, b"big", 9, 0, big)
    expected[b"big"] = (big, 9, cache.cas_of(cache._index[b"big"]))
    return expected


def check(cache: Cache, expected: dict[bytes, tuple[bytes, int, int]]) -> None:
    for key, (value, flags, cas) in expected.items():
        cid = cache.fetch_chunk(key)
        assert cid >= 0, key
        assert (cache.value(cid), cache.flags_of(cid), cache.cas_of(cid)) == (value, flags, cas)


def test_graceful_save_restores_every_live_item(tmp_path: Path) -> None:
    path = tmp_path / "mem"
    clock = FakeClock()
    cache = open_cache(path, clock)
    expected = fill(cache)
    cache.fetch_chunk(b"k00001")
    cache.fetch_chunk(b"k00001")
    cache.lru.maintain(1000)
    bytes_before = cache.bytes
    cache.save()
    cache.close()
    clock.advance(5)  # the TTL-2 items expire while the daemon is down
    restored = open_cache(path, clock)
    assert len(restored) == len(expected)
    assert restored.bytes == bytes_before - sum(
        restored.item_total(6, i * 7, (i * 37) % 3000) for i in range(3, 3000, 4)
    )
    assert restored.items.segment(restored._index[b"k00001"]) == SEG_WARM
    check(restored, expected)
    # TTLs keep counting from where they were: 100 - 5 seconds are left.
    cid = restored.fetch_chunk(b"k00002")
    exptime = restored.slabs.pages[cid >> 20][(cid & 0xFFFFF) + 24]
    assert exptime  # relative exptime kept
    clock.advance(96)
    assert restored.fetch_chunk(b"k00002") < 0
    # CAS keeps growing; new items get fresh values.
    restored.store(StoreMode.SET, b"new", 0, 0, b"v")
    assert restored.cas_of(restored.fetch_chunk(b"new")) > max(
        cas for _, _, cas in expected.values()
    )
    restored.close()


def test_a_restored_file_must_be_saved_again(tmp_path: Path) -> None:
    """A crash after a restore (no second save) must not restore the old state again."""
    path = tmp_path / "mem"
    clock = FakeClock()
    cache = open_cache(path, clock)
    cache.store(StoreMode.SET, b"a", 0, 0, b"1")
    cache.save()
    cache.close()
    again = open_cache(path, clock)
    assert len(again) == 1
    again.store(StoreMode.SET, b"a", 0, 0, b"torn")
    again.close()  # a crash: no save
    third = open_cache(path, clock)
    assert len(third) == 0
    third.close()


def test_crash_without_save_starts_clean(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "mem"
    cache = open_cache(path, FakeClock())
    fill(cache)
    cache.close()
    with caplog.at_level(logging.WARNING):
        cache = open_cache(path, FakeClock())
    assert len(cache) == 0 and cache.bytes == 0
    assert "not closed by a graceful stop" in caplog.text
    assert cache.store(StoreMode.SET, b"a", 0, 0, b"v") == StoreResult.STORED
    cache.close()


def saved(path: Path) -> None:
    cache = open_cache(path, FakeClock())
    fill(cache)
    cache.save()
    cache.close()


@pytest.mark.parametrize(
    "damage, message",
    [
        ("truncate-header", "truncated"),
        ("truncate-pages", "bytes, expected"),
        ("flip-data-byte", "data checksum"),
        ("flip-header-byte", "header checksum"),
        ("zero-file", "no header"),
        ("empty-file", "no memory file content"),
    ],
)
def test_damaged_files_start_clean(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, damage: str, message: str
) -> None:
    path = tmp_path / "mem"
    saved(path)
    size = path.stat().st_size
    with open(path, "r+b") as f:
        if damage == "truncate-header":
            f.truncate(FIXED.size - 10)
        elif damage == "truncate-pages":
            f.truncate(size - 4096)
        elif damage == "flip-data-byte":
            f.seek(4096 + 5000)  # inside the first page
            byte = f.read(1)
            f.seek(-1, os.SEEK_CUR)
            f.write(bytes([byte[0] ^ 0x40]))
        elif damage == "flip-header-byte":
            f.seek(50)  # the clock base
            byte = f.read(1)
            f.seek(50)
            f.write(bytes([byte[0] ^ 1]))
        elif damage == "zero-file":
            f.write(bytes(4096))
        else:
            f.truncate(0)
    with caplog.at_level(logging.WARNING):
        cache = open_cache(path, FakeClock())
    assert message in caplog.text
    assert len(cache) == 0 and cache.bytes == 0 and cache.slabs.malloced == 0
    fill(cache)  # and it works
    cache.save()
    cache.close()
    cache = open_cache(path, FakeClock())
    assert len(cache) > 0
    cache.close()


@pytest.mark.parametrize(
    "options, message",
    [
        ({"limit": 64 * MB}, "-m"),
        ({"growth_factor": 1.5}, "-f"),
        ({"min_chunk": 64}, "-n"),
        ({"item_size_max": 2 * MB}, "-I"),
        ({"use_cas": False}, "-C"),
    ],
)
def test_other_settings_start_clean(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, options: dict[str, object], message: str
) -> None:
    path = tmp_path / "mem"
    saved(path)
    with caplog.at_level(logging.WARNING):
        cache = open_cache(path, FakeClock(), **options)  # type: ignore[arg-type]
    assert f"other settings ({message})" in caplog.text
    assert len(cache) == 0
    cache.close()


def test_a_foreign_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_bytes(b"my precious notes\n" * 100)
    with pytest.raises(MemoryFileError, match="not a memcachepy memory file"):
        open_cache(path, FakeClock())
    assert path.read_bytes() == b"my precious notes\n" * 100
    with pytest.raises(MemoryFileError, match="not a regular file"):
        open_cache(tmp_path, FakeClock())


def test_memcached_s_metadata_file_beside_it_is_refused(tmp_path: Path) -> None:
    """memcached keeps PATH.meta and refuses to start on one it cannot read."""
    path = tmp_path / "mem"
    Path(f"{path}.meta").write_bytes(b"")
    with pytest.raises(MemoryFileError, match=r"mem\.meta exists"):
        open_cache(path, FakeClock())
    assert not path.exists()


def test_the_index_size_survives_a_restart(tmp_path: Path) -> None:
    """As memcached's restart restores hashpower: grown, then emptied, it stays grown."""
    path = tmp_path / "mem"
    clock = FakeClock()
    cache = open_cache(path, clock)
    for i in range(100_000):  # past 1.5 x 2**16 buckets: level 17
        cache.store(StoreMode.SET, b"z%d" % i, 0, 0, b"")
    cache.index.finish()
    for i in range(99_999):
        cache.delete(b"z%d" % i)
    assert cache.index.power == 17
    cache.save()
    cache.close()
    cache = open_cache(path, clock)
    assert cache.index.power == 17 and len(cache) == 1
    cache.close()


def test_inconsistent_content_with_good_checksums_starts_clean(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A header that passes its checksum but describes impossible items (a bug, say)."""
    path = tmp_path / "mem"
    clock = FakeClock()
    cache = open_cache(path, clock)
    cache.store(StoreMode.SET, b"a", 0, 0, b"1")
    cache.store(StoreMode.SET, b"b", 0, 0, b"2")
    cid = cache._index[b"b"]
    page = cache.slabs.pages[cid >> 20]
    page[(cid & 0xFFFFF) + 40] = 0  # key length 0
    cache.save()
    cache.close()
    with caplog.at_level(logging.WARNING):
        cache = open_cache(path, clock)
    assert "inconsistent" in caplog.text
    assert len(cache) == 0 and cache.slabs.malloced == 0
    cache.close()


def test_memlimit_cannot_change_with_a_memory_file(tmp_path: Path) -> None:
    cache = open_cache(tmp_path / "mem", FakeClock())
    assert not cache.rebalancer.set_limit(64 * MB)
    cache.close()
