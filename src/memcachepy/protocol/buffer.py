"""The receive buffer shared by the text and binary parsers.

Bytes arrive in arbitrary pieces; a parser consumes them from the front. Consumed bytes
are dropped lazily, on the next :meth:`ReceiveBuffer.feed`, so that taking many small
requests out of one read costs no copying. Like h11's buffer, it remembers how far it
already searched for a line ending, so a line arriving a byte at a time is scanned once
in all, not once per byte.
"""

from __future__ import annotations

from typing import Final

from librt.strings import read_i64_le
from mypy_extensions import i64

# take_line copies a read to bytes only up to this size: a longer buffer (a long get line)
# is cut line by line, so that it is never held three times.
_COPY_MAX: Final = 64 * 1024
# How far take_line looks for a newline eight bytes at a time before it asks bytes.find:
# most request lines are short, and compiled, a call of find costs as much as scanning
# several dozen bytes in C.
_SCAN: Final = 64
_NEWLINES: Final[i64] = 0x0A0A0A0A0A0A0A0A
_ONES: Final[i64] = 0x0101010101010101
_HIGHS: Final[i64] = -0x7F7F7F7F7F7F7F80  # 0x8080808080808080 as a signed 64-bit int


def find_newline(data: bytes, at: int) -> int:
    """``data.find(b"\\n", at)``: the first eight-byte words are tested for a newline
    without a call (a zero byte of ``word ^ 0x0A...`` is a newline), the rest by find."""
    n: i64 = len(data)
    i: i64 = at
    stop: i64 = min(n, i + _SCAN)
    while i + 8 <= stop:
        word: i64 = read_i64_le(data, i) ^ _NEWLINES
        if (word - _ONES) & ~word & _HIGHS:
            break  # a newline in these eight bytes
        i += 8
    while i < stop:
        if data[i] == 10:
            return i
        i += 1
    if i >= n:
        return -1
    return data.find(b"\n", i)


class ReceiveBuffer:
    """Received, unconsumed bytes: ``data[pos:]``.

    ``data`` and ``pos`` are public so that a parser's hot path can read a header in
    place (``struct.unpack_from(buf.data, buf.pos)``) before deciding what to take.

    ``data`` is the ``bytes`` of the last read while everything before it was consumed:
    the common case, where a read holds whole requests, costs no copy at all, and lines
    are slices of bytes (mypyc cuts those in C). Only a request left unfinished by a read
    makes ``data`` a ``bytearray`` that gathers what follows.
    """

    __slots__ = ("data", "pos", "_scanned", "_lines")

    def __init__(self) -> None:
        self.data: bytes | bytearray = b""
        self.pos = 0  # start of unconsumed data
        self._scanned = 0  # bytes after pos already known to hold no newline
        # ``bytes(data)``, made by the first take_line after a bytearray's data changed
        # (None: not yet); ``data`` itself while that is bytes.
        self._lines: bytes | None = b""

    def __len__(self) -> int:
        return len(self.data) - self.pos

    def feed(self, data: bytes) -> None:
        """Append bytes read from the client."""
        held = self.data
        pos = self.pos
        if pos >= len(held) and type(data) is bytes and len(data) <= _COPY_MAX:
            self.data = self._lines = data  # all consumed: the read itself is the buffer
            self.pos = self._scanned = 0
            return
        if isinstance(held, bytearray):
            gathered = held
            if pos:
                del gathered[:pos]
        else:
            gathered = bytearray(held[pos:])  # what is left of a request, and its rest
        gathered += data
        self.data = gathered
        self.pos = 0
        self._lines = None

    def clear(self) -> None:
        """Drop everything (the connection is closing)."""
        self.data = self._lines = b""
        self.pos = self._scanned = 0

    def skip(self, count: int) -> int:
        """Discard up to ``count`` bytes; return how many were there to discard."""
        taken = min(count, len(self.data) - self.pos)
        self.pos += taken
        return taken

    def take(self, count: int) -> bytes | None:
        """The next ``count`` bytes, consumed; None (nothing consumed) until all are here."""
        start = self.pos
        if len(self.data) - start < count:
            return None
        self.pos = start + count
        self._scanned = 0
        return bytes(self.data[start : self.pos])

    def data_block(self, count: int) -> bytes | None:
        """The next ``count`` bytes, not consumed, if ``\\r\\n`` follows them (else None);
        the caller has checked that ``count + 2`` bytes are here."""
        data = self.data
        start = self.pos
        end = start + count
        if isinstance(data, bytes):  # compiled: indexing and slicing bytes run in C
            if data[end] != 13 or data[end + 1] != 10:
                return None
            return data[start:end]
        if data[end] != 13 or data[end + 1] != 10:
            return None
        return bytes(data[start:end])

    def peek(self, count: int) -> bytes:
        """Up to ``count`` bytes from the front, not consumed."""
        return bytes(self.data[self.pos : self.pos + count])

    def take_long_line(self) -> tuple[bytes | bytearray, int, int] | None:
        """:meth:`take_line` for a line that may be megabytes long, without copying it:
        ``(data, start, end)``, the line being ``data[start:end]`` (before its ``\n``).
        The buffer keeps only what follows the line, so ``data`` is the caller's now.
        None until a ``\n`` arrives."""
        data = self.data
        start = self.pos
        newline = data.find(b"\n", start + self._scanned)
        if newline < 0:
            self._scanned = len(data) - start
            return None
        self.data = self._lines = bytes(data[newline + 1 :])
        self.pos = self._scanned = 0
        return data, start, newline

    def has_line(self) -> bool:
        """Whether a ``\n`` is buffered (a complete line waits to be taken)."""
        return self.data.find(b"\n", self.pos + self._scanned) >= 0

    def take_line(self) -> bytes | None:
        """The bytes before the next ``\\n``, consumed with it; None until a ``\\n`` arrives."""
        lines = self._lines
        if lines is None:
            # Copied only once a whole line is here: a line arriving a byte at a time is
            # still scanned once in all, and copied once.
            data = self.data
            newline = data.find(b"\n", self.pos + self._scanned)
            if newline < 0:
                self._scanned = len(data) - self.pos
                return None
            if len(data) > _COPY_MAX:
                start = self.pos
                self.pos = newline + 1
                self._scanned = 0
                return bytes(data[start:newline])
            lines = self._lines = bytes(data)
        else:
            at = self.pos + self._scanned
            if at >= len(lines):  # all of it taken or scanned: no search (one per read)
                return None
            newline = find_newline(lines, at)
            if newline < 0:
                self._scanned = len(lines) - self.pos
                return None
        start = self.pos
        self.pos = newline + 1
        self._scanned = 0
        return lines[start:newline]
