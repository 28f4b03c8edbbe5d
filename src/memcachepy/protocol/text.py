"""The text parser the server uses: :class:`TextParser`, the event parser of
:mod:`.text_events` with a fused fast path for the common requests.

:meth:`TextParser.serve` parses every complete request a read brought and hands the
common ones (get, set/add/replace, delete, incr/decr, touch, and mg/ms/md with common
flags) straight to a :class:`RequestSink`, as calls with their fields: no event object. A
line it does not take goes through the event parser's rules and reaches the sink as an
event, so the replies are exactly those of :meth:`~.TextEventParser.next_event`'s events
handed over one by one (``tests/protocol/test_text_batch.py`` checks it).
"""

from __future__ import annotations

from typing import Any, Final

from mypy_extensions import mypyc_attr

from memcachepy.protocol import events as ev
from memcachepy.protocol.events import NEED_DATA
from memcachepy.protocol.numbers import parse_i32, parse_u32, parse_u64
from memcachepy.protocol.replies import count_replies
from memcachepy.protocol.text_events import (
    RETRIEVE_CAS,
    RETRIEVE_TOUCH,
    TextEventParser,
    retrieval_kind,
)
from memcachepy.protocol.wire import (
    BAD_DATA_CHUNK,
    KEY_MAX_LENGTH,
    LONG_LINE,
    MAX_DATA_LENGTH,
    MAX_META_TOKENS,
    MAX_OPAQUE_LENGTH,
    MAX_TOKENS,
    NOT_PLAIN,
    OUTPUT_FULL,
)


@mypyc_attr(allow_interpreted_subclasses=True)
class RequestSink:
    """What :meth:`TextParser.serve` hands requests to (the dispatcher, seen from here).

    The common requests arrive as calls with their fields, without an event object; every
    other request arrives as its event through :meth:`event`. Each call appends the reply
    to ``out`` and returns 0 to go on, or an outcome that ends the batch (returned as is).

    A base class that the dispatcher subclasses, not a ``typing.Protocol``: compiled, the
    parser calls a native class's methods through mypyc's vtable, a C call, where a
    Protocol's stay Python-level calls. protocol/ still imports nothing of dispatch/.
    """

    def retrieve(
        self, keys: list[bytes], with_cas: bool, exptime: int | None, out: list[Any]
    ) -> int:
        raise NotImplementedError

    def store(
        self,
        command: bytes,
        key: bytes,
        flags: int,
        exptime: int,
        data: bytes,
        noreply: bool,
        out: list[Any],
    ) -> int:
        raise NotImplementedError

    def delete(self, key: bytes, noreply: bool, out: list[Any]) -> int:
        raise NotImplementedError

    def arithmetic(self, incr: bool, key: bytes, delta: int, noreply: bool, out: list[Any]) -> int:
        raise NotImplementedError

    def touch(self, key: bytes, exptime: int, noreply: bool, out: list[Any]) -> int:
        raise NotImplementedError

    def meta_get(
        self,
        key: bytes,
        order: bytes,
        opaque: bytes,
        value: bool,
        quiet: bool,
        no_bump: bool,
        out: list[Any],
    ) -> int:
        raise NotImplementedError

    def meta_set(
        self,
        key: bytes,
        data: bytes,
        flags: int,
        exptime: int,
        quiet: bool,
        order: bytes,
        opaque: bytes,
        out: list[Any],
    ) -> int:
        raise NotImplementedError

    def meta_delete(
        self, key: bytes, quiet: bool, order: bytes, opaque: bytes, out: list[Any]
    ) -> int:
        raise NotImplementedError

    def event(self, event: ev.Event, out: list[Any]) -> int:
        raise NotImplementedError

    def plain(self) -> bool:
        """False once an observer wraps the fast-path requests (``verbosity 2``, ``watch``):
        the batch then stops, and the caller goes on one event at a time."""
        raise NotImplementedError


_CHECK_PIECES: Final = 8  # replies between two checks of the output bound
# What _serve_meta returns for a line the general rules must read.
_GENERAL: Final = -100
# The meta flags the fast paths take, each at most once: single letters (no token), O with
# its opaque, and for ms T and F with a number. Any other flag, a repeat, or a letter with
# trailing bytes goes the general way (protocol.meta), which knows every rule.
_MG_FAST: Final = b"vkfcstqhlu"
_MG_OPTIONS: Final = b"vqu"  # set options; every other mg flag answers in request order
_MS_FAST: Final = b"qkc"
_MD_FAST: Final = b"qk"
_BIT_V: Final = 1 << (ord("v") & 63)
_BIT_Q: Final = 1 << (ord("q") & 63)
_BIT_U: Final = 1 << (ord("u") & 63)


def _fast_storage(command: bytes) -> bool:
    """set, add and replace: the storage commands the fast path takes."""
    return command == b"set" or command == b"add" or command == b"replace"


