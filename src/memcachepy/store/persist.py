"""The memory file of ``-e PATH``: slab pages in a memory-mapped file, for warm restarts.

Layout: a header, padded to a multiple of 4 KiB, then one 1 MiB region per page of ``-m``.
Each page is its own ``mmap`` of its region, so pages are written in place while serving.

The header holds a magic and a format version, the settings that fix the memory layout
(``-m``, ``-f``, ``-n``, ``-I``, ``-C`` and the reply framing), a clean-shutdown flag, the
cache's clock base, CAS counter and flush horizon, the key index's hash_power_level (a
restart starts the index at that size, as memcached's restores ``hashpower``), a table
with the class of every page, a CRC-32 of the used pages and a CRC-32 of the header itself.

The clean flag is written only by a graceful stop, after everything else is flushed to the
file, and is cleared (and flushed) before a restored cache serves anything: a process that
dies without a graceful stop leaves a file whose next start is a clean one. A file that is
missing, truncated, written with other settings, or whose checksums do not match, gives a
logged clean start. A non-empty file that does not start with the magic was not written by
memcachepy: it is refused rather than overwritten. So is a start beside ``PATH.meta``, where
memcached keeps the metadata of its memory file: memcached refuses to start when that file
cannot be read, and neither its memory file nor an unreadable one is memcachepy's to wipe.

Disk trouble gives a clear error, never a torn restore. The whole file is reserved
(``posix_fallocate``) at start, so a full disk stops the daemon then ("cannot reserve"),
instead of a SIGBUS when a page of a sparse file is first written. A directory or file
that cannot be written stops it as well. A file deleted or replaced while the daemon runs
is not saved into: the graceful stop reports it, and the next start is a clean one.
"""

from __future__ import annotations

import logging
import mmap
import os
import stat
import struct
import zlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from memcachepy.store.framing import Framing
from memcachepy.store.items import (
    CONTINUATION,
    HEADER,
    LINKED,
    OFF_IFLAGS,
    OFF_LRU,
    SEG_MASK,
    SEG_SHIFT,
)
from memcachepy.store.slabs import OFFSET_MASK, PAGE_SHIFT, PAGE_SIZE

if TYPE_CHECKING:
    from memcachepy.store.host import CacheHost

log = logging.getLogger("memcachepy.store")

MAGIC: Final = b"MCPYMEM\x00"
VERSION: Final = 2  # 2: the hash power level
ALIGN: Final = mmap.ALLOCATIONGRANULARITY
# magic, version, header size, page count, clean flag, memory limit, growth factor,
# min chunk, item size max, use_cas, layout tag (CRC-32 of the framing), clock base, CAS
# counter, oldest_live, oldest_cas, data CRC-32, hash power level.
FIXED: Final = struct.Struct("<8sIIIBQdIQBIqQiQIB")
HEADER_CRC: Final = struct.Struct("<I")
# The version of the item layout, part of what a memory file must match.
ITEM_LAYOUT_VERSION: Final = 2


class MemoryFileError(Exception):
    """The memory file cannot be used at all (the daemon refuses to start)."""


@dataclass(frozen=True, slots=True)
class Layout:
    """Settings that must match for a memory file's pages to be read back."""

    limit: int
    growth_factor: float
    min_chunk: int
    item_size_max: int
    use_cas: bool
    tag: int  # anything else that shapes items, e.g. the framing of stored values


@dataclass(slots=True)
class SavedState:
    started: int
    cas: int
    oldest_live: int
    oldest_cas: int
    page_classes: list[int]
    hashpower: int = 0  # the key index's hash_power_level (0: unknown)


def layout_tag(framing: Framing) -> int:
    """What else shapes stored items: the layout version and the reply framing."""
    sample = framing.prefix(1, 2) + framing.suffix + framing.cas_format + bytes([framing.cas_at])
    return zlib.crc32(sample, ITEM_LAYOUT_VERSION)


def header_size(npages: int) -> int:
    raw = FIXED.size + npages + HEADER_CRC.size
    return (raw + ALIGN - 1) // ALIGN * ALIGN


