"""Items laid out in slab chunks, and the per-class LRU lists that link them.

An item is a 48-byte header followed by its byte stream: the key, then the
value as clients receive it (a framing prefix given by the caller, the data,
a framing suffix). An item that does not fit in one chunk of the largest class
is chunked: the first chunk lists the ids of its continuation chunks, each of
which starts with a header whose ``prev`` names the first chunk.

Header fields (little-endian): prev, next (LRU links, chunk ids, -1 = none),
cas, exptime and atime (seconds on the cache's relative clock, exptime 0 =
never), client flags, data length, key length, item flags, framing prefix
length, continuation count, then the LRU byte (segment and ACTIVE bit) and a
spare byte. :data:`HEADER` skips those two as padding, so its field count stays
the same; they are read and written by offset.

Each slab class has four LRU lists, as memcached's segmented LRU: HOT, WARM,
COLD and TEMP. A list is named by its LRU id, ``class_id | segment << 6``
(memcached's ``slabs_clsid | HOT_LRU`` ...), and an item's header records which
list it is on.
"""

from __future__ import annotations

import struct
from typing import Final, TypeAlias

from memcachepy.store.slabs import OFFSET_MASK, PAGE_SHIFT, SlabAllocator

HEADER: Final = struct.Struct("<qqQiiIiBBHHxx")
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
OFF_LRU: Final = 46

LINKED: Final = 1
FETCHED: Final = 2
CONTINUATION: Final = 4
# Item flags for the meta protocol (memcached's ITEM_STALE, ITEM_TOKEN_SENT, ITEM_KEY_BINARY).
# A new item starts without them; changes that keep the item (touch, in-place incr) keep them.
STALE: Final = 8  # md I (or ms I with an older CAS) marked the value stale
WIN_SENT: Final = 16  # some client already got the W (recache win) flag for this item
KEY_BINARY: Final = 32  # stored by a meta command with a base64 key: return keys encoded
# memcached's ITEM_HDR: the value is on flash (memcachepy.store.extstore); the item holds
# the key, the framing and the value's location.
EXT: Final = 64  # the highest flag: Cache.collect tests it as `iflags >= 64`

# The LRU byte: the segment in the low two bits, memcached's ITEM_ACTIVE above them.
SEG_HOT: Final = 0
SEG_WARM: Final = 1
SEG_COLD: Final = 2
SEG_TEMP: Final = 3
SEG_MASK: Final = 3
ACTIVE: Final = 4
SEG_SHIFT: Final = 6  # LRU id = class id | segment << SEG_SHIFT (classes are below 64)
LRU_IDS: Final = 4 << SEG_SHIFT
SEGMENT_NAMES: Final = ("hot", "warm", "cold", "temp")