def _single_spaced(tokens: list[bytes]) -> bool:
    """No empty token: the line split held no leading, trailing or doubled space.

    A loop over the lengths, not ``b"" not in tokens``: compiled, that is a length read a
    token, where ``in`` makes a generic compare of each token with ``b""``.
    """
    for token in tokens:
        if not token:
            return False
    return True


def _keys_fit(tokens: list[bytes]) -> bool:
    """Whether no token is longer than a key may be (a loop: compiled, that is C, where
    ``max(map(len, tokens))`` is two calls of Python builtins)."""
    for token in tokens:
        if len(token) > KEY_MAX_LENGTH:
            return False
    return True


class TextParser(TextEventParser):
    """Turns a byte stream from one client into requests: events, or with
    :meth:`serve` calls on a :class:`RequestSink`."""

    __slots__ = ()

    def serve(
        self, sink: RequestSink, out: list[Any], budget: int, high_water: int
    ) -> tuple[int, int]:
        """Parse every complete request buffered and hand each to ``sink``: one call per
        read instead of one per request.

        Stops after ``budget`` requests, at an outcome other than 0, or once ``out`` holds
        ``high_water`` bytes or more outside a data block (:data:`OUTPUT_FULL`). Returns
        (outcome, requests handed over); the replies are exactly those of handing the
        events of :meth:`next_event` to the dispatcher one by one.
        """
        buf = self._buf
        count = 0
        outcome = 0
        next_check = _CHECK_PIECES
        # The bytes (queued) of out[:counted], kept by count_replies: summed as pieces
        # come, not again at every check (that was quadratic in a long multi-get's reply).
        counted = queued = 0
        while count < budget:
            slow = True
            if (
                self._queued
                or self._long
                or self._closed
                or self._swallow
                or self._pending is not None
                or self._growing
            ):
                event = self.next_event()
                if event is NEED_DATA:
                    break
                outcome = sink.event(event, out)  # type: ignore[arg-type]
                if self._long and not outcome:
                    # A slice of a long get line takes the connection's whole round, so
                    # that other connections are served between slices.
                    if not sink.plain():
                        return NOT_PLAIN, count + 1
                    return 0, budget
            else:
                line = buf.take_line()
                if line is None:
                    event = self._no_newline()
                    if event is NEED_DATA:
                        break
                    outcome = sink.event(event, out)  # type: ignore[arg-type]
                else:
                    if len(line) > 1 and line[-1] == 13:  # strip \r only if len > 1
                        line = line[:-1]
                    slow = False  # _serve_line checks itself
                    served = self._serve_line(line, sink, out)
                    if served is None:  # a storage command waiting for its data block
                        continue
                    outcome = served
            count += 1
            if outcome:
                break
            if slow and not sink.plain():
                return NOT_PLAIN, count
            if len(out) >= next_check and not self.mid_request:
                counted, queued = count_replies(out, counted, queued)
                if queued >= high_water:
                    return OUTPUT_FULL, count
                next_check = counted + _CHECK_PIECES
        return outcome, count

    def _serve_line(self, line: bytes, sink: RequestSink, out: list[Any]) -> int | None:
        """One command line: the common commands straight to ``sink``, others as events."""
        # The commonest line of all, a get of one key, without a split: compiled, startswith
        # and slicing bytes run in C, where split is a generic call that builds a list.
        if line.startswith(b"get ") and len(line) <= 4 + KEY_MAX_LENGTH:
            key = line[4:]
            if key and 32 not in key and 0 not in key:
                return sink.retrieve([key], False, None, out)
        tokens = line.split(b" ") if len(line) <= LONG_LINE else [b""]
        # The fast paths take only lines the general rules would read the same way: single
        # spaces, no NUL, every key within the limit, not long. Anything else goes the long way.
        # 0, not b"\0": for a bytes operand, bytes.__contains__ first fails (and clears) an
        # int conversion, which costs more than the search.
        if _single_spaced(tokens) and 0 not in line:
            command = tokens[0]
            ntokens = len(tokens)
            retrieval = retrieval_kind(command)
            if retrieval >= 0:
                with_cas = bool(retrieval & RETRIEVE_CAS)
                touches = bool(retrieval & RETRIEVE_TOUCH)
                # A line no longer than a key past its command holds no key too long.
                short = len(line) - len(command) <= KEY_MAX_LENGTH + 1
                if not touches:
                    if ntokens > 1 and (short or _keys_fit(tokens)):
                        return sink.retrieve(tokens[1:], with_cas, None, out)
                elif ntokens > 2:
                    exptime = parse_i32(tokens[1])
                    keys = tokens[2:]
                    if exptime is not None and (short or _keys_fit(keys)):
                        return sink.retrieve(keys, with_cas, exptime, out)
            elif len(command) == 2 and command[0] == 109:  # m?: mg, ms, md
                served = self._serve_meta(command[1], tokens, ntokens, sink, out)
                if served != _GENERAL:
                    return served
            elif ntokens <= MAX_TOKENS:
                noreply = tokens[-1] == b"noreply"
                if ntokens == 5 + noreply and _fast_storage(command):
                    return self._serve_storage(command, tokens, noreply, sink, out)
                if ntokens > 1 and len(tokens[1]) <= KEY_MAX_LENGTH:
                    if command == b"delete" and ntokens == 2 + noreply:
                        return sink.delete(tokens[1], noreply, out)
                    if command in (b"incr", b"decr") and ntokens == 3 + noreply:
                        delta = parse_u64(tokens[2])
                        if delta is not None:
                            return sink.arithmetic(
                                command == b"incr", tokens[1], delta, noreply, out
                            )
                    elif command == b"touch" and ntokens == 3 + noreply:
                        exptime = parse_i32(tokens[2])
                        if exptime is not None:
                            return sink.touch(tokens[1], exptime, noreply, out)
        nul = line.find(b"\0")
        if nul >= 0:  # memcached treats the line as a C string
            line = line[:nul]
        event = self._parse_line(line)
        if event is NEED_DATA:
            return None
        outcome = sink.event(event, out)  # type: ignore[arg-type]
        return outcome if outcome or sink.plain() else NOT_PLAIN

    def _serve_storage(
        self, command: bytes, tokens: list[bytes], noreply: bool, sink: RequestSink, out: list[Any]
    ) -> int | None:
        key = tokens[1]
        flags = parse_u32(tokens[2])
        exptime = parse_i32(tokens[3])
        nbytes = parse_i32(tokens[4])
        if (
            len(key) > KEY_MAX_LENGTH
            or flags is None
            or exptime is None
            or nbytes is None
            or nbytes < 0
            or not self._fits(len(key), flags, nbytes)
        ):
            event = self._storage(command, tokens, len(tokens) + 1)  # the general rules
            if event is NEED_DATA:
                return None
            return sink.event(event, out)  # type: ignore[arg-type]
        buf = self._buf
        if len(buf) < nbytes + 2:
            self._pending = (command, key, flags, exptime, nbytes, 0, noreply)
            return None
        # Read in place: one copy of the value, as _read_data_block makes.
        value = buf.data_block(nbytes)
        buf.skip(nbytes + 2)
        if value is None:
            return sink.event(ev.ErrorReply(BAD_DATA_CHUNK, noreply), out)
        return sink.store(command, key, flags, exptime, value, noreply, out)

    def _serve_meta(
        self, letter: int, tokens: list[bytes], ntokens: int, sink: RequestSink, out: list[Any]
    ) -> int | None:
        """mg, ms and md with only common flags, straight to ``sink``; else _GENERAL.

        Takes only what the general rules would answer the same way: a key within the limit,
        fewer tokens than memcached's flag limit, each flag once, an opaque within its limit;
        for ms a sane length, a value that fits, and its whole data block, well ended.
        """
        if ntokens < 2 or ntokens >= MAX_META_TOKENS or len(tokens[1]) > KEY_MAX_LENGTH:
            return _GENERAL
        if letter == 103:  # mg
            first, allowed = 2, _MG_FAST
        elif letter == 115:  # ms
            first, allowed = 3, _MS_FAST
            if ntokens < 3:
                return _GENERAL
        elif letter == 100:  # md
            first, allowed = 2, _MD_FAST
        else:
            return _GENERAL
        seen = 0
        order = b""
        opaque = b""
        exptime = flags = 0
        for i in range(first, ntokens):
            token = tokens[i]
            flag = token[0]
            bit = 1 << (flag & 63)
            if seen & bit or flag >= 127:
                return _GENERAL
            seen |= bit
            if flag == 79:  # O
                if len(token) > MAX_OPAQUE_LENGTH:
                    return _GENERAL
                opaque = token
                order += b"O"
            elif len(token) == 1 and flag in allowed:
                if flag not in _MG_OPTIONS:
                    order += token
            elif letter == 115 and flag == 84:  # ms T
                number = parse_i32(token[1:])
                if number is None:
                    return _GENERAL
                exptime = number
            elif letter == 115 and flag == 70:  # ms F
                number = parse_u32(token[1:])
                if number is None:
                    return _GENERAL
                flags = number
            else:
                return _GENERAL
        key = tokens[1]
        quiet = bool(seen & _BIT_Q)
        if letter == 103:
            return sink.meta_get(
                key, order, opaque, bool(seen & _BIT_V), quiet, bool(seen & _BIT_U), out
            )
        if letter == 100:
            return sink.meta_delete(key, quiet, order, opaque, out)
        nbytes = parse_i32(tokens[2])
        if (
            nbytes is None
            or not 0 <= nbytes <= MAX_DATA_LENGTH
            or not self._fits(len(key), flags, nbytes)
        ):
            return _GENERAL
        buf = self._buf
        if len(buf) < nbytes + 2:
            return _GENERAL  # the general path waits for the data block
        value = buf.data_block(nbytes)
        if value is None:
            return _GENERAL
        buf.skip(nbytes + 2)
        return sink.meta_set(key, value, flags, exptime, quiet, order, opaque, out)
