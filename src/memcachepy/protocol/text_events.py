"""memcached's text (ASCII) protocol, request by request: bytes in, events out.

Feed bytes with :meth:`TextEventParser.receive_data`, take requests with
:meth:`TextEventParser.next_event` until it returns :data:`NEED_DATA`. The rules follow
memcached 1.6.18's proto_text.c, including its quirks: tokens are split on spaces only, a
NUL byte ends the line, token-count errors answer a bare ``ERROR``, and ``noreply`` is only
recognised as the last token.

:class:`memcachepy.protocol.text.TextParser`, what the server uses, is this parser with a
fused fast path for the common requests; anything that path does not take comes here.
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Callable
from typing import Final

from memcachepy.protocol import events as ev
from memcachepy.protocol.buffer import ReceiveBuffer
from memcachepy.protocol.events import NEED_DATA, _NeedData
from memcachepy.protocol.meta import DataBlock, Swallow, parse_meta
from memcachepy.protocol.numbers import parse_i32, parse_u32, parse_u64
from memcachepy.protocol.wire import (
    BAD_DATA_CHUNK,
    BAD_FORMAT,
    CONFIG_TOO_LARGE,
    DELETE_USAGE,
    ERROR,
    INVALID_DELTA,
    INVALID_EXPTIME,
    KEY_MAX_LENGTH,
    LONG_LINE,
    MAX_CONFIG_BLOCK,
    MAX_GET_LINE,
    MAX_LINE_WITHOUT_NEWLINE,
    MAX_TOKENS,
    READ_NO_MEMORY,
    VALUE_NO_MEMORY,
    ItemFits,
    always_fits,
)

# First letters memcached 1.6.18's process_command_ascii branches on before anything else.
_FIRST_LETTER_BRANCHES: Final = frozenset(b"gsacidt")
_STORAGE: Final = frozenset((b"set", b"add", b"replace", b"append", b"prepend"))
#: What :func:`retrieval_kind` answers: the options of a retrieval command, as bits.
RETRIEVE_CAS: Final = 1
RETRIEVE_TOUCH: Final = 2
#: What ``watch`` streams (memcached's log types that memcachepy produces).
WATCH_KINDS: Final = frozenset(("fetchers", "mutations", "evictions", "connevents"))
# The pending data block of a `config set` (compared by identity in _read_data_block).
_CONFIG_SET: Final = b"config set"
# The pending data block of an `ms` (compared by identity; the event waits in _meta_set).
_META_SET: Final = b"ms"
_TOKEN: Final = re.compile(rb"[^ ]+")
# A long line's keys are checked this many bytes per event.
_CHECK_STEP: Final = 256 * 1024
# A key longer than KEY_MAX_LENGTH holds a whole window of this many bytes wherever the
# windows start, so only a window without a space needs a closer look.
_STRIDE: Final = (KEY_MAX_LENGTH + 1) // 2


def scan_long_keys(line: bytes | bytearray, at: int, first: int, end: int) -> int:
    """Check the keys of ``line[first:end]`` for one over KEY_MAX_LENGTH, from ``at``, about
    _CHECK_STEP bytes of them: where to go on from, or -1 if such a key is there.

    A window of _STRIDE bytes with a space in it is passed over with one ``find`` (a scan
    in C), so keys of any length cost about one call per _STRIDE bytes."""
    stop = min(at + _CHECK_STEP, end)
    while at < stop:
        window = min(at + _STRIDE, end)
        if line.find(b" ", at, window) >= 0:
            at = window
            continue
        run_start = max(line.rfind(b" ", first, at) + 1, first)
        run_end = line.find(b" ", window, end)
        if run_end < 0:
            run_end = end
        if run_end - run_start > KEY_MAX_LENGTH:
            return -1
        at = run_end
    return at


def retrieval_kind(command: bytes) -> int:
    """get, gets, gat and gats: which of RETRIEVE_CAS and RETRIEVE_TOUCH they ask; -1 for
    any other command.

    Compares, not a dict: compiled, each is a length check and a memcmp, where a dict
    lookup hashes the command, a new bytes object on every line (the fast path asks it
    for every line, protocol.text).
    """
    if command == b"get":
        return 0
    if command == b"gets":
        return RETRIEVE_CAS
    if command == b"gat":
        return RETRIEVE_TOUCH
    if command == b"gats":
        return RETRIEVE_CAS | RETRIEVE_TOUCH
    return -1


class TextEventParser:
    """Turns a byte stream from one client into request events."""

    __slots__ = (
        "_buf",
        "_pending",
        "_swallow",
        "_item_fits",
        "_fits_nkey",
        "_fits_flags",
        "_fits_nbytes",
        "_fits_last",
        "_closed",
        "_queued",
        "_config_commands",
        "_config_credential",
        "_meta_set",
        "_long",
        "_long_at",
        "_long_shape",
        "_long_end",
        "_long_checked",
        "_growing",
        "_max_get_line",
    )

    def __init__(
        self,
        item_fits: ItemFits = always_fits,
        *,
        config_commands: bool = False,
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
        # A long retrieval line being answered in slices: _long[_long_at:_long_end]; keys are
        # checked up to _long_checked before the first slice is answered.
        self._long: bytes | bytearray = b""
        self._long_at = self._long_end = self._long_checked = 0
        self._growing = False  # a get line past MAX_LINE_WITHOUT_NEWLINE still arriving
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
        return len(self._buf) + self._long_end - self._long_at if self._long else len(self._buf)

    def shed(self) -> bool:
        """Let go of a partial request that the server cannot hold (its bound on what
        connections hold is reached), answering as memcached answers when memory runs out
        at that point: a value still arriving gets VALUE_NO_MEMORY (unless noreply, or q
        for ms), its rest is discarded as it comes and the old value stays, as when
        memcached cannot take a chunk for it; a line still arriving (a long get) gets
        READ_NO_MEMORY and the connection closes, as when memcached cannot grow its read
        buffer. The answers are the next events. False if nothing partial can go (complete
        requests wait, or a line of at most MAX_LINE_WITHOUT_NEWLINE bytes)."""
        buf = self._buf
        pending = self._pending
        if pending is not None:
            command, _, _, _, nbytes, _, noreply = pending
            held = len(buf)
            if held >= nbytes + 2 or command is _CONFIG_SET:  # whole, or small: kept
                return False
            if command is _META_SET:
                assert self._meta_set is not None
                noreply = self._meta_set.quiet
                self._meta_set = None
            self._pending = None
            self._swallow = nbytes + 2 - held
            buf.clear()
            self._queued.append(ev.ErrorReply(VALUE_NO_MEMORY, noreply))
            return True
        if self._swallow or self._closed or self._queued or self._long:
            return False
        if len(buf) <= MAX_LINE_WITHOUT_NEWLINE or buf.has_line():
            return False
        self._closed = True
        buf.clear()
        self._queued.append(ev.ErrorReply(READ_NO_MEMORY))
        self._queued.append(ev.Close("input limit"))
        return True

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
        if self._growing:
            return self._long_line()
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
                self._growing = False
                self._buf.clear()
                self._queued.append(ev.Close("input limit"))
                return ev.ErrorReply(READ_NO_MEMORY)
            self._growing = True
        return NEED_DATA

    def _long_line(self) -> ev.Event | _NeedData:
        """A get line that grew past MAX_LINE_WITHOUT_NEWLINE, once whole: taken from the
        buffer without a copy (megabytes copied at once would stall every other client)."""
        found = self._buf.take_long_line()
        if found is None:
            return self._no_newline()
        self._growing = False
        data, start, end = found
        if end - start > 1 and data[end - 1] == 13:  # strip \r, as next_event
            end -= 1
        nul = data.find(b"\0", start, end)
        if nul >= 0:  # memcached treats the line as a C string
            end = nul
        if end - start > LONG_LINE:
            match = _TOKEN.search(data, start, end)
            if match is not None and retrieval_kind(bytes(match.group())) >= 0:
                return self._long_retrieval(data, start, end)
        line = bytes(data[start:end])
        event = self._parse_line(line)
        if type(event) is ev.ErrorReply:
            return event._replace(request=line)
        return event

    def _long_retrieval(self, line: bytes | bytearray, begin: int, end: int) -> ev.Event:
        """A retrieval line ``line[begin:end]`` longer than LONG_LINE: checked whole, then
        answered in slices.

        The same replies as one Retrieve of every key: a key over the limit anywhere voids
        the reply (so every key is checked before the first is answered), and only the last
        slice ends with END. The check, too, goes a bounded step per event (an empty slice
        meanwhile), so that no one event of a line of megabytes keeps others waiting.
        """
        head = _TOKEN.finditer(line, begin, end)
        command = bytes(next(head).group())
        kind = retrieval_kind(command)
        with_cas = bool(kind & RETRIEVE_CAS)
        touches = bool(kind & RETRIEVE_TOUCH)
        exptime: int | None = None
        match = next(head, None)
        if match is None:
            return ev.ErrorReply(ERROR)
        start = match.start()
        if touches:
            exptime = parse_i32(bytes(match.group()))
            if exptime is None:
                return ev.ErrorReply(INVALID_EXPTIME)
            start = match.end()
        self._long, self._long_at, self._long_end = line, start, end
        self._long_checked = start
        self._long_shape = (with_cas, exptime)
        return self._long_slice()

    def _long_slice(self) -> ev.Event:
        """The next slice of keys of the long retrieval line being answered (an empty one
        while its keys are still being checked)."""
        line, start, end_of_line = self._long, self._long_at, self._long_end
        with_cas, exptime = self._long_shape
        if self._long_checked < end_of_line:
            checked = scan_long_keys(line, self._long_checked, start, end_of_line)
            if checked < 0:
                self._long = b""
                return ev.ErrorReply(BAD_FORMAT, void_pending=True)
            self._long_checked = checked
            if checked < end_of_line:
                return ev.Retrieve([], with_cas, exptime, False)
        end = start + LONG_LINE
        if end >= end_of_line:
            last, end = True, end_of_line
            self._long = b""
        else:
            last = False
            end = line.rfind(b" ", start, end)  # keys are shorter than a slice: one is there
            self._long_at = end + 1
        keys = [key for key in bytes(line[start:end]).split(b" ") if key]
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
            if match is not None and retrieval_kind(match.group()) >= 0:
                return self._long_retrieval(line, 0, len(line))
        tokens = [t for t in line.split(b" ") if t]
        if not tokens or len(tokens[0]) < 2:
            return ev.ErrorReply(ERROR)
        command = tokens[0]
        if command in (b"get", b"gets", b"gat", b"gats", b"bget"):
            return self._retrieval(command, tokens)
        # Non-get commands see at most 23 tokens; more means a wrong token count.
        ntokens = min(len(tokens), MAX_TOKENS) + 1  # memcached counts the terminator too
        rule = _COMMANDS.get(command)
        if rule is None:
            if len(command) == 2 and command[0] == 109:  # m?: memcached's meta branch
                return ev.ErrorReply(ERROR)
            # memcached dispatches on the first letter: an unknown word starting with one
            # of these letters answers ERROR before the HTTP check is ever reached.
            if command[0] in _FIRST_LETTER_BRANCHES:
                return ev.ErrorReply(ERROR)
            last = tokens[min(len(tokens), MAX_TOKENS) - 1]
            if last.startswith(b"HTTP/"):
                self._closed = True
                return ev.Close("http request")
            return ev.ErrorReply(ERROR)
        return rule(self, command, tokens, ntokens)

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
        return ev.Admin(command, tokens[1 : ntokens - 1], ntokens)

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


# How each command word's line is read.
_CommandRule = Callable[[TextEventParser, bytes, list[bytes], int], "ev.Event | _NeedData"]
_COMMANDS: dict[bytes, _CommandRule] = {
    **{name: TextEventParser._storage for name in _STORAGE},
    b"cas": TextEventParser._storage,
    b"delete": TextEventParser._delete,
    b"incr": TextEventParser._arithmetic,
    b"decr": TextEventParser._arithmetic,
    b"touch": TextEventParser._touch,
    b"flush_all": TextEventParser._flush_all,
    b"version": TextEventParser._version,
    b"quit": TextEventParser._quit,
    b"verbosity": TextEventParser._verbosity,
    b"shutdown": TextEventParser._shutdown,
    b"stats": TextEventParser._stats,
    b"cache_memlimit": TextEventParser._memlimit,
    b"config": TextEventParser._config,
    b"watch": TextEventParser._watch,
    **{
        name: TextEventParser._admin
        for name in (b"slabs", b"lru_crawler", b"lru", b"refresh_certs", b"extstore")
    },
    **{name: TextEventParser._meta for name in (b"mg", b"ms", b"md", b"ma", b"mn", b"me")},
}
