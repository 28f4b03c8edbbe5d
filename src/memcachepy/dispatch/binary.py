"""Joins binary-protocol requests to cache operations and builds the response frames.

The binary twin of dispatch.py: the same :class:`Cache`, :class:`ServerCounters` and stats
reports, with memcached 1.6.18's proto_bin.c mapping from store results to status codes.
Quiet opcodes suppress success replies (a hit of getq/getkq/gatq/gatkq is still sent, and
errors always are); ``noop`` is what a client sends after a run of quiet requests to learn
that they are all done, and it is answered in order like everything else.
"""

from __future__ import annotations

import struct
import time
from collections.abc import Callable
from typing import Final

from memcachepy import VERSION
from memcachepy.auth import sasl
from memcachepy.auth.authfile import Authfile
from memcachepy.config import Settings
from memcachepy.dispatch.reply import Reply
from memcachepy.ops import stats_report
from memcachepy.ops.counters import ServerCounters, stat_text
from memcachepy.protocol import events as ev
from memcachepy.protocol.binary import (
    NO_AUTO_CREATE,
    QUIET,
    Event,
    Header,
    Opcode,
    Reject,
    Request,
    Status,
    ValueTooLarge,
    base_opcode,
    error_response,
    response,
    response_header,
)
from memcachepy.protocol.wire import Outcome
from memcachepy.store.cache import Cache
from memcachepy.store.meta import peek
from memcachepy.store.results import DeltaResult, StoreMode, StoreResult

_U32: Final = struct.Struct(">I")
_U64: Final = struct.Struct(">Q")
_STORE_EXTRAS: Final = struct.Struct(">II")  # flags, exptime
_ARITHMETIC_EXTRAS: Final = struct.Struct(">QQI")  # delta, initial, exptime
# The store keeps exptimes as signed 32-bit numbers; a binary exptime is unsigned. Anything
# past 2038 is "far in the future" for both, so larger values are clamped.
_EXPTIME_MAX: Final = 0x7FFFFFFF

_STORE_MODES: Final[dict[int, StoreMode]] = {
    Opcode.SET: StoreMode.SET,
    Opcode.ADD: StoreMode.ADD,
    Opcode.REPLACE: StoreMode.REPLACE,
    Opcode.APPEND: StoreMode.APPEND,
    Opcode.PREPEND: StoreMode.PREPEND,
}
# A failed store: memcached answers by the command, not by the store's reason.
_NOT_STORED_STATUS: Final[dict[int, Status]] = {
    Opcode.ADD: Status.KEY_EXISTS,
    Opcode.REPLACE: Status.KEY_NOT_FOUND,
}
_GETS: Final = frozenset({Opcode.GET, Opcode.GETK})
_TOUCHES: Final = frozenset({Opcode.TOUCH, Opcode.GAT, Opcode.GATK})


def _exptime(raw: int) -> int:
    return min(raw, _EXPTIME_MAX)


