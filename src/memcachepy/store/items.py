"""Items laid out in slab chunks, and the per-class LRU lists that link them.

An item is a 48-byte header followed by its byte stream: the key, then the
value as clients receive it (a framing prefix given by the caller, the data,
a framing suffix). An item that does not fit in one chunk of the largest class
is chunked: the first chunk lists the ids of its continuation chunks, each of
which starts with a header whose ``prev`` names the first chunk.

Header fields (little-endian): prev, next (LRU links, chunk ids, -1 = none;
see below), cas, exptime and atime (seconds on the cache's relative clock, exptime 0 =
never), client flags, data length, key length, item flags, framing prefix
length, continuation count, then the LRU byte (segment and ACTIVE bit) and a
spare byte. :data:`HEADER` skips those two as padding, so its field count stays
the same; they are read and written by offset.

Each slab class has four LRU lists, as memcached's segmented LRU: HOT, WARM,
COLD and TEMP. A list is named by its LRU id, ``class_id | segment << 6``
(memcached's ``slabs_clsid | HOT_LRU`` ...), and an item's header records which
list it is on.

While the cache runs, the links themselves live beside the pages, not in the headers: a
vector of native ints per page holds each chunk's prev and next. Compiled, following or
changing a link is then a C array access, where a header field is one of CPython's
generic struct calls; the maintainer moves items between lists all the time. The header
fields are written only for a memory file (:meth:`ItemMemory.links_to_headers`), which
restores them (:meth:`ItemMemory.set_links`). A continuation chunk's ``prev`` (its head)
is a header field always.
"""

from __future__ import annotations

import struct
from typing import Final, TypeAlias

from librt.vecs import append, vec
from mypy_extensions import i64

from memcachepy.store.slabs import OFFSET_MASK, PAGE_SHIFT, PAGE_SIZE, SlabAllocator

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
# An item's LRU position is refreshed at most this often (memcached's ITEM_UPDATE_INTERVAL).
ITEM_UPDATE_INTERVAL: Final = 60
LRU_IDS: Final = 4 << SEG_SHIFT
SEGMENT_NAMES: Final = ("hot", "warm", "cold", "temp")

I64: Final = struct.Struct("<q")
LINKS: Final = struct.Struct("<qq")  # prev, next
U64: Final = struct.Struct("<Q")
I32: Final = struct.Struct("<i")
# Bound once: compiled, a call of a bound method skips the lookup ``I32.pack_into`` makes.
PACK_I32: Final = I32.pack_into
UNPACK_I32: Final = I32.unpack_from
U16: Final = struct.Struct("<H")
TIMES: Final = struct.Struct("<Qii")  # cas, exptime, atime: what a lookup checks
# Everything a read needs, from OFF_CAS: cas, exptime, atime, flags, nbytes, nkey,
# item flags, prefix length, continuation count.
READ_FIELDS: Final = struct.Struct("<QiiIiBBHH")
# The same and the LRU byte: what a read in segmented mode needs.
READ_FIELDS_LRU: Final = struct.Struct("<QiiIiBBHHB")
# What READ_FIELDS_LRU unpacks to: a variable so typed makes mypyc's code use C ints, not objects.
ReadFields: TypeAlias = tuple[int, int, int, int, int, int, int, int, int, int]
# memcached's KEY_MAX_LENGTH: the longest key the key index's probe compares in place.
KEY_MAX: Final = 250
CONT_ID: Final = struct.Struct("<q")
# HEADER with the LRU byte: what a new item's header is written with.
# HEADER from OFF_CAS on, with the LRU byte: what a new item's header is written with (its
# links live in the page's link vector while the cache runs).
HEADER_LRU: Final = struct.Struct("<QiiIiBBHHBx")
_PACK_HEADER_LRU: Final = HEADER_LRU.pack_into
# The same read back, bound once (compiled, a bound method's call skips a lookup).
UNPACK_READ_FIELDS_LRU: Final = READ_FIELDS_LRU.unpack_from
# HEADER's fields (without the LRU byte), typed: compiled, a native tuple of C ints.
HeaderFields: TypeAlias = tuple[int, int, int, int, int, int, int, int, int, int, int]


