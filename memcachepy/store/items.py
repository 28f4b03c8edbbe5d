"""Items laid out in slab chunks, and the per-class LRU lists that link them.

An item is a 48-byte header followed by its byte stream: the key, then the
value as clients receive it (a framing prefix given by the caller, the data,
a framing suffix). An item that does not fit in one chunk of the largest class
is chunked: the first chunk lists the ids of its continuation chunks, each of
which starts with a header whose ``prev`` names the first chunk.

Header fields (little-endian): prev, next (LRU links, chunk ids, -1 = none),
cas, exptime and atime (seconds on the cache's relative clock, exptime 0 =
never), client flags, data length, key length, item flags, framing prefix
length, continuation count.
"""

from __future__ import annotations

import struct
from typing import Final

from memcachepy.store.slabs import OFFSET_MASK, PAGE_SHIFT, SlabAllocator

HEADER: Final = struct.Struct("<qqQiiIiBBHI")
HEADER_SIZE: Final = HEADER.size
assert HEADER_SIZE == 48

OFF_PREV: Final = 0
OFF_NEXT: Final = 8
OFF_CAS: Final = 16
OFF_EXPTIME: Final = 24
OFF_ATIME: Final = 28
OFF_FLAGS: Final = 32
OFF_NBYTES: Final = 36
OFF_NKEY: Final = 40
OFF_IFLAGS: Final = 41
OFF_PREFIX: Final = 42
OFF_NCONT: Final = 44

LINKED: Final = 1
FETCHED: Final = 2
CONTINUATION: Final = 4

I64: Final = struct.Struct("<q")
U64: Final = struct.Struct("<Q")
I32: Final = struct.Struct("<i")
U16: Final = struct.Struct("<H")
TIMES: Final = struct.Struct("<Qii")  # cas, exptime, atime: what a lookup checks
# Everything a read needs, from OFF_CAS: cas, exptime, atime, flags, nbytes, nkey,
# item flags, prefix length, continuation count.
HOT: Final = struct.Struct("<QiiIiBBHI")
CONT_ID: Final = struct.Struct("<q")


