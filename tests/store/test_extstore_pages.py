"""The flash page engine: write buffers, page allocation, reclaim, eviction, the file lock."""

from __future__ import annotations

from pathlib import Path

import pytest

from memcachepy.store.extstore_config import (
    BUCKET_COMPACT,
    BUCKET_DEFAULT,
    MB,
    ExtstoreConfig,
    ExtstoreFile,
)
from memcachepy.store.extstore_pages import ExtstoreError, ExtstorePages


def engine(tmp_path: Path, pages: int = 4, name: str = "ext") -> ExtstorePages:
    config = ExtstoreConfig(
        files=[ExtstoreFile(str(tmp_path / name), pages)], page_size=2 * MB, wbuf_size=2 * MB
    )
    flash = ExtstorePages(config)
    flash.open()
    return flash


def test_page_zero_is_never_used_and_counts_as_used(tmp_path: Path) -> None:
    flash = engine(tmp_path)
    assert (flash.pages_free, flash.pages_used) == (3, 1)
    assert flash.bytes_fragmented == 2 * MB
    number, version, offset = flash.write(BUCKET_DEFAULT, b"a" * 100) or (0, 0, 0)
    assert (number, version, offset) == (1, 1, 0)
    flash.close()


def test_reads_come_from_the_buffer_then_from_the_file(tmp_path: Path) -> None:
    flash = engine(tmp_path)
    record = bytes(range(256)) * 6144  # 1.5 MiB: the second one no longer fits the buffer
    first = flash.write(BUCKET_DEFAULT, record)
    assert first is not None
    assert flash.read(first[0], first[1], first[2], len(record)) == record  # buffered
    second = flash.write(BUCKET_DEFAULT, record[::-1])
    # The first buffer went to the file whole, the page with it: the next write opens page 2.
    assert second is not None and second[0] == first[0] + 1 and second[2] == 0
    assert flash.pages[first[0]].active is False
    assert (tmp_path / "ext").stat().st_size >= 2 * MB
    assert flash.read(first[0], first[1], first[2], len(record)) == record
    assert flash.read(second[0], second[1], second[2], len(record)) == record[::-1]
    assert flash.stats.objects_read == 3 and flash.stats.bytes_read == 3 * len(record)
    flash.close()


def test_a_page_whose_objects_are_deleted_is_reclaimed(tmp_path: Path) -> None:
    flash = engine(tmp_path)
    where = [flash.write(BUCKET_DEFAULT, b"x" * (700 * 1024)) for _ in range(3)]
    assert all(w is not None for w in where)
    full_page = where[0][0] if where[0] else -1
    assert flash.pages[full_page].active is False  # its one buffer was written out
    for w in where[:2]:
        assert w is not None
        assert flash.delete(w[0], w[1], 700 * 1024)
    assert flash.stats.page_reclaims == 1
    first = where[0]
    assert first is not None
    assert flash.read(first[0], first[1], first[2], 10) is None  # version gone
    assert flash.stats.objects_used == 1
    flash.close()


def test_with_no_free_page_the_oldest_is_evicted(tmp_path: Path) -> None:
    flash = engine(tmp_path, pages=3)
    seen = []
    for _ in range(5):
        w = flash.write(BUCKET_DEFAULT, b"y" * (1536 * 1024))
        assert w is not None
        seen.append(w)
    assert flash.stats.page_evictions >= 1
    assert flash.stats.objects_evicted >= 1
    oldest = seen[0]
    assert flash.read(oldest[0], oldest[1], oldest[2], 4) is None
    newest = seen[-1]
    assert flash.read(newest[0], newest[1], newest[2], 4) == b"yyyy"
    flash.close()


def test_buckets_write_to_pages_of_their_own(tmp_path: Path) -> None:
    flash = engine(tmp_path)
    a = flash.write(BUCKET_DEFAULT, b"a" * 10)
    b = flash.write(BUCKET_COMPACT, b"b" * 10)
    assert a is not None and b is not None and a[0] != b[0]
    assert flash.page_data(a[0]) == (0, 0, 0)  # open pages report nothing, as memcached's
    flash.close()


def test_a_second_engine_on_the_same_file_is_refused(tmp_path: Path) -> None:
    first = engine(tmp_path)
    # fcntl locks are per process: a child process holds the second attempt.
    import subprocess
    import sys

    code = (
        "import sys; from memcachepy.store.extstore_config import ExtstoreConfig, ExtstoreFile, MB;"
        "from memcachepy.store.extstore_pages import ExtstorePages, ExtstoreError\n"
        f"c = ExtstoreConfig(files=[ExtstoreFile({str(tmp_path / 'ext')!r}, 4)], page_size=2*MB,"
        " wbuf_size=2*MB)\n"
        "try:\n    ExtstorePages(c).open()\nexcept ExtstoreError:\n    sys.exit(3)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], timeout=30)
    assert result.returncode == 3
    first.close()


def test_an_unusable_path_is_a_flash_error(tmp_path: Path) -> None:
    config = ExtstoreConfig(
        files=[ExtstoreFile(str(tmp_path / "no" / "dir"), 4)], page_size=2 * MB, wbuf_size=2 * MB
    )
    with pytest.raises(ExtstoreError):
        ExtstorePages(config).open()
