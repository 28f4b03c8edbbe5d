"""Extstore: items written from the LRU tails to the storage files, read back on get.

memcached's storage.c over :mod:`.extstore_pages`. An item of at least ``ext_item_size``
bytes idle longer than ``ext_item_age`` at its class's COLD tail (or any such item when
its class runs short of memory) is written to a page; in memory a small header item takes
its place: the key, the reply's framing and a location (page version, page, offset,
record length, crc32 of key and value) instead of the value. A get reads the record back
with ``os.pread`` (synchronously: the event loop waits for the disk, where memcached hands
the read to an IO thread), checks the crc and answers from it; an item read often is
brought back into memory (``ext_recache_rate``). A compactor reads back fragmented pages
and rewrites what is still live, so whole pages can be freed.

The store stays free of protocol: the cache asks this module for values (a get's hit on
a header item: :meth:`Extstore.collect_hit`, :meth:`Extstore.read_hit`) and it asks the
cache, through :class:`ExtstoreHost`, to link and unlink items.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass
from typing import Final, Protocol

from librt.vecs import vec
from mypy_extensions import i64

from memcachepy.store.counters import CacheCounters
from memcachepy.store.extstore_config import (
    BUCKET_CHUNKED,
    BUCKET_COMPACT,
    BUCKET_DEFAULT,
    BUCKET_LOWTTL,
    ExtstoreConfig,
)
from memcachepy.store.extstore_pages import ExtstorePages
from memcachepy.store.framing import Framing
from memcachepy.store.index import KeyIndex
from memcachepy.store.items import (
    ACTIVE,
    EXT,
    FETCHED,
    HEADER_SIZE,
    ITEM_UPDATE_INTERVAL,
    KEY_BINARY,
    LINKED,
    OFF_ATIME,
    OFF_CAS,
    OFF_EXPTIME,
    OFF_IFLAGS,
    OFF_LRU,
    OFF_NKEY,
    PACK_I32,
    READ_FIELDS,
    SEG_COLD,
    SEG_MASK,
    SEG_SHIFT,
    U64,
    UNPACK_I32,
    ItemMemory,
)
from memcachepy.store.slabs import OFFSET_MASK, PAGE_SHIFT, Page, SlabAllocator

# A record on flash: crc32 of key and value, key length, value length; then key, value.
RECORD: Final = struct.Struct("<III")
# What a header item holds in place of the value: page version, page, offset, record
# length, crc32.
LOCATION: Final = struct.Struct("<QIIII")
LOCATION_SIZE: Final = LOCATION.size
MIN_PAGES_FREE: Final = 3  # a class with fewer free chunks than this many pages writes at once


class ExtstoreOutOfMemory(Exception):
    """No memory to read a value back into (memcached's get_oom_extstore)."""


class ExtstoreHost(Protocol):
    """The cache as extstore sees it."""

    slabs: SlabAllocator
    items: ItemMemory
    counters: CacheCounters
    lru_hits: vec[i64]

    @property
    def index(self) -> KeyIndex: ...

    @property
    def framing(self) -> Framing: ...

    def key_of(self, cid: int) -> bytes: ...

    def is_dead(self, cid: int, now: int) -> bool: ...

    def remove(self, cid: int) -> None: ...

    def bump(self, cid: int, page: Page, off: int, now: int) -> None:
        """What a read hit does to an item's LRU state."""

    def alloc_chunks(
        self, class_id: int, count: int, now: int, move_pages: bool = True
    ) -> list[int] | None:
        """Chunks of a class, evicting or writing out in that class (here: moving no page)."""

    def write_item(
        self,
        key: bytes,
        flags: int,
        rel_exptime: int,
        data: bytes,
        now: int,
        replace_on_failure: bool,
        reclaimed: bool = False,
        prefix: bytes | None = None,
        iflags: int = LINKED,
    ) -> int:
        """Link a new item for ``key`` (replacing any), its framing prefix given; -1 if
        there is no memory."""


@dataclass(slots=True)
class ExtstoreCounters:
    get_extstore: int = 0
    get_aborted_extstore: int = 0
    get_oom_extstore: int = 0
    recache_from_extstore: int = 0
    miss_from_extstore: int = 0
    badcrc_from_extstore: int = 0
    compact_lost: int = 0
    compact_rescues: int = 0
    compact_skipped: int = 0


class Extstore:
    def __init__(self, host: ExtstoreHost, config: ExtstoreConfig) -> None:
        self.host = host
        self.config = config
        self.pages = ExtstorePages(config)
        self.pages.open()
        self.counters = ExtstoreCounters()
        self._recache_counter = 0
        self._writing = False
        # The page being compacted (-1: none), its version, the next offset to read back.
        self._compact_page = -1
        self._compact_version = 0
        self._compact_offset = 0
        self._drop_unread = False
        self._now = 0  # the relative time of the current step, for the compactor
        #: The value the last :meth:`read_hit` read back, for the cache's value() to hand
        #: out: (header item, value).
        self.last_read: tuple[int, bytes] | None = None

    def close(self) -> None:
        self.pages.close()

    def reset_counters(self) -> None:
        """``stats reset``: the get and compaction counters (memcached's thread and
        global stats); the page figures are the engine's and stay."""
        self.counters = ExtstoreCounters()

    # -- header items ---------------------------------------------------------------------

    def _location_at(self, cid: int) -> tuple[Page, int]:
        """The page and offset of a header item's location record."""
        page = self.host.slabs.pages[cid >> PAGE_SHIFT]
        off = cid & OFFSET_MASK
        _, _, _, _, _, nkey, _, plen, _ = READ_FIELDS.unpack_from(page, off + OFF_CAS)
        return page, off + HEADER_SIZE + nkey + plen

    def location(self, cid: int) -> tuple[int, int, int, int, int]:
        """(version, page, offset, record length, crc) of a header item."""
        page, at = self._location_at(cid)
        version, number, offset, length, crc = LOCATION.unpack_from(page, at)
        return int(version), int(number), int(offset), int(length), int(crc)

    def valid(self, cid: int) -> bool:
        version, number, _, _, _ = self.location(cid)
        return self.pages.valid(number, version)

    def value_length(self, cid: int) -> int:
        """The length of the value a header item stands for."""
        _, _, _, length, _ = self.location(cid)
        page = self.host.slabs.pages[cid >> PAGE_SHIFT]
        nkey = page[(cid & OFFSET_MASK) + OFF_NKEY]
        return length - RECORD.size - nkey

    def forget(self, cid: int) -> None:
        """A header item is being unlinked: its record no longer counts as used."""
        self.last_read = None  # the chunk may hold another item next
        version, number, _, length, _ = self.location(cid)
        if self.pages.valid(number, version):
            self.pages.delete(number, version, length)

    def _link(
        self,
        key: bytes,
        flags: int,
        rel_exptime: int,
        data: bytes,
        now: int,
        prefix: bytes,
        iflags: int,
        cas: int,
    ) -> int:
        """Link an item with a given framing prefix, item flags and CAS (header items and
        recached values); -1 if there is no memory."""
        host = self.host
        cid = host.write_item(
            key,
            flags,
            rel_exptime,
            data,
            now,
            replace_on_failure=False,
            prefix=prefix,
            iflags=iflags,
        )
        if cid >= 0:
            U64.pack_into(host.slabs.pages[cid >> PAGE_SHIFT], (cid & OFFSET_MASK) + OFF_CAS, cas)
        return cid

    def holds(self, key: bytes) -> bool:
        """Whether ``key``'s item is a header item (its value on flash); no side effects."""
        host = self.host
        cid = host.index.get(key)
        return cid >= 0 and bool(
            host.slabs.pages[cid >> PAGE_SHIFT][(cid & OFFSET_MASK) + OFF_IFLAGS] & EXT
        )

    # -- writing out ----------------------------------------------------------------------

    def min_class(self) -> int:
        return self.host.slabs.class_for(self.config.item_size)

    def write_item(self, cid: int, now: int) -> bool:
        """Write a linked item out and put a header item in its place (storage_write)."""
        host = self.host
        page = host.slabs.pages[cid >> PAGE_SHIFT]
        off = cid & OFFSET_MASK
        cas, exptime, _, flags, nbytes, nkey, iflags, plen, ncont = READ_FIELDS.unpack_from(
            page, off + OFF_CAS
        )
        if iflags & EXT or self._writing:
            return False
        items = host.items
        key = bytes(items.read(cid, 0, nkey))
        prefix = bytes(items.read(cid, nkey, plen))
        data = bytes(items.read(cid, nkey + plen, nbytes))
        bucket = BUCKET_CHUNKED if ncont else BUCKET_DEFAULT
        if exptime and exptime - now < self.config.low_ttl:
            bucket = BUCKET_LOWTTL
        crc = zlib.crc32(data, zlib.crc32(key))
        record = RECORD.pack(crc, nkey, nbytes) + key + data
        where = self.pages.write(bucket, record)
        if where is None:
            return False
        number, version, offset = where
        location = LOCATION.pack(version, number, offset, len(record), crc)
        self._writing = True
        try:
            head = self._link(
                key,
                flags,
                exptime,
                location,
                now,
                prefix,
                LINKED | EXT | (iflags & KEY_BINARY),
                cas,
            )
        finally:
            self._writing = False
        if head < 0:
            self.pages.delete(number, version, len(record))
            return False
        return True

    def make_room(self, class_id: int, now: int) -> bool:
        """A class is out of memory: write its COLD tail out rather than evict it (the
        write thread's low-memory rule, applied at the moment memory is wanted)."""
        if self._writing or class_id < self.min_class():
            return False
        host = self.host
        tail = host.items.tails[class_id | SEG_COLD << SEG_SHIFT]
        if tail < 0 or host.is_dead(tail, now):
            return False
        return self.write_item(tail, now)

    def write_step(self, now: int, budget: int) -> int:
        """The background writer: COLD tails old enough (or in a class short of memory)
        go out, up to ``budget`` items. Returns how many were written."""
        host = self.host
        slabs = host.slabs
        items = host.items
        written = 0
        for class_id in range(self.min_class(), len(slabs.classes)):
            cls = slabs.classes[class_id]
            low = len(cls.free) < cls.per_page * MIN_PAGES_FREE and not slabs.pool
            age = 0 if low else self.config.item_age
            while written < budget:
                tail = items.tails[class_id | SEG_COLD << SEG_SHIFT]
                if tail < 0:
                    break
                if host.is_dead(tail, now):
                    host.counters.classes[class_id].reclaimed += 1
                    host.remove(tail)
                    continue
                page = slabs.pages[tail >> PAGE_SHIFT]
                atime = UNPACK_I32(page, (tail & OFFSET_MASK) + OFF_ATIME)[0]
                if age and now - atime <= age:
                    break
                if not self.write_item(tail, now):
                    break
                written += 1
        return written

    # -- reading back ---------------------------------------------------------------------

    def collect_hit(
        self,
        cid: int,
        page: Page,
        off: int,
        out: list[bytes | bytearray],
        with_cas: bool,
        exptime_rel: int | None,
        now: int,
    ) -> None:
        """The cache's collect met a header item: count and bump it, then read the value
        back into ``out``.

        A value its page no longer holds is left out of the reply (the hit stays counted,
        as memcached counts it); no memory to read it into raises ExtstoreOutOfMemory.
        """
        host = self.host
        class_id = host.slabs.page_class[cid >> PAGE_SHIFT]
        if exptime_rel is None:
            host.lru_hits[class_id | (page[off + OFF_LRU] & SEG_MASK) << SEG_SHIFT] += 1
        else:
            PACK_I32(page, off + OFF_EXPTIME, exptime_rel)
            host.counters.classes[class_id].touch_hits += 1
        host.bump(cid, page, off, now)
        data = self.fetch(cid, now)
        if data is None:
            return
        self.frame(cid, data, out, with_cas)
        self.recache(cid, data, now)

    def read_hit(self, cid: int, now: int) -> int:
        """The cache's get met a header item: read the value for its value() to hand out
        (:attr:`last_read`). Returns the item holding the value (another one if it came
        back into memory), -1 if it cannot be read (gone from its page, or no memory to
        read it into)."""
        try:
            data = self.fetch(cid, now)
        except ExtstoreOutOfMemory:
            return -1
        if data is None:
            return -1
        host = self.host
        key = host.key_of(cid)
        if self.recache(cid, data, now):
            return host.index.get(key)  # the value is in memory again
        self.last_read = (cid, data)
        return cid

    def fetch(self, cid: int, now: int) -> bytes | None:
        """The value of a header item, read from its page; None if the page no longer
        holds it (the header is then unlinked). Raises ExtstoreOutOfMemory when no memory
        can hold the value while it is read (memcached reads into a new item)."""
        host = self.host
        version, number, offset, length, crc = self.location(cid)
        page = host.slabs.pages[cid >> PAGE_SHIFT]
        off = cid & OFFSET_MASK
        _, _, _, _, _, nkey, _, plen, _ = READ_FIELDS.unpack_from(page, off + OFF_CAS)
        nbytes = length - RECORD.size - nkey
        class_id, ncont = host.items.plan(nkey + plen + nbytes + 2)
        # Making room may evict within that class, but must write nothing out: a write
        # links a new header item, and its allocation could push this header out.
        writing, self._writing = self._writing, True
        try:
            chunks = host.alloc_chunks(class_id, 1 + ncont, now, move_pages=False)
        finally:
            self._writing = writing
        if chunks is None:
            self.counters.get_oom_extstore += 1
            raise ExtstoreOutOfMemory
        try:
            self.counters.get_extstore += 1
            record = self.pages.read(number, version, offset, length)
        finally:
            for chunk in chunks:
                host.slabs.free(chunk, class_id)
        if record is not None:
            data = record[RECORD.size + nkey :]
            if zlib.crc32(data, zlib.crc32(record[RECORD.size : RECORD.size + nkey])) == crc:
                return data
            self.counters.badcrc_from_extstore += 1
        self.counters.miss_from_extstore += 1
        host.remove(cid)
        return None

    def frame(self, cid: int, data: bytes, out: list[bytes | bytearray], with_cas: bool) -> None:
        """Append a header item's reply for ``data``: its stored framing (with the CAS
        put in where the framing says), the value, the suffix."""
        host = self.host
        page = host.slabs.pages[cid >> PAGE_SHIFT]
        cas, _, _, _, _, nkey, _, plen, _ = READ_FIELDS.unpack_from(
            page, (cid & OFFSET_MASK) + OFF_CAS
        )
        framing = host.framing
        lead = framing.lead
        if lead is None:
            head = host.items.read(cid, nkey, plen)
        else:
            out.append(lead)
            head = host.items.read(cid, 0, nkey + plen)
        if with_cas:
            split = len(head) - framing.cas_at
            out.append(head[:split])
            out.append(framing.cas_format % cas)
            out.append(head[split:])
        else:
            out.append(head)
        out.append(data)
        out.append(framing.suffix)

    def bring_into_memory(self, cid: int, now: int) -> int:
        """Bring a header item's value back into memory, in its place (counted as a
        recache): what meta commands work on. Returns the item, -1 if it cannot be read."""
        host = self.host
        page = host.slabs.pages[cid >> PAGE_SHIFT]
        off = cid & OFFSET_MASK
        if not page[off + OFF_IFLAGS] & EXT:
            return cid
        key = host.key_of(cid)
        try:
            data = self.fetch(cid, now)
        except ExtstoreOutOfMemory:
            return -1
        if data is None:
            return -1
        cas, exptime, _, flags, _, nkey, iflags, plen, _ = READ_FIELDS.unpack_from(
            page, off + OFF_CAS
        )
        prefix = bytes(host.items.read(cid, nkey, plen))
        head = self._link(
            key, flags & 0xFFFFFFFF, exptime, data, now, prefix, LINKED | (iflags & KEY_BINARY), cas
        )
        if head >= 0:
            self.counters.recache_from_extstore += 1
        return head

    def recache(self, cid: int, data: bytes, now: int) -> bool:
        """After a read: bring a header's value back into memory if it was hit twice
        lately and its turn in ``ext_recache_rate`` came (recache_or_free)."""
        rate = self.config.recache_rate
        if not rate:
            return False
        host = self.host
        page = host.slabs.pages[cid >> PAGE_SHIFT]
        off = cid & OFFSET_MASK
        cas, exptime, atime, flags, _, nkey, iflags, plen, _ = READ_FIELDS.unpack_from(
            page, off + OFF_CAS
        )
        if not iflags & FETCHED or not page[off + OFF_LRU] & ACTIVE:
            return False
        if atime <= now - ITEM_UPDATE_INTERVAL:
            return False
        turn = self._recache_counter
        self._recache_counter += 1
        if turn % rate:
            return False
        items = host.items
        key = bytes(items.read(cid, 0, nkey))
        prefix = bytes(items.read(cid, nkey, plen))
        self._writing = True  # the new item's memory must not push another item out
        try:
            head = self._link(
                key, flags, exptime, data, now, prefix, LINKED | (iflags & KEY_BINARY), cas
            )
        finally:
            self._writing = False
        if head < 0:
            return False
        self.counters.recache_from_extstore += 1
        return True

    # -- compaction -----------------------------------------------------------------------

    def _compact_pick(self) -> bool:
        """storage_compact_check: choose the oldest page under the fragmentation limit
        (or, dropping unread items, the oldest page) once free pages run low."""
        pages = self.pages
        cfg = self.config
        count = len(pages.pages)
        if pages.pages_used == 0 or pages.pages_free > cfg.compact_under:
            return False
        rate = (1.0 - pages.pages_free / count) * cfg.max_frag
        frag_limit = int(cfg.page_size * rate)
        low = lowest = -1
        low_version = lowest_version = 0
        for number in range(count):
            version, used, bucket = pages.page_data(number)
            if version == 0 or bucket == BUCKET_LOWTTL:
                continue
            if lowest < 0 or version < lowest_version:
                lowest, lowest_version = number, version
            if used < frag_limit and (low < 0 or version < low_version):
                low, low_version = number, version
        if low >= 0:
            self._start_compaction(low, low_version, False)
            return True
        if lowest >= 0 and cfg.drop_unread and pages.pages_free <= cfg.drop_under:
            self._start_compaction(lowest, lowest_version, True)
            return True
        return False

    def _start_compaction(self, number: int, version: int, drop_unread: bool) -> None:
        self._compact_page = number
        self._compact_version = version
        self._compact_offset = 0
        self._drop_unread = drop_unread

    def compact_step(self) -> bool:
        """Read back one write buffer's worth of the page being compacted (choosing one
        first if due); False when there is nothing to do."""
        if self._compact_page < 0 and not self._compact_pick():
            return False
        number, version = self._compact_page, self._compact_version
        pages = self.pages
        if not pages.valid(number, version):
            self._compact_page = -1  # evicted or emptied meanwhile
            return True
        if self._compact_offset >= self.config.page_size:
            pages.close_page(number, version)
            self._compact_page = -1
            return True
        span = pages.read_span(number, self._compact_offset, self.config.wbuf_size)
        self._read_back(span, number, version, self._compact_offset)
        self._compact_offset += self.config.wbuf_size
        return True

    def _read_back(self, span: bytes, number: int, version: int, base: int) -> None:
        """storage_compact_readback: rewrite the live records of a span, drop the rest."""
        host = self.host
        index = host.index
        slabs = host.slabs
        pos = 0
        counters = self.counters
        while pos + RECORD.size <= len(span):
            _, nkey, nbytes = RECORD.unpack_from(span, pos)
            if nkey == 0:
                break  # the zeroed tail of a write buffer
            length = RECORD.size + nkey + nbytes
            key = span[pos + RECORD.size : pos + RECORD.size + nkey]
            cid = index.get(key)
            if cid >= 0 and self._still_here(cid, number, version, base + pos):
                pages = self.pages
                pages.delete(number, version, length)
                page = slabs.pages[cid >> PAGE_SHIFT]
                seg = page[(cid & OFFSET_MASK) + OFF_LRU] & SEG_MASK
                if self._drop_unread and seg == SEG_COLD:
                    counters.compact_skipped += 1
                else:
                    where = pages.write(BUCKET_COMPACT, span[pos : pos + length])
                    if where is None:
                        counters.compact_lost += 1
                    else:
                        new_number, new_version, new_offset = where
                        loc_page, at = self._location_at(cid)
                        _, _, _, _, crc = LOCATION.unpack_from(loc_page, at)
                        LOCATION.pack_into(
                            loc_page, at, new_version, new_number, new_offset, length, crc
                        )
                        counters.compact_rescues += 1
            pos += length

    def _still_here(self, cid: int, number: int, version: int, offset: int) -> bool:
        host = self.host
        page = host.slabs.pages[cid >> PAGE_SHIFT]
        off = cid & OFFSET_MASK
        if not page[off + OFF_IFLAGS] & EXT or host.is_dead(cid, self._now):
            return False
        h_version, h_number, h_offset, _, _ = self.location(cid)
        return h_version == version and h_number == number and h_offset == offset

    def step(self, now: int, budget: int) -> int:
        """One turn of the background work: write out, maintain pages, compact."""
        self._now = now
        done = self.write_step(now, budget)
        self.pages.maintain()
        for _ in range(4):
            if not self.compact_step():
                break
            done += 1
        return done