class BinaryDispatcher:
    """Handles one binary event at a time, appending response frames to ``out``."""

    def __init__(
        self,
        settings: Settings,
        cache: Cache,
        counters: ServerCounters,
        started: float | None = None,
        sasl: Authfile | None = None,
    ) -> None:
        self.settings = settings
        self.sasl = sasl  # -S: the password file; None when SASL is off
        self.cache = cache
        self.counters = counters
        self.started = time.time() if started is None else started
        self._commands: dict[int, Callable[[Request, bool, list[Reply]], int]] = {
            Opcode.GET: self._get,
            Opcode.GETK: self._get,
            Opcode.TOUCH: self._get,
            Opcode.GAT: self._get,
            Opcode.GATK: self._get,
            Opcode.SET: self._store,
            Opcode.ADD: self._store,
            Opcode.REPLACE: self._store,
            Opcode.APPEND: self._concat,
            Opcode.PREPEND: self._concat,
            Opcode.DELETE: self._delete,
            Opcode.INCREMENT: self._arithmetic,
            Opcode.DECREMENT: self._arithmetic,
            Opcode.QUIT: self._quit,
            Opcode.FLUSH: self._flush,
            Opcode.NOOP: self._noop,
            Opcode.VERSION: self._version,
            Opcode.STAT: self._stat,
        }

    def handle(self, event: Event, out: list[Reply]) -> int:
        """Apply ``event``; append its response to ``out``; return an :class:`Outcome`."""
        if type(event) is Request:
            opcode = event.header.opcode
            return self._commands[base_opcode(opcode)](event, opcode in QUIET, out)
        if type(event) is ValueTooLarge:
            return self._too_large(event, out)
        if type(event) is Reject:
            out.append(error_response(event.header, event.status))
            return Outcome.CLOSE if event.close else Outcome.CONTINUE
        assert type(event) is ev.Close
        return Outcome.CLOSE

    def session(self) -> BinarySession:
        """A handler for one TCP connection (see :class:`BinarySession`)."""
        return BinarySession(self)

    # -- retrieval ----------------------------------------------------------------------

    def _get(self, event: Request, quiet: bool, out: list[Reply]) -> int:
        header = event.header
        command = base_opcode(header.opcode)
        touch = command in _TOUCHES
        with_key = command in (Opcode.GETK, Opcode.GATK)
        key = event.key
        counters = self.counters
        if touch:
            counters.cmd_touch += 1
            cid = self.cache.fetch_chunk(key, touch_exptime=_exptime(_U32.unpack(event.extras)[0]))
        else:
            counters.cmd_get += 1
            cid = self.cache.fetch_chunk(key)
        if cid < 0:
            if touch:
                counters.touch_misses += 1
            else:
                counters.get_misses += 1
            if quiet:
                return Outcome.CONTINUE
            if with_key:  # the key comes back, with no text
                out.append(response(header, Status.KEY_NOT_FOUND, key=key))
            else:
                out.append(error_response(header, Status.KEY_NOT_FOUND))
            return Outcome.CONTINUE
        cache = self.cache
        extras = _U32.pack(cache.flags_of(cid))
        cas = cache.cas_of(cid)
        returned_key = key if with_key else b""
        if command == Opcode.TOUCH:
            out.append(response(header, extras=extras, cas=cas))
            return Outcome.CONTINUE
        value = cache.value(cid)
        out.append(response_header(header, Status.OK, 4, len(returned_key), len(value), cas))
        out.append(extras + returned_key)
        out.append(value)
        return Outcome.CONTINUE

    # -- storage ------------------------------------------------------------------------

    def _store(self, event: Request, quiet: bool, out: list[Reply]) -> int:
        header = event.header
        command = base_opcode(header.opcode)
        flags, exptime = _STORE_EXTRAS.unpack(event.extras)
        # memcached ignores a request CAS when CAS is off (-C); any other makes it a cas.
        cas = header.cas if self.settings.use_cas else 0
        mode = StoreMode.CAS if cas else _STORE_MODES[command]
        self.counters.cmd_set += 1
        result = self.cache.store(mode, event.key, flags, _exptime(exptime), event.value, cas)
        return self._stored(event, quiet, command if mode != StoreMode.CAS else None, result, out)

    def _concat(self, event: Request, quiet: bool, out: list[Reply]) -> int:
        header = event.header
        command = base_opcode(header.opcode)
        self.counters.cmd_set += 1
        cas = header.cas if self.settings.use_cas else 0
        if cas:
            current = peek(self.cache, event.key)
            if current is not None and current[0] != cas:
                out.append(error_response(header, Status.KEY_EXISTS))
                return Outcome.CONTINUE
        result = self.cache.store(_STORE_MODES[command], event.key, 0, 0, event.value)
        return self._stored(event, quiet, command, result, out)

    def _stored(
        self,
        event: Request,
        quiet: bool,
        command: int | None,
        result: StoreResult,
        out: list[Reply],
    ) -> int:
        """Answer a store result; ``command`` None for a CAS store."""
        header = event.header
        if result == StoreResult.STORED:
            if not quiet:
                current = peek(self.cache, event.key)
                out.append(response(header, cas=current[0] if current else 0))
            return Outcome.CONTINUE
        if result == StoreResult.EXISTS:
            status = Status.KEY_EXISTS
        elif result == StoreResult.NOT_FOUND:
            self.counters.cas_misses += 1
            status = Status.KEY_NOT_FOUND
        elif result == StoreResult.NO_MEMORY:
            # memcached fails to allocate the item before reading the value.
            out.append(
                error_response(header, Status.OUT_OF_MEMORY, b"Out of memory allocating item")
            )
            return Outcome.CONTINUE
        else:
            status = Status.NOT_STORED
            if command is not None:
                status = _NOT_STORED_STATUS.get(command, Status.NOT_STORED)
        out.append(error_response(header, status))
        return Outcome.CONTINUE

    def _too_large(self, event: ValueTooLarge, out: list[Reply]) -> int:
        if base_opcode(event.header.opcode) == Opcode.SET:
            # memcached drops the old value so that a failed set never leaves stale data.
            self.cache.delete(event.key)
        out.append(error_response(event.header, Status.TOO_LARGE))
        return Outcome.CONTINUE

    # -- other commands -----------------------------------------------------------------

    def _delete(self, event: Request, quiet: bool, out: list[Reply]) -> int:
        header = event.header
        current = peek(self.cache, event.key)
        if current is None:
            self.counters.delete_misses += 1
            out.append(error_response(header, Status.KEY_NOT_FOUND))
        elif header.cas and header.cas != current[0]:
            out.append(error_response(header, Status.KEY_EXISTS))
        else:
            self.cache.delete(event.key)
            if not quiet:
                out.append(response(header))
        return Outcome.CONTINUE

    def _arithmetic(self, event: Request, quiet: bool, out: list[Reply]) -> int:
        header = event.header
        incr = base_opcode(header.opcode) == Opcode.INCREMENT
        delta, initial, exptime = _ARITHMETIC_EXTRAS.unpack(event.extras)
        cache = self.cache
        current = peek(cache, event.key)
        if current is None:
            return self._create_counter(event, quiet, incr, initial, exptime, out)
        cas, nbytes, chunked = current
        # memcached's add_delta order: an empty or chunked value is non-numeric before
        # the CAS is compared.
        if header.cas and nbytes and not chunked and header.cas != cas:
            out.append(error_response(header, Status.KEY_EXISTS))
            return Outcome.CONTINUE
        result, value = cache.incr_decr(event.key, incr, delta)
        if result == DeltaResult.OK:
            if not quiet:
                after = peek(cache, event.key)
                out.append(response(header, value=_U64.pack(value), cas=after[0] if after else 0))
        elif result == DeltaResult.NON_NUMERIC:
            out.append(error_response(header, Status.NON_NUMERIC))
        elif result == DeltaResult.NO_MEMORY:
            out.append(
                error_response(header, Status.OUT_OF_MEMORY, b"Out of memory incrementing value")
            )
        else:
            out.append(error_response(header, Status.KEY_NOT_FOUND))
        return Outcome.CONTINUE

    def _create_counter(
        self,
        event: Request,
        quiet: bool,
        incr: bool,
        initial: int,
        exptime: int,
        out: list[Reply],
    ) -> int:
        header = event.header
        if exptime == NO_AUTO_CREATE:
            if incr:
                self.counters.incr_misses += 1
            else:
                self.counters.decr_misses += 1
            out.append(error_response(header, Status.KEY_NOT_FOUND))
            return Outcome.CONTINUE
        result = self.cache.store(StoreMode.ADD, event.key, 0, _exptime(exptime), b"%d" % initial)
        if result == StoreResult.STORED:
            if not quiet:
                after = peek(self.cache, event.key)
                out.append(response(header, value=_U64.pack(initial), cas=after[0] if after else 0))
        elif result == StoreResult.NO_MEMORY:
            out.append(
                error_response(header, Status.OUT_OF_MEMORY, b"Out of memory allocating new item")
            )
        else:
            out.append(error_response(header, Status.NOT_STORED))
        return Outcome.CONTINUE

    def _quit(self, event: Request, quiet: bool, out: list[Reply]) -> int:
        if not quiet:
            out.append(response(event.header))
        return Outcome.CLOSE

    def _flush(self, event: Request, quiet: bool, out: list[Reply]) -> int:
        if not self.settings.flush_enabled:
            out.append(error_response(event.header, Status.AUTH_ERROR))
            return Outcome.CONTINUE
        delay = _U32.unpack(event.extras)[0] if event.extras else 0
        self.cache.flush_all(_exptime(delay))
        self.counters.cmd_flush += 1
        if not quiet:
            out.append(response(event.header))
        return Outcome.CONTINUE

    def _noop(self, event: Request, quiet: bool, out: list[Reply]) -> int:
        out.append(response(event.header))
        return Outcome.CONTINUE

    def _version(self, event: Request, quiet: bool, out: list[Reply]) -> int:
        out.append(response(event.header, value=VERSION.encode()))
        return Outcome.CONTINUE

    # -- stats --------------------------------------------------------------------------

    def _stat(self, event: Request, quiet: bool, out: list[Reply]) -> int:
        """memcached's process_bin_stat: one frame per statistic, then an empty frame.

        Like memcached, ``reset``, ``settings`` and ``detail`` match as prefixes of the key
        and the other groups match exactly.
        """
        header = event.header
        group = event.key
        pairs: list[tuple[str, object]]
        if not group:
            pairs = stats_report.general_stats(
                self.settings, self.cache, self.counters, self.started
            )
        elif group.startswith(b"reset"):
            self.counters.reset()
            stats_report.reset_store_counters(self.cache)
            pairs = []
        elif group.startswith(b"settings"):
            pairs = stats_report.settings_stats(self.settings, self.cache)
        elif group.startswith(b"detail"):
            option = group[6:]
            if option.startswith(b" dump"):
                pairs = [("detailed", "END\r\n")]  # prefix statistics are not kept
            elif option.startswith(b" on") or option.startswith(b" off"):
                pairs = []
            else:
                out.append(error_response(header, Status.KEY_NOT_FOUND))
                return Outcome.CONTINUE
        elif group == b"items":
            pairs = stats_report.item_stats(self.cache)
        elif group == b"slabs":
            pairs = stats_report.slab_stats(self.cache)
        elif group == b"sizes":
            pairs = [("sizes_status", "disabled")]
        else:
            out.append(error_response(header, Status.KEY_NOT_FOUND))
            return Outcome.CONTINUE
        frames = [_stat_frame(header, name.encode(), stat_text(value)) for name, value in pairs]
        frames.append(_stat_frame(header, b"", b""))
        out.append(b"".join(frames))
        return Outcome.CONTINUE