I64: Final = struct.Struct("<q")
LINKS: Final = struct.Struct("<qq")  # prev, next
U64: Final = struct.Struct("<Q")
I32: Final = struct.Struct("<i")
U16: Final = struct.Struct("<H")
TIMES: Final = struct.Struct("<Qii")  # cas, exptime, atime: what a lookup checks
# Everything a read needs, from OFF_CAS: cas, exptime, atime, flags, nbytes, nkey,
# item flags, prefix length, continuation count.
HOT: Final = struct.Struct("<QiiIiBBHH")
# The same and the LRU byte: what a read in segmented mode needs.
HOT_LRU: Final = struct.Struct("<QiiIiBBHHB")
# What HOT_LRU unpacks to: a variable so typed makes mypyc's code use C ints, not objects.
HotFields: TypeAlias = tuple[int, int, int, int, int, int, int, int, int, int]
# What a read needs, from OFF_CAS, and the ``n`` bytes after the header, for each key length
# ``n`` up to memcached's KEY_MAX_LENGTH: an unchunked item's key follows its header, so one
# unpack reads both what a hit needs and the key to check (the key index's probe). It skips
# what most reads do not need: the cas (gets and a due flush_all read it), the atime (a due
# flush_all and the flat LRU) and the client flags (the framing prefix holds them). Each
# field unpacked is an object built, and most of these are small ints, which CPython does
# not allocate; the cas seldom is one.
KEY_MAX: Final = 250
HOT_KEY: Final = [struct.Struct(f"<8xi8xiBBHHBx{n}s") for n in range(KEY_MAX + 1)]
# What HOT_KEY unpacks to: exptime, nbytes, nkey, item flags, prefix length, continuation
# count, the LRU byte, and the bytes where an unchunked item's key lies.
HotKeyFields: TypeAlias = tuple[int, int, int, int, int, int, int, bytes]
assert OFF_CAS + HOT_KEY[0].size == HEADER_SIZE
CONT_ID: Final = struct.Struct("<q")
# The link updates' pack/unpack, bound once: compiled, calling a bound method skips the
# method lookup that ``I64.pack_into(...)`` makes on every call.
_PACK_I64: Final = I64.pack_into
_UNPACK_LINKS: Final = LINKS.unpack_from
# HEADER with the LRU byte: what a new item's header is written with.
HEADER_LRU: Final = struct.Struct("<qqQiiIiBBHHBx")
_PACK_HEADER_LRU: Final = HEADER_LRU.pack_into
# HEADER's fields (without the LRU byte), typed: compiled, a native tuple of C ints.
HeaderFields: TypeAlias = tuple[int, int, int, int, int, int, int, int, int, int, int]


