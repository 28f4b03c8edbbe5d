"""How the cache wraps stored values, so that a hit is one slice of slab memory."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Framing:
    """How stored values are wrapped: ``prefix(flags, nbytes)`` before, ``suffix`` after.

    A read that asks for the CAS value gets ``cas_format % cas`` spliced into the prefix
    ``cas_at`` bytes before its end (for the text protocol: before the VALUE line's CRLF).

    With ``lead`` the reply is ``lead``, the stored key, prefix, data and suffix: the key,
    stored once, doubles as part of the reply line (text: ``VALUE `` + ``key 0 5\r\n``...),
    which keeps 1M small items in the same slab class as memcached's.
    """

    # A function of the flags and the value's length only, so that the cache may reuse the
    # last prefix it made for a value of the same shape.
    prefix: Callable[[int, int], bytes]
    suffix: bytes
    cas_at: int = 0
    cas_format: bytes = b"%d"
    lead: bytes | None = None


def _no_prefix(flags: int, nbytes: int) -> bytes:
    return b""


NO_FRAMING = Framing(_no_prefix, b"")
