"""``lru_crawler metadump`` against memcached 1.6.18: the same lines, in the same order.

Its lines carry absolute times (last access, expiry) that depend on when each server ran
the script, so they are compared with a tolerance; everything else byte for byte.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest

from .harness import Case, Outcome, Step, differences

TIMES = re.compile(rb"(exp|la)=(\d{9,})")
SLACK = 3  # seconds the two servers' clocks may differ by over one script


def case(case_id: str, *steps: bytes | Step, **options: object) -> Case:
    made = tuple(s if isinstance(s, Step) else Step(s) for s in steps)
    return Case(case_id, made, **options)  # type: ignore[arg-type]


# memcached hands the connection to its crawler thread for a dump and drops whatever else
# arrived in the same read, so each dump is sent alone and read until quiet (no probe).
CASES = [
    # Items settle into COLD within a second in both (HOT keeps at most 20% of a class), so
    # the dump walks one list from its tail: the order items were stored.
    case(
        "metadump-one-class",
        Step(
            b"set a 0 0 1\r\n1\r\nset b 3 1000 2\r\n22\r\nset c%2F:x 0 0 3\r\n333\r\n"
            b"get a\r\ngets b\r\ndelete zz\r\n",
            sync=True,
        ),
        Step(b"lru_crawler metadump all\r\n", pause=1.5, settle=0.3),
        Step(b"lru_crawler metadump 1\r\n", settle=0.3),
        Step(b"lru_crawler metadump 2,3\r\n", settle=0.3),
        Step(b"lru_crawler metadump hash\r\n", settle=0.3),
        Step(b"lru_crawler metadump 0\r\n", settle=0.3),
        fresh=True,
    ),
    case(
        "metadump-skips-expired-and-flushed",
        Step(b"set a 0 1 1\r\n1\r\nset b 0 0 1\r\n2\r\n", sync=True),
        Step(b"lru_crawler metadump all\r\n", pause=2.2, settle=0.3),
        Step(b"flush_all\r\nset c 0 0 1\r\n3\r\n", pause=1.1, sync=True),
        Step(b"lru_crawler metadump all\r\n", pause=1.5, settle=0.3),
        fresh=True,
    ),
    case(
        "metadump-disabled-crawler",
        Step(b"lru_crawler disable\r\n", sync=True),
        Step(b"lru_crawler metadump all\r\n", pause=0.5, settle=0.3),
        fresh=True,
    ),
]


def _times(data: bytes) -> list[int]:
    return [int(m[2]) for m in TIMES.finditer(data)]


@pytest.mark.parametrize("c", [pytest.param(c, id=c.id) for c in CASES])
def test_metadump_like_memcached(
    c: Case, differential: Callable[[Case], tuple[Outcome, Outcome]]
) -> None:
    reference, candidate = differential(c)
    theirs = reference.transcript.normalised()
    ours = candidate.transcript.normalised()
    blank = {conn: TIMES.sub(rb"\1=<time>", data) for conn, data in theirs.items()}
    mine = {conn: TIMES.sub(rb"\1=<time>", data) for conn, data in ours.items()}
    diff = differences(blank, mine)
    assert not diff, diff
    for conn in theirs:
        pairs = zip(_times(theirs[conn]), _times(ours[conn]), strict=True)
        assert all(abs(a - b) <= SLACK for a, b in pairs), (theirs[conn], ours[conn])
