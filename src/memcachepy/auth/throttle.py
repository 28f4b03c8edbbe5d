"""How long a connection waits after repeated failed authentications (-Y, -S).

memcached answers every guess at once: one connection pipelining wrong passwords tries
thousands a second. memcachepy answers every failure at once, and from the second on a
connection it reads nothing more from that connection for a delay that doubles from
FIRST_DELAY up to MAX_DELAY (a mistyped password costs nothing). Only that connection
waits: the server goes on serving the others.
"""

from __future__ import annotations

from typing import Final

FIRST_DELAY: Final = 0.01  # seconds, after the second failure on a connection
MAX_DELAY: Final = 1.0


def failure_delay(failures: int) -> float:
    """Seconds to hold a connection after its ``failures``-th failed authentication."""
    if failures < 2:
        return 0.0
    # Doubling stops long before the float could overflow.
    return min(MAX_DELAY, FIRST_DELAY * 2.0 ** min(failures - 2, 32))
