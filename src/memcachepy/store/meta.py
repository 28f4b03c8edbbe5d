"""What memcached's meta commands do to items, beyond the classic operations.

Items marked stale (``md I``, ``ms I``), the recache win token (``mg N``/``R``:
``WIN_SENT``), keys that arrived base64-encoded (``KEY_BINARY``), and reads that report an
item's last access and hit-before state as they were before the request (the bump comes
last). The classic operations ignore these item flags: a new item starts without them.

Also the looks that change nothing: the binary protocol's CAS checks (:func:`peek`) and
``watch fetchers`` (:func:`lookup_state`).

Functions of the :class:`~memcachepy.store.cache.Cache`, not methods: compiled with it,
they call its methods natively all the same.
"""

from __future__ import annotations

from enum import IntEnum
from typing import NamedTuple

from librt.strings import read_i32_le

from memcachepy.store.cache import Cache
from memcachepy.store.items import (
    FETCHED,
    HEADER,
    HEADER_SIZE,
    KEY_BINARY,
    OFF_CAS,
    OFF_EXPTIME,
    OFF_IFLAGS,
    OFF_NBYTES,
    PACK_I32,
    READ_FIELDS_LRU,
    STALE,
    U64,
    UNPACK_I32,
    WIN_SENT,
    ReadFields,
)
from memcachepy.store.results import DeltaResult, StoreMode, StoreResult
from memcachepy.store.slabs import OFFSET_MASK, PAGE_SHIFT

# -- result types ---------------------------------------------------------------------------


class MetaItem:
    """What a meta command reads of an item before acting on it.

    A plain class, not a NamedTuple: compiled, a native class is built by a C call where a
    NamedTuple's constructor is a Python-level call (every mg paid one)."""

    def __init__(
        self,
        cid: int,
        cas: int,
        flags: int,
        nbytes: int,
        exptime: int,
        idle: int,
        fetched: bool,
        binary_key: bool,
    ) -> None:
        self.cid = cid
        self.cas = cas
        self.flags = flags
        self.nbytes = nbytes
        self.exptime = exptime  # relative clock, 0 = never
        self.idle = idle  # seconds since last access (memcached's current_time - it->time)
        self.fetched = fetched  # hit before (read by a get that bumped it)
        self.binary_key = binary_key


class ItemDebug(NamedTuple):
    """An item as the ``me`` command describes it."""

    key: bytes
    binary_key: bool
    exptime: int  # relative clock, 0 = never
    idle: int
    cas: int
    fetched: bool
    class_id: int
    size: int  # memcached's ITEM_ntotal, as the ``bytes`` statistic counts it


class MetaResult(IntEnum):
    """Outcomes of md and ma (ms uses :class:`StoreResult`)."""

    DONE = 0
    NOT_FOUND = 1
    EXISTS = 2  # the CAS given did not match
    NON_NUMERIC = 3
    NO_MEMORY = 4


_META_DELTA = {
    DeltaResult.NOT_FOUND: MetaResult.NOT_FOUND,
    DeltaResult.NON_NUMERIC: MetaResult.NON_NUMERIC,
    DeltaResult.NO_MEMORY: MetaResult.NO_MEMORY,
}


# -- looks that change nothing ------------------------------------------------------


def peek(cache: Cache, key: bytes) -> tuple[int, int, bool] | None:
    """(cas, data length, chunked) of the live item for ``key``, or None.

    memcached's item_get with DONT_UPDATE, which the binary protocol uses to check a
    CAS before deleting, appending or counting: an expired or flushed item is removed
    and counted as usual, but a live one keeps its LRU position and hit counters.
    """
    cid = cache.find_live(key, cache.now())
    if cid < 0:
        return None
    page = cache.slabs.pages[cid >> PAGE_SHIFT]
    _, _, cas, _, _, _, nbytes, _, _, _, ncont = HEADER.unpack_from(page, cid & OFFSET_MASK)
    return int(cas), int(nbytes), bool(ncont)


