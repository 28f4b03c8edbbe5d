"""memcached's meta commands (``mg ms md ma mn me``): a command line's tokens -> one event.

The text parser tokenizes the line and hands every two-byte command starting with ``m``
here, as memcached 1.6.18's process_command_ascii does. The rules follow its proto_text.c:

- flags are single characters, some followed by a token (``T30``, ``Oopaque``); each may
  appear once; the table :data:`FLAG_TOKENS` says which take a token and how it is read;
- a flag memcached does not know answers ``CLIENT_ERROR invalid flag``, a repeated one (or
  one whose first byte is 127 or more) ``CLIENT_ERROR duplicate flag``; other bad tokens
  leave the error of the last one that failed (``md``/``ma`` answer one fixed line instead);
- flags that answer (``k``, ``c``, ``t``, ``O``...) or act (``T``, ``N``, ``R``) do so in
  request order, so each event carries that order as a bytes string;
- errors are never silenced by ``q``; a rejected ``ms`` swallows its data block unless the
  line itself (key, token count, data length) was malformed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final, NamedTuple

from memcachepy.protocol import events as ev
from memcachepy.protocol.numbers import parse_i32, parse_u32, parse_u64
from memcachepy.protocol.wire import (
    BAD_FORMAT,
    BAD_TOKEN,
    DECODING_KEY,
    DUPLICATE_FLAG,
    ERROR,
    INVALID_FLAG,
    INVALID_OR_DUPLICATE,
    KEY_MAX_LENGTH,
    MA_BAD_MODE,
    MAX_DATA_LENGTH,
    MAX_META_TOKENS,
    MAX_OPAQUE_LENGTH,
    MG_TOO_MANY_FLAGS,
    MS_BAD_MODE,
    OPAQUE_TOO_LONG,
    TOO_MANY_FLAGS,
    ItemFits,
)

# -- flag table -----------------------------------------------------------------------------

# How a flag's token (the bytes after its letter) is read.
_NONE: Final = 0  # no token; anything after the letter is ignored
_I32: Final = 1  # exptime-like (T N R): strtol, int32
_U32: Final = 2  # client flags (F)
_U64: Final = 3  # cas, initial value, delta (C J D)
_MODE: Final = 4  # exactly one mode byte (M)
_BASE64: Final = 5  # b: the key is base64

FLAG_TOKENS: Final[dict[int, tuple[int, bytes | None]]] = {
    # flag: (token kind, error line when the token is bad; None keeps the previous one)
    ord("b"): (_BASE64, DECODING_KEY),
    ord("N"): (_I32, BAD_TOKEN),
    ord("T"): (_I32, BAD_TOKEN),
    ord("R"): (_I32, BAD_TOKEN),
    ord("F"): (_U32, None),
    ord("C"): (_U64, BAD_TOKEN),
    ord("J"): (_U64, b"CLIENT_ERROR invalid numeric initial value\r\n"),
    ord("D"): (_U64, b"CLIENT_ERROR invalid numeric delta value\r\n"),
    ord("M"): (_MODE, b"CLIENT_ERROR incorrect length for M token\r\n"),
    **{flag: (_NONE, None) for flag in b"lOPLkstcfvhuqI"},
}
"""Every flag memcached 1.6.18 accepts on any meta command. Commands ignore the ones
they have no use for (``ms k 1 v`` is fine); anything else is an invalid flag."""

# The flags each command answers or acts on in request order (the rest only set options).
_MG_ORDERED: Final = frozenset(b"TNRstcflhOk")
_MS_ORDERED: Final = frozenset(b"Okc")
_MD_ORDERED: Final = frozenset(b"Ok")
_MA_ORDERED: Final = frozenset(b"ctTNOk")

_MS_MODES: Final = {
    None: b"S",
    ord("S"): b"S",
    ord("E"): b"E",
    ord("A"): b"A",
    ord("P"): b"P",
    ord("R"): b"R",
}
_MA_MODES: Final = {None: True, ord("I"): True, ord("+"): True, ord("D"): False, ord("-"): False}


class _Flags(NamedTuple):
    """A parsed flag set: the key (decoded if ``b``), and what each flag carried."""

    key: bytes
    binary: bool
    present: frozenset[int]
    numbers: dict[int, int]
    mode: int | None


class DataBlock(NamedTuple):
    """ms: read ``nbytes`` + CRLF, then emit ``event`` with the data filled in."""

    nbytes: int
    event: ev.MetaSet


class Swallow(NamedTuple):
    """ms rejected after its data length was read: emit ``event``, discard ``nbytes``."""

    nbytes: int
    event: ev.Event


ParseResult = ev.Event | DataBlock | Swallow


# -- base64 keys (memcached's own decoder is lenient: match it) ---------------------------

_B64_ALPHABET: Final = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
_B64_VALUES: Final = {**{c: i for i, c in enumerate(_B64_ALPHABET)}, ord("="): 0}
_PAD: Final = ord("=")


def decode_key(token: bytes) -> bytes | None:
    """The binary key a ``b`` flag's base64 token stands for, decoded as memcached does.

    Bytes outside the alphabet are skipped; the rest must come in groups of four; the first
    group holding ``=`` ends the key (one or two ``=`` drop as many bytes, more is an
    error). None when memcached would answer "error decoding key".
    """
    symbols = [c for c in token if c in _B64_VALUES]
    if not symbols or len(symbols) % 4:
        return None
    out = bytearray()
    for i in range(0, len(symbols), 4):
        a, b, c, d = (_B64_VALUES[s] for s in symbols[i : i + 4])
        out += bytes(((a << 2 | b >> 4) & 0xFF, (b << 4 | c >> 2) & 0xFF, (c << 6 | d) & 0xFF))
        pad = symbols[i : i + 4].count(_PAD)
        if pad:
            if pad > 2:
                return None
            del out[len(out) - pad :]
            break
    return bytes(out)


# -- the shared flag pre-parse --------------------------------------------------------------


def _preparse(tokens: list[bytes], start: int) -> _Flags | bytes:
    """Read the flags from ``tokens[start:]`` as memcached's _meta_flag_preparse does.

    Returns the flags, or the error line memcached would answer for them.
    """
    key = tokens[1]
    binary = False
    seen: set[int] = set()
    numbers: dict[int, int] = {}
    mode: int | None = None
    error: bytes | None = None
    for token in tokens[start:]:
        flag = token[0]
        if flag >= 127 or flag in seen:
            return DUPLICATE_FLAG
        seen.add(flag)
        spec = FLAG_TOKENS.get(flag)
        if spec is None:
            return INVALID_FLAG
        kind, message = spec
        if kind == _NONE:
            continue
        ok = True
        if kind == _BASE64:
            decoded = decode_key(key)
            ok = decoded is not None
            key = decoded if decoded is not None else b""
            binary = True
        elif kind == _MODE:
            ok = len(token) == 2
            mode = token[1] if ok else None
        else:
            parse = parse_i32 if kind == _I32 else parse_u32 if kind == _U32 else parse_u64
            number = parse(token[1:])
            ok = number is not None
            if number is not None:
                numbers[flag] = number
        if not ok:
            error = message if message is not None else (error or BAD_FORMAT)
    if error is not None:
        return error
    return _Flags(key, binary, frozenset(seen), numbers, mode)


def _ordered(tokens: list[bytes], start: int, wanted: frozenset[int]) -> tuple[bytes, bytes, bool]:
    """(flags of ``wanted`` in request order, the O token or b"", whether it is too long)."""
    order = bytearray()
    opaque = b""
    for token in tokens[start:]:
        flag = token[0]
        if flag in wanted:
            order.append(flag)
            if flag == 79:  # O
                opaque = token
    return bytes(order), opaque, len(opaque) > MAX_OPAQUE_LENGTH


def _cut_at_opaque(order: bytes) -> bytes:
    """The flags that take effect before a too-long opaque token stops the command."""
    return order[: order.index(b"O")]


# -- commands -------------------------------------------------------------------------------


def parse_meta(
    command: bytes, tokens: list[bytes], ntokens: int, item_fits: ItemFits
) -> ParseResult:
    """The event for a two-byte command starting with ``m`` (``ntokens`` as memcached counts)."""
    parser = _COMMANDS.get(command[1])
    if parser is None:
        return ev.ErrorReply(ERROR)
    return parser(tokens, ntokens, item_fits)


def _key_and_flags(
    tokens: list[bytes], ntokens: int, too_many: bytes, flag_error: bytes | None
) -> _Flags | ev.ErrorReply:
    """The checks mg, md and ma begin with, in memcached's order.

    A bad flag answers ``flag_error``, or with None (mg) the preparse's own error line.
    """
    if ntokens < 3:
        return ev.ErrorReply(ERROR)
    if len(tokens[1]) > KEY_MAX_LENGTH:
        return ev.ErrorReply(BAD_FORMAT)
    if ntokens > MAX_META_TOKENS:
        return ev.ErrorReply(too_many)
    flags = _preparse(tokens, 2)
    if isinstance(flags, bytes):
        return ev.ErrorReply(flag_error or flags)
    return flags


def _mg(tokens: list[bytes], ntokens: int, item_fits: ItemFits) -> ParseResult:
    flags = _key_and_flags(tokens, ntokens, MG_TOO_MANY_FLAGS, None)
    if isinstance(flags, ev.ErrorReply):
        return flags
    order, opaque, too_long = _ordered(tokens, 2, _MG_ORDERED)
    late_error = None
    if too_long:
        order, late_error = _cut_at_opaque(order), OPAQUE_TOO_LONG
    present, numbers = flags.present, flags.numbers
    return ev.MetaGet(
        flags.key,
        flags.binary,
        order,
        opaque,
        value=ord("v") in present,
        quiet=ord("q") in present,
        no_bump=ord("u") in present,
        ttl=numbers.get(ord("T")),
        vivify=numbers.get(ord("N")),
        recache=numbers.get(ord("R")),
        late_error=late_error,
    )


def _ms(tokens: list[bytes], ntokens: int, item_fits: ItemFits) -> ParseResult:
    if ntokens < 3:
        return ev.ErrorReply(ERROR)
    if len(tokens[1]) > KEY_MAX_LENGTH or ntokens == 3:
        return ev.ErrorReply(BAD_FORMAT)
    if ntokens > MAX_META_TOKENS:
        return ev.ErrorReply(TOO_MANY_FLAGS)
    nbytes = parse_i32(tokens[2])
    if nbytes is None or not 0 <= nbytes <= MAX_DATA_LENGTH:
        # Rejected before the length is known to be sane: the data line is a command.
        return ev.ErrorReply(BAD_FORMAT)
    swallow = nbytes + 2
    flags = _preparse(tokens, 3)
    if isinstance(flags, bytes):
        return Swallow(swallow, ev.ErrorReply(flags))
    order, opaque, too_long = _ordered(tokens, 3, _MS_ORDERED)
    mode = _MS_MODES.get(flags.mode)
    if mode is None:
        return Swallow(swallow, ev.ErrorReply(MS_BAD_MODE))
    if too_long:
        return Swallow(swallow, ev.ErrorReply(OPAQUE_TOO_LONG))
    numbers = flags.numbers
    client_flags = numbers.get(ord("F"), 0)
    if not item_fits(len(flags.key), client_flags, nbytes):
        return Swallow(swallow, ev.MetaSetTooLarge(flags.key))
    present = flags.present
    return DataBlock(
        nbytes,
        ev.MetaSet(
            flags.key,
            flags.binary,
            b"",
            mode,
            client_flags,
            numbers.get(ord("T"), 0),
            cas=numbers.get(ord("C")),
            invalidate=ord("I") in present,
            quiet=ord("q") in present,
            order=order,
            opaque=opaque,
        ),
    )


def _md(tokens: list[bytes], ntokens: int, item_fits: ItemFits) -> ParseResult:
    flags = _key_and_flags(tokens, ntokens, TOO_MANY_FLAGS, INVALID_OR_DUPLICATE)
    if isinstance(flags, ev.ErrorReply):
        return flags
    order, opaque, too_long = _ordered(tokens, 2, _MD_ORDERED)
    if too_long:
        return ev.ErrorReply(OPAQUE_TOO_LONG)
    present, numbers = flags.present, flags.numbers
    return ev.MetaDelete(
        flags.key,
        flags.binary,
        cas=numbers.get(ord("C")),
        invalidate=ord("I") in present,
        ttl=numbers.get(ord("T")),
        quiet=ord("q") in present,
        order=order,
        opaque=opaque,
    )


def _ma(tokens: list[bytes], ntokens: int, item_fits: ItemFits) -> ParseResult:
    flags = _key_and_flags(tokens, ntokens, TOO_MANY_FLAGS, INVALID_OR_DUPLICATE)
    if isinstance(flags, ev.ErrorReply):
        return flags
    incr = _MA_MODES.get(flags.mode)
    if incr is None:
        return ev.ErrorReply(MA_BAD_MODE)
    order, opaque, too_long = _ordered(tokens, 2, _MA_ORDERED)
    late_error = None
    if too_long:
        order, late_error = _cut_at_opaque(order), OPAQUE_TOO_LONG
    present, numbers = flags.present, flags.numbers
    return ev.MetaArithmetic(
        flags.key,
        flags.binary,
        incr,
        delta=numbers.get(ord("D"), 1),
        initial=numbers.get(ord("J"), 0),
        cas=numbers.get(ord("C"), 0),
        vivify=numbers.get(ord("N")),
        ttl=numbers.get(ord("T")),
        value=ord("v") in present,
        quiet=ord("q") in present,
        order=order,
        opaque=opaque,
        late_error=late_error,
    )


def _mn(tokens: list[bytes], ntokens: int, item_fits: ItemFits) -> ParseResult:
    return ev.MetaNoop()


def _me(tokens: list[bytes], ntokens: int, item_fits: ItemFits) -> ParseResult:
    if ntokens < 3 or len(tokens[1]) > KEY_MAX_LENGTH:
        return ev.ErrorReply(BAD_FORMAT)
    key = tokens[1]
    # Only a 'b' right after the key counts; every other token is ignored.
    binary = ntokens >= 4 and tokens[2] == b"b"
    if binary:
        decoded = decode_key(key)
        if decoded is None:
            return ev.ErrorReply(BAD_FORMAT)
        key = decoded
    return ev.MetaDebug(key, binary)


_COMMANDS: Final[dict[int, Callable[[list[bytes], int, ItemFits], ParseResult]]] = {
    ord("g"): _mg,
    ord("s"): _ms,
    ord("d"): _md,
    ord("a"): _ma,
    ord("n"): _mn,
    ord("e"): _me,
}
