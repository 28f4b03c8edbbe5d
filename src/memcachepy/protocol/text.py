"""memcached's text (ASCII) protocol as a sans-I/O parser.

Feed bytes with :meth:`TextParser.receive_data`, take requests with
:meth:`TextParser.next_event` until it returns :data:`NEED_DATA`. The rules
follow memcached 1.6.18's proto_text.c, including its quirks: tokens are
split on spaces only, a NUL byte ends the line, token-count errors answer a
bare ``ERROR``, and ``noreply`` is only recognised as the last token.
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Callable
from typing import Any, Final

from mypy_extensions import i64, mypyc_attr

from memcachepy.protocol import events as ev
from memcachepy.protocol.buffer import ReceiveBuffer
from memcachepy.protocol.events import NEED_DATA, _NeedData
from memcachepy.protocol.meta import (
    MAX_DATA_LENGTH,
    MAX_META_TOKENS,
    MAX_OPAQUE_LENGTH,
    DataBlock,
    Swallow,
    parse_meta,
)
from memcachepy.protocol.numbers import parse_i32, parse_u32, parse_u64

KEY_MAX_LENGTH: Final = 250
# memcached closes a connection whose pending line passes this without a newline,
# unless it is a get/gets (multi-gets of thousands of keys are legal).
MAX_LINE_WITHOUT_NEWLINE: Final = 2048
# A get/gets line may be long (150,000 keys is 1.5 MB). memcached holds the whole line, as
# it must: one bad key anywhere voids the reply, so nothing can be answered before the
# newline. It grows its buffer until malloc fails, then answers READ_NO_MEMORY and closes;
# here that happens past this many bytes, so one client cannot take all the memory.
MAX_GET_LINE: Final = 64 << 20
# A complete retrieval line longer than this is answered in slices of about this many
# bytes of keys (Retrieve events with last=False but the final one), so that its keys are
# never all Python objects at once: memory stays about the line's size, as memcached's.
LONG_LINE: Final = 64 * 1024
# memcached tokenizes at most 23 tokens of a line (MAX_TOKENS 24 with the terminator).
_MAX_TOKENS: Final = 23



ERROR: Final = b"ERROR\r\n"
BAD_FORMAT: Final = b"CLIENT_ERROR bad command line format\r\n"
BAD_DATA_CHUNK: Final = b"CLIENT_ERROR bad data chunk\r\n"
INVALID_EXPTIME: Final = b"CLIENT_ERROR invalid exptime argument\r\n"
INVALID_DELTA: Final = b"CLIENT_ERROR invalid numeric delta argument\r\n"
TOO_LARGE: Final = b"SERVER_ERROR object too large for cache\r\n"
NO_MEMORY: Final = b"SERVER_ERROR out of memory storing object\r\n"
NON_NUMERIC: Final = b"CLIENT_ERROR cannot increment or decrement non-numeric value\r\n"
DELTA_NO_MEMORY: Final = b"SERVER_ERROR out of memory\r\n"
READ_NO_MEMORY: Final = b"SERVER_ERROR out of memory reading request\r\n"
DELETE_USAGE: Final = (
    b"CLIENT_ERROR bad command line format.  Usage: delete <key> [noreply]\r\n"
)

# First letters memcached 1.6.18's process_command_ascii branches on before anything else.
_FIRST_LETTER_BRANCHES: Final = frozenset(b"gsacidt")

ItemFits = Callable[[int, int, int], bool]
"""(key length, flags, value length) -> whether such an item can ever be stored."""

_STORAGE: Final = frozenset((b"set", b"add", b"replace", b"append", b"prepend"))
#: What ``watch`` streams (memcached's log types that memcachepy produces).
WATCH_KINDS: Final = frozenset(("fetchers", "mutations", "evictions", "connevents"))
# The pending data block of a `config set` (compared by identity in _read_data_block).
_CONFIG_SET: Final = b"config set"
# The pending data block of an `ms` (compared by identity; the event waits in _meta_set).
_META_SET: Final = b"ms"
#: The largest ``config set`` data block read; a larger one is discarded unread.
MAX_CONFIG_BLOCK: Final = 1024 * 1024
CONFIG_TOO_LARGE: Final = b"SERVER_ERROR config too large\r\n"


def _always_fits(nkey: int, flags: int, nbytes: int) -> bool:
    return True


def _keys_fit(tokens: list[bytes]) -> bool:
    """Whether no token is longer than a key may be (a loop: compiled, that is C, where
    ``max(map(len, tokens))`` is two calls of Python builtins)."""
    for token in tokens:
        if len(token) > KEY_MAX_LENGTH:
            return False
    return True


def reply_bytes(out: list[Any], start: int) -> int:
    """The bytes of ``out[start:]``. Output bounds add each reply piece once, as it comes
    (summing the whole output at every check was quadratic in a read's replies)."""
    size: i64 = 0  # native: a multi-get adds a piece a key
    i: i64 = start
    end: i64 = len(out)
    while i < end:
        size += len(out[i])
        i += 1
    return size


def count_replies(out: list[Any], counted: int, queued: int) -> tuple[int, int]:
    """An output bound's running count, brought up to date: (pieces counted, their bytes),
    given that ``queued`` bytes were the first ``counted`` pieces. Should ``out`` have been
    culled meanwhile (an error, out of reply memory), the count starts again; should it
    then grow back past ``counted``, this overcounts, which only sends sooner."""
    pieces = len(out)
    if pieces < counted:
        counted = queued = 0
    return pieces, queued + reply_bytes(out, counted)


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

    def retrieve(self, keys: list[bytes], with_cas: bool, exptime: int | None,
                 out: list[Any]) -> int:
        raise NotImplementedError

    def store(self, command: bytes, key: bytes, flags: int, exptime: int, data: bytes,
              noreply: bool, out: list[Any]) -> int:
        raise NotImplementedError

    def delete(self, key: bytes, noreply: bool, out: list[Any]) -> int:
        raise NotImplementedError

    def arithmetic(self, incr: bool, key: bytes, delta: int, noreply: bool,
                   out: list[Any]) -> int:
        raise NotImplementedError

    def touch(self, key: bytes, exptime: int, noreply: bool, out: list[Any]) -> int:
        raise NotImplementedError

    def meta_get(self, key: bytes, order: bytes, opaque: bytes, value: bool, quiet: bool,
                 no_bump: bool, out: list[Any]) -> int:
        raise NotImplementedError

    def meta_set(self, key: bytes, data: bytes, flags: int, exptime: int, quiet: bool,
                 order: bytes, opaque: bytes, out: list[Any]) -> int:
        raise NotImplementedError

    def meta_delete(self, key: bytes, quiet: bool, order: bytes, opaque: bytes,
                    out: list[Any]) -> int:
        raise NotImplementedError

    def event(self, event: ev.Event, out: list[Any]) -> int:
        raise NotImplementedError

    def plain(self) -> bool:
        """False once an observer wraps the fast-path requests (``verbosity 2``, ``watch``):
        the batch then stops, and the caller goes on one event at a time."""
        raise NotImplementedError


#: What :meth:`TextParser.serve` returns when the replies passed the output bound.
OUTPUT_FULL: Final = -1
#: What :meth:`TextParser.serve` returns when a request made the sink stop being plain.
NOT_PLAIN: Final = -2
_CHECK_PIECES: Final = 8  # replies between two checks of the output bound
_RETRIEVALS: Final = {b"get": (False, False), b"gets": (True, False),
                      b"gat": (False, True), b"gats": (True, True)}
_TOKEN: Final = re.compile(rb"[^ ]+")
_KEY_TOO_LONG: Final = re.compile(rb"[^ ]{%d}" % (KEY_MAX_LENGTH + 1))
_FAST_STORAGE: Final = frozenset((b"set", b"add", b"replace"))
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


class TextParser:
    """Turns a byte stream from one client into request events."""

    __slots__ = ("_buf", "_pending", "_swallow", "_item_fits", "_fits_nkey", "_fits_flags",
                 "_fits_nbytes", "_fits_last", "_closed", "_queued", "_config_commands",
                 "_config_credential", "_meta_set", "_long", "_long_at", "_long_shape",
                 "_max_get_line")

    def __init__(
        self, item_fits: ItemFits = _always_fits, *, config_commands: bool = False,
        max_get_line: int = MAX_GET_LINE,
    ) -> None:
        """``config_commands``: parse ElastiCache's ``config get|set`` (a node started with
        ``--cluster-config``); otherwise ``config`` is an unknown command, as in memcached.
        ``max_get_line``: the longest get line held before READ_NO_MEMORY."""
        self._buf = ReceiveBuffer()
        self._pending: tuple[bytes, bytes, int, int, int, int, bool] | None = None
        self._swallow = 0  # bytes of a rejected data block still to discard
        self._item_fits = item_fits
        # The last shape item_fits was asked about, and its answer (see _fits).
        self._fits_nkey = self._fits_flags = self._fits_nbytes = -1
        self._fits_last = False
        self._closed = False
        self._queued: deque[ev.Event] = deque()  # events put back by requeue()
        self._config_commands = config_commands
        self._config_credential: bytes | None = None
        self._meta_set: ev.MetaSet | None = None  # an ms waiting for its data block
        self._long = b""  # a long retrieval line being answered in slices, from _long_at
        self._long_at = 0
        self._long_shape: tuple[bool, int | None] = (False, None)  # (with_cas, exptime)
        self._max_get_line = max_get_line

    def _fits(self, nkey: int, flags: int, nbytes: int) -> bool:
        """item_fits, with the last answer reused: a client's writes tend to repeat a shape,
        and item_fits is a call through a callable (compiled, a generic call)."""
        if nbytes == self._fits_nbytes and flags == self._fits_flags and nkey == self._fits_nkey:
            return self._fits_last
        fits = self._item_fits(nkey, flags, nbytes)
        self._fits_nkey = nkey
        self._fits_flags = flags
        self._fits_nbytes = nbytes
        self._fits_last = fits
        return fits

    def receive_data(self, data: bytes) -> None:
        """Append bytes read from the client."""
        self._buf.feed(data)

    def requeue(self, event: ev.Event) -> None:
        """Put ``event`` back to be returned next (the unanswered rest of a multi-get)."""
        self._queued.appendleft(event)

    @property
    def mid_request(self) -> bool:
        """Inside a data block (being read or discarded): memcached sends nothing meanwhile."""
        return self._pending is not None or self._swallow > 0

    @property
    def buffered(self) -> int:
        """Bytes received and not yet consumed (a half-sent line or data block, or the rest
        of a long get line being answered)."""
        return len(self._buf) + len(self._long) - self._long_at if self._long else len(self._buf)

    def next_event(self) -> ev.Event | _NeedData:
        """The next complete request, or NEED_DATA until more bytes arrive."""
        if self._queued:
            return self._queued.popleft()
        if self._long:
            return self._long_slice()
        if self._closed:
            return NEED_DATA
        if self._swallow:
            self._swallow -= self._buf.skip(self._swallow)
            if self._swallow:
                return NEED_DATA
        if self._pending is not None:
            return self._read_data_block()
        line = self._buf.take_line()
        if line is None:
            return self._no_newline()
        if len(line) > 1 and line[-1] == 13:  # strip \r, as memcached: only if len > 1
            line = line[:-1]
        nul = line.find(b"\0")
        if nul >= 0:  # memcached treats the line as a C string
            line = line[:nul]
        event = self._parse_line(line)
        if type(event) is ev.ErrorReply:  # kept for -vv, which echoes the line as memcached
            return event._replace(request=line)
        return event

    def serve(self, sink: RequestSink, out: list[Any], budget: int,
              high_water: int) -> tuple[int, int]:
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
            if (self._queued or self._long or self._closed or self._swallow
                    or self._pending is not None):
                event = self.next_event()
                if event is NEED_DATA:
                    break
                outcome = sink.event(event, out)  # type: ignore[arg-type]
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
        if b"" not in tokens and 0 not in line:
            command = tokens[0]
            ntokens = len(tokens)
            retrieval = _RETRIEVALS.get(command)
            if retrieval is not None:
                with_cas, touches = retrieval
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
            elif ntokens <= _MAX_TOKENS:
                noreply = tokens[-1] == b"noreply"
                if command in _FAST_STORAGE and ntokens == 5 + noreply:
                    return self._serve_storage(command, tokens, noreply, sink, out)
                if ntokens > 1 and len(tokens[1]) <= KEY_MAX_LENGTH:
                    if command == b"delete" and ntokens == 2 + noreply:
                        return sink.delete(tokens[1], noreply, out)
                    if command in (b"incr", b"decr") and ntokens == 3 + noreply:
                        delta = parse_u64(tokens[2])
                        if delta is not None:
                            return sink.arithmetic(command == b"incr", tokens[1], delta,
                                                   noreply, out)
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

    def _serve_storage(self, command: bytes, tokens: list[bytes], noreply: bool,
                       sink: RequestSink, out: list[Any]) -> int | None:
        key = tokens[1]
        flags = parse_u32(tokens[2])
        exptime = parse_i32(tokens[3])
        nbytes = parse_i32(tokens[4])
        if (len(key) > KEY_MAX_LENGTH or flags is None or exptime is None or nbytes is None
                or nbytes < 0 or not self._fits(len(key), flags, nbytes)):
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

    def _serve_meta(self, letter: int, tokens: list[bytes], ntokens: int, sink: RequestSink,
                    out: list[Any]) -> int | None:
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
            return sink.meta_get(key, order, opaque, bool(seen & _BIT_V), quiet,
                                 bool(seen & _BIT_U), out)
        if letter == 100:
            return sink.meta_delete(key, quiet, order, opaque, out)
        nbytes = parse_i32(tokens[2])
        if (nbytes is None or not 0 <= nbytes <= MAX_DATA_LENGTH
                or not self._fits(len(key), flags, nbytes)):
            return _GENERAL
        buf = self._buf
        if len(buf) < nbytes + 2:
            return _GENERAL  # the general path waits for the data block
        value = buf.data_block(nbytes)
        if value is None:
            return _GENERAL
        buf.skip(nbytes + 2)
        return sink.meta_set(key, value, flags, exptime, quiet, order, opaque, out)

    def _no_newline(self) -> ev.Event | _NeedData:
        pending = len(self._buf)
        if pending > MAX_LINE_WITHOUT_NEWLINE:
            head = self._buf.peek(200)
            stripped = head.lstrip(b" ")
            if len(head) - len(stripped) > 100 or not (
                stripped.startswith(b"get ") or stripped.startswith(b"gets ")
            ):
                self._closed = True
                return ev.Close("line too long")
            if pending > self._max_get_line:  # where memcached's realloc would fail
                self._closed = True
                self._buf.clear()
                self._queued.append(ev.Close("input limit"))
                return ev.ErrorReply(READ_NO_MEMORY)
        return NEED_DATA

    def _long_retrieval(self, line: bytes) -> ev.Event | _NeedData:
        """A retrieval line longer than LONG_LINE: checked whole, then answered in slices.

        The same replies as one Retrieve of every key: a key over the limit anywhere voids
        the reply (checked first, in one scan), and only the last slice ends with END.
        """
        head = _TOKEN.finditer(line)
        command = next(head).group()
        with_cas, touches = _RETRIEVALS[command]
        exptime: int | None = None
        match = next(head, None)
        if match is None:
            return ev.ErrorReply(ERROR)
        start = match.start()
        if touches:
            exptime = parse_i32(match.group())
            if exptime is None:
                return ev.ErrorReply(INVALID_EXPTIME)
            start = match.end()
        if _KEY_TOO_LONG.search(line, start) is not None:
            return ev.ErrorReply(BAD_FORMAT, void_pending=True)
        self._long, self._long_at, self._long_shape = line, start, (with_cas, exptime)
        return self._long_slice()

    def _long_slice(self) -> ev.Event:
        """The next slice of keys of the long retrieval line being answered."""
        line, start = self._long, self._long_at
        end = start + LONG_LINE
        if end >= len(line):
            last, end = True, len(line)
            self._long = b""
        else:
            last = False
            end = line.rfind(b" ", start, end)  # keys are shorter than a slice: one is there
            self._long_at = end + 1
        with_cas, exptime = self._long_shape
        keys = [key for key in line[start:end].split(b" ") if key]
        return ev.Retrieve(keys, with_cas, exptime, last)

    def _read_data_block(self) -> ev.Event | _NeedData:
        assert self._pending is not None
        command, key, flags, exptime, nbytes, cas_unique, noreply = self._pending
        block = self._buf.take(nbytes + 2)
        if block is None:
            return NEED_DATA
        self._pending = None
        if not block.endswith(b"\r\n"):
            return ev.ErrorReply(BAD_DATA_CHUNK, noreply)
        data = block[:-2]
        if command is _CONFIG_SET:
            return ev.ConfigSet(key, flags, data, self._config_credential)
        if command is _META_SET:
            assert self._meta_set is not None
            event, self._meta_set = self._meta_set._replace(data=data), None
            return event
        return ev.Store(command, key, flags, exptime, data, cas_unique, noreply)

    def _parse_line(self, line: bytes) -> ev.Event | _NeedData:
        if len(line) > LONG_LINE:
            match = _TOKEN.search(line)
            if match is not None and match.group() in _RETRIEVALS:
                return self._long_retrieval(line)
        tokens = [t for t in line.split(b" ") if t]
        if not tokens or len(tokens[0]) < 2:
            return ev.ErrorReply(ERROR)
        command = tokens[0]
        if command in (b"get", b"gets", b"gat", b"gats", b"bget"):
            return self._retrieval(command, tokens)
        # Non-get commands see at most 23 tokens; more means a wrong token count.
        ntokens = min(len(tokens), _MAX_TOKENS) + 1  # memcached counts the terminator too
        handler = _HANDLERS.get(command)
        if handler is None:
            if len(command) == 2 and command[0] == 109:  # m?: memcached's meta branch
                return ev.ErrorReply(ERROR)
            # memcached dispatches on the first letter: an unknown word starting with one
            # of these letters answers ERROR before the HTTP check is ever reached.
            if command[0] in _FIRST_LETTER_BRANCHES:
                return ev.ErrorReply(ERROR)
            last = tokens[min(len(tokens), _MAX_TOKENS) - 1]
            if last.startswith(b"HTTP/"):
                self._closed = True
                return ev.Close("http request")
            return ev.ErrorReply(ERROR)
        return handler(self, command, tokens, ntokens)

    # -- commands -------------------------------------------------------------

    def _meta(self, command: bytes, tokens: list[bytes], ntokens: int) -> ev.Event | _NeedData:
        """mg ms md ma mn me: parsed by protocol.meta; ms's data block is read here."""
        result = parse_meta(command, tokens, ntokens, self._item_fits)
        if isinstance(result, DataBlock):
            self._meta_set = result.event
            self._pending = (_META_SET, b"", 0, 0, result.nbytes, 0, False)
            return self._read_data_block()
        if isinstance(result, Swallow):
            self._swallow = result.nbytes
            return result.event
        return result

    def _retrieval(self, command: bytes, tokens: list[bytes]) -> ev.Event | _NeedData:
        if len(tokens) < 2:
            return ev.ErrorReply(ERROR)
        exptime: int | None = None
        keys = tokens[1:]
        if command in (b"gat", b"gats"):
            exptime = parse_i32(tokens[1])
            if exptime is None:
                return ev.ErrorReply(INVALID_EXPTIME)
            keys = tokens[2:]
        for key in keys:
            if len(key) > KEY_MAX_LENGTH:  # the line: the flash tier counts aborted reads
                return ev.ErrorReply(BAD_FORMAT, void_pending=True, request=b" ".join(tokens))
        return ev.Retrieve(keys, command in (b"gets", b"gats"), exptime)

    def _storage(self, command: bytes, tokens: list[bytes], ntokens: int) -> ev.Event | _NeedData:
        is_cas = command == b"cas"
        if ntokens not in ((7, 8) if is_cas else (6, 7)):
            return ev.ErrorReply(ERROR)
        noreply = tokens[-1] == b"noreply"
        key = tokens[1]
        if len(key) > KEY_MAX_LENGTH:
            return ev.ErrorReply(BAD_FORMAT, noreply)
        flags = parse_u32(tokens[2])
        exptime = parse_i32(tokens[3])
        nbytes = parse_i32(tokens[4])
        if flags is None or exptime is None or nbytes is None:
            return ev.ErrorReply(BAD_FORMAT, noreply)
        cas_unique = 0
        if is_cas:
            parsed_cas = parse_u64(tokens[5])
            if parsed_cas is None:
                return ev.ErrorReply(BAD_FORMAT, noreply)
            cas_unique = parsed_cas
        if nbytes < 0 or nbytes > 0x7FFFFFFF - 2:
            return ev.ErrorReply(BAD_FORMAT, noreply)
        if not self._fits(len(key), flags, nbytes):
            self._swallow = nbytes + 2
            return ev.StoreTooLarge(command, key, noreply)
        self._pending = (command, key, flags, exptime, nbytes, cas_unique, noreply)
        return self._read_data_block()

    def _delete(self, command: bytes, tokens: list[bytes], ntokens: int) -> ev.Event | _NeedData:
        if not 3 <= ntokens <= 5:
            return ev.ErrorReply(ERROR)
        noreply = False
        if ntokens > 3:
            hold_is_zero = tokens[2] == b"0"
            noreply = tokens[-1] == b"noreply"
            valid = (ntokens == 4 and (hold_is_zero or noreply)) or (
                ntokens == 5 and hold_is_zero and noreply
            )
            if not valid:
                return ev.ErrorReply(DELETE_USAGE, noreply)
        key = tokens[1]
        if len(key) > KEY_MAX_LENGTH:
            return ev.ErrorReply(BAD_FORMAT, noreply)
        return ev.Delete(key, noreply)

    def _arithmetic(
        self, command: bytes, tokens: list[bytes], ntokens: int
    ) -> ev.Event | _NeedData:
        if ntokens not in (4, 5):
            return ev.ErrorReply(ERROR)
        noreply = tokens[-1] == b"noreply"
        key = tokens[1]
        if len(key) > KEY_MAX_LENGTH:
            return ev.ErrorReply(BAD_FORMAT, noreply)
        delta = parse_u64(tokens[2])
        if delta is None:
            return ev.ErrorReply(INVALID_DELTA, noreply)
        return ev.Arithmetic(command == b"incr", key, delta, noreply)

    def _touch(self, command: bytes, tokens: list[bytes], ntokens: int) -> ev.Event | _NeedData:
        if ntokens not in (4, 5):
            return ev.ErrorReply(ERROR)
        noreply = tokens[-1] == b"noreply"
        key = tokens[1]
        if len(key) > KEY_MAX_LENGTH:
            return ev.ErrorReply(BAD_FORMAT, noreply)
        exptime = parse_i32(tokens[2])
        if exptime is None:
            return ev.ErrorReply(INVALID_EXPTIME, noreply)
        return ev.Touch(key, exptime, noreply)

    def _flush_all(self, command: bytes, tokens: list[bytes], ntokens: int) -> ev.Event | _NeedData:
        if not 2 <= ntokens <= 4:
            return ev.ErrorReply(ERROR)
        noreply = tokens[-1] == b"noreply"
        delay: int | None = 0
        if ntokens != (3 if noreply else 2):
            delay = parse_i32(tokens[1])  # None: the dispatcher answers the exptime error
        return ev.FlushAll(delay, noreply)

    def _version(self, command: bytes, tokens: list[bytes], ntokens: int) -> ev.Event | _NeedData:
        return ev.Version()

    def _quit(self, command: bytes, tokens: list[bytes], ntokens: int) -> ev.Event | _NeedData:
        self._closed = True
        return ev.Quit()

    def _verbosity(self, command: bytes, tokens: list[bytes], ntokens: int) -> ev.Event | _NeedData:
        if ntokens not in (3, 4):
            return ev.ErrorReply(ERROR)
        noreply = tokens[-1] == b"noreply"
        level = parse_u32(tokens[1])
        if level is None:
            return ev.ErrorReply(BAD_FORMAT, noreply)
        return ev.Verbosity(level, noreply)

    def _shutdown(self, command: bytes, tokens: list[bytes], ntokens: int) -> ev.Event | _NeedData:
        if ntokens == 2:
            return ev.Shutdown(False, None)
        if ntokens == 3 and tokens[1] == b"graceful":
            return ev.Shutdown(True, None)
        return ev.Shutdown(False, tokens[1])

    def _stats(self, command: bytes, tokens: list[bytes], ntokens: int) -> ev.Event | _NeedData:
        return ev.Stats(tokens[1:])

    def _memlimit(self, command: bytes, tokens: list[bytes], ntokens: int) -> ev.Event | _NeedData:
        if ntokens not in (3, 4):
            return ev.ErrorReply(ERROR)
        noreply = tokens[-1] == b"noreply"
        megabytes = parse_u32(tokens[1])
        if megabytes is None:
            return ev.ErrorReply(ERROR, noreply)
        return ev.CacheMemlimit(megabytes, noreply)

    def _admin(self, command: bytes, tokens: list[bytes], ntokens: int) -> ev.Event | _NeedData:
        """slabs / lru_crawler / lru / refresh_certs; memcached wants 3+ tokens for ``lru``."""
        if command == b"lru" and ntokens < 3:
            return ev.ErrorReply(ERROR)
        return ev.Admin(command, tokens[1:ntokens - 1], ntokens)

    def _watch(self, command: bytes, tokens: list[bytes], ntokens: int) -> ev.Event | _NeedData:
        """``watch [kind]...``: an unknown kind answers ``ERROR``, as memcached does."""
        kinds = tuple(token.decode("ascii", "replace") for token in tokens[1:])
        if any(kind not in WATCH_KINDS for kind in kinds):
            return ev.ErrorReply(ERROR)
        return ev.Watch(kinds or ("fetchers",))

    def _config(self, command: bytes, tokens: list[bytes], ntokens: int) -> ev.Event | _NeedData:
        """``config get <key>``, ``config set <key> <flags> <bytes> [<credential>]``."""
        if not self._config_commands:
            # memcached 1.6.18 has no `config`: ERROR, and a would-be data block is read as
            # commands. (Its unknown words starting with "c" skip the HTTP/ check.)
            return ev.ErrorReply(ERROR)
        if ntokens == 4 and tokens[1] == b"get":
            return ev.ConfigGet(tokens[2])
        if ntokens not in (6, 7) or tokens[1] != b"set":
            return ev.ErrorReply(ERROR)
        key = tokens[2]
        flags = parse_u32(tokens[3])
        nbytes = parse_i32(tokens[4])
        if len(key) > KEY_MAX_LENGTH or flags is None or nbytes is None or nbytes < 0:
            return ev.ErrorReply(BAD_FORMAT)
        if nbytes > MAX_CONFIG_BLOCK:
            self._swallow = nbytes + 2
            return ev.ErrorReply(CONFIG_TOO_LARGE)
        self._config_credential = tokens[5] if ntokens == 7 else None
        self._pending = (_CONFIG_SET, key, flags, 0, nbytes, 0, False)
        return self._read_data_block()


_Handler = Callable[[TextParser, bytes, list[bytes], int], "ev.Event | _NeedData"]
_HANDLERS: dict[bytes, _Handler] = {
    **{name: TextParser._storage for name in _STORAGE},
    b"cas": TextParser._storage,
    b"delete": TextParser._delete,
    b"incr": TextParser._arithmetic,
    b"decr": TextParser._arithmetic,
    b"touch": TextParser._touch,
    b"flush_all": TextParser._flush_all,
    b"version": TextParser._version,
    b"quit": TextParser._quit,
    b"verbosity": TextParser._verbosity,
    b"shutdown": TextParser._shutdown,
    b"stats": TextParser._stats,
    b"cache_memlimit": TextParser._memlimit,
    b"config": TextParser._config,
    b"watch": TextParser._watch,
    **{name: TextParser._admin for name in (b"slabs", b"lru_crawler", b"lru", b"refresh_certs",
                                            b"extstore")},
    **{name: TextParser._meta for name in (b"mg", b"ms", b"md", b"ma", b"mn", b"me")},
}


def value_line(key: bytes, flags: int, nbytes: int) -> bytes:
    """The ``VALUE`` line that precedes a value in get replies (without the CAS)."""
    return b"VALUE %s %d %d\r\n" % (key, flags, nbytes)