def lookup_state(cache: Cache, key: bytes) -> tuple[int, int, int]:
    """What memcached's do_item_get would meet for ``key``, changing nothing:
    (0 not found, 1 found, 2 flushed, 3 expired; the class; the value length).

    ``watch fetchers`` logs it for the lookup every store, delete and incr/decr makes
    first. The class and length are those of a found item only, as memcached's log.
    """
    found: tuple[int, bytes] = cache.index.lookup(key)
    cid, chunk = found
    if cid < 0:
        return 0, 0, 0
    exptime = read_i32_le(chunk, OFF_EXPTIME)
    now = cache.now()
    oldest = cache.oldest_live
    if oldest and oldest <= now and cache._flushed(cid):
        return 2, 0, 0
    if exptime and exptime <= now:
        return 3, 0, 0
    return 1, cache.slabs.page_class[cid >> PAGE_SHIFT], read_i32_le(chunk, OFF_NBYTES)


# -- meta commands ---------------------------------------------------------------------


def meta_find(cache: Cache, key: bytes) -> MetaItem | None:
    """The live item for ``key`` without bumping or counting it (memcached's locked get)."""
    cid = cache.find_live(key, cache.now())
    if cid >= 0 and cache.extstore is not None:
        cid = cache.extstore.bring_into_memory(cid, cache.now())  # meta works on values in memory
    return None if cid < 0 else meta_item(cache, cid)


def meta_create(cache: Cache, key: bytes, data: bytes = b"") -> MetaItem | None:
    """Link a new item (flags 0, no expiry) for a key that missed: mg N, ma N.

    None if memory is short. Unlike :meth:`Cache.store` it counts no set.
    """
    cid = cache.write_item(key, 0, 0, data, cache.now(), replace_on_failure=False)
    return None if cid < 0 else meta_item(cache, cid)


def meta_touch(cache: Cache, cid: int, exptime: int) -> int:
    """Give a linked item a client exptime (``cid`` -1: none); the relative exptime."""
    rel_exptime = cache.realtime(exptime, cache.now())
    if cid >= 0:
        page = cache.slabs.pages[cid >> PAGE_SHIFT]
        PACK_I32(page, (cid & OFFSET_MASK) + OFF_EXPTIME, rel_exptime)
    return rel_exptime


def meta_ttl(cache: Cache, rel_exptime: int) -> int:
    """Seconds left before a relative exptime as memcached reports them (-1: never).

    An exptime already past wraps as an unsigned 32-bit number, as memcached's does.
    """
    if rel_exptime == 0:
        return -1
    return (rel_exptime - cache.now()) & 0xFFFFFFFF


def meta_recache_due(cache: Cache, cid: int, exptime: int) -> bool:
    """mg R: no win token sent yet and the item expires before the client exptime."""
    page = cache.slabs.pages[cid >> PAGE_SHIFT]
    off = cid & OFFSET_MASK
    if page[off + OFF_IFLAGS] & WIN_SENT:
        return False
    rel_exptime = int(UNPACK_I32(page, off + OFF_EXPTIME)[0])
    return rel_exptime != 0 and rel_exptime < cache.realtime(exptime, cache.now())


def meta_claim(cache: Cache, cid: int, win: bool) -> tuple[bool, bool, bool]:
    """Settle the recache token after a read: (won, stale, token already sent).

    A stale item whose token nobody holds yet is won by this reader; a win marks the
    token sent, so the next reader learns that someone else is recaching.
    """
    page = cache.slabs.pages[cid >> PAGE_SHIFT]
    off = cid & OFFSET_MASK
    iflags = page[off + OFF_IFLAGS]
    sent = bool(iflags & WIN_SENT)
    stale = bool(iflags & STALE)
    won = win or (stale and not sent)
    if won:
        page[off + OFF_IFLAGS] = iflags | WIN_SENT
    return won, stale, sent