class MemoryFile:
    """Opens (or creates) a memory file and maps its pages on demand."""

    def __init__(self, path: str, layout: Layout) -> None:
        self.path = path
        self.layout = layout
        self.npages = layout.limit // PAGE_SIZE
        self.header_size = header_size(self.npages)
        self.size = self.header_size + self.npages * PAGE_SIZE
        self.restored: SavedState | None = None
        self._maps: dict[int, mmap.mmap] = {}
        self._fd = self._open()
        try:
            self.restored = self._check()
            if self.restored is None:
                self._wipe()
            else:
                self._reserve()  # a file saved by an older build may be sparse
            self._identity = self._inode(os.fstat(self._fd))
        except OSError as exc:
            os.close(self._fd)
            raise MemoryFileError(f"memory file {self.path}: {exc.strerror}") from None
        except BaseException:
            os.close(self._fd)
            raise

    # -- opening ------------------------------------------------------------------------

    def _open(self) -> int:
        try:
            info = os.stat(self.path)
        except FileNotFoundError:
            info = None
        except OSError as exc:
            raise MemoryFileError(f"memory file {self.path}: {exc.strerror}") from None
        if info is not None and not stat.S_ISREG(info.st_mode):
            raise MemoryFileError(f"memory file {self.path} is not a regular file")
        if os.path.lexists(self.path + ".meta"):
            raise MemoryFileError(
                f"{self.path}.meta exists: memcached's restart metadata, for a memory file "
                "memcachepy cannot read; refusing to start (remove both files for a clean "
                "cache)"
            )
        self._existed = info is not None
        try:
            return os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise MemoryFileError(f"memory file {self.path}: {exc.strerror}") from None

    def _check(self) -> SavedState | None:
        """The saved state if the file can be restored; None (logged) for a clean start."""
        size = os.fstat(self._fd).st_size
        if size == 0:
            (log.warning if self._existed else log.info)(
                "[restart] no memory file content at %s, starting with a clean cache", self.path
            )
            return None
        head = os.pread(self._fd, min(size, FIXED.size), 0)
        if not any(head[: len(MAGIC)]):
            return self._clean("memory file has no header")
        if not MAGIC.startswith(head[: len(MAGIC)]):
            raise MemoryFileError(
                f"{self.path} is not a memcachepy memory file; refusing to overwrite it "
                "(remove it or choose another -e path)"
            )
        if size < FIXED.size:
            return self._clean("memory file is truncated")
        fields = FIXED.unpack(head)
        (
            _,
            version,
            hsize,
            npages,
            clean,
            limit,
            factor,
            min_chunk,
            item_max,
            use_cas,
            tag,
            started,
            cas,
            oldest_live,
            oldest_cas,
            data_crc,
            hashpower,
        ) = fields
        if version != VERSION:
            return self._clean(f"memory file format {version}, this build reads {VERSION}")
        if hsize != header_size(npages) or size < hsize:
            return self._clean("memory file header is damaged or truncated")
        header = os.pread(self._fd, hsize, 0)
        crc_at = FIXED.size + npages
        if len(header) < crc_at + HEADER_CRC.size or (
            HEADER_CRC.unpack_from(header, crc_at)[0] != zlib.crc32(header[:crc_at])
        ):
            return self._clean("memory file header checksum does not match")
        want = self.layout
        mismatch = [
            name
            for name, old, new in (
                ("-m", limit, want.limit),
                ("-f", factor, want.growth_factor),
                ("-n", min_chunk, want.min_chunk),
                ("-I", item_max, want.item_size_max),
                ("-C", bool(use_cas), want.use_cas),
                ("item layout", tag, want.tag),
            )
            if old != new
        ]
        if mismatch:
            names = ", ".join(mismatch)
            return self._clean(f"memory file was written with other settings ({names})")
        if not clean:
            return self._clean("memory file was not closed by a graceful stop")
        if size != self.size:
            return self._clean(f"memory file is {size} bytes, expected {self.size}")
        page_classes = list(header[FIXED.size : FIXED.size + npages])
        if self._data_crc(page_classes) != data_crc:
            return self._clean("memory file data checksum does not match")
        return SavedState(started, cas, oldest_live, oldest_cas, page_classes, hashpower)

    def _clean(self, reason: str) -> SavedState | None:
        log.warning("[restart] %s: starting with a clean cache", reason)
        return None

    def wipe(self) -> None:
        """Start over clean: the restored state is dropped and every page reads as zeros."""
        self.restored = None
        self._wipe()

    def _reserve(self) -> None:
        """Allocate every block now: a page written later can then never hit a full disk."""
        try:
            os.posix_fallocate(self._fd, 0, self.size)
        except OSError as exc:
            raise MemoryFileError(
                f"memory file {self.path}: cannot reserve {self.size >> 20} MB for -m "
                f"{self.layout.limit >> 20}: {exc.strerror}"
            ) from None

    @staticmethod
    def _inode(info: os.stat_result) -> tuple[int, int]:
        return (info.st_dev, info.st_ino)

    def _wipe(self) -> None:
        """Empty the file and size it for ``-m``: every page reads as zeros."""
        for mapped in self._maps.values():
            mapped.close()
        self._maps.clear()
        os.ftruncate(self._fd, 0)
        os.ftruncate(self._fd, self.size)
        self._reserve()
        self._write_header(clean=False, state=SavedState(0, 0, 0, 0, [0] * self.npages), crc=0)

    # -- pages --------------------------------------------------------------------------

    def page(self, number: int) -> mmap.mmap:
        """The mapping of page ``number`` (created on first use)."""
        mapped = self._maps.get(number)
        if mapped is None:
            if not 0 <= number < self.npages:
                raise MemoryFileError(f"page {number} is outside the memory file")
            mapped = mmap.mmap(self._fd, PAGE_SIZE, offset=self.header_size + number * PAGE_SIZE)
            self._maps[number] = mapped
        return mapped

    def _data_crc(self, page_classes: list[int]) -> int:
        crc = 0
        for number, class_id in enumerate(page_classes):
            if class_id:
                crc = zlib.crc32(self.page(number), crc)
        return crc

    # -- saving -------------------------------------------------------------------------

    def mark_in_use(self) -> None:
        """Clear the clean flag on disk before a restored cache changes anything."""
        state = self.restored or SavedState(0, 0, 0, 0, [0] * self.npages)
        self._write_header(clean=False, state=state, crc=0)

    def save(self, state: SavedState) -> None:
        """Graceful stop: flush every page, then write the header with the clean flag.

        Raises MemoryFileError, leaving the clean flag unset, when the file at ``path`` is
        no longer the one mapped (deleted or replaced) or cannot be written.
        """
        try:
            now = self._inode(os.stat(self.path))
        except OSError:
            now = None
        if now != self._identity:
            raise MemoryFileError(
                f"memory file {self.path} was deleted or replaced while the daemon ran: "
                "the cache is not saved, the next start is a clean one"
            )
        try:
            for mapped in self._maps.values():
                mapped.flush()
            crc = self._data_crc(state.page_classes)
            self._write_header(clean=True, state=state, crc=crc)
        except OSError as exc:
            raise MemoryFileError(
                f"memory file {self.path}: cannot save: {exc.strerror}; the next start is "
                "a clean one"
            ) from None
        log.info("[restart] memory file %s saved", self.path)

    def _write_header(self, *, clean: bool, state: SavedState, crc: int) -> None:
        lay = self.layout
        classes = bytes(state.page_classes[: self.npages]).ljust(self.npages, b"\0")
        body = (
            FIXED.pack(
                MAGIC,
                VERSION,
                self.header_size,
                self.npages,
                int(clean),
                lay.limit,
                lay.growth_factor,
                lay.min_chunk,
                lay.item_size_max,
                int(lay.use_cas),
                lay.tag,
                state.started,
                state.cas,
                state.oldest_live,
                state.oldest_cas,
                crc,
                state.hashpower,
            )
            + classes
        )
        header = body + HEADER_CRC.pack(zlib.crc32(body))
        os.pwrite(self._fd, header.ljust(self.header_size, b"\0"), 0)
        os.fsync(self._fd)

    def close(self) -> None:
        for mapped in self._maps.values():
            mapped.close()
        self._maps.clear()
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


