"""Cache operations over slab memory, returning result values as memcached's items.c does.

The cache knows nothing of any wire protocol. Callers may give it a
:class:`Framing` so that each item is stored already wrapped the way a reply
sends it (for the text protocol ``VALUE <key> <flags> <bytes>\\r\\n`` ...
``\\r\\n``): a cache hit is then one slice of slab memory.

Here are the operations: the reads and writes, the hot paths. Under them is
:mod:`.lifecycle` (the cache's state and its items' lifecycle), :class:`Cache`'s base
class, so that compiled they call each other natively. Beside them: :mod:`.meta` (what
the meta commands do to items), :mod:`.extstore` (extstore, and a get's read back
from it), :mod:`.lru`, :mod:`.crawler` and :mod:`.rebalance` (background work, which the
server runs through :attr:`Cache.lru`, :attr:`Cache.crawler` and :attr:`Cache.rebalancer`),
:mod:`.persist` (warm restart). The stats views are in :mod:`memcachepy.ops.stats_report`.
"""

from __future__ import annotations

from typing import Final

from librt.strings import read_i16_le, read_i32_le, read_i64_le
from librt.time import time as wall_time

from memcachepy.store.items import (
    EXT,
    FETCHED,
    HEADER,
    HEADER_SIZE,
    ITEM_UPDATE_INTERVAL,
    OFF_ATIME,
    OFF_CAS,
    OFF_EXPTIME,
    OFF_IFLAGS,
    OFF_LRU,
    OFF_NBYTES,
    OFF_NCONT,
    OFF_NKEY,
    OFF_PREFIX,
    PACK_I32,
    SEG_MASK,
    SEG_SHIFT,
    U64,
    UNPACK_I32,
)
from memcachepy.store.lifecycle import ItemLifecycle
from memcachepy.store.persist import SavedState
from memcachepy.store.results import DeltaResult, StoreMode, StoreResult
from memcachepy.store.slabs import OFFSET_MASK, PAGE_SHIFT

_U64_MOD: Final = 1 << 64
_U64_MASK: Final = _U64_MOD - 1


def parse_stored_number(data: bytes | bytearray) -> int | None:
    """The unsigned number incr/decr see in a value (strtoull rules), or None if non-numeric."""
    text = bytes(data).lstrip(b" \t\n\v\f\r")
    if text[:1] == b"+":
        text = text[1:]
    digits = len(text) - len(text.lstrip(b"0123456789"))
    if digits == 0 or (digits < len(text) and text[digits] not in b" \t\n\v\f\r"):
        return None
    value = int(text[:digits])
    return value if value < _U64_MOD else None


