"""What the store's operations answer: result values, as memcached's store_item_type.

The store returns these instead of raising; each protocol's dispatcher maps them to its
reply words (``STORED``, ``NOT_STORED``, ``EXISTS``, ``NOT_FOUND``...).
"""

from __future__ import annotations

from enum import IntEnum


class StoreMode(IntEnum):
    """Which storage command: memcached's set, add, replace, append, prepend and cas."""

    SET = 0
    ADD = 1
    REPLACE = 2
    APPEND = 3
    PREPEND = 4
    CAS = 5


class StoreResult(IntEnum):
    """The outcome of a storage command."""

    STORED = 0
    NOT_STORED = 1
    EXISTS = 2
    NOT_FOUND = 3
    TOO_LARGE = 4
    NO_MEMORY = 5


class DeltaResult(IntEnum):
    """The outcome of incr and decr."""

    OK = 0
    NOT_FOUND = 1
    NON_NUMERIC = 2
    NO_MEMORY = 3
