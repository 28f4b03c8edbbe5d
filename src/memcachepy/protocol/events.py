"""Events the text parser produces: one per request, immutable.

NamedTuples rather than frozen dataclasses: they are just as immutable and
slotted, and several times cheaper to create, which matters at one event per
request on the hot path.
"""

from __future__ import annotations

from typing import Any, Final, NamedTuple


class _NeedData:
    __slots__ = ()

    def __repr__(self) -> str:
        return "NEED_DATA"


NEED_DATA: Final = _NeedData()
"""What every parser's ``next_event`` returns until more bytes arrive."""


class Retrieve(NamedTuple):
    """get / gets / gat / gats. ``exptime`` is None unless the command also touches.

    Only an event with ``last`` ends the reply with END: a long multi-get may be answered
    in parts (see dispatch.Outcome.MORE), and UDP answers each key on its own.
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


class Admin(NamedTuple):
    """``slabs``, ``lru_crawler``, ``lru`` or ``refresh_certs``: the dispatcher reads the
    arguments, as memcached's handlers do. ``ntokens`` counts memcached's way (with the
    command and a terminating empty token)."""

    command: bytes
    args: list[bytes]
    ntokens: int


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
    ``request``: the command line that drew the error, when there was one (``-vv`` echoes
    it as memcached does: ``<fd bogus``).
    """

    line: bytes
    noreply: bool = False
    void_pending: bool = False
    request: bytes | None = None

    # ``request`` is a diagnostic, not part of what the error is (as a dataclass field
    # with compare=False): two errors answering the same line are equal.
    def __eq__(self, other: object) -> bool:
        if isinstance(other, ErrorReply):
            return self[:3] == other[:3]
        return NotImplemented

    def __ne__(self, other: object) -> bool:
        if isinstance(other, ErrorReply):
            return self[:3] != other[:3]
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self[:3])


class AuthResult(NamedTuple):
    """An ASCII-auth credential check: ``STORED`` if ``ok``, else an authentication failure."""

    ok: bool


class Resume(NamedTuple):
    """The rest of a long reply its handler answers in slices (``Outcome.MORE``): handed
    back to the dispatcher once the connection has sent what is queued. ``stream`` is the
    dispatcher's own object; the parser only holds it (Any: mypyc cannot build a compiled
    NamedTuple with an ``object`` field)."""

    stream: Any


class Close(NamedTuple):
    """The connection must be closed with nothing more sent (memcached's conn_closing)."""

    reason: str


# -- meta commands (memcached 1.6: mg ms md ma mn me) -------------------------------------
# ``binary``: the key came base64-encoded (flag b) and is given here decoded; a returned key
# is encoded again. ``order``: the flags that answer or act, in request order (one byte
# each, e.g. b"tTk"). ``opaque``: the O token as sent (with its O), echoed back verbatim.
# ``late_error``: an error line memcached answers only after the flags before it in
# ``order`` took effect (a too-long opaque token in mg/ma).


class MetaGet(NamedTuple):
    """mg: ``ttl`` (T), ``vivify`` (N) and ``recache`` (R) are client exptimes or None."""

    key: bytes
    binary: bool
    order: bytes
    opaque: bytes
    value: bool
    quiet: bool
    no_bump: bool
    ttl: int | None
    vivify: int | None
    recache: int | None
    late_error: bytes | None


class MetaSet(NamedTuple):
    """ms with its data block. ``mode``: one of b"SEAPR"; ``cas``: the C token or None."""

    key: bytes
    binary: bool
    data: bytes
    mode: bytes
    flags: int
    exptime: int
    cas: int | None
    invalidate: bool
    quiet: bool
    order: bytes
    opaque: bytes


class MetaSetTooLarge(NamedTuple):
    """ms whose value can never fit: the old value goes, the data block is discarded."""

    key: bytes


class MetaDelete(NamedTuple):
    """md: ``invalidate`` (I) marks the item stale instead, with ``ttl`` (T) if given."""

    key: bytes
    binary: bool
    cas: int | None
    invalidate: bool
    ttl: int | None
    quiet: bool
    order: bytes
    opaque: bytes


class MetaArithmetic(NamedTuple):
    """ma: ``cas`` 0 means no compare; ``vivify`` (N) creates a miss holding ``initial``."""

    key: bytes
    binary: bool
    incr: bool
    delta: int
    initial: int
    cas: int
    vivify: int | None
    ttl: int | None
    value: bool
    quiet: bool
    order: bytes
    opaque: bytes
    late_error: bytes | None


class MetaNoop(NamedTuple):
    """mn: answers MN (a marker that everything before it was answered)."""


class MetaDebug(NamedTuple):
    """me: an item's metadata in human-readable form."""

    key: bytes
    binary: bool


class Watch(NamedTuple):
    """``watch [fetchers|mutations|evictions|connevents]...``: stream log lines to this
    connection (memcached's default, with no names, is fetchers)."""

    kinds: tuple[str, ...]


Event = (
    Retrieve
    | Store
    | StoreTooLarge
    | Delete
    | Arithmetic
    | Touch
    | FlushAll
    | Version
    | Verbosity
    | Quit
    | Shutdown
    | Stats
    | CacheMemlimit
    | ConfigGet
    | ConfigSet
    | ErrorReply
    | AuthResult
    | Resume
    | Close
    | MetaGet
    | MetaSet
    | MetaSetTooLarge
    | MetaDelete
    | MetaArithmetic
    | MetaNoop
    | MetaDebug
    | Watch
    | Admin
)