class ListPlaces:
    """A walk's place in each of some LRU lists: the next item it visits there.

    memcached's crawler links an item of its own into each list it walks, so it keeps its
    place whatever other threads do to the list. Here :class:`ItemMemory` moves a place on
    when its item leaves it (unlinked, moved to another list, its chunk replaced by a
    copy): to the item after it toward the head, or to the copy. So a walk lists every
    item that stays in its list, whatever else is freed, moved or rescued meanwhile.
    """

    def __init__(self, cids: list[int]) -> None:
        self.cids = cids  # per list: the chunk id of the next item to visit; -1: done
        self._at = {cid: n for n, cid in enumerate(cids) if cid >= 0}

    def set(self, n: int, cid: int) -> None:
        """Move the place in list ``n`` to ``cid`` (-1: that list is done)."""
        old = self.cids[n]
        if old >= 0:
            del self._at[old]
        self.cids[n] = cid
        if cid >= 0:
            self._at[cid] = n

    def leaving(self, cid: int, after: int) -> None:
        """``cid`` leaves its place; ``after`` takes it (-1: the list ends there)."""
        n = self._at.pop(cid, -1)
        if n >= 0:
            self.cids[n] = after
            if after >= 0:
                self._at[after] = n


class ItemMemory:
    """Reads and writes item headers and streams in slab chunks; keeps the LRU lists."""

    def __init__(self, slabs: SlabAllocator) -> None:
        self.slabs = slabs
        n = len(slabs.classes)
        # Indexed by LRU id (class id | segment << SEG_SHIFT). Native vectors: compiled,
        # setting a chunk id (a large int) boxes no object.
        self.heads = vec[i64]([-1] * LRU_IDS)
        self.tails = vec[i64]([-1] * LRU_IDS)
        self.seg_counts = vec[i64]([0] * LRU_IDS)
        self.counts = vec[i64]([0] * n)  # items of each class, all segments
        # Per page number: prev and next of the page's chunk i at 2i and 2i + 1, and the
        # chunk size the page had when a chunk of it was last linked (what _slot divides
        # by: every linked chunk was linked since its page took its class).
        self._links: list[vec[i64]] = []
        self._sizes = vec[i64]()
        # The last plan made, and the stream length it was made for (see plan).
        self._plan_len = -1
        self._plan: tuple[int, int] = (0, 0)
        # The places held by the walks under way (metadump); empty almost always, so the
        # list operations pay one test for them.
        self.walks: list[ListPlaces] = []

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
        self,
        head: int,
        conts: list[int],
        parts: tuple[bytes, ...],
        header: HeaderFields,
        seg: int = 0,
    ) -> None:
        """Write the header and the concatenation of ``parts`` into ``head`` and ``conts``.

        ``seg`` goes in the LRU byte (the item is not linked yet: see :meth:`link_new`).
        ``header``'s prev and next are not written: see the module's note on links.
        """
        pages = self.slabs.pages
        page = pages[head >> PAGE_SHIFT]
        off = head & OFFSET_MASK
        # The fields one by one, not ``*header``: compiled, a star call builds a list and a
        # tuple of them first.
        _, _, cas, exptime, atime, flags, nbytes, nkey, iflags, prefix, ncont = header
        _PACK_HEADER_LRU(
            page,
            off + OFF_CAS,
            cas,
            exptime,
            atime,
            flags,
            nbytes,
            nkey,
            iflags,
            prefix,
            ncont,
            seg,
        )
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

    def _slot(self, cid: int) -> int:
        """Where ``cid``'s prev is in its page's link vector (its next is one further)."""
        size: int = self._sizes[cid >> PAGE_SHIFT]
        return (cid & OFFSET_MASK) // size * 2

    def _page_links(self, cid: int) -> vec[i64]:
        """The link vector of ``cid``'s page, made (or made big enough for the page's
        class, which a page move may have changed) for a chunk about to be linked."""
        number = cid >> PAGE_SHIFT
        links = self._links
        while len(links) <= number:
            links.append(vec[i64]())
            self._sizes = append(self._sizes, 1)
        page_links = links[number]
        slabs = self.slabs
        size = slabs.classes[slabs.page_class[number]].chunk_size
        self._sizes[number] = size
        wanted = PAGE_SIZE // size * 2
        if len(page_links) < wanted:
            page_links = vec[i64]([-1] * wanted)
            links[number] = page_links
        return page_links

    def _set_prev(self, cid: int, prev: int) -> None:
        self._links[cid >> PAGE_SHIFT][self._slot(cid)] = prev

    def _set_next(self, cid: int, nxt: int) -> None:
        self._links[cid >> PAGE_SHIFT][self._slot(cid) + 1] = nxt

    def set_links(self, cid: int, prev: int, nxt: int) -> None:
        """Give a restored item the links its header names (the lists are rebuilt so)."""
        page_links = self._page_links(cid)
        slot = self._slot(cid)
        page_links[slot] = prev
        page_links[slot + 1] = nxt

    def links_to_headers(self) -> None:
        """Write every linked item's prev and next into its header (for a memory file)."""
        pages = self.slabs.pages
        for head in self.heads:
            prev: int = -1
            cid: int = head
            while cid >= 0:
                nxt = self.toward_tail(cid)
                LINKS.pack_into(pages[cid >> PAGE_SHIFT], (cid & OFFSET_MASK) + OFF_PREV, prev, nxt)
                prev = cid
                cid = nxt

    def link(self, cid: int, class_id: int, seg: int = -1) -> None:
        """Put ``cid`` at the head (most recently used end) of one of its class's LRUs.

        ``seg`` is the segment; -1 keeps the one its header names. The ACTIVE bit is kept.
        """
        page = self.slabs.pages[cid >> PAGE_SHIFT]
        off = cid & OFFSET_MASK
        lru_byte: int = page[off + OFF_LRU]
        if seg < 0:
            seg = lru_byte & SEG_MASK
        else:
            page[off + OFF_LRU] = (lru_byte & ~SEG_MASK) | seg
        self.link_new(cid, class_id | seg << SEG_SHIFT)

    def link_new(self, cid: int, lru: int) -> None:
        """:meth:`link` for an item whose LRU byte already names list ``lru``."""
        page_links = self._page_links(cid)
        slot = self._slot(cid)
        heads = self.heads
        head: int = heads[lru]
        page_links[slot] = -1
        page_links[slot + 1] = head
        if head >= 0:
            self._set_prev(head, cid)
        else:
            self.tails[lru] = cid
        heads[lru] = cid
        class_id = lru & 63
        self.counts[class_id] += 1
        self.seg_counts[lru] += 1

    def unlink(self, cid: int, class_id: int) -> None:
        lru_byte: int = self.slabs.pages[cid >> PAGE_SHIFT][(cid & OFFSET_MASK) + OFF_LRU]
        lru = class_id | (lru_byte & SEG_MASK) << SEG_SHIFT
        page_links = self._links[cid >> PAGE_SHIFT]
        slot = self._slot(cid)
        prev: int = page_links[slot]
        nxt: int = page_links[slot + 1]
        if self.walks:
            self._leaving(cid, prev)
        if prev >= 0:
            self._set_next(prev, nxt)
        else:
            self.heads[lru] = nxt
        if nxt >= 0:
            self._set_prev(nxt, prev)
        else:
            self.tails[lru] = prev
        self.counts[class_id] -= 1
        self.seg_counts[lru] -= 1

    def bump(self, cid: int, class_id: int) -> None:
        """Move ``cid`` to the head of the LRU it is on."""
        page = self.slabs.pages[cid >> PAGE_SHIFT]
        lru = class_id | (page[(cid & OFFSET_MASK) + OFF_LRU] & SEG_MASK) << SEG_SHIFT
        if self.heads[lru] != cid:
            self.unlink(cid, class_id)
            self.link(cid, class_id)

    def move(self, cid: int, class_id: int, seg: int) -> None:
        """Move ``cid`` (linked) to the head of another segment of its class.

        :meth:`unlink` and :meth:`link` fused: the maintainer's most frequent step. The LRU
        byte is read once, and the page's link vector is taken as it is (a linked chunk's
        is made already, where :meth:`link` checks it for a chunk about to be linked).
        """
        page = self.slabs.pages[cid >> PAGE_SHIFT]
        at = (cid & OFFSET_MASK) + OFF_LRU
        lru_byte: int = page[at]
        page[at] = (lru_byte & ~SEG_MASK) | seg
        self.relink(cid, class_id | (lru_byte & SEG_MASK) << SEG_SHIFT, class_id | seg << SEG_SHIFT)

    def relink(self, cid: int, old: int, new: int) -> None:
        """Move ``cid`` from list ``old``, where it is linked, to the head of list ``new``,
        leaving its LRU byte to the caller (which writes a whole new header over it)."""
        page_links = self._links[cid >> PAGE_SHIFT]
        slot = self._slot(cid)
        prev: int = page_links[slot]
        nxt: int = page_links[slot + 1]
        if self.walks:
            self._leaving(cid, prev)
        heads = self.heads
        tails = self.tails
        if prev >= 0:
            self._set_next(prev, nxt)
        else:
            heads[old] = nxt
        if nxt >= 0:
            self._set_prev(nxt, prev)
        else:
            tails[old] = prev
        head: int = heads[new]  # never cid: it is out of every list here
        page_links[slot] = -1
        page_links[slot + 1] = head
        if head >= 0:
            self._set_prev(head, cid)
        else:
            tails[new] = cid
        heads[new] = cid
        self.seg_counts[old] -= 1
        self.seg_counts[new] += 1

    def replace(self, old: int, new: int, class_id: int) -> None:
        """Put chunk ``new`` (a copy of ``old``'s header) in ``old``'s place in its LRU list."""
        page = self.slabs.pages[new >> PAGE_SHIFT]
        lru = class_id | (page[(new & OFFSET_MASK) + OFF_LRU] & SEG_MASK) << SEG_SHIFT
        prev = self.toward_head(old)
        nxt = self.toward_tail(old)
        if self.walks:
            self._leaving(old, new)
        page_links = self._page_links(new)  # before _slot: the page's size may be new
        slot = self._slot(new)
        page_links[slot] = prev
        page_links[slot + 1] = nxt
        if prev >= 0:
            self._set_next(prev, new)
        else:
            self.heads[lru] = new
        if nxt >= 0:
            self._set_prev(nxt, new)
        else:
            self.tails[lru] = new

    def splice_tail(self, src: int, dst: int, first: int, count: int) -> None:
        """Move the ``count`` items from ``first`` to the tail of list ``src``, in their order,
        to the head of list ``dst`` (their LRU bytes must already name ``dst``).

        One relink for the whole run: what moving them one at a time would give.
        """
        last: int = self.tails[src]
        new_tail = self.toward_head(first)
        if self.walks:
            cid = last
            for _ in range(count):
                self._leaving(cid, new_tail)
                cid = self.toward_head(cid)
        if new_tail >= 0:
            self._set_next(new_tail, -1)
        else:
            self.heads[src] = -1
        self.tails[src] = new_tail
        head: int = self.heads[dst]
        self._set_prev(first, -1)
        self._set_next(last, head)
        if head >= 0:
            self._set_prev(head, last)
        else:
            self.tails[dst] = last
        self.heads[dst] = first
        self.seg_counts[src] -= count
        self.seg_counts[dst] += count

    def _leaving(self, cid: int, after: int) -> None:
        for places in self.walks:
            places.leaving(cid, after)

    def toward_head(self, cid: int) -> int:
        """The item linked just after ``cid`` (one step from the tail toward the head)."""
        value: int = self._links[cid >> PAGE_SHIFT][self._slot(cid)]
        return value

    def toward_tail(self, cid: int) -> int:
        """The item linked just before ``cid`` (one step from the head toward the tail)."""
        value: int = self._links[cid >> PAGE_SHIFT][self._slot(cid) + 1]
        return value