def meta_hit(cache: Cache, cid: int, bump: bool, touched: bool) -> None:
    """Count a meta read hit (as a touch if its TTL was set); with ``bump`` do what a
    get's hit does to the item (fetched, LRU state), after the reply read the old state."""
    page = cache.slabs.pages[cid >> PAGE_SHIFT]
    off = cid & OFFSET_MASK
    counters = cache.counters.classes[cache.slabs.page_class[cid >> PAGE_SHIFT]]
    if touched:
        counters.touch_hits += 1
    else:
        counters.get_hits += 1
    if bump:
        cache.bump(cid, page, off, cache.now())


def meta_value(cache: Cache, cid: int) -> bytes | bytearray:
    """An item's data, unframed (a copy: later writes to the chunk do not show)."""
    page = cache.slabs.pages[cid >> PAGE_SHIFT]
    off = cid & OFFSET_MASK
    header: ReadFields = READ_FIELDS_LRU.unpack_from(page, off + OFF_CAS)  # typed: C ints
    nbytes, nkey, plen, ncont = header[4], header[5], header[7], header[8]
    if ncont:
        return cache.items.read(cid, nkey + plen, nbytes)
    start = off + HEADER_SIZE + nkey + plen
    return page[start : start + nbytes]


def meta_store(
    cache: Cache,
    mode: StoreMode,
    key: bytes,
    flags: int,
    exptime: int,
    data: bytes,
    cas_unique: int | None = None,
    *,
    invalidate: bool = False,
    binary_key: bool = False,
) -> tuple[StoreResult, int]:
    """ms: :meth:`Cache.store` with the meta rules; (result, the new item's CAS or 0).

    A CAS (even 0) turns set and replace into cas; a non-zero one must also match for
    append and prepend (EXISTS otherwise), and is ignored by add. With ``invalidate``
    a cas older than the item's still stores, but the new value is marked stale and
    keeps the old exptime and win token (memcached's CAS_STALE).
    """
    if cas_unique is not None and mode in (StoreMode.SET, StoreMode.REPLACE):
        mode = StoreMode.CAS
    now = cache.now()
    old = cache.find_live(key, now)
    if old >= 0 and cas_unique and cache.use_cas:
        old_cas = cache.cas_of(old)
        if mode in (StoreMode.APPEND, StoreMode.PREPEND) and cas_unique != old_cas:
            return StoreResult.EXISTS, 0
        if mode == StoreMode.CAS and invalidate and cas_unique < old_cas:
            return _store_stale(cache, old, key, flags, data, now)
    result = cache.store(mode, key, flags, exptime, data, cas_unique or 0)
    if result != StoreResult.STORED:
        return result, 0
    cid = cache.index[key]
    if binary_key and mode not in (StoreMode.APPEND, StoreMode.PREPEND):
        cache.slabs.pages[cid >> PAGE_SHIFT][(cid & OFFSET_MASK) + OFF_IFLAGS] |= KEY_BINARY
    return result, cache.cas_of(cid)


def meta_delete(
    cache: Cache,
    key: bytes,
    cas_unique: int | None = None,
    invalidate: bool = False,
    exptime: int | None = None,
) -> MetaResult:
    """md: delete, or with ``invalidate`` mark stale (new CAS, token free again, and
    ``exptime`` if given). A given CAS must match (EXISTS otherwise)."""
    cid = cache.find_live(key, cache.now())
    if cid < 0:
        return MetaResult.NOT_FOUND
    if cas_unique is not None and cas_unique != cache.cas_of(cid):
        return MetaResult.EXISTS
    page = cache.slabs.pages[cid >> PAGE_SHIFT]
    off = cid & OFFSET_MASK
    if not invalidate:
        cache.counters.classes[cache.slabs.page_class[cid >> PAGE_SHIFT]].delete_hits += 1
        cache.remove(cid)
        return MetaResult.DONE
    if exptime is not None:
        meta_touch(cache, cid, exptime)
    page[off + OFF_IFLAGS] = (page[off + OFF_IFLAGS] | STALE) & ~WIN_SENT
    U64.pack_into(page, off + OFF_CAS, cache.next_cas())
    return MetaResult.DONE


