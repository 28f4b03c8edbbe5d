"""What every dispatcher hands back to the server: reply pieces and an outcome.

Kept apart from the dispatchers so that the text, meta, binary and admin handlers, the
server and the UDP path share these types without importing one another.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final, Protocol

from memcachepy.config import Settings
from memcachepy.ops.counters import ServerCounters
from memcachepy.store.cache import Cache

Reply = bytes | bytearray | memoryview
"""A piece of reply; slices of slab memory are passed along without another copy."""

Handler = Callable[..., int]
"""Answers one event, appending reply pieces to a list; returns an :class:`Outcome`."""


class Outcome:
    """What the connection does after a request besides sending its reply."""

    CONTINUE: Final = 0
    CLOSE: Final = 1  # close after sending what is queued
    MORE: Final = 2  # send what is queued, then handle Dispatcher.take_remainder()
    CLOSE_ERROR: Final = 3  # CLOSE, for the client's fault (watch: reason=error)


class DispatchContext(Protocol):
    """What the meta and admin handlers use of the text dispatcher that owns them."""

    @property
    def settings(self) -> Settings: ...

    @property
    def cache(self) -> Cache: ...

    @property
    def counters(self) -> ServerCounters: ...