class ItemMemory:
    """Reads and writes item headers and streams in slab chunks; keeps the LRU lists."""

    def __init__(self, slabs: SlabAllocator) -> None:
        self.slabs = slabs
        n = len(slabs.classes)
        self.heads = [-1] * n
        self.tails = [-1] * n
        self.counts = [0] * n

    # -- layout -----------------------------------------------------------------

    def plan(self, stream_len: int) -> tuple[int, int]:
        """(class id, continuation chunk count) for an item whose stream is ``stream_len``."""
        total = HEADER_SIZE + stream_len
        slabs = self.slabs
        if total <= slabs.chunk_max:
            return slabs.class_for(total), 0
        room = slabs.chunk_max - HEADER_SIZE  # stream bytes one continuation chunk holds
        ncont = 1
        while HEADER_SIZE + ncont * CONT_ID.size + stream_len > slabs.chunk_max + ncont * room:
            ncont += 1
        return slabs.largest, ncont

    def write(
        self, head: int, conts: list[int], parts: tuple[bytes, ...], header: tuple[int, ...]
    ) -> None:
        """Write the header and the concatenation of ``parts`` into ``head`` and ``conts``."""
        pages = self.slabs.pages
        page = pages[head >> PAGE_SHIFT]
        off = head & OFFSET_MASK
        HEADER.pack_into(page, off, *header)
        pos = off + HEADER_SIZE
        if not conts:
            for part in parts:
                end = pos + len(part)
                page[pos:end] = part
                pos = end
            return
        for i, cont in enumerate(conts):
            CONT_ID.pack_into(page, pos + i * CONT_ID.size, cont)
            cpage = pages[cont >> PAGE_SHIFT]
            coff = cont & OFFSET_MASK
            HEADER.pack_into(cpage, coff, head, -1, 0, 0, 0, 0, 0, 0, CONTINUATION | LINKED, 0, 0)
        stream = b"".join(parts)
        first = self.slabs.chunk_max - HEADER_SIZE - len(conts) * CONT_ID.size
        pos += len(conts) * CONT_ID.size
        page[pos : pos + min(first, len(stream))] = stream[:first]
        room = self.slabs.chunk_max - HEADER_SIZE
        for i, cont in enumerate(conts):
            piece = stream[first + i * room : first + (i + 1) * room]
            cpage = pages[cont >> PAGE_SHIFT]
            coff = (cont & OFFSET_MASK) + HEADER_SIZE
            cpage[coff : coff + len(piece)] = piece

    def continuations(self, head: int) -> list[int]:
        page = self.slabs.pages[head >> PAGE_SHIFT]
        off = head & OFFSET_MASK
        ncont = I32.unpack_from(page, off + OFF_NCONT)[0]
        base = off + HEADER_SIZE
        return [CONT_ID.unpack_from(page, base + i * CONT_ID.size)[0] for i in range(ncont)]

    def read(self, head: int, start: int, length: int) -> bytes | bytearray:
        """``length`` bytes of the item's stream from ``start``."""
        page = self.slabs.pages[head >> PAGE_SHIFT]
        off = head & OFFSET_MASK
        if not I32.unpack_from(page, off + OFF_NCONT)[0]:
            base = off + HEADER_SIZE + start
            return page[base : base + length]
        conts = self.continuations(head)
        first = self.slabs.chunk_max - HEADER_SIZE - len(conts) * CONT_ID.size
        base = off + HEADER_SIZE + len(conts) * CONT_ID.size
        stream = bytearray(page[base : base + first])
        pages = self.slabs.pages
        room = self.slabs.chunk_max - HEADER_SIZE
        for cont in conts:
            coff = (cont & OFFSET_MASK) + HEADER_SIZE
            stream += pages[cont >> PAGE_SHIFT][coff : coff + room]
        return stream[start : start + length]

    # -- LRU ------------------------------------------------------------------------

    def link(self, cid: int, class_id: int) -> None:
        """Put ``cid`` at the head (most recently used end) of its class's LRU."""
        pages = self.slabs.pages
        page = pages[cid >> PAGE_SHIFT]
        off = cid & OFFSET_MASK
        head = self.heads[class_id]
        I64.pack_into(page, off + OFF_PREV, -1)
        I64.pack_into(page, off + OFF_NEXT, head)
        if head >= 0:
            I64.pack_into(pages[head >> PAGE_SHIFT], (head & OFFSET_MASK) + OFF_PREV, cid)
        else:
            self.tails[class_id] = cid
        self.heads[class_id] = cid
        self.counts[class_id] += 1

    def unlink(self, cid: int, class_id: int) -> None:
        pages = self.slabs.pages
        page = pages[cid >> PAGE_SHIFT]
        off = cid & OFFSET_MASK
        prev = I64.unpack_from(page, off + OFF_PREV)[0]
        nxt = I64.unpack_from(page, off + OFF_NEXT)[0]
        if prev >= 0:
            I64.pack_into(pages[prev >> PAGE_SHIFT], (prev & OFFSET_MASK) + OFF_NEXT, nxt)
        else:
            self.heads[class_id] = nxt
        if nxt >= 0:
            I64.pack_into(pages[nxt >> PAGE_SHIFT], (nxt & OFFSET_MASK) + OFF_PREV, prev)
        else:
            self.tails[class_id] = prev
        self.counts[class_id] -= 1

    def bump(self, cid: int, class_id: int) -> None:
        if self.heads[class_id] != cid:
            self.unlink(cid, class_id)
            self.link(cid, class_id)

    def toward_head(self, cid: int) -> int:
        """The item linked just after ``cid`` (one step from the tail toward the head)."""
        page = self.slabs.pages[cid >> PAGE_SHIFT]
        return int(I64.unpack_from(page, (cid & OFFSET_MASK) + OFF_PREV)[0])
