"""What the dispatchers share with the server and one another: the reply piece type, and
the view of the text dispatcher that its meta and admin handlers use.

Kept apart from the dispatchers so that the text, meta, binary and admin handlers, the
server and the UDP path share these types without importing one another. The outcome
codes a handler returns are :class:`memcachepy.protocol.wire.Outcome`; the handler type
is :data:`memcachepy.ops.hooks.Handler`.
"""

from __future__ import annotations

from typing import Protocol

from memcachepy.config import Settings
from memcachepy.ops.counters import ServerCounters
from memcachepy.store.cache import Cache

Reply = bytes | bytearray | memoryview
"""A piece of reply; slices of slab memory are passed along without another copy."""


class DispatchContext(Protocol):
    """What the meta and admin handlers use of the text dispatcher that owns them."""

    @property
    def settings(self) -> Settings: ...

    @property
    def cache(self) -> Cache: ...

    @property
    def counters(self) -> ServerCounters: ...
