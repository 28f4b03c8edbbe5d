"""Observers of requests that cost nothing while nobody observes.

The dispatcher finds each event's handler in a table keyed by event type.
:class:`RequestHooks` wraps entries of that table in place, and only the entries some
observer wants right now: command logging at ``-vv``, the sampled latency histogram of
``--metrics-port`` and a warm-up's record of deletes. With no observer active the table holds the
dispatcher's own handlers, so the request path is exactly what it is without this module.

A layer is ``layer(event, out, call) -> outcome``: it may look at the event, call ``call``
(the next layer in, or the handler) and look at what was appended to ``out``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, MutableMapping
from typing import Any

log = logging.getLogger("memcachepy")

#: memcached's ``-vvv`` level (below DEBUG): internal detail, full replies.
TRACE = 5
logging.addLevelName(TRACE, "TRACE")


Handler = Callable[[Any, list[Any]], int]
"""Answers one request event, appending reply pieces to the list; returns an outcome
(:class:`memcachepy.protocol.wire.Outcome`). The one definition: the dispatchers' handler
tables, the connection loop and the UDP path all use it."""
Layer = Callable[[Any, list[Any], Handler], int]
Wants = Callable[[type], bool]


def _wrap(layer: Layer, inner: Handler) -> Handler:
    def handler(event: Any, out: list[Any]) -> int:
        return layer(event, out, inner)

    handler.__wrapped__ = inner  # type: ignore[attr-defined]
    return handler


class RequestHooks:
    """Keeps a handler table wrapped by exactly the layers that want each event type.

    Layers are registered once with a ``wants(event_type)`` predicate; call :meth:`refresh`
    whenever an answer may have changed (a warm-up began or ended, the verbosity changed).
    Layers registered first sit innermost, next to the handler.
    """

    def __init__(
        self, table: MutableMapping[type, Handler], on_change: Callable[[], None] | None = None
    ) -> None:
        self._table = table
        self._on_change = on_change  # told after each rewrapping of the table
        self._base = dict(table)
        self._layers: dict[str, tuple[Layer, Wants]] = {}
        self._chains: dict[type, tuple[str, ...]] = {}  # layer names now wrapping each type

    def add(self, name: str, layer: Layer, wants: Wants) -> None:
        """Register (or replace) a layer; it takes effect at the next :meth:`refresh`."""
        self._layers[name] = (layer, wants)

    def base(self, event_type: type) -> Handler:
        """The unwrapped handler for ``event_type``."""
        return self._base[event_type]

    def set_base(self, event_type: type, handler: Handler) -> None:
        """Replace a handler (wrapped like the others from the next :meth:`refresh`)."""
        self._base[event_type] = handler
        self._table[event_type] = handler
        self._chains.pop(event_type, None)
        if self._on_change is not None:
            self._on_change()

    def refresh(self) -> None:
        """Rebuild the table entries whose set of wanting layers changed."""
        for event_type, handler in self._base.items():
            chain = tuple(name for name, (_, wants) in self._layers.items() if wants(event_type))
            if self._chains.get(event_type, ()) == chain and (
                chain or self._table.get(event_type) is handler
            ):
                continue
            for name in chain:
                handler = _wrap(self._layers[name][0], handler)
            self._table[event_type] = handler
            self._chains[event_type] = chain
        if self._on_change is not None:
            self._on_change()

    def wrapped(self, event_type: type) -> bool:
        """Whether some layer wraps ``event_type`` now."""
        return bool(self._chains.get(event_type))
