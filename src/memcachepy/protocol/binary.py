"""memcached's binary protocol as a sans-I/O parser, plus the response writers.

Every request and response starts with the same 24-byte header (:class:`Header`); the
body that follows holds the extras, then the key, then the value. Feed bytes with
:meth:`BinaryParser.receive_data` and take requests with :meth:`BinaryParser.next_event`
until it returns :data:`NEED_DATA`.

The rules follow memcached 1.6.18's proto_bin.c, quirks included:

- a request is dispatched as soon as its header, extras and key have arrived; only the
  value of a storage command is read after that, so the body bytes of ``stat`` and the
  touch family beyond the key are parsed as the next request, as memcached does;
- an undefined opcode answers 0x81 and then discards ``body length`` more bytes (counted
  after the key and extras, which memcached has already consumed);
- a key and extras longer than the body answer 0x81 and close; a key over 250 bytes or a
  wrong extras/key/body shape answers 0x04 and closes; a magic byte other than 0x80 closes
  with nothing sent;
- a value that can never be stored answers 0x03 and is discarded unread.

The buffer never holds more than one request: at most :data:`READ_BUFFER_SIZE` bytes while
waiting for a header, its extras and key (memcached's read buffer: a request that needs
more closes the connection once that much has arrived), or one value that fits the item
size limit.
"""

from __future__ import annotations

import struct
from enum import IntEnum
from typing import Final, NamedTuple

from memcachepy.protocol import events as ev
from memcachepy.protocol.buffer import ReceiveBuffer
from memcachepy.protocol.events import NEED_DATA, _NeedData
from memcachepy.protocol.wire import KEY_MAX_LENGTH, ItemFits, always_fits

REQUEST_MAGIC: Final = 0x80
RESPONSE_MAGIC: Final = 0x81
HEADER_SIZE: Final = 24
# memcached's per-connection read buffer: header, extras and key must fit in it.
READ_BUFFER_SIZE: Final = 16384
# An incr/decr ``expiration`` of all ones means "do not create a missing counter".
NO_AUTO_CREATE: Final = 0xFFFFFFFF

_HEADER: Final = struct.Struct(">BBHBBHIIQ")
_I32_LIMIT: Final = 1 << 31


class Opcode(IntEnum):
    """Every opcode memcached 1.6 implements (the quiet forms end in Q)."""

    GET = 0x00
    SET = 0x01
    ADD = 0x02
    REPLACE = 0x03
    DELETE = 0x04
    INCREMENT = 0x05
    DECREMENT = 0x06
    QUIT = 0x07
    FLUSH = 0x08
    GETQ = 0x09
    NOOP = 0x0A
    VERSION = 0x0B
    GETK = 0x0C
    GETKQ = 0x0D
    APPEND = 0x0E
    PREPEND = 0x0F
    STAT = 0x10
    SETQ = 0x11
    ADDQ = 0x12
    REPLACEQ = 0x13
    DELETEQ = 0x14
    INCREMENTQ = 0x15
    DECREMENTQ = 0x16
    QUITQ = 0x17
    FLUSHQ = 0x18
    APPENDQ = 0x19
    PREPENDQ = 0x1A
    TOUCH = 0x1C
    GAT = 0x1D
    GATQ = 0x1E
    SASL_LIST_MECHS = 0x20
    SASL_AUTH = 0x21
    SASL_STEP = 0x22
    GATK = 0x23
    GATKQ = 0x24


class Status(IntEnum):
    OK = 0x00
    KEY_NOT_FOUND = 0x01
    KEY_EXISTS = 0x02
    TOO_LARGE = 0x03
    INVALID_ARGUMENTS = 0x04
    NOT_STORED = 0x05
    NON_NUMERIC = 0x06
    AUTH_ERROR = 0x20
    AUTH_CONTINUE = 0x21
    UNKNOWN_COMMAND = 0x81
    OUT_OF_MEMORY = 0x82


# The body memcached's write_bin_error sends with each status when given no text.
STATUS_TEXT: Final[dict[int, bytes]] = {
    Status.KEY_NOT_FOUND: b"Not found",
    Status.KEY_EXISTS: b"Data exists for key.",
    Status.TOO_LARGE: b"Too large.",
    Status.INVALID_ARGUMENTS: b"Invalid arguments",
    Status.NOT_STORED: b"Not stored.",
    Status.NON_NUMERIC: b"Non-numeric server-side value for incr or decr",
    Status.AUTH_ERROR: b"Auth failure.",
    Status.UNKNOWN_COMMAND: b"Unknown command",
    Status.OUT_OF_MEMORY: b"Out of memory",
}

