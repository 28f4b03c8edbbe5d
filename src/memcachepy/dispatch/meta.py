"""Joins meta-protocol events (mg ms md ma mn me) to cache operations and builds the replies.

Installed into the text :class:`~memcachepy.dispatch.text.Dispatcher` by :func:`handlers`, since
meta commands arrive on text connections. Replies follow memcached 1.6.18's proto_text.c
byte for byte: return flags come back in request order, ``q`` hides only the nominal
reply of each command (mg: EN; ms, md: HD; ma: HD/VA of a change), errors always show.
"""

from __future__ import annotations

import base64
from typing import TYPE_CHECKING, Final

from memcachepy.protocol import events as ev
from memcachepy.protocol.wire import DELTA_NO_MEMORY, NO_MEMORY, NON_NUMERIC, TOO_LARGE
from memcachepy.store.cache import Cache
from memcachepy.store.meta import (
    MetaItem,
    MetaResult,
    meta_claim,
    meta_create,
    meta_debug,
    meta_delete,
    meta_find,
    meta_hit,
    meta_incr_decr,
    meta_recache_due,
    meta_store,
    meta_touch,
    meta_ttl,
    meta_value,
)
from memcachepy.store.results import StoreMode, StoreResult

if TYPE_CHECKING:
    from memcachepy.dispatch.reply import DispatchContext, Reply
    from memcachepy.ops.hooks import Handler

CONTINUE: Final = 0  # dispatch.Outcome.CONTINUE: meta commands never close the connection
CRLF: Final = b"\r\n"

_MODES: Final = {
    b"S": StoreMode.SET,
    b"E": StoreMode.ADD,
    b"A": StoreMode.APPEND,
    b"P": StoreMode.PREPEND,
    b"R": StoreMode.REPLACE,
}
_STORE_CODES: Final = {
    StoreResult.STORED: b"HD",
    StoreResult.NOT_STORED: b"NS",
    StoreResult.EXISTS: b"EX",
    StoreResult.NOT_FOUND: b"NF",
}
VIVIFY_NO_MEMORY: Final = b"SERVER_ERROR Out of memory allocating new item\r\n"

_T, _N, _R = ord("T"), ord("N"), ord("R")
_O, _K = ord("O"), ord("k")


def key_token(key: bytes, binary: bool) -> bytes:
    """The `` k<key>`` return flag: a binary key goes back base64-encoded, then `` b``."""
    if binary:
        return b" k" + base64.b64encode(key) + b" b"
    return b" k" + key


