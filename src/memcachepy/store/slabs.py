"""Slab memory: 1 MiB pages carved into fixed-size chunks of size classes.

Owns memory only, as memcached's slabs.c does: which page belongs to which
class, which chunks are free. It knows nothing of items or keys. A chunk is
named by an integer id: ``page_number << PAGE_SHIFT | offset``.
"""

from __future__ import annotations

import mmap
import os
from bisect import bisect_left
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final, TypeAlias

PAGE_SHIFT: Final = 20
PAGE_SIZE: Final = 1 << PAGE_SHIFT
OFFSET_MASK: Final = PAGE_SIZE - 1
CHUNK_ALIGN: Final = 8
# memcached's sizeof(item) on 64-bit; the smallest chunk is this plus -n.
ITEM_HEADER_SIZE: Final = 48
MAX_CLASSES: Final = 63

Page: TypeAlias = mmap.mmap
"""One page of slab memory: an anonymous mapping, or one of the memory file (``-e``).

A mapping, not a bytearray: slicing one gives ``bytes`` (one object, which ``b"".join``
reads without the buffer protocol) and slice assignment copies without a resize check;
CPython's bytearray costs more at both, and the store does both for every hit and write.
A slice is a copy, so a slice handed to a reply never changes under it.
"""
# What a released page's slot holds: no page's memory (the mapping is closed).
_RELEASED: Final = mmap.mmap(-1, mmap.PAGESIZE)


@dataclass(slots=True)
class SlabClass:
    """One size class: its chunk size, its pages and its free chunks."""

    id: int
    chunk_size: int
    per_page: int
    pages: list[int] = field(default_factory=list)
    free: list[int] = field(default_factory=list)

    @property
    def total_chunks(self) -> int:
        return len(self.pages) * self.per_page


def class_sizes(growth_factor: float, min_chunk: int, chunk_max: int) -> list[int]:
    """Chunk sizes exactly as memcached's slabs_init computes them; the last is ``chunk_max``."""
    sizes: list[int] = []
    size = ITEM_HEADER_SIZE + min_chunk
    while len(sizes) < MAX_CLASSES - 1 and size < chunk_max / growth_factor:
        if size % CHUNK_ALIGN:
            size += CHUNK_ALIGN - size % CHUNK_ALIGN
        sizes.append(size)
        size = int(size * growth_factor)
    sizes.append(chunk_max)
    return sizes


def _env_bytes(name: str) -> int:
    try:
        return max(int(os.environ.get(name, "0")), 0)
    except ValueError:
        return 0