# Quiet opcodes and the command they are a form of: success replies are suppressed.
QUIET: Final[dict[int, Opcode]] = {
    Opcode.GETQ: Opcode.GET,
    Opcode.GETKQ: Opcode.GETK,
    Opcode.SETQ: Opcode.SET,
    Opcode.ADDQ: Opcode.ADD,
    Opcode.REPLACEQ: Opcode.REPLACE,
    Opcode.DELETEQ: Opcode.DELETE,
    Opcode.INCREMENTQ: Opcode.INCREMENT,
    Opcode.DECREMENTQ: Opcode.DECREMENT,
    Opcode.QUITQ: Opcode.QUIT,
    Opcode.FLUSHQ: Opcode.FLUSH,
    Opcode.APPENDQ: Opcode.APPEND,
    Opcode.PREPENDQ: Opcode.PREPEND,
    Opcode.GATQ: Opcode.GAT,
    Opcode.GATKQ: Opcode.GATK,
}


def base_opcode(opcode: int) -> int:
    """The command a (possibly quiet) opcode stands for."""
    return QUIET.get(opcode, opcode)


class Header(NamedTuple):
    """The 24-byte header. ``status`` is the vbucket id in requests (memcached ignores it)."""

    magic: int
    opcode: int
    key_length: int
    extras_length: int
    data_type: int
    status: int
    body_length: int
    opaque: int
    cas: int

    @classmethod
    def unpack_from(cls, buffer: bytes | bytearray, offset: int = 0) -> Header:
        return cls._make(_HEADER.unpack_from(buffer, offset))

    def pack(self) -> bytes:
        return _HEADER.pack(*self)


# -- events -----------------------------------------------------------------------------


class Request(NamedTuple):
    """A well-formed request of an implemented opcode; ``value`` only for storage commands."""

    header: Header
    extras: bytes
    key: bytes
    value: bytes


class ValueTooLarge(NamedTuple):
    """A storage request whose value can never be stored; the value is discarded unread.

    ``past_buffer``: the value goes on past the bytes received so far. memcached then
    swallows it from the socket, reading no further than its end, and so writes out its
    queued replies (this one's included) before it parses what follows; a value already
    in its buffer is skipped without that pause.
    """

    header: Header
    extras: bytes
    key: bytes
    past_buffer: bool = False


class Reject(NamedTuple):
    """Answer ``status`` with its standard text; ``close`` the connection afterwards.

    ``discarding``: how many bytes after the key the parser is now throwing away.
    """

    header: Header
    status: Status
    close: bool
    discarding: int = 0


Event = Request | ValueTooLarge | Reject | ev.Close


class BinaryProtocolError(Exception):
    """The one error the parser raises: an internal fault, never a client's bytes."""


# -- the shape each opcode's request must have --------------------------------------------


class Body(IntEnum):
    EMPTY = 0  # nothing at all after the header
    EXACT = 1  # exactly the extras and the key
    VALUE = 2  # extras, key, then a value to read
    SWALLOW = 3  # extras, key, then bytes to discard (SASL while SASL is off)
    UNCHECKED = 4  # only extras and key are read; any more is the next request


class Shape(NamedTuple):
    """Allowed extras lengths; key required (True), forbidden (False) or either (None)."""

    extras: tuple[int, ...]
    key: bool | None
    body: Body


_NOTHING = Shape((0,), False, Body.EMPTY)
_KEY_ONLY = Shape((0,), True, Body.EXACT)
_STORE = Shape((8,), True, Body.VALUE)
_CONCAT = Shape((0,), True, Body.VALUE)
_ARITHMETIC = Shape((20,), True, Body.EXACT)
_TOUCH = Shape((4,), True, Body.UNCHECKED)