class MetaDispatch:
    """The meta command handlers of one dispatcher (they share its cache and counters)."""

    def __init__(self, dispatcher: DispatchContext) -> None:
        self.cache = dispatcher.cache
        self.counters = dispatcher.counters

    # -- mg ---------------------------------------------------------------------------------

    def get(self, event: ev.MetaGet, out: list[Reply]) -> int:
        return self.get_fields(
            event.key,
            event.binary,
            event.order,
            event.opaque,
            event.value,
            event.quiet,
            event.no_bump,
            event.ttl,
            event.vivify,
            event.recache,
            event.late_error,
            out,
        )

    def get_fields(
        self,
        key: bytes,
        binary: bool,
        order: bytes,
        opaque: bytes,
        value: bool,
        quiet: bool,
        no_bump: bool,
        ttl: int | None,
        vivify: int | None,
        recache: int | None,
        late_error: bytes | None,
        out: list[Reply],
    ) -> int:
        """mg, from the fields of its event."""
        cache = self.cache
        counters = self.counters
        item = meta_find(cache, key)
        created = False
        if item is None and vivify is not None:
            # A placeholder that never expires until the N flag, in its turn, sets the TTL.
            item = meta_create(cache, key)
            created = item is not None
        if item is None:
            counters.cmd_get += 1
            counters.get_misses += 1
            if late_error is not None:
                out.append(late_error)
            elif not quiet:
                out.append(b"EN" + _echo(order, opaque, key, binary) + CRLF)
            return CONTINUE
        cid = item.cid
        parts = [b"VA %d" % item.nbytes if value else b"HD"]
        exptime = item.exptime
        won = ttl_set = False
        for flag in order:
            if flag == _T:
                exptime = meta_touch(cache, cid, ttl)  # type: ignore[arg-type]
                ttl_set = True
            elif flag == _N:
                if created:
                    exptime = meta_touch(cache, cid, vivify)  # type: ignore[arg-type]
                    won = True
            elif flag == _R:
                if not created and meta_recache_due(cache, cid, recache):  # type: ignore[arg-type]
                    won = True
            else:
                parts.append(_item_flag(flag, item, exptime, opaque, key, cache))
        if late_error is not None:
            out.append(late_error)
            return CONTINUE
        won, stale, sent = meta_claim(cache, cid, won)
        if sent:
            parts.append(b" Z")
        if stale:
            parts.append(b" X")
        if won:
            parts.append(b" W")
        parts.append(CRLF)
        out.append(b"".join(parts))
        if value:
            out.append(meta_value(cache, cid))
            out.append(CRLF)
        meta_hit(cache, cid, bump=not no_bump, touched=ttl_set)
        if ttl_set:
            counters.cmd_touch += 1
        else:
            counters.cmd_get += 1
        return CONTINUE

    # -- ms ---------------------------------------------------------------------------------

    def set(self, event: ev.MetaSet, out: list[Reply]) -> int:
        return self.set_fields(
            event.key,
            event.binary,
            event.data,
            _MODES[event.mode],
            event.flags,
            event.exptime,
            event.cas,
            event.invalidate,
            event.quiet,
            event.order,
            event.opaque,
            out,
        )

    def set_fields(
        self,
        key: bytes,
        binary: bool,
        data: bytes,
        mode: StoreMode,
        flags: int,
        exptime: int,
        cas_unique: int | None,
        invalidate: bool,
        quiet: bool,
        order: bytes,
        opaque: bytes,
        out: list[Reply],
    ) -> int:
        """ms, from the fields of its event."""
        counters = self.counters
        counters.cmd_set += 1
        result, cas = meta_store(
            self.cache,
            mode,
            key,
            flags,
            exptime,
            data,
            cas_unique,
            invalidate=invalidate,
            binary_key=binary,
        )
        if result == StoreResult.NOT_FOUND:
            counters.cas_misses += 1
        elif result == StoreResult.NO_MEMORY:
            # memcached fails the allocation before reading the value, and drops the old
            # value whatever the mode, so no stale copy outlives a failed write.
            counters.store_no_memory += 1
            self.cache.delete(key)
            out.append(NO_MEMORY)
            return CONTINUE
        elif result == StoreResult.TOO_LARGE:
            counters.store_too_large += 1
            self.cache.delete(key)
            out.append(TOO_LARGE)
            return CONTINUE
        if result == StoreResult.STORED and quiet:
            return CONTINUE
        parts = [_STORE_CODES[result]]
        for flag in order:
            if flag == _O:
                parts.append(b" " + opaque)
            elif flag == _K:
                parts.append(key_token(key, binary))
            else:  # c: the CAS of what was stored, 0 if nothing was
                parts.append(b" c%d" % cas)
        parts.append(CRLF)
        out.append(b"".join(parts))
        return CONTINUE

    def set_too_large(self, event: ev.MetaSetTooLarge, out: list[Reply]) -> int:
        self.counters.store_too_large += 1
        self.cache.delete(event.key)  # whatever the mode, as memcached does
        out.append(TOO_LARGE)
        return CONTINUE

    # -- md ---------------------------------------------------------------------------------

    def delete(self, event: ev.MetaDelete, out: list[Reply]) -> int:
        return self.delete_fields(
            event.key,
            event.binary,
            event.cas,
            event.invalidate,
            event.ttl,
            event.quiet,
            event.order,
            event.opaque,
            out,
        )

    def delete_fields(
        self,
        key: bytes,
        binary: bool,
        cas: int | None,
        invalidate: bool,
        ttl: int | None,
        quiet: bool,
        order: bytes,
        opaque: bytes,
        out: list[Reply],
    ) -> int:
        """md, from the fields of its event."""
        result = meta_delete(self.cache, key, cas, invalidate, ttl)
        if result == MetaResult.DONE:
            if quiet:
                return CONTINUE
            code = b"HD"
        else:
            self.counters.delete_misses += 1
            code = b"NF" if result == MetaResult.NOT_FOUND else b"EX"
        out.append(code + _echo(order, opaque, key, binary) + CRLF)
        return CONTINUE

    # -- ma ---------------------------------------------------------------------------------

    def arithmetic(self, event: ev.MetaArithmetic, out: list[Reply]) -> int:
        cache = self.cache
        result, value, item, moved = meta_incr_decr(
            cache, event.key, event.incr, event.delta, event.cas
        )
        created = False
        if result == MetaResult.NOT_FOUND and event.vivify is not None:
            value = event.initial
            item = meta_create(cache, event.key, b"%d" % value)
            if item is None:
                out.append(VIVIFY_NO_MEMORY)
                return CONTINUE
            created = True
        elif result == MetaResult.NON_NUMERIC:
            out.append(NON_NUMERIC)
            return CONTINUE
        elif result == MetaResult.NO_MEMORY:
            out.append(DELTA_NO_MEMORY)
            return CONTINUE
        if item is None:
            if result == MetaResult.NOT_FOUND:
                if event.incr:
                    self.counters.incr_misses += 1
                else:
                    self.counters.decr_misses += 1
                code = b"NF"
            else:
                code = b"EX"
            if event.late_error is not None:
                out.append(event.late_error)
            else:
                out.append(code + _echo(event.order, event.opaque, event.key, event.binary) + CRLF)
            return CONTINUE
        digits = b"%d" % value
        parts = [b"VA %d" % len(digits) if event.value else b"HD"]
        # After a number outgrew its item, memcached's reply describes the old item, so T
        # changes only the TTL reported, not the stored one (cid -1 below).
        cid = -1 if moved else item.cid
        exptime = item.exptime
        for flag in event.order:
            if flag == _T:
                exptime = meta_touch(cache, cid, event.ttl)  # type: ignore[arg-type]
            elif flag == _N:
                if created:
                    exptime = meta_touch(cache, cid, event.vivify)  # type: ignore[arg-type]
            elif flag == _K:
                parts.append(key_token(event.key, event.binary))
            else:
                parts.append(_item_flag(flag, item, exptime, event.opaque, event.key, cache))
        if event.late_error is not None:
            out.append(event.late_error)
            return CONTINUE
        if event.quiet and not created:  # a vivified item is answered even with q
            return CONTINUE
        if event.value:
            parts.append(CRLF + digits)
        parts.append(CRLF)
        out.append(b"".join(parts))
        return CONTINUE

    # -- mn, me -----------------------------------------------------------------------------

    def noop(self, event: ev.MetaNoop, out: list[Reply]) -> int:
        out.append(b"MN\r\n")
        return CONTINUE

    def debug(self, event: ev.MetaDebug, out: list[Reply]) -> int:
        self.counters.cmd_meta += 1
        info = meta_debug(self.cache, event.key)
        if info is None:
            out.append(b"EN\r\n")
            return CONTINUE
        key = base64.b64encode(info.key) if info.binary_key else info.key
        # exp is memcached's current_time - exptime as a signed int: minus the TTL left.
        exp = -1 if info.exptime == 0 else _signed32(-meta_ttl(self.cache, info.exptime))
        out.append(
            b"ME %s exp=%d la=%d cas=%d fetch=%s cls=%d size=%d\r\n"
            % (
                key,
                exp,
                info.idle,
                info.cas,
                b"yes" if info.fetched else b"no",
                info.class_id,
                info.size,
            )
        )
        return CONTINUE


