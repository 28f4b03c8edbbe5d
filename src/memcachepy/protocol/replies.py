"""Counting reply bytes: what the output bounds of the parser, the dispatcher and the
connection loop measure.

Each bound adds each reply piece once, as it comes (summing the whole output at every
check was quadratic in a read's replies).
"""

from __future__ import annotations

from typing import Any

from mypy_extensions import i64


def reply_bytes(out: list[Any], start: int) -> int:
    """The bytes of ``out[start:]``."""
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