# proto_bin.c's dispatch_bin_command checks, as data.
SHAPES: Final[dict[int, Shape]] = {
    Opcode.GET: _KEY_ONLY,
    Opcode.GETQ: _KEY_ONLY,
    Opcode.GETK: _KEY_ONLY,
    Opcode.GETKQ: _KEY_ONLY,
    Opcode.SET: _STORE,
    Opcode.SETQ: _STORE,
    Opcode.ADD: _STORE,
    Opcode.ADDQ: _STORE,
    Opcode.REPLACE: _STORE,
    Opcode.REPLACEQ: _STORE,
    Opcode.APPEND: _CONCAT,
    Opcode.APPENDQ: _CONCAT,
    Opcode.PREPEND: _CONCAT,
    Opcode.PREPENDQ: _CONCAT,
    Opcode.DELETE: _KEY_ONLY,
    Opcode.DELETEQ: _KEY_ONLY,
    Opcode.INCREMENT: _ARITHMETIC,
    Opcode.INCREMENTQ: _ARITHMETIC,
    Opcode.DECREMENT: _ARITHMETIC,
    Opcode.DECREMENTQ: _ARITHMETIC,
    Opcode.QUIT: _NOTHING,
    Opcode.QUITQ: _NOTHING,
    Opcode.FLUSH: Shape((0, 4), False, Body.EXACT),
    Opcode.FLUSHQ: Shape((0, 4), False, Body.EXACT),
    Opcode.NOOP: _NOTHING,
    Opcode.VERSION: _NOTHING,
    Opcode.STAT: Shape((0,), None, Body.UNCHECKED),
    Opcode.TOUCH: _TOUCH,
    Opcode.GAT: _TOUCH,
    Opcode.GATQ: _TOUCH,
    Opcode.GATK: _TOUCH,
    Opcode.GATKQ: _TOUCH,
    # Without SASL, memcached answers these 0x81 and discards what follows the key.
    Opcode.SASL_LIST_MECHS: Shape((0,), False, Body.SWALLOW),
    Opcode.SASL_AUTH: Shape((0,), True, Body.SWALLOW),
    Opcode.SASL_STEP: Shape((0,), True, Body.SWALLOW),
}

# With SASL on (-S), the mechanism is the key and the client's data is the value.
SASL_SHAPES: Final[dict[int, Shape]] = {
    **SHAPES,
    Opcode.SASL_LIST_MECHS: Shape((0,), False, Body.EMPTY),
    Opcode.SASL_AUTH: Shape((0,), True, Body.VALUE),
    Opcode.SASL_STEP: Shape((0,), True, Body.VALUE),
}


def _as_c_int(value: int) -> int:
    """A u32 as memcached's ``int`` sees it (lengths past 2 GiB turn negative)."""
    return value - (1 << 32) if value >= _I32_LIMIT else value