class SlabAllocator:
    """Pages of a fixed total budget, handed to size classes on demand.

    Classes are numbered from 1, as in memcached's ``stats slabs``.
    """

    def __init__(
        self,
        limit: int,
        growth_factor: float = 1.25,
        min_chunk: int = 48,
        page_source: Callable[[int], Page] | None = None,
        chunk_max: int = PAGE_SIZE // 2,
        sizes: tuple[int, ...] | None = None,
    ) -> None:
        self.limit = limit
        self.chunk_max = chunk_max
        # memcached ends a slab_sizes list with a class of chunk_max.
        chunk_sizes = (
            class_sizes(growth_factor, min_chunk, chunk_max)
            if sizes is None
            else [*sizes, chunk_max]
        )
        self.classes: list[SlabClass] = [SlabClass(0, 0, 0)] + [
            SlabClass(i + 1, size, PAGE_SIZE // size) for i, size in enumerate(chunk_sizes)
        ]
        self._sizes = chunk_sizes
        # memcached's test-suite hook (slabs.c): pretend this much is already allocated.
        self.faked_malloced = _env_bytes("T_MEMD_INITIAL_MALLOC")
        self.pages: list[Page] = []
        self.page_class: list[int] = []
        # Pages with memory but no class (memcached's global page pool, class 0), zeroed.
        self.pool: list[int] = []
        # Page numbers whose memory was given back after the limit shrank (reused first).
        self.released: list[int] = []
        # The page the rebalancer is emptying: chunks freed there go to no free list.
        self.moving = -1
        # Where new page memory comes from: a bytearray, or the memory file's mapping.
        self._page_source = page_source

    @property
    def largest(self) -> int:
        return len(self.classes) - 1

    @property
    def malloced(self) -> int:
        """Bytes of page memory held: pages of classes and of the pool."""
        return (len(self.pages) - len(self.released)) * PAGE_SIZE + self.faked_malloced

    @property
    def fixed_memory(self) -> bool:
        """Whether page memory is a fixed mapping (``-e``), so the limit cannot change."""
        return self._page_source is not None

    def class_for(self, size: int) -> int:
        """The smallest class whose chunks hold ``size`` bytes; the largest if none does."""
        index = bisect_left(self._sizes, size)
        return min(index, len(self._sizes) - 1) + 1

    def alloc(self, class_id: int) -> int:
        """A free chunk of ``class_id`` (a new page if the budget allows), or -1."""
        cls = self.classes[class_id]
        if cls.free:
            return cls.free.pop()
        if not self._grow(cls):
            return -1
        return cls.free.pop()

    def alloc_existing(self, class_id: int) -> int:
        """A free chunk of ``class_id`` without taking a new page, or -1."""
        free = self.classes[class_id].free
        return free.pop() if free else -1

    def free(self, chunk: int, class_id: int) -> None:
        # A page being emptied (``moving``) keeps its chunks out of the free list.
        if chunk >> PAGE_SHIFT != self.moving:
            self.classes[class_id].free.append(chunk)

    def can_grow(self) -> bool:
        return bool(self.pool) or self.malloced + PAGE_SIZE <= self.limit

    def _grow(self, cls: SlabClass) -> bool:
        if self.pool:
            self._assign(self.pool.pop(), cls)
            return True
        if self.malloced + PAGE_SIZE > self.limit:
            return False
        if self.released:
            number = self.released.pop()
            self.pages[number] = self._new_page(number)
        else:
            number = len(self.pages)
            self.pages.append(self._new_page(number))
            self.page_class.append(0)
        self._assign(number, cls)
        return True

    def _new_page(self, number: int) -> Page:
        if self._page_source is not None:
            return self._page_source(number)
        return mmap.mmap(-1, PAGE_SIZE)

    def _assign(self, number: int, cls: SlabClass) -> None:
        self.page_class[number] = cls.id
        cls.pages.append(number)
        base = number << PAGE_SHIFT
        # As memcached's split_slab_page_into_freelist: pop() hands out the highest address
        # first (which items a page move can rescue depends on it).
        cls.free.extend(base + i * cls.chunk_size for i in range(cls.per_page))

    def chunks_of_page(self, number: int) -> range:
        cls = self.classes[self.page_class[number]]
        base = number << PAGE_SHIFT
        return range(base, base + cls.per_page * cls.chunk_size, cls.chunk_size)

    def take_page(self, number: int) -> None:
        """Detach a page whose chunks are all free from its class (they leave the free list)."""
        cls = self.classes[self.page_class[number]]
        cls.pages.remove(number)
        cls.free = [c for c in cls.free if c >> PAGE_SHIFT != number]
        self.page_class[number] = 0
        # Old chunk headers must not be mistaken for items at the new class's offsets.
        self.pages[number][:] = bytes(PAGE_SIZE)
        if self.moving == number:
            self.moving = -1

    def give_page(self, number: int, class_id: int) -> None:
        """Carve a detached page into chunks of ``class_id``; class 0 is the page pool."""
        if class_id == 0:
            self.pool.append(number)
        else:
            self._assign(number, self.classes[class_id])

    def begin_move(self, number: int) -> None:
        """Start emptying a page: its free chunks leave the free list, and none come back."""
        cls = self.classes[self.page_class[number]]
        cls.free = [c for c in cls.free if c >> PAGE_SHIFT != number]
        self.moving = number

    def prefill_pool(self) -> None:
        """memcached's slabs_prefill_global, which it runs with extstore: every page of the
        limit is made now and put in the pool, so classes draw on it and the extstore writer
        can tell memory running short (an empty pool) from memory not yet used."""
        while not self.released and self.malloced + PAGE_SIZE <= self.limit:
            number = len(self.pages)
            self.pages.append(self._new_page(number))
            self.page_class.append(0)
            self.pool.append(number)

    def release_pool_page(self) -> bool:
        """Give back the memory of one pool page (after the limit shrank)."""
        if not self.pool or self.fixed_memory:
            return False
        number = self.pool.pop()
        page = self.pages[number]
        self.pages[number] = _RELEASED
        if self._page_source is None:
            page.close()
        self.released.append(number)
        return True

    def set_limit(self, limit: int) -> None:
        self.limit = limit
