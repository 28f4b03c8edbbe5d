"""memcached's ASCII authentication (``-Y authfile``, 1.5.15+) in front of the text parser.

Until a connection authenticates, the only request understood is
``set <any> <any> <any> <n>\\r\\n<user> <password>\\r\\n``; anything else answers
``CLIENT_ERROR unauthenticated`` and reaches nothing else. Once a set carries valid
credentials (``STORED``), every following byte goes to the ordinary text parser.
The replies and checks follow memcached's try_read_command_asciiauth.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

from memcachepy.protocol import events as ev
from memcachepy.protocol.events import NEED_DATA, _NeedData
from memcachepy.protocol.numbers import parse_u32
from memcachepy.protocol.text import TextParser
from memcachepy.protocol.wire import MAX_LINE_WITHOUT_NEWLINE

UNAUTHENTICATED: Final = b"CLIENT_ERROR unauthenticated\r\n"
BAD_TERMINATION: Final = b"CLIENT_ERROR bad command line termination\r\n"
BAD_TOKEN_FORMAT: Final = b"CLIENT_ERROR bad authentication token format\r\n"
# memcached waits for any announced size; an unauthenticated client gets no more than this.
MAX_CREDENTIALS: Final = 4096

Authenticator = Callable[[bytes, bytes], bool]


class AsciiAuthParser:
    """Wraps a :class:`TextParser`, letting requests through only after authentication."""

    __slots__ = ("_inner", "_check", "_buf", "_expect", "_authenticated", "_closed")

    def __init__(self, inner: TextParser, check: Authenticator) -> None:
        self._inner = inner
        self._check = check
        self._buf = bytearray()
        self._expect = -1  # bytes of the credential block awaited; -1: awaiting a line
        self._authenticated = False
        self._closed = False

    @property
    def authenticated(self) -> bool:
        return self._authenticated

    @property
    def mid_request(self) -> bool:
        return self._inner.mid_request if self._authenticated else self._expect >= 0

    @property
    def buffered(self) -> int:
        return self._inner.buffered if self._authenticated else len(self._buf)

    def requeue(self, event: ev.Event) -> None:
        self._inner.requeue(event)

    def receive_data(self, data: bytes) -> None:
        if self._authenticated:
            self._inner.receive_data(data)
        else:
            self._buf += data

    def next_event(self) -> ev.Event | _NeedData:
        if self._authenticated:
            return self._inner.next_event()
        if self._closed:
            return NEED_DATA
        if self._expect < 0:
            return self._read_command()
        return self._read_credentials()

    def _read_command(self) -> ev.Event | _NeedData:
        buf = self._buf
        newline = buf.find(b"\n")
        if newline < 0:
            if len(buf) > MAX_LINE_WITHOUT_NEWLINE:
                self._closed = True
                return ev.Close("line too long")
            return NEED_DATA
        line = bytes(buf[:newline])
        del buf[: newline + 1]
        nul = line.find(b"\0")
        if nul >= 0:
            line = line[:nul]
        tokens = [t for t in line.split(b" ") if t]
        size = parse_u32(tokens[4]) if len(tokens) >= 5 else None
        if len(tokens) < 5 or tokens[0] != b"set" or size is None:
            return ev.ErrorReply(UNAUTHENTICATED)
        if size > MAX_CREDENTIALS:
            self._closed = True
            return ev.Close("input limit")
        self._expect = size + 2
        return self._read_credentials()

    def _read_credentials(self) -> ev.Event | _NeedData:
        buf = self._buf
        if len(buf) < self._expect:
            return NEED_DATA
        block = bytes(buf[: self._expect])
        del buf[: self._expect]
        self._expect = -1
        if not block.endswith(b"\r\n"):
            return ev.ErrorReply(BAD_TERMINATION)
        payload = block[:-2]
        nul = payload.find(b"\0")
        if nul >= 0:
            payload = payload[:nul]
        tokens = [t for t in payload.split(b" ") if t]
        if len(tokens) < 2:
            return ev.ErrorReply(BAD_TOKEN_FORMAT)
        if not self._check(tokens[0], tokens[1]):
            return ev.AuthResult(False)
        self._authenticated = True
        rest = bytes(buf)
        buf.clear()
        if rest:
            self._inner.receive_data(rest)
        return ev.AuthResult(True)
