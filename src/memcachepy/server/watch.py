"""``watch``: memcached's log streams, sent to the clients that ask for them.

A client sends ``watch [fetchers] [mutations] [evictions] [connevents]`` (no names: fetchers)
and gets ``OK``; from then on the connection only receives log lines, one per event, in
memcached 1.6.18's format::

    ts=1700000000.123456 gid=7 type=item_get key=foo status=found clsid=1 cfd=12 size=3

Keys are URI-encoded, as memcached writes them. What is produced, and from where:

===========  =====================================  ===================================
kind         lines                                  source
===========  =====================================  ===================================
fetchers     ``item_get`` per key of get/gets/gat/  a :mod:`memcachepy.ops.hooks` layer on
             gats/touch, and for the lookup of      Retrieve, Touch, Store, Delete and
             each store/delete/incr/decr            Arithmetic
mutations    ``item_store`` per set/add/replace/    a layer on Store (a ``noreply``
             append/prepend/cas with its status     request is answered and the answer
                                                    dropped, to learn its status)
evictions    ``eviction`` per item evicted          ``Cache.on_evict``
connevents   ``conn_new``, ``conn_close``           the server's connection task
===========  =====================================  ===================================

Each source is only hooked while a watcher wants it. A watcher whose client reads too slowly
loses lines (its buffer is bounded, as memcached's is) and is told ``skipped=N``. This
module is pure: the server streams the lines (memcachepy.server.service).
"""

from __future__ import annotations

import time
import urllib.parse
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any, Final

from memcachepy.ops.counters import ServerCounters
from memcachepy.ops.current import CURRENT_CONNECTION
from memcachepy.ops.hooks import Handler, RequestHooks
from memcachepy.ops.logs import reply_values
from memcachepy.protocol import events as ev
from memcachepy.protocol.wire import NO_MEMORY, TOO_LARGE, Outcome
from memcachepy.store.cache import Cache
from memcachepy.store.meta import lookup_state, meta_find, meta_item

FETCHERS: Final = "fetchers"
MUTATIONS: Final = "mutations"
EVICTIONS: Final = "evictions"
CONNEVENTS: Final = "connevents"
KINDS: Final = (FETCHERS, MUTATIONS, EVICTIONS, CONNEVENTS)
#: memcached's limit on simultaneous watchers, and its per-watcher buffer (bytes).
WATCHER_LIMIT: Final = 20
WATCHER_BUFFER: Final = 256 * 1024

OK: Final = b"OK\r\n"
TOO_MANY: Final = b"WATCHER_TOO_MANY log watcher limit reached\r\n"
NO_PIPELINE: Final = b"ERROR cannot pipeline other commands before watch\r\n"
NOT_HERE: Final = b"CLIENT_ERROR watch commands not allowed\r\n"

# The requests whose key lookup `watch fetchers` logs.
_FETCHING: Final = (ev.Retrieve, ev.Touch, ev.Store, ev.Delete, ev.Arithmetic)
_LOOKUP_STATUS: Final = ("not_found", "found", "flushed", "expired")  # memcached's was_found

_STORE_STATUS: Final = {
    b"STORED\r\n": "stored",
    b"NOT_STORED\r\n": "not_stored",
    b"EXISTS\r\n": "exists",
    b"NOT_FOUND\r\n": "not_found",
    TOO_LARGE: "too_large",
    NO_MEMORY: "no_memory",
}


class Watcher:
    """One watching connection: what it wants and the lines not yet sent."""

    __slots__ = ("fd", "kinds", "_lines", "_size", "skipped", "wake")

    def __init__(self, fd: int, kinds: Iterable[str]) -> None:
        self.fd = fd
        self.kinds = frozenset(kinds)
        self._lines: deque[bytes] = deque()
        self._size = 0
        self.skipped = 0
        #: Called when a line arrives (the server sets it to wake its streaming task).
        self.wake: Callable[[], None] | None = None

    def push(self, line: bytes) -> bool:
        """Queue a line; False if the buffer is full and it is skipped."""
        if self._size + len(line) > WATCHER_BUFFER:
            self.skipped += 1
            return False
        # The streaming task waits only once it has taken every line: wake it then, not
        # at every line (a wake-up per line per watcher was a large part of watch's cost).
        idle = not self._lines
        if self.skipped:
            note = b"skipped=%d\n" % self.skipped
            self._lines.append(note)
            self._size += len(note)
            self.skipped = 0
        self._lines.append(line)
        self._size += len(line)
        if idle and self.wake is not None:
            self.wake()
        return True

    def take(self) -> list[bytes]:
        """The lines queued so far (and forget them)."""
        lines = list(self._lines)
        self._lines.clear()
        self._size = 0
        return lines