class ItemMemory:
    """Reads and writes item headers and streams in slab chunks; keeps the LRU lists."""

    def __init__(self, slabs: SlabAllocator) -> None:
        self.slabs = slabs
        n = len(slabs.classes)
        # Indexed by LRU id (class id | segment << SEG_SHIFT).
        self.heads = [-1] * LRU_IDS
        self.tails = [-1] * LRU_IDS
        self.seg_counts = [0] * LRU_IDS
        self.counts = [0] * n  # items of each class, all segments
        # The last plan made, and the stream length it was made for (see plan).
        self._plan_len = -1
        self._plan: tuple[int, int] = (0, 0)

    # -- layout -----------------------------------------------------------------

    def plan(self, stream_len: int) -> tuple[int, int]:
        """(class id, continuation chunk count) for an item whose stream is ``stream_len``.

        The last answer is reused: writes tend to repeat a size, and the class is found
        by a search over the classes' sizes."""
        if stream_len == self._plan_len:
            return self._plan
        plan = self._make_plan(stream_len)
        self._plan_len = stream_len
        self._plan = plan
        return plan

    def _make_plan(self, stream_len: int) -> tuple[int, int]:
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
        self, head: int, conts: list[int], parts: tuple[bytes, ...], header: HeaderFields,
        seg: int = 0,
    ) -> None:
        """Write the header and the concatenation of ``parts`` into ``head`` and ``conts``.

        ``seg`` goes in the LRU byte (the item is not linked yet: see :meth:`link_new`,
        for which ``header``'s next may already name the head of the list it goes on).
        """
        pages = self.slabs.pages
        page = pages[head >> PAGE_SHIFT]
        off = head & OFFSET_MASK
        # The fields one by one, not ``*header``: compiled, a star call builds a list and a
        # tuple of them first.
        prev, nxt, cas, exptime, atime, flags, nbytes, nkey, iflags, prefix, ncont = header
        _PACK_HEADER_LRU(page, off, prev, nxt, cas, exptime, atime, flags, nbytes, nkey, iflags,
                         prefix, ncont, seg)
        pos = off + HEADER_SIZE
        if not conts:
            # One slice assignment of the joined parts: compiled, each assignment is one of
            # CPython's generic operations, which cost more than copying a few more bytes.
            stream = b"".join(parts)
            page[pos : pos + len(stream)] = stream
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

    def head_of(self, chunk: int) -> int:
        """The head chunk of the linked item that ``chunk`` holds part of; -1 if none does.

        Emptying a page (a slab move) meets an item's continuation chunks as well as
        its head: both lead to the one item to move or evict.
        """
        page = self.slabs.pages[chunk >> PAGE_SHIFT]
        off = chunk & OFFSET_MASK
        iflags = page[off + OFF_IFLAGS]
        if not iflags & LINKED:
            return -1
        if not iflags & CONTINUATION:
            return chunk
        head = int(I64.unpack_from(page, off + OFF_PREV)[0])
        if not self.slabs.pages[head >> PAGE_SHIFT][(head & OFFSET_MASK) + OFF_IFLAGS] & LINKED:
            return -1
        return head

    def continuations(self, head: int) -> list[int]:
        page = self.slabs.pages[head >> PAGE_SHIFT]
        off = head & OFFSET_MASK
        ncont = U16.unpack_from(page, off + OFF_NCONT)[0]
        base = off + HEADER_SIZE
        return [CONT_ID.unpack_from(page, base + i * CONT_ID.size)[0] for i in range(ncont)]

    def read(self, head: int, start: int, length: int) -> bytes:
        """``length`` bytes of the item's stream from ``start``."""
        page = self.slabs.pages[head >> PAGE_SHIFT]
        off = head & OFFSET_MASK
        if not U16.unpack_from(page, off + OFF_NCONT)[0]:
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
        return bytes(stream[start : start + length])

    # -- LRU ------------------------------------------------------------------------

    def segment(self, cid: int) -> int:
        return self.slabs.pages[cid >> PAGE_SHIFT][(cid & OFFSET_MASK) + OFF_LRU] & SEG_MASK

    def link(self, cid: int, class_id: int, seg: int = -1) -> None:
        """Put ``cid`` at the head (most recently used end) of one of its class's LRUs.

        ``seg`` is the segment; -1 keeps the one its header names. The ACTIVE bit is kept.
        """
        pages = self.slabs.pages
        page = pages[cid >> PAGE_SHIFT]
        off = cid & OFFSET_MASK
        lru_byte = page[off + OFF_LRU]
        if seg < 0:
            seg = lru_byte & SEG_MASK
        else:
            page[off + OFF_LRU] = (lru_byte & ~SEG_MASK) | seg
        lru = class_id | seg << SEG_SHIFT
        head = self.heads[lru]
        I64.pack_into(page, off + OFF_PREV, -1)
        I64.pack_into(page, off + OFF_NEXT, head)
        if head >= 0:
            I64.pack_into(pages[head >> PAGE_SHIFT], (head & OFFSET_MASK) + OFF_PREV, cid)
        else:
            self.tails[lru] = cid
        self.heads[lru] = cid
        self.counts[class_id] += 1
        self.seg_counts[lru] += 1

    def link_new(self, cid: int, lru: int) -> None:
        """:meth:`link` for a just written item whose LRU byte already names list ``lru``,
        and whose header's prev is -1 and next the list's head (written so by the caller:
        one pack fewer)."""
        pages = self.slabs.pages
        heads = self.heads
        head = heads[lru]
        if head >= 0:
            _PACK_I64(pages[head >> PAGE_SHIFT], (head & OFFSET_MASK) + OFF_PREV, cid)
        else:
            self.tails[lru] = cid
        heads[lru] = cid
        counts = self.counts
        counts[lru & 63] = counts[lru & 63] + 1  # not +=: compiled, that is generic
        seg_counts = self.seg_counts
        seg_counts[lru] = seg_counts[lru] + 1

    def unlink(self, cid: int, class_id: int) -> None:
        pages = self.slabs.pages
        page = pages[cid >> PAGE_SHIFT]
        off = cid & OFFSET_MASK
        lru_byte: int = page[off + OFF_LRU]
        lru = class_id | (lru_byte & SEG_MASK) << SEG_SHIFT
        links: tuple[int, int] = _UNPACK_LINKS(page, off)  # typed: compiled, C ints
        prev, nxt = links
        if prev >= 0:
            _PACK_I64(pages[prev >> PAGE_SHIFT], (prev & OFFSET_MASK) + OFF_NEXT, nxt)
        else:
            self.heads[lru] = nxt
        if nxt >= 0:
            _PACK_I64(pages[nxt >> PAGE_SHIFT], (nxt & OFFSET_MASK) + OFF_PREV, prev)
        else:
            self.tails[lru] = prev
        counts = self.counts
        counts[class_id] = counts[class_id] - 1  # not -=: compiled, that is generic
        seg_counts = self.seg_counts
        seg_counts[lru] = seg_counts[lru] - 1

    def bump(self, cid: int, class_id: int) -> None:
        """Move ``cid`` to the head of the LRU it is on."""
        page = self.slabs.pages[cid >> PAGE_SHIFT]
        lru = class_id | (page[(cid & OFFSET_MASK) + OFF_LRU] & SEG_MASK) << SEG_SHIFT
        if self.heads[lru] != cid:
            self.unlink(cid, class_id)
            self.link(cid, class_id)

    def move(self, cid: int, class_id: int, seg: int) -> None:
        """Move ``cid`` to the head of another segment of its class."""
        self.unlink(cid, class_id)
        self.link(cid, class_id, seg)

    def replace(self, old: int, new: int, class_id: int) -> None:
        """Put chunk ``new`` (a copy of ``old``'s header) in ``old``'s place in its LRU list."""
        pages = self.slabs.pages
        page = pages[new >> PAGE_SHIFT]
        off = new & OFFSET_MASK
        lru = class_id | (page[off + OFF_LRU] & SEG_MASK) << SEG_SHIFT
        prev = I64.unpack_from(page, off + OFF_PREV)[0]
        nxt = I64.unpack_from(page, off + OFF_NEXT)[0]
        if prev >= 0:
            I64.pack_into(pages[prev >> PAGE_SHIFT], (prev & OFFSET_MASK) + OFF_NEXT, new)
        else:
            self.heads[lru] = new
        if nxt >= 0:
            I64.pack_into(pages[nxt >> PAGE_SHIFT], (nxt & OFFSET_MASK) + OFF_PREV, new)
        else:
            self.tails[lru] = new

    def splice_tail(self, src: int, dst: int, first: int, count: int) -> None:
        """Move the ``count`` items from ``first`` to the tail of list ``src``, in their order,
        to the head of list ``dst`` (their LRU bytes must already name ``dst``).

        One relink for the whole run: what moving them one at a time would give.
        """
        pages = self.slabs.pages
        fpage = pages[first >> PAGE_SHIFT]
        foff = first & OFFSET_MASK
        last = self.tails[src]
        new_tail = I64.unpack_from(fpage, foff + OFF_PREV)[0]
        if new_tail >= 0:
            I64.pack_into(pages[new_tail >> PAGE_SHIFT], (new_tail & OFFSET_MASK) + OFF_NEXT, -1)
        else:
            self.heads[src] = -1
        self.tails[src] = new_tail
        head = self.heads[dst]
        I64.pack_into(fpage, foff + OFF_PREV, -1)
        I64.pack_into(pages[last >> PAGE_SHIFT], (last & OFFSET_MASK) + OFF_NEXT, head)
        if head >= 0:
            I64.pack_into(pages[head >> PAGE_SHIFT], (head & OFFSET_MASK) + OFF_PREV, last)
        else:
            self.tails[dst] = last
        self.heads[dst] = first
        self.seg_counts[src] -= count
        self.seg_counts[dst] += count

    def toward_head(self, cid: int) -> int:
        """The item linked just after ``cid`` (one step from the tail toward the head)."""
        page = self.slabs.pages[cid >> PAGE_SHIFT]
        return int(I64.unpack_from(page, (cid & OFFSET_MASK) + OFF_PREV)[0])
