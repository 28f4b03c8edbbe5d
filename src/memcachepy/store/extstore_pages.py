"""Pages of the external storage files: allocation, write buffers, eviction, accounting.

memcached's extstore.c, in one thread. The files (``ext_path``, several for "jbod") are cut
into pages of ``ext_page_size``, dealt round robin over the files. Each page bucket
(default, compaction, chunked, low TTL) writes into one open page through a write buffer
of ``ext_wbuf_size``; a full buffer goes to the file with one ``os.pwrite``, and reads use
``os.pread`` (or the buffer itself, for what is not written yet). Objects never straddle
two buffers, so a compactor can read a page back one buffer at a time.

A page has a version, new at each allocation: a location names (page, version, offset),
and a location whose page was freed or evicted since no longer matches. A page whose
objects are all deleted is reclaimed; with no free page left, the page of the oldest
version is evicted with what it holds.

Page 0 is never handed out: memcached 1.6.18's free list starts at page 1 (its loop stops
before 0), which shows in ``extstore_pages_used`` and ``extstore_bytes_fragmented``; kept
so the figures match.
"""

from __future__ import annotations

import fcntl
import os
from dataclasses import dataclass, field

from memcachepy.store.extstore_config import BUCKETS, ExtstoreConfig


class ExtstoreError(Exception):
    """The storage files cannot be used (open, lock, size)."""


@dataclass(slots=True)
class ExtstoreStats:
    page_allocs: int = 0
    page_evictions: int = 0
    page_reclaims: int = 0
    objects_evicted: int = 0
    objects_read: int = 0
    objects_written: int = 0
    objects_used: int = 0
    bytes_evicted: int = 0
    bytes_written: int = 0
    bytes_read: int = 0
    bytes_used: int = 0


@dataclass(slots=True)
class ExtstorePage:
    id: int
    fd: int
    base: int  # byte offset of the page in its file
    version: int = 0
    bytes_used: int = 0
    obj_count: int = 0
    bucket: int = 0
    written: int = 0  # bytes of the page handed to write buffers so far
    free: bool = True
    active: bool = False  # being written
    closed: bool = False  # compacted or evicted: freed once idle


@dataclass(slots=True)
class WriteBuffer:
    """The open page of one bucket and the buffer its next bytes gather in."""

    data: bytearray
    page: int = -1
    start: int = 0  # offset of the buffer in the page
    fill: int = 0