def _stat_frame(request: Header, name: bytes, value: bytes) -> bytes:
    """One statistic: opcode stat, the name as key, the value as body, CAS 0."""
    return response(request._replace(opcode=Opcode.STAT), key=name, value=value)


class BinarySession:
    """One connection's handler: the dispatcher, plus which responses memcached has sent.

    memcached writes its queued responses out only at certain points: after an error
    (unless it is discarding a value), a noop or a quit, and whenever it waits for more
    bytes, which is where the server sends too. A bad magic byte closes the connection at
    once and drops whatever was still queued, so that is dropped here as well.
    """

    __slots__ = ("_dispatcher", "_out", "_sent", "authenticated")

    def __init__(self, dispatcher: BinaryDispatcher) -> None:
        self._dispatcher = dispatcher
        self._out: list[Reply] | None = None  # the batch holding the last flush point
        self._sent = 0  # how much of that batch memcached would have written
        self.authenticated = dispatcher.sasl is None

    def handle(self, event: Event, out: list[Reply]) -> int:
        """Apply ``event`` as :meth:`BinaryDispatcher.handle` does."""
        if type(event) is ev.Close:
            del out[self._sent if out is self._out else 0 :]
            return Outcome.CLOSE
        if self._dispatcher.sasl is not None:
            outcome = self._sasl_gate(event, out)
            if outcome is not None:
                return outcome
        start = len(out)
        outcome = self._dispatcher.handle(event, out)
        if _flushes(event, out, start):
            self._out = out
            self._sent = len(out)
        return outcome

    def _sasl_gate(self, event: Event, out: list[Reply]) -> int | None:
        """With -S: answer SASL itself; refuse (and close) anything else before auth.

        As memcached's dispatch_bin_command: only the SASL opcodes and version pass
        before authentication; anything else gets 0x20 and the connection is closed.
        """
        assert not isinstance(event, ev.Close)  # handled before the gate
        header = event.header
        command = header.opcode if type(event) is Request else -1
        if command in _SASL_OPCODES:
            return self._sasl(event, out)  # type: ignore[arg-type]
        if self.authenticated or command == Opcode.VERSION:
            return None
        out.append(error_response(header, Status.AUTH_ERROR))
        return Outcome.CLOSE

    def _sasl(self, event: Request, out: list[Reply]) -> int:
        dispatcher = self._dispatcher
        assert dispatcher.sasl is not None
        header, command = event.header, event.header.opcode
        if command == Opcode.SASL_LIST_MECHS:
            out.append(response(header, value=sasl.MECHANISMS))
            return Outcome.CONTINUE
        if len(event.key) > sasl.MAX_MECHANISM_LENGTH:
            out.append(error_response(header, Status.INVALID_ARGUMENTS))
            return Outcome.CONTINUE
        counters = dispatcher.counters
        counters.auth_cmds += 1
        # PLAIN finishes in one step; a SASL_STEP has nothing to continue (memcached: error).
        if command == Opcode.SASL_AUTH and sasl.check_plain(
            dispatcher.sasl, event.key, event.value
        ):
            self.authenticated = True
            out.append(response(header, value=b"Authenticated"))
            return Outcome.CONTINUE
        counters.auth_errors += 1
        out.append(error_response(header, Status.AUTH_ERROR))
        return Outcome.AUTH_FAILED


_SASL_OPCODES: Final = frozenset({Opcode.SASL_LIST_MECHS, Opcode.SASL_AUTH, Opcode.SASL_STEP})


def _flushes(event: Event, out: list[Reply], start: int) -> bool:
    """Whether memcached writes out its queued responses right after ``event``."""
    if type(event) is Reject:
        return not event.discarding
    if type(event) is ValueTooLarge:
        return event.past_buffer
    if type(event) is not Request or len(out) == start:
        return False
    command = base_opcode(event.header.opcode)
    if command in (Opcode.NOOP, Opcode.QUIT):
        return True
    status = int.from_bytes(bytes(out[start][6:8]), "big")
    # A getk/gatk miss echoes the key without going through write_bin_error.
    return status != Status.OK and command not in (Opcode.GETK, Opcode.GATK)