class BinaryParser:
    """Turns a byte stream from one binary-protocol client into request events."""

    __slots__ = ("_buf", "_pending", "_swallow", "_item_fits", "_closed", "_shapes")

    def __init__(self, item_fits: ItemFits = always_fits, *, sasl: bool = False) -> None:
        self._shapes = SASL_SHAPES if sasl else SHAPES
        self._buf = ReceiveBuffer()
        self._pending: tuple[Header, bytes, bytes, int] | None = None  # awaiting a value
        self._swallow = 0  # bytes still to discard
        self._item_fits = item_fits
        self._closed = False

    def receive_data(self, data: bytes) -> None:
        """Append bytes read from the client (ignored once the parser has closed)."""
        if self._closed:
            return
        self._buf.feed(data)

    @property
    def mid_request(self) -> bool:
        """Reading or discarding a value: memcached sends nothing meanwhile."""
        return self._pending is not None or self._swallow > 0

    @property
    def buffered(self) -> int:
        """Bytes received and not yet consumed."""
        return len(self._buf)

    @property
    def closed(self) -> bool:
        """The connection must close: nothing more will be parsed."""
        return self._closed

    def next_event(self) -> Event | _NeedData:
        """The next request, or NEED_DATA until more bytes arrive."""
        try:
            return self._next_event()
        except (struct.error, ValueError, IndexError) as exc:  # a bug, not the client's fault
            self._close()
            raise BinaryProtocolError(str(exc)) from exc

    # -- internals -----------------------------------------------------------------------

    def _next_event(self) -> Event | _NeedData:
        if self._closed:
            return NEED_DATA
        if self._swallow:
            self._swallow -= self._buf.skip(self._swallow)
            if self._swallow:
                return NEED_DATA
        if self._pending is not None:
            return self._read_value()
        buf = self._buf
        available = len(buf)
        if available < HEADER_SIZE:
            return NEED_DATA
        header = Header.unpack_from(buf.data, buf.pos)
        if header.magic != REQUEST_MAGIC:
            return self._close("bad magic byte")
        needed = HEADER_SIZE + header.extras_length + header.key_length
        if available < needed:
            if needed > READ_BUFFER_SIZE and available >= READ_BUFFER_SIZE:
                return self._close("header, extras and key exceed the read buffer")
            return NEED_DATA
        buf.skip(HEADER_SIZE)
        extras = buf.take(header.extras_length)
        key = buf.take(header.key_length)
        assert extras is not None and key is not None  # `needed` bytes were there
        return self._dispatch(header, extras, key)

    def _dispatch(self, header: Header, extras: bytes, key: bytes) -> Event | _NeedData:
        nkey, nextras, body = header.key_length, header.extras_length, header.body_length
        if nkey + nextras > body:
            self._close()
            return Reject(header, Status.UNKNOWN_COMMAND, close=True)
        if nkey > KEY_MAX_LENGTH:
            self._close()
            return Reject(header, Status.INVALID_ARGUMENTS, close=True)
        shape = self._shapes.get(header.opcode)
        if shape is None:
            # memcached discards `body length` bytes *after* the key and extras it already
            # consumed; a length past 2 GiB is a negative int there and discards nothing.
            self._swallow = max(_as_c_int(body), 0)
            return Reject(header, Status.UNKNOWN_COMMAND, False, self._swallow)
        if not _fits_shape(shape, nkey, nextras, body):
            self._close()
            return Reject(header, Status.INVALID_ARGUMENTS, close=True)
        if shape.body == Body.SWALLOW:
            self._swallow = max(_as_c_int(body - nkey), 0)
            return Reject(header, Status.UNKNOWN_COMMAND, False, self._swallow)
        if shape.body != Body.VALUE:
            return Request(header, extras, key, b"")
        nvalue = body - nkey - nextras
        if nvalue >= _I32_LIMIT:
            # memcached's int value length turns negative here and it misbehaves (answers
            # 0x03 and reads the value as requests, or hangs): close instead.
            return self._close("value length past 2 GiB")
        flags = int.from_bytes(extras[:4], "big") if nextras == 8 else 0
        if not self._item_fits(nkey, flags, nvalue):
            self._swallow = nvalue
            return ValueTooLarge(header, extras, key, nvalue > len(self._buf))
        self._pending = (header, extras, key, nvalue)
        return self._read_value()

    def _read_value(self) -> Event | _NeedData:
        assert self._pending is not None
        header, extras, key, nvalue = self._pending
        value = self._buf.take(nvalue)
        if value is None:
            return NEED_DATA
        self._pending = None
        return Request(header, extras, key, value)

    def _close(self, reason: str | None = None) -> ev.Close | _NeedData:
        self._closed = True
        self._pending = None
        self._swallow = 0
        self._buf.clear()
        return NEED_DATA if reason is None else ev.Close(reason)


def _fits_shape(shape: Shape, nkey: int, nextras: int, body: int) -> bool:
    if nextras not in shape.extras:
        return False
    if shape.key is not None and (nkey > 0) != shape.key:
        return False
    if shape.body == Body.EMPTY:
        return body == 0
    if shape.body == Body.EXACT:
        return body == nkey + nextras
    return True


# -- writers ----------------------------------------------------------------------------


def response(
    request: Header,
    status: int = Status.OK,
    *,
    extras: bytes = b"",
    key: bytes = b"",
    value: bytes = b"",
    cas: int = 0,
) -> bytes:
    """A whole response frame to ``request`` (its opcode and opaque echoed)."""
    return response_header(request, status, len(extras), len(key), len(value), cas) + (
        extras + key + value
    )


def response_header(
    request: Header, status: int, nextras: int, nkey: int, nvalue: int, cas: int = 0
) -> bytes:
    """Just the 24-byte header of a response; the body is sent after it."""
    return _HEADER.pack(
        RESPONSE_MAGIC,
        request.opcode,
        nkey,
        nextras,
        0,
        status,
        nextras + nkey + nvalue,
        request.opaque,
        cas,
    )


def error_response(request: Header, status: int, text: bytes | None = None) -> bytes:
    """An error frame: the status and its text (memcached's write_bin_error)."""
    return response(request, status, value=STATUS_TEXT[status] if text is None else text)


def request(
    opcode: int,
    key: bytes = b"",
    extras: bytes = b"",
    value: bytes = b"",
    *,
    opaque: int = 0,
    cas: int = 0,
) -> bytes:
    """A request frame (for clients and tests)."""
    header = Header(
        REQUEST_MAGIC,
        opcode,
        len(key),
        len(extras),
        0,
        0,
        len(extras) + len(key) + len(value),
        opaque,
        cas,
    )
    return header.pack() + extras + key + value