@dataclass(slots=True)
class ExtstorePages:
    config: ExtstoreConfig
    stats: ExtstoreStats = field(default_factory=ExtstoreStats)
    pages: list[ExtstorePage] = field(default_factory=list)
    buffers: list[WriteBuffer] = field(default_factory=list)
    free_list: list[int] = field(default_factory=list)  # popped from the end
    fds: list[int] = field(default_factory=list)
    version: int = 1

    def open(self) -> None:
        """Open, lock and empty each file, then deal its pages (extstore_init)."""
        cfg = self.config
        counts: list[int] = []
        for ext in cfg.files:
            try:
                fd = os.open(ext.path, os.O_RDWR | os.O_CREAT, 0o644)
            except OSError as exc:
                self.close()
                raise ExtstoreError(f"failed to open file: {exc.strerror}") from None
            self.fds.append(fd)
            try:
                # memcached's fcntl F_SETLK write lock: a second daemon on the file fails.
                fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                os.ftruncate(fd, 0)
            except OSError:
                self.close()
                raise ExtstoreError("failed to open file") from None
            counts.append(ext.page_count)
        offsets = [0] * len(counts)
        which = -1
        for number in range(sum(counts)):
            while True:
                which = (which + 1) % len(counts)
                if counts[which]:
                    counts[which] -= 1
                    break
            self.pages.append(ExtstorePage(number, self.fds[which], offsets[which]))
            offsets[which] += cfg.page_size
        # Free list: pages count-1 .. 1 pushed, so the lowest comes out first.
        self.free_list = list(range(len(self.pages) - 1, 0, -1))
        self.buffers = [WriteBuffer(bytearray(cfg.wbuf_size)) for _ in range(BUCKETS)]

    def close(self) -> None:
        for fd in self.fds:
            os.close(fd)
        self.fds = []

    # -- figures ----------------------------------------------------------------------

    @property
    def pages_free(self) -> int:
        return len(self.free_list)

    @property
    def pages_used(self) -> int:
        return len(self.pages) - len(self.free_list)

    @property
    def bytes_fragmented(self) -> int:
        return self.pages_used * self.config.page_size - self.stats.bytes_used

    def page_data(self, number: int) -> tuple[int, int, int]:
        """(version, bytes used, bucket) as the maintenance pass reports a page: zeros for
        a free or open page, or one holding nothing."""
        p = self.pages[number]
        if p.free or p.active or p.closed or not p.obj_count:
            return 0, 0, 0
        return p.version, p.bytes_used, p.bucket

    # -- writing ------------------------------------------------------------------------

    def write(self, bucket: int, record: bytes) -> tuple[int, int, int] | None:
        """Append ``record`` to ``bucket``'s open page: (page, version, offset), or None
        when no page can be had (every page open or busy; the caller tries later)."""
        buf = self.buffers[bucket]
        size = len(record)
        wbuf_size = self.config.wbuf_size
        if size > wbuf_size:
            return None
        if buf.page >= 0 and buf.fill + size > wbuf_size:
            self._flush(buf)
        if buf.page < 0 and not self._open_page(buf, bucket):
            return None
        page = self.pages[buf.page]
        offset = buf.start + buf.fill
        buf.data[buf.fill : buf.fill + size] = record
        buf.fill += size
        page.bytes_used += size
        page.obj_count += 1
        st = self.stats
        st.bytes_written += size
        st.bytes_used += size
        st.objects_written += 1
        st.objects_used += 1
        return page.id, page.version, offset

    def _flush(self, buf: WriteBuffer) -> None:
        """Write the buffer out whole (its unused tail zeroed) and move on in the page."""
        page = self.pages[buf.page]
        buf.data[buf.fill :] = bytes(len(buf.data) - buf.fill)
        os.pwrite(page.fd, buf.data, page.base + buf.start)
        buf.start += len(buf.data)
        buf.fill = 0
        page.written = buf.start
        if buf.start >= self.config.page_size:
            page.active = False
            buf.page = -1

    def _open_page(self, buf: WriteBuffer, bucket: int) -> bool:
        if not self.free_list:
            self.maintain()
            if not self.free_list:
                return False
        page = self.pages[self.free_list.pop()]
        page.free = page.closed = False
        page.active = True
        page.version = self.version
        self.version += 1
        page.bucket = bucket
        page.bytes_used = page.obj_count = page.written = 0
        self.stats.page_allocs += 1
        buf.page, buf.start, buf.fill = page.id, 0, 0
        if not self.free_list:
            self.maintain()  # memcached's allocation wakes its maintenance thread
        return True

    # -- reading and deleting -------------------------------------------------------------

    def valid(self, number: int, version: int) -> bool:
        return 0 <= number < len(self.pages) and self.pages[number].version == version

    def read(self, number: int, version: int, offset: int, length: int) -> bytes | None:
        """The bytes of a location, or None if its page no longer holds them."""
        if not self.valid(number, version):
            return None
        page = self.pages[number]
        st = self.stats
        st.objects_read += 1
        st.bytes_read += length
        for buf in self.buffers:
            if buf.page == number and offset >= buf.start:
                start = offset - buf.start
                return bytes(buf.data[start : start + length])
        data = os.pread(page.fd, length, page.base + offset)
        return data if len(data) == length else None

    def read_span(self, number: int, offset: int, length: int) -> bytes:
        """Raw bytes of a written part of a page (the compactor's read-back)."""
        page = self.pages[number]
        return os.pread(page.fd, length, page.base + offset)

    def delete(self, number: int, version: int, size: int) -> bool:
        """An object of the page is gone (overwritten, deleted, rescued elsewhere)."""
        page = self.pages[number]
        if page.closed or page.version != version:
            return False
        page.bytes_used = max(page.bytes_used - size, 0)
        page.obj_count = max(page.obj_count - 1, 0)
        self.stats.bytes_used -= size
        self.stats.objects_used -= 1
        if not page.obj_count and not page.active:
            self._free(page)
        return True

    def close_page(self, number: int, version: int) -> None:
        """The compactor is done with a page: free it."""
        page = self.pages[number]
        if not page.closed and page.version == version:
            page.closed = True
            if not page.active:
                self._free(page)

    # -- maintenance ----------------------------------------------------------------------

    def maintain(self) -> None:
        """extstore's maintenance pass: free empty or closed pages; with none free,
        evict the page of the oldest version."""
        evict = not self.free_list
        low: ExtstorePage | None = None
        for page in self.pages:
            if page.active or page.free:
                continue
            if not page.obj_count or page.closed:
                self._free(page)
                evict = False
            elif low is None or page.version < low.version:
                low = page
        if evict and low is not None:
            st = self.stats
            st.page_evictions += 1
            st.objects_evicted += low.obj_count
            st.bytes_evicted += low.bytes_used
            low.closed = True
            self._free(low)

    def _free(self, page: ExtstorePage) -> None:
        st = self.stats
        st.objects_used -= page.obj_count
        st.bytes_used -= page.bytes_used
        st.page_reclaims += 1
        page.version = page.obj_count = page.bytes_used = page.written = page.bucket = 0
        page.active = page.closed = False
        page.free = True
        self.free_list.append(page.id)