def meta_incr_decr(
    cache: Cache, key: bytes, incr: bool, delta: int, cas_unique: int = 0
) -> tuple[MetaResult, int, MetaItem | None, bool]:
    """ma: :meth:`Cache.incr_decr` gated by a CAS (0: none).

    Returns (result, new value, the item now holding it, whether that is a new item:
    a longer number does not fit in place).
    """
    cid = cache.find_live(key, cache.now())
    if cid < 0:
        return MetaResult.NOT_FOUND, 0, None, False
    page = cache.slabs.pages[cid >> PAGE_SHIFT]
    _, _, cas, _, _, _, nbytes, _, _, _, ncont = HEADER.unpack_from(page, cid & OFFSET_MASK)
    # memcached checks an empty or chunked value before the CAS, the number after it.
    if cas_unique and nbytes and not ncont and cas != cas_unique:
        return MetaResult.EXISTS, 0, None, False
    result, value = cache.incr_decr(key, incr, delta)
    if result != DeltaResult.OK:
        return _META_DELTA[result], 0, None, False
    # A number longer than the value it replaces is a new item (Cache.incr_decr), even
    # when written over the old one's chunk.
    grew = len(b"%d" % value) > nbytes
    return MetaResult.DONE, value, meta_item(cache, cache.index[key]), grew


def meta_debug(cache: Cache, key: bytes) -> ItemDebug | None:
    """me: what memcached shows of an item (no bump, no hit counted)."""
    now = cache.now()
    cid = cache.find_live(key, now)
    if cid < 0:
        return None
    page = cache.slabs.pages[cid >> PAGE_SHIFT]
    _, _, cas, exptime, atime, flags, nbytes, nkey, iflags, _, _ = HEADER.unpack_from(
        page, cid & OFFSET_MASK
    )
    size = cache.item_total(nkey, flags, nbytes)
    # The class memcached files an item of this size under (chunked ones: the largest).
    # Ours may be another: a stored item here also holds its reply framing.
    return ItemDebug(
        key=cache.key_of(cid),
        binary_key=bool(iflags & KEY_BINARY),
        exptime=exptime,
        idle=(now - atime) & 0xFFFFFFFF,
        cas=cas,
        fetched=bool(iflags & FETCHED),
        class_id=cache.slabs.class_for(size),
        size=size,
    )


def meta_item(cache: Cache, cid: int) -> MetaItem:
    page = cache.slabs.pages[cid >> PAGE_SHIFT]
    header: ReadFields = READ_FIELDS_LRU.unpack_from(page, (cid & OFFSET_MASK) + OFF_CAS)
    cas, exptime, atime, flags, nbytes, _, iflags, _, _, _ = header  # typed: C ints
    return MetaItem(
        cid,
        cas,
        flags,
        nbytes,
        exptime,
        (cache.now() - atime) & 0xFFFFFFFF,
        bool(iflags & FETCHED),
        bool(iflags & KEY_BINARY),
    )


def _store_stale(
    cache: Cache, old: int, key: bytes, flags: int, data: bytes, now: int
) -> tuple[StoreResult, int]:
    """ms I with an older CAS: store, keeping the exptime and win token, marked stale."""
    if not cache.item_fits(len(key), flags, len(data)):
        return StoreResult.TOO_LARGE, 0
    page = cache.slabs.pages[old >> PAGE_SHIFT]
    off = old & OFFSET_MASK
    rel_exptime = UNPACK_I32(page, off + OFF_EXPTIME)[0]
    sent = page[off + OFF_IFLAGS] & WIN_SENT
    cache.counters.classes[cache.slabs.page_class[old >> PAGE_SHIFT]].cas_hits += 1
    cid = cache.write_item(key, flags, rel_exptime, data, now, replace_on_failure=False)
    if cid < 0:
        return StoreResult.NO_MEMORY, 0
    cache.slabs.pages[cid >> PAGE_SHIFT][(cid & OFFSET_MASK) + OFF_IFLAGS] |= STALE | sent
    cache.counters.classes[cache.slabs.page_class[cid >> PAGE_SHIFT]].cmd_set += 1
    return StoreResult.STORED, cache.cas_of(cid)
