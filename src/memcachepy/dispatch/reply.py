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
from memcachepy.protocol import events
from memcachepy.store.cache import Cache

Reply = bytes | bytearray | memoryview
"""A piece of reply; slices of slab memory are passed along without another copy."""


class ReplyStream:
    """A reply too long to build at once, answered a bounded slice at a time.

    The handler that starts one answers its first slice and ``Outcome.MORE`` with an
    ``events.Resume`` holding it as the remainder; the connection sends what is queued
    (and waits while its reader is slow) before handing the Resume back for the next
    slice. So the reply's memory is one slice, and other connections are served between
    slices.
    """

    def step(self, out: list[Reply]) -> bool:
        """Append the next slice to ``out``; True once the reply is complete."""
        raise NotImplementedError


class DispatchContext(Protocol):
    """What the meta and admin handlers use of the text dispatcher that owns them."""

    @property
    def settings(self) -> Settings: ...

    @property
    def cache(self) -> Cache: ...

    @property
    def counters(self) -> ServerCounters: ...

    # What a handler answering Outcome.MORE leaves to be handed back (a multi-get's rest,
    # a stream's events.Resume).
    remainder: events.Retrieve | events.Resume | None