def _item_flag(
    flag: int, item: MetaItem, exptime: int, opaque: bytes, key: bytes, cache: Cache
) -> bytes:
    """One return flag describing ``item`` (``exptime``: its exptime by now)."""
    if flag == 115:  # s
        return b" s%d" % item.nbytes
    if flag == 116:  # t
        return b" t%d" % meta_ttl(cache, exptime)
    if flag == 99:  # c
        return b" c%d" % item.cas
    if flag == 102:  # f
        return b" f%d" % item.flags
    if flag == 108:  # l
        return b" l%d" % item.idle
    if flag == 104:  # h
        return b" h1" if item.fetched else b" h0"
    if flag == _O:
        return b" " + opaque
    return key_token(key, item.binary_key)  # k (mg: as the item has it)


def _echo(order: bytes, opaque: bytes, key: bytes, binary: bool) -> bytes:
    """The O and k return flags of a reply that has no item to describe."""
    parts = []
    for flag in order:
        if flag == _O:
            parts.append(b" " + opaque)
        elif flag == _K:
            parts.append(key_token(key, binary))
    return b"".join(parts)


def _signed32(value: int) -> int:
    value &= 0xFFFFFFFF
    return value - (1 << 32) if value & 0x80000000 else value


def handlers(meta: MetaDispatch) -> dict[type, Handler]:
    """The meta command handlers of ``meta``, by event type."""
    return {
        ev.MetaGet: meta.get,
        ev.MetaSet: meta.set,
        ev.MetaSetTooLarge: meta.set_too_large,
        ev.MetaDelete: meta.delete,
        ev.MetaArithmetic: meta.arithmetic,
        ev.MetaNoop: meta.noop,
        ev.MetaDebug: meta.debug,
    }