class Cache(ItemLifecycle):
    """A memcached-style cache: slab memory, segmented LRU per class, expiry, 64-bit CAS.

    The operations, each returning a result value; the state and the item lifecycle under
    them are :class:`ItemLifecycle`'s. With ``memory_file``, :meth:`save` (on a graceful
    stop) lets the next start with the same settings restore every item.
    """

    # -- reads ----------------------------------------------------------------------------

    def collect(
        self,
        keys: list[bytes],
        out: list[bytes | bytearray],
        with_cas: bool = False,
        touch_exptime: int | None = None,
    ) -> int:
        """Append the framed value of every live key to ``out``; return how many hit.

        The multi-get hot path: what :meth:`fetch_chunk` and :meth:`value` do, fused into one loop
        with one header unpack per hit. Values are copied out of slab memory, so a reply
        waiting to be sent never sees a later write to the same chunk.
        """
        # self.now(), inlined: every get's path.
        if self.wall_clock:
            now = int(wall_time()) - self.started
        else:
            now = int(self._clock()) - self.started
        # The index itself, not its bound .get: compiled, a method of a native class is a
        # direct C call, a bound method a Python call.
        index = self._index
        pages, page_class, classes, lru_hits = self._collect_tables
        suffix_len, cas_at, cas_format, lead = self._wire_shape
        oldest = self._oldest_live
        flushing = bool(oldest) and oldest <= now
        stale_atime = now - ITEM_UPDATE_INTERVAL
        exptime_rel = None if touch_exptime is None else self.realtime(touch_exptime, now)
        segmented = self.tuning.lru_segmented
        with_extstore = self.extstore is not None
        hits = 0
        for key in keys:
            # The item and a copy of its chunk, read while checking the key. Compiled, the
            # fields below are C loads from that copy, and the reply a native slice of it.
            found: tuple[int, bytes] = index.lookup(key)
            cid, chunk = found
            if cid < 0:
                continue
            exptime = read_i32_le(chunk, OFF_EXPTIME)
            if (exptime and exptime <= now) or (flushing and self.is_dead(cid, now)):
                self.find_live(key, now)  # removes and counts it
                continue
            hits += 1
            number = cid >> PAGE_SHIFT
            page = pages[number]
            off = cid & OFFSET_MASK
            iflags = chunk[OFF_IFLAGS]
            # EXT (64), the highest item flag, is set: the value is on flash. Without
            # extstore the test is one local bool.
            if with_extstore and iflags >= 64:
                assert self.extstore is not None
                self.extstore.collect_hit(cid, page, off, out, with_cas, exptime_rel, now)
                continue
            class_id = page_class[number]
            lru = chunk[OFF_LRU]
            if segmented:
                # memcached's do_item_bump: the first hit sets FETCHED, the next ACTIVE;
                # an ACTIVE item costs nothing more, the maintainer moves it later.
                if not lru & 4:  # ACTIVE
                    if not iflags & FETCHED:
                        page[off + OFF_IFLAGS] = iflags | FETCHED
                    else:
                        self._activate(cid, page, off, class_id, lru, now)
            else:
                if not iflags & FETCHED:
                    page[off + OFF_IFLAGS] = iflags | FETCHED
                if read_i32_le(chunk, OFF_ATIME) < stale_atime:
                    self.items.bump(cid, class_id)
                    PACK_I32(page, off + OFF_ATIME, now)
            if exptime_rel is None:
                slot = class_id | (lru & 3) << 6  # get_hits, per segment
                lru_hits[slot] = lru_hits[slot] + 1  # not +=: compiled, that is generic
            else:
                PACK_I32(page, off + OFF_EXPTIME, exptime_rel)
                classes[class_id].touch_hits += 1
            nkey = chunk[OFF_NKEY]
            nbytes = read_i32_le(chunk, OFF_NBYTES)
            plen = int(read_i16_le(chunk, OFF_PREFIX)) & 0xFFFF
            # Offsets in the chunk, from its start.
            if lead is None:
                start = HEADER_SIZE + nkey
                end = start + plen + nbytes + suffix_len
            else:
                out.append(lead)
                start = HEADER_SIZE
                end = start + nkey + plen + nbytes + suffix_len
            if read_i16_le(chunk, OFF_NCONT):  # a chunked item: its stream from its chunks
                wire = self.items.read(cid, nkey if lead is None else 0, end - start)
                if with_cas:
                    split = len(wire) - nbytes - suffix_len - cas_at
                    out.append(wire[:split])
                    out.append(cas_format % self.cas_of(cid))
                    out.append(wire[split:])
                else:
                    out.append(wire)
                continue
            split = end - nbytes - suffix_len - cas_at if with_cas else end
            # A large item's stream runs past the copy: it is sliced from the page.
            inside = end <= len(chunk)
            out.append(chunk[start:split] if inside else page[off + start : off + split])
            if with_cas:
                out.append(cas_format % (int(read_i64_le(chunk, OFF_CAS)) & _U64_MASK))
                out.append(chunk[split:end] if inside else page[off + split : off + end])
        return hits

    def fetch_chunk(
        self, key: bytes, touch_exptime: int | None = None, read_back: bool = True
    ) -> int:
        """The live item for ``key`` as its head chunk's id (for :meth:`value` and friends),
        fetched as a get fetches it, or -1.

        A hit marks the item fetched and refreshes its LRU position; with
        ``touch_exptime`` it also takes that exptime (gat). A value on flash is read back
        here (``read_back``; a touch needs none): -1 if it cannot be.
        """
        now = self.now()
        cid = self.find_live(key, now)
        if cid < 0:
            return -1
        page = self.slabs.pages[cid >> PAGE_SHIFT]
        off = cid & OFFSET_MASK
        class_id = self.slabs.page_class[cid >> PAGE_SHIFT]
        if touch_exptime is None:
            self.lru_hits[class_id | (page[off + OFF_LRU] & SEG_MASK) << SEG_SHIFT] += 1
        self.bump(cid, page, off, now)
        counters = self.counters.classes[class_id]
        if touch_exptime is not None:
            PACK_I32(page, off + OFF_EXPTIME, self.realtime(touch_exptime, now))
            counters.touch_hits += 1
        if page[off + OFF_IFLAGS] & EXT and read_back:
            assert self.extstore is not None
            return self.extstore.read_hit(cid, now)
        return cid

    def value(self, cid: int) -> bytes:
        """The data of an item, unframed."""
        last_read = self.extstore.last_read if self.extstore is not None else None
        if last_read is not None and last_read[0] == cid:
            return last_read[1]
        page = self.slabs.pages[cid >> PAGE_SHIFT]
        _, _, _, _, _, _, nbytes, nkey, _, plen, _ = HEADER.unpack_from(page, cid & OFFSET_MASK)
        return bytes(self.items.read(cid, nkey + plen, nbytes))

    # -- writes ---------------------------------------------------------------------------

    def store(
        self,
        mode: StoreMode,
        key: bytes,
        flags: int,
        exptime: int,
        data: bytes,
        cas_unique: int = 0,
    ) -> StoreResult:
        """set/add/replace/append/prepend/cas, with memcached's do_store_item rules."""
        now = self.now()
        flat = not self.tuning.lru_segmented
        if flat:
            # memcached allocates the new item before it looks the key up, and a flat LRU
            # reclaims an expired or flushed COLD tail item at every allocation.
            self._reclaim_flat(self.items.plan(self.stream_len(len(key), flags, len(data)))[0], now)
        old = self.find_live(key, now)
        slabs = self.slabs
        if not self.item_fits(len(key), flags, len(data)):
            if mode == StoreMode.SET and old >= 0:
                self.remove(old)
            return StoreResult.TOO_LARGE
        if old >= 0:
            page = slabs.pages[old >> PAGE_SHIFT]
            off = old & OFFSET_MASK
            counters = self.counters.classes[slabs.page_class[old >> PAGE_SHIFT]]
            if mode == StoreMode.ADD:
                self._update(old, page, off, now)
                return StoreResult.NOT_STORED
            if mode == StoreMode.CAS:
                # A cas of 0, or CAS disabled (-C), never matches.
                if not self.use_cas or cas_unique == 0 or cas_unique != self.cas_of(old):
                    counters.cas_badval += 1
                    return StoreResult.EXISTS
                counters.cas_hits += 1
            rel_exptime = self.realtime(exptime, now)
            if mode == StoreMode.APPEND or mode == StoreMode.PREPEND:
                if page[off + OFF_IFLAGS] & EXT:
                    return StoreResult.NOT_STORED  # as memcached: not for items on flash
                old_data = self.value(old)
                data = old_data + data if mode == StoreMode.APPEND else data + old_data
                flags = self.flags_of(old)
                rel_exptime = UNPACK_I32(page, off + OFF_EXPTIME)[0]
                if not self.item_fits(len(key), flags, len(data)):
                    return StoreResult.NOT_STORED
        else:
            if mode == StoreMode.CAS:
                return StoreResult.NOT_FOUND
            if mode != StoreMode.SET and mode != StoreMode.ADD:
                return StoreResult.NOT_STORED
            rel_exptime = self.realtime(exptime, now)
        is_set = mode == StoreMode.SET
        cid = self.write_item(
            key, flags, rel_exptime, data, now, replace_on_failure=is_set, reclaimed=flat
        )
        if cid < 0:
            return (
                StoreResult.NOT_STORED
                if mode in (StoreMode.APPEND, StoreMode.PREPEND)
                else StoreResult.NO_MEMORY
            )
        self.counters.classes[slabs.page_class[cid >> PAGE_SHIFT]].cmd_set += 1
        return StoreResult.STORED

    def delete(self, key: bytes) -> bool:
        cid = self.find_live(key, self.now())
        if cid < 0:
            return False
        self.counters.classes[self.slabs.page_class[cid >> PAGE_SHIFT]].delete_hits += 1
        self.remove(cid)
        return True

    def touch(self, key: bytes, exptime: int) -> bool:
        return self.fetch_chunk(key, touch_exptime=exptime, read_back=False) >= 0

    def incr_decr(self, key: bytes, incr: bool, delta: int) -> tuple[DeltaResult, int]:
        """incr (wraps at 2**64) or decr (stops at 0); the new value on success."""
        now = self.now()
        cid = self.find_live(key, now)
        if cid < 0:
            return DeltaResult.NOT_FOUND, 0
        page = self.slabs.pages[cid >> PAGE_SHIFT]
        off = cid & OFFSET_MASK
        _, _, _, exptime, _, flags, nbytes, nkey, iflags, plen, ncont = HEADER.unpack_from(
            page, off
        )
        if nbytes == 0 or ncont or iflags & EXT:
            return DeltaResult.NON_NUMERIC, 0
        start = off + HEADER_SIZE + nkey + plen
        current = parse_stored_number(page[start : start + nbytes])
        if current is None:
            return DeltaResult.NON_NUMERIC, 0
        value = (current + delta) % _U64_MOD if incr else max(current - delta, 0)
        counters = self.counters.classes[self.slabs.page_class[cid >> PAGE_SHIFT]]
        if incr:
            counters.incr_hits += 1
        else:
            counters.decr_hits += 1
        digits = b"%d" % value
        if len(digits) <= nbytes:
            # memcached rewrites in place and pads with spaces, keeping the length.
            page[start : start + nbytes] = digits.ljust(nbytes, b" ")
            U64.pack_into(page, off + OFF_CAS, self.next_cas())
            self._update(cid, page, off, now)
            return DeltaResult.OK, value
        if (
            self.write_item(key, flags & 0xFFFFFFFF, exptime, digits, now, replace_on_failure=False)
            < 0
        ):
            return DeltaResult.NO_MEMORY, 0
        return DeltaResult.OK, value

    def flush_all(self, delay: int = 0) -> None:
        """Invalidate every item now, or at ``delay`` (an exptime), as memcached does."""
        now = self.now()
        new_oldest = self.realtime(delay, now) if delay > 0 else now
        if self.use_cas:
            self._oldest_live = new_oldest - 1
            if self._oldest_live <= now:
                self._oldest_cas = self.next_cas()
        else:
            self._oldest_live = new_oldest
        self.crawler.due = min(self.crawler.due, self._oldest_live + 1)

    # -- warm restart -------------------------------------------------------------------------

    def save(self) -> None:
        """Graceful stop with a memory file: write what the next start needs to restore."""
        if self._memory is None:
            return
        self.items.links_to_headers()
        classes = list(self.slabs.page_class)
        classes += [0] * (self._memory.npages - len(classes))
        self._memory.save(
            SavedState(
                self.started,
                self._cas,
                self._oldest_live,
                self._oldest_cas,
                classes,
                self._index.power,
            )
        )

    def close(self) -> None:
        """Release the memory file and the flash files (the cache must not be used
        afterwards)."""
        if self._memory is not None:
            self._memory.close()
        if self.extstore is not None:
            self.extstore.close()