class WatchHub:
    """The watchers of one daemon, and the hooks that feed them."""

    def __init__(
        self,
        cache: Cache,
        hooks: RequestHooks,
        clock: Callable[[], float] = time.time,
        counters: ServerCounters | None = None,
    ) -> None:
        self.cache = cache
        self.hooks = hooks
        # stats' log_watchers, log_watcher_sent and log_watcher_skipped.
        self.counters = counters if counters is not None else ServerCounters()
        self._clock = clock
        self._watchers: dict[int, Watcher] = {}
        self.enabled = True  # -W turns watch off
        self._counts = dict.fromkeys(KINDS, 0)
        self._gid = 0
        hooks.set_base(ev.Watch, self.handle_watch)
        hooks.add(
            "watch-fetchers",
            self._fetchers_layer,
            lambda t: self._counts[FETCHERS] > 0 and t in _FETCHING,
        )
        hooks.add(
            "watch-mutations",
            self._mutations_layer,
            lambda t: self._counts[MUTATIONS] > 0 and t is ev.Store,
        )

    # -- watchers -----------------------------------------------------------------------

    def watching(self, kind: str) -> bool:
        return self._counts[kind] > 0

    def get(self, fd: int) -> Watcher | None:
        return self._watchers.get(fd)

    def handle_watch(self, event: ev.Watch, out: list[Any]) -> int:
        """The ``watch`` command: register this connection; the server then streams to it."""
        fd = CURRENT_CONNECTION.get()
        if fd < 0 or not self.enabled:  # UDP (nothing to stream to), or -W
            out.append(NOT_HERE)
            return Outcome.CONTINUE
        if out:  # replies not yet sent: memcached refuses to mix them with the stream
            out.append(NO_PIPELINE)
            return Outcome.CONTINUE
        if len(self._watchers) >= WATCHER_LIMIT:
            out.append(TOO_MANY)
            return Outcome.CONTINUE
        self.add(fd, event.kinds)
        out.append(OK)
        # The connection stops reading requests: the server sees it in get() and streams.
        return Outcome.CLOSE

    def add(self, fd: int, kinds: Iterable[str]) -> Watcher:
        self.remove(fd)
        watcher = Watcher(fd, kinds)
        self._watchers[fd] = watcher
        self.counters.log_watchers = len(self._watchers)
        self._changed(watcher.kinds, +1)
        return watcher

    def remove(self, fd: int) -> None:
        watcher = self._watchers.pop(fd, None)
        if watcher is not None:
            self.counters.log_watchers = len(self._watchers)
            self._changed(watcher.kinds, -1)

    def _changed(self, kinds: frozenset[str], delta: int) -> None:
        for kind in kinds:
            self._counts[kind] += delta
        self.cache.on_evict = self._on_evict if self._counts[EVICTIONS] else None
        self.hooks.refresh()

    def emit(self, kind: str, body: str) -> None:
        """Queue one log line (``type=... key=...``) for every watcher of ``kind``."""
        self._gid += 1
        now = self._clock()
        line = b"ts=%d.%06d gid=%d %s\n" % (
            int(now),
            int(now % 1 * 1_000_000),
            self._gid,
            body.encode("ascii", "replace"),
        )
        counters = self.counters
        for watcher in self._watchers.values():
            if kind in watcher.kinds:
                if watcher.push(line):
                    counters.log_watcher_sent += 1
                else:
                    counters.log_watcher_skipped += 1

    # -- sources ------------------------------------------------------------------------

    def _fetchers_layer(self, event: Any, out: list[Any], call: Handler) -> int:
        if not isinstance(event, (ev.Retrieve, ev.Touch)):
            # memcached's store, delete and incr/decr look the key up first (do_item_get),
            # and that lookup is logged before the command's own line.
            state, class_id, size = lookup_state(self.cache, event.key)
            self.emit(
                FETCHERS,
                f"type=item_get key={uri(event.key)} "
                f"status={_LOOKUP_STATUS[state]} clsid={class_id} "
                f"cfd={CURRENT_CONNECTION.get()} size={size}",
            )
            return call(event, out)
        start = len(out)
        outcome = call(event, out)
        fd = CURRENT_CONNECTION.get()
        cache = self.cache
        if type(event) is ev.Retrieve and event.exptime is None and cache.extstore is None:
            # A plain get changes nothing that decides a hit: ask the index again for each
            # key (compiled, and no copy of the values), instead of parsing the reply.
            for key in event.keys:
                state, class_id, size = lookup_state(cache, key)
                if state == 1:
                    body = f"status=found clsid={class_id} cfd={fd} size={size}"
                else:
                    body = f"status=not_found clsid=0 cfd={fd} size=0"
                self.emit(FETCHERS, f"type=item_get key={uri(key)} {body}")
            return outcome
        found: dict[bytes, tuple[int, int]] = {}  # key -> (flags, length)
        if isinstance(event, ev.Touch):
            keys = [event.key]
            item = meta_find(self.cache, event.key) if out[start:] == [b"TOUCHED\r\n"] else None
            if item is not None:
                found[event.key] = (item.flags, item.nbytes)
        else:
            keys = event.keys
            reply = b"".join(bytes(piece) for piece in out[start:])
            found = {key: (flags, length) for key, flags, length in reply_values(reply)[0]}
        for key in keys:
            hit = found.get(key)
            if hit is None:
                body = f"status=not_found clsid=0 cfd={fd} size=0"
            else:
                body = f"status=found clsid={self._class_of(key, *hit)} cfd={fd} size={hit[1]}"
            self.emit(FETCHERS, f"type=item_get key={uri(key)} {body}")
        return outcome

    def _mutations_layer(self, event: Any, out: list[Any], call: Handler) -> int:
        start = len(out)
        # Ask for the reply even under noreply, to learn the status, then drop it.
        outcome = call(event._replace(noreply=False) if event.noreply else event, out)
        reply = bytes(out[start]) if len(out) > start else b""
        if event.noreply:
            del out[start:]
        status = _STORE_STATUS.get(reply, "error")
        cache = self.cache
        now = cache.now()
        # As memcached logs it: the stored item (append keeps flags and ttl, grows the
        # value), or the item that was refused, as the client sent it.
        item = meta_find(cache, event.key) if status == "stored" else None
        if item is not None:
            flags, size = item.flags, item.nbytes
            ttl = item.exptime - now if item.exptime else 0
        else:
            flags, size = event.flags, len(event.data)
            ttl = cache.realtime(event.exptime, now) - now if event.exptime else 0
        self.emit(
            MUTATIONS,
            f"type=item_store key={uri(event.key)} status={status} "
            f"cmd={event.command.decode()} ttl={ttl} "
            f"clsid={self._class_of(event.key, flags, size)} "
            f"cfd={CURRENT_CONNECTION.get()} size={size}",
        )
        return outcome

    def _class_of(self, key: bytes, flags: int, nbytes: int) -> int:
        """The slab class an item of this shape is stored in (the cache's own framing)."""
        return self.cache.items.plan(self.cache.stream_len(len(key), flags, nbytes))[0]

    def _on_evict(self, key: bytes, cid: int, class_id: int) -> None:
        item = meta_item(self.cache, cid)  # still linked: told before the eviction
        now = self.cache.now()
        ttl = item.exptime - now if item.exptime else -1
        fetched = "yes" if item.fetched else "no"
        self.emit(
            EVICTIONS,
            f"type=eviction key={uri(key)} fetch={fetched} ttl={ttl} "
            f"la={item.idle} clsid={class_id} size={item.nbytes}",
        )

    def connection_opened(self, fd: int, address: object) -> None:
        if self._counts[CONNEVENTS]:
            self.emit(CONNEVENTS, f"type=conn_new {_remote(address)} cfd={fd}")

    def connection_closed(self, fd: int, address: object, reason: str) -> None:
        self.remove(fd)
        if self._counts[CONNEVENTS]:
            self.emit(CONNEVENTS, f"type=conn_close {_remote(address)} reason={reason} cfd={fd}")


_URI_SAFE: Final = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~"


def uri(key: bytes) -> str:
    """A key as memcached writes it in log lines and metadump: URI-encoded."""
    if not key.translate(None, _URI_SAFE):
        return key.decode("ascii")  # nothing to escape: the usual key
    return urllib.parse.quote_from_bytes(key, safe="")


def _remote(address: object) -> str:
    if isinstance(address, tuple) and len(address) >= 2:
        return f"rip={address[0]} rport={address[1]} transport=tcp"
    return "rip=local rport=0 transport=local"
