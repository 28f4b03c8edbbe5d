"""``watch``: memcached's log streams, sent to the clients that ask for them.

A client sends ``watch [fetchers] [mutations] [evictions] [connevents]`` (no names: fetchers)
and gets ``OK``; from then on the connection only receives log lines, one per event, in
memcached 1.6.18's format::

    ts=1700000000.123456 gid=7 type=item_get key=foo status=found clsid=1 cfd=12 size=3

Keys are URI-encoded, as memcached writes them. What is produced, and from where:

===========  =====================================  ===================================
kind         lines                                  source
===========  =====================================  ===================================
fetchers     ``item_get`` per key that a get/gets/  the dispatcher's ``lookup_log``,
             gat/gats, touch, store, delete or      told before each lookup, as
             incr/decr looks up, with what the      memcached's do_item_get logs
             lookup meets (found, not_found,
             flushed, expired)
mutations    ``item_store`` per set/add/replace/    the dispatcher's ``store_log``,
             append/prepend/cas with its status     told each store's result
evictions    ``eviction`` per item evicted          ``Cache.on_evict``
connevents   ``conn_new``, ``conn_close``           the server's connection loop
===========  =====================================  ===================================

Each source is only set while a watcher wants it, and both of the parser's paths reach
them, so watching keeps the fast path. A watcher whose client reads too slowly loses lines
(its buffer is bounded, as memcached's is) and is told ``skipped=N``. This module only
queues lines; the connection loop sends them (memcachepy.server.multiplexer).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any, Final

from memcachepy.dispatch.admin import uriencode
from memcachepy.dispatch.text import Dispatcher
from memcachepy.ops.counters import ServerCounters
from memcachepy.ops.current import CURRENT_CONNECTION
from memcachepy.ops.hooks import RequestHooks
from memcachepy.protocol import events as ev
from memcachepy.protocol.wire import Outcome
from memcachepy.store.meta import lookup_state, meta_find, meta_item
from memcachepy.store.results import StoreResult

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

# memcached's was_found, as its log names it.
_LOOKUP_STATUS: Final = ("not_found", "found", "flushed", "expired")
_STORE_STATUS: Final = {
    StoreResult.STORED: b"stored",
    StoreResult.NOT_STORED: b"not_stored",
    StoreResult.EXISTS: b"exists",
    StoreResult.NOT_FOUND: b"not_found",
    StoreResult.TOO_LARGE: b"too_large",
    StoreResult.NO_MEMORY: b"no_memory",
}


class Watcher:
    """One watching connection: what it wants and the lines not yet sent."""

    def __init__(self, fd: int, kinds: Iterable[str]) -> None:
        self.fd = fd
        self.kinds = frozenset(kinds)
        self._lines: list[bytes] = []
        self._size = 0
        self.skipped = 0
        #: Called when lines wait where there were none (the loop sets it to send them).
        self.wake: Callable[[], None] | None = None

    def push(self, line: bytes) -> bool:
        """Queue a line; False if the buffer is full and it is skipped."""
        if self._size + len(line) > WATCHER_BUFFER:
            self.skipped += 1
            return False
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

    @property
    def held(self) -> int:
        """Bytes of lines queued."""
        return self._size

    def take(self) -> list[bytes]:
        """The lines queued so far (and forget them)."""
        lines = self._lines
        self._lines = []
        self._size = 0
        return lines


class WatchHub:
    """The watchers of one daemon, and the sources that feed them."""

    def __init__(
        self,
        dispatcher: Dispatcher,
        hooks: RequestHooks,
        counters: ServerCounters | None = None,
    ) -> None:
        self.dispatcher = dispatcher
        self.cache = dispatcher.cache
        # stats' log_watchers, log_watcher_sent and log_watcher_skipped.
        self.counters = counters if counters is not None else ServerCounters()
        self._watchers: dict[int, Watcher] = {}
        self.enabled = True  # -W turns watch off
        # The watchers of each kind (kept by _changed: a line is queued for each).
        self._of_kind: dict[str, list[Watcher]] = {kind: [] for kind in KINDS}
        self._gid = 0
        hooks.set_base(ev.Watch, self.handle_watch)

    # -- watchers -----------------------------------------------------------------------

    def watching(self, kind: str) -> bool:
        return bool(self._of_kind[kind])

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
        self._changed()
        return watcher

    def remove(self, fd: int) -> None:
        watcher = self._watchers.pop(fd, None)
        if watcher is not None:
            self.counters.log_watchers = len(self._watchers)
            self._changed()

    def _changed(self) -> None:
        of_kind = self._of_kind
        for kind in KINDS:
            of_kind[kind] = [w for w in self._watchers.values() if kind in w.kinds]
        self.cache.on_evict = self._on_evict if of_kind[EVICTIONS] else None
        self.dispatcher.lookup_log = self.looked_up if of_kind[FETCHERS] else None
        self.dispatcher.store_log = self.stored if of_kind[MUTATIONS] else None

    def emit(self, kind: str, body: bytes) -> None:
        """Queue one log line (``type=... key=...``) for every watcher of ``kind``."""
        self._queue(kind, self._stamp().encode("ascii") + body + b"\n")

    def _stamp(self) -> str:
        """A line's start: its time and its number (``ts=... gid=... ``)."""
        self._gid += 1
        now = time.time()
        seconds = int(now)
        micros = str(int((now - seconds) * 1_000_000) + 1_000_000)[1:]  # six digits
        return f"ts={seconds}.{micros} gid={self._gid} "

    def _queue(self, kind: str, line: bytes) -> None:
        counters = self.counters
        for watcher in self._of_kind[kind]:
            if watcher.push(line):
                counters.log_watcher_sent += 1
            else:
                counters.log_watcher_skipped += 1

    # -- sources ------------------------------------------------------------------------

    def looked_up(self, key: bytes) -> None:
        """``item_get``: what the lookup a request is about to make will meet."""
        state, class_id, size = lookup_state(self.cache, key)
        # One str formatted and encoded (the line per request while someone watches
        # fetchers): compiled, about half the cost of bytes' % operator.
        line = (
            f"{self._stamp()}type=item_get "
            f"key={uriencode(key).decode('ascii')} status={_LOOKUP_STATUS[state]} "
            f"clsid={class_id} cfd={CURRENT_CONNECTION.get()} size={size}\n"
        )
        self._queue(FETCHERS, line.encode("ascii"))

    def stored(
        self, command: bytes, key: bytes, flags: int, exptime: int, nbytes: int, result: StoreResult
    ) -> None:
        """``item_store``: a store's result, with the item as memcached logs it: the one
        stored (append keeps flags and ttl, grows the value), or the one refused, as the
        client sent it."""
        cache = self.cache
        now = cache.now()
        item = meta_find(cache, key) if result == StoreResult.STORED else None
        if item is not None:
            flags, nbytes = item.flags, item.nbytes
            ttl = item.exptime - now if item.exptime else 0
        else:
            ttl = cache.realtime(exptime, now) - now if exptime else 0
        self.emit(
            MUTATIONS,
            b"type=item_store key=%s status=%s cmd=%s ttl=%d clsid=%d cfd=%d size=%d"
            % (
                uriencode(key),
                _STORE_STATUS[result],
                command,
                ttl,
                self._class_of(key, flags, nbytes),
                CURRENT_CONNECTION.get(),
                nbytes,
            ),
        )

    def _class_of(self, key: bytes, flags: int, nbytes: int) -> int:
        """The slab class an item of this shape is stored in (the cache's own framing)."""
        return self.cache.items.plan(self.cache.stream_len(len(key), flags, nbytes))[0]

    def _on_evict(self, key: bytes, cid: int, class_id: int) -> None:
        item = meta_item(self.cache, cid)  # still linked: told before the eviction
        now = self.cache.now()
        ttl = item.exptime - now if item.exptime else -1
        fetched = b"yes" if item.fetched else b"no"
        self.emit(
            EVICTIONS,
            b"type=eviction key=%s fetch=%s ttl=%d la=%d clsid=%d size=%d"
            % (uriencode(key), fetched, ttl, item.idle, class_id, item.nbytes),
        )

    def connection_opened(self, fd: int, address: object) -> None:
        if self._of_kind[CONNEVENTS]:
            self.emit(CONNEVENTS, b"type=conn_new %s cfd=%d" % (_remote(address), fd))

    def connection_closed(self, fd: int, address: object, reason: str) -> None:
        self.remove(fd)
        if self._of_kind[CONNEVENTS]:
            self.emit(
                CONNEVENTS,
                b"type=conn_close %s reason=%s cfd=%d" % (_remote(address), reason.encode(), fd),
            )


def _remote(address: object) -> bytes:
    if isinstance(address, tuple) and len(address) >= 2:
        return b"rip=%s rport=%d transport=tcp" % (str(address[0]).encode(), int(address[1]))
    return b"rip=local rport=0 transport=local"
