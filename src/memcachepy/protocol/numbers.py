"""The one place that parses numbers from protocol tokens.

memcached parses every number with C's strtoul/strtol family wrapped in its
``safe_strto*`` helpers (util.c). Their quirks are part of the wire contract,
so they are copied on purpose: leading whitespace and a leading ``+`` are
accepted, any whitespace byte may end the number (and what follows it is
ignored), ``-`` wraps for unsigned fields unless the result looks negative,
and 32-bit fields keep only the low bits of a 64-bit parse.
"""

from __future__ import annotations

import re
from typing import Final

_NUMBER = re.compile(rb"[ \t\n\v\f\r]*([+-]?)([0-9]+)")
_SPACE = frozenset(b" \t\n\v\f\r")
# b"-" as an int: ``int in bytes`` is a memchr, ``bytes in bytes`` first fails an int conversion.
_MINUS: Final = 0x2D
_U64 = 1 << 64
_I64_MAX = (1 << 63) - 1


def _strto(token: bytes) -> tuple[bool, int] | None:
    """(negative, magnitude) if ``token`` starts with a number that ends cleanly, else None."""
    match = _NUMBER.match(token)
    if match is None:
        return None
    end = match.end()
    if end < len(token) and token[end] not in _SPACE:
        return None
    return match.group(1) == b"-", int(match.group(2))


def _digits(token: bytes) -> int:
    """The value of 1 to 9 ASCII digits (what flags, exptimes and lengths nearly always
    are), or -1 for anything else, which takes the general parse. Compiled, the loop is
    native: isdigit() and int() are each a generic call with more work than the digits."""
    n = len(token)
    if n == 0 or n > 9:
        return -1
    value = 0
    for i in range(n):
        c = token[i]
        if c < 48 or c > 57:
            return -1
        value = value * 10 + c - 48
    return value


def parse_u64(token: bytes) -> int | None:
    """memcached's safe_strtoull: an unsigned 64-bit number or None."""
    small = _digits(token)
    if small >= 0:
        return small
    if token.isdigit() and len(token) < 20:  # the common case, exact for strtoull too
        return int(token)
    parsed = _strto(token)
    if parsed is None:
        return None
    negative, magnitude = parsed
    if magnitude >= _U64:
        return None  # strtoull sets ERANGE
    value = (-magnitude) % _U64 if negative else magnitude
    # Only a result that would be negative as a signed number is checked for '-'.
    if value > _I64_MAX and b"-" in token:
        return None
    return value


def parse_u32(token: bytes) -> int | None:
    """memcached's safe_strtoul: parsed as 64 bits, then truncated to 32 (so large flags wrap)."""
    small = _digits(token)  # the common case: below 2**32 already
    if small >= 0:
        return small
    value = parse_u64(token)
    return None if value is None else value & 0xFFFFFFFF


def parse_i32(token: bytes) -> int | None:
    """memcached's safe_strtol: a signed 64-bit parse truncated to a signed 32-bit value."""
    small = _digits(token)  # the common case: fits an int32 already
    if small >= 0:
        return small
    parsed = _strto(token)
    if parsed is None:
        return None
    negative, magnitude = parsed
    value = -magnitude if negative else magnitude
    if not -(1 << 63) <= value <= _I64_MAX:
        return None  # strtol sets ERANGE
    value &= 0xFFFFFFFF
    return value - (1 << 32) if value & 0x80000000 else value


def parse_stored_u64(data: bytes) -> int | None:
    """The number held in a value for incr/decr, as memcached reads it (None: non-numeric)."""
    if _MINUS in data:
        return None
    match = _NUMBER.match(data)
    if match is None:
        return None
    end = match.end()
    if end < len(data) and data[end] not in _SPACE:
        return None
    value = int(match.group(2))
    return value if value < _U64 else None