_HEAD: Final = 1
_CONT: Final = 2
MAX_KEY: Final = 250


def restore_items(cache: CacheHost, state: SavedState) -> None:
    """Rebuild the index, the LRU lists and the free lists of an empty cache from its pages.

    The pages and the page table passed the checksums; this still checks that every item
    header makes sense and that every LRU list links up, and raises ValueError otherwise
    (the caller then starts clean). Expired and flushed items are dropped afterwards.
    """
    slabs = cache.slabs
    items = cache.items
    largest = slabs.largest
    last = max((n for n, c in enumerate(state.page_classes) if c), default=-1)
    for number in range(last + 1):
        slabs.pages.append(slabs._new_page(number))
        slabs.page_class.append(0)
        class_id = state.page_classes[number]
        if class_id > largest:
            raise ValueError(f"page {number} has class {class_id}")
        if class_id:
            slabs.page_class[number] = class_id
            slabs.classes[class_id].pages.append(number)
        else:
            slabs.pages[number][:] = bytes(PAGE_SIZE)
            slabs.pool.append(number)
    cache.restore_clocks(state.started, state.cas, state.oldest_live, state.oldest_cas)
    # What each chunk holds: 0 free, _HEAD an item, _CONT a continuation of one.
    used = {
        n: bytearray(slabs.classes[slabs.page_class[n]].per_page)
        for n in range(last + 1)
        if slabs.page_class[n]
    }
    index = cache.index
    for number, marks in used.items():
        class_id = slabs.page_class[number]
        cls = slabs.classes[class_id]
        page = slabs.pages[number]
        for i in range(cls.per_page):
            off = i * cls.chunk_size
            iflags = page[off + OFF_IFLAGS]
            if not iflags & LINKED or iflags & CONTINUATION:
                continue
            cid = number << PAGE_SHIFT | off
            prev, nxt, cas, _, _, flags, nbytes, nkey, _, plen, ncont = HEADER.unpack_from(
                page, off
            )
            suffix = len(cache.framing.suffix)
            if not 0 < nkey <= MAX_KEY or nbytes < 0:
                raise ValueError(f"item at {cid:#x} has a bad header")
            if cache.items.plan(nkey + plen + nbytes + suffix) != (class_id, ncont):
                raise ValueError(f"item at {cid:#x} is in the wrong class")
            marks[i] = _HEAD
            for cont in items.continuations(cid) if ncont else []:
                cnum, coff = cont >> PAGE_SHIFT, cont & OFFSET_MASK
                cmarks = used.get(cnum)
                cpage = slabs.pages[cnum] if cmarks is not None else None
                if (
                    cpage is None
                    or slabs.page_class[cnum] != largest
                    or coff % slabs.classes[largest].chunk_size
                    or cpage[coff + OFF_IFLAGS] != CONTINUATION | LINKED
                    or HEADER.unpack_from(cpage, coff)[0] != cid
                    or cmarks is None
                    or cmarks[coff // slabs.classes[largest].chunk_size]
                ):
                    raise ValueError(f"item at {cid:#x} has a broken continuation")
                cmarks[coff // slabs.classes[largest].chunk_size] = _CONT
            key = bytes(items.read(cid, 0, nkey))
            if key in index:
                raise ValueError(f"key {key!r} is stored twice")
            index[key] = cid
            items.set_links(cid, prev, nxt)
            lru = class_id | (page[off + OFF_LRU] & SEG_MASK) << SEG_SHIFT
            if prev < 0:
                if items.heads[lru] >= 0:
                    raise ValueError(f"LRU {lru} has two heads")
                items.heads[lru] = cid
            if nxt < 0:
                if items.tails[lru] >= 0:
                    raise ValueError(f"LRU {lru} has two tails")
                items.tails[lru] = cid
            items.counts[class_id] += 1
            items.seg_counts[lru] += 1
            cache.counters.total_items += 1
            cache.count_item(class_id, cache.item_total(nkey, flags, nbytes), 1)
    _check_lists(cache, used)
    for number, marks in used.items():
        cls = slabs.classes[slabs.page_class[number]]
        page = slabs.pages[number]
        base = number << PAGE_SHIFT
        for i in range(cls.per_page):
            if not marks[i]:
                page[i * cls.chunk_size + OFF_IFLAGS] = 0
                cls.free.append(base + i * cls.chunk_size)
    now = cache.now()
    dead = [cid for cid in index.values() if cache.is_dead(cid, now)]
    for cid in dead:
        cache.remove(cid)
    log.info(
        "[restart] restored %d items from %s (%d expired or flushed dropped)",
        len(index),
        state_source(cache),
        len(dead),
    )


def _check_lists(cache: CacheHost, used: dict[int, bytearray]) -> None:
    """Every LRU list runs from its head to its tail through the items found, once each."""
    items = cache.items
    pages = cache.slabs.pages
    for lru, head in enumerate(items.heads):
        count = items.seg_counts[lru]
        cid, prev, seen = head, -1, 0
        while cid >= 0 and seen <= count:
            marks = used.get(cid >> PAGE_SHIFT)
            size = cache.slabs.classes[cache.slabs.page_class[cid >> PAGE_SHIFT]].chunk_size
            off = cid & OFFSET_MASK
            if marks is None or off % size or marks[off // size] != _HEAD:
                raise ValueError(f"LRU {lru} links to a chunk without an item")
            back, nxt = HEADER.unpack_from(pages[cid >> PAGE_SHIFT], off)[:2]
            if back != prev:
                raise ValueError(f"LRU {lru} is not doubly linked")
            prev, cid, seen = cid, nxt, seen + 1
        if seen != count or prev != items.tails[lru]:
            raise ValueError(f"LRU {lru} does not link all its items")


def state_source(cache: CacheHost) -> str:
    return cache.memory_file or "memory"
