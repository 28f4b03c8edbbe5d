"""Events the text parser produces: one per request, immutable.

NamedTuples rather than frozen dataclasses: they are just as immutable and
slotted, and several times cheaper to create, which matters at one event per
request on the hot path.
"""

from __future__ import annotations

from typing import Final, NamedTuple


class _NeedData:
    __slots__ = ()

    def __repr__(self) -> str:
        return "NEED_DATA"


NEED_DATA: Final = _NeedData()
"""What every parser's ``next_event`` returns until more bytes arrive."""


class Retrieve(NamedTuple):
    """get / gets / gat / gats. ``exptime`` is None unless the command also touches.

    A multi-get of many keys arrives as several events of a few keys each; only the
    ``last`` one ends the reply with END. The server can then send (and wait for a slow
    reader) between them instead of building a reply of unbounded size.
    """

    keys: list[bytes]
    with_cas: bool
    exptime: int | None
    last: bool = True


class Store(NamedTuple):
    """set / add / replace / append / prepend / cas with its complete data block."""

    command: bytes
    key: bytes
    flags: int
    exptime: int
    data: bytes
    cas_unique: int
    noreply: bool


class StoreTooLarge(NamedTuple):
    """A storage command whose value can never fit; its data block is discarded unread."""

    command: bytes
    key: bytes
    noreply: bool


class Delete(NamedTuple):
    key: bytes
    noreply: bool


class Arithmetic(NamedTuple):
    """incr (``incr=True``) or decr."""

    incr: bool
    key: bytes
    delta: int
    noreply: bool


class Touch(NamedTuple):
    key: bytes
    exptime: int
    noreply: bool


class FlushAll(NamedTuple):
    """``delay`` is None when the delay token is not a number."""

    delay: int | None
    noreply: bool


class Version(NamedTuple):
    pass


class Verbosity(NamedTuple):
    level: int
    noreply: bool


class Quit(NamedTuple):
    pass


class Shutdown(NamedTuple):
    """``shutdown`` (``graceful=False``) or ``shutdown graceful``; ``mode`` is any other token."""

    graceful: bool
    mode: bytes | None


class Stats(NamedTuple):
    """``stats`` with its arguments (empty for the general statistics)."""

    args: list[bytes]


class CacheMemlimit(NamedTuple):
    megabytes: int
    noreply: bool


class ConfigGet(NamedTuple):
    """``config get <key>`` (ElastiCache Auto Discovery asks ``config get cluster``)."""

    key: bytes


class ConfigSet(NamedTuple):
    """``config set <key> <flags> <bytes> [<credential>]`` with its complete data block."""

    key: bytes
    flags: int
    data: bytes
    credential: bytes | None


class ErrorReply(NamedTuple):
    """The request was malformed: answer ``line`` (already ending in CRLF) unless ``noreply``.

    ``void_pending``: replies queued but not yet sent are dropped first, as memcached
    does for a multi-get with a bad key (it culls every unsent response).
    """

    line: bytes
    noreply: bool = False
    void_pending: bool = False


class AuthResult(NamedTuple):
    """An ASCII-auth credential check: ``STORED`` if ``ok``, else an authentication failure."""

    ok: bool


class Close(NamedTuple):
    """The connection must be closed with nothing more sent (memcached's conn_closing)."""

    reason: str


Event = (
    Retrieve | Store | StoreTooLarge | Delete | Arithmetic | Touch | FlushAll | Version
    | Verbosity | Quit | Shutdown | Stats | CacheMemlimit | ConfigGet | ConfigSet | ErrorReply
    | AuthResult | Close
)
