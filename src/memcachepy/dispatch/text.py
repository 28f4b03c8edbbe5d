"""Joins text-protocol events to cache operations and builds the reply bytes.

The one place where protocol and store meet. Store results map to memcached's
reply words here; the server only moves bytes.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Final

from memcachepy import VERSION
from memcachepy.config import MIB, Settings
from memcachepy.dispatch import admin as dispatch_admin
from memcachepy.dispatch import extstore_admin
from memcachepy.dispatch import meta as dispatch_meta
from memcachepy.dispatch.reply import Reply, ReplyStream
from memcachepy.ops import stats_report
from memcachepy.ops.counters import ServerCounters, format_stats
from memcachepy.ops.prefix_stats import PrefixStats
from memcachepy.protocol import events as ev
from memcachepy.protocol.numbers import parse_u32
from memcachepy.protocol.replies import reply_bytes
from memcachepy.protocol.text import RequestSink
from memcachepy.protocol.wire import (
    BAD_FORMAT,
    DELTA_NO_MEMORY,
    ERROR,
    GET_OOM,
    INVALID_EXPTIME,
    NO_MEMORY,
    NON_NUMERIC,
    TOO_LARGE,
    Outcome,
)
from memcachepy.store.cache import Cache
from memcachepy.store.extstore import ExtstoreOutOfMemory
from memcachepy.store.framing import Framing
from memcachepy.store.results import DeltaResult, StoreMode, StoreResult

if TYPE_CHECKING:  # imported only by a node with --cluster-config (see server.py)
    from memcachepy.cluster.endpoint import ConfigEndpoint


def _value_line_tail(flags: int, nbytes: int) -> bytes:
    """What an item stores of its VALUE line: the key before it completes the line."""
    return b" %d %d\r\n" % (flags, nbytes)


TEXT_FRAMING: Final = Framing(
    _value_line_tail, b"\r\n", cas_at=2, cas_format=b" %d", lead=b"VALUE "
)

_STORE_MODES: Final = {
    b"set": StoreMode.SET,
    b"add": StoreMode.ADD,
    b"replace": StoreMode.REPLACE,
    b"append": StoreMode.APPEND,
    b"prepend": StoreMode.PREPEND,
    b"cas": StoreMode.CAS,
}
STORED: Final = b"STORED\r\n"
_STORE_REPLIES: Final = {
    StoreResult.STORED: STORED,
    StoreResult.NOT_STORED: b"NOT_STORED\r\n",
    StoreResult.EXISTS: b"EXISTS\r\n",
    StoreResult.NOT_FOUND: b"NOT_FOUND\r\n",
    StoreResult.TOO_LARGE: TOO_LARGE,
    StoreResult.NO_MEMORY: NO_MEMORY,
}
END: Final = b"END\r\n"
OK: Final = b"OK\r\n"
NOT_FOUND: Final = b"NOT_FOUND\r\n"


# A multi-get is answered in slices of at least this many keys, and paused (to send)
# once its reply passes REPLY_BUDGET bytes: a get of many large values never sits whole
# in memory, and a slow reader makes the connection wait rather than the server buffer.
RETRIEVE_SLICE: Final = 8
_FAST_EVENTS: Final = (
    ev.Retrieve,
    ev.Store,
    ev.Delete,
    ev.Arithmetic,
    ev.Touch,
    ev.MetaGet,
    ev.MetaSet,
    ev.MetaDelete,
)
REPLY_BUDGET: Final = 256 * 1024

#: Told each key a request looks up, before it does (``watch fetchers``: memcached logs
#: in do_item_get, which every get, touch, store, delete and incr/decr calls).
LookupLog = Callable[[bytes], None]
#: Told each text store's command, key, flags, exptime, value length and result, after it
#: is done (``watch mutations``).
StoreLog = Callable[[bytes, bytes, int, int, int, StoreResult], None]


class Dispatcher(RequestSink):
    """Handles one event at a time, appending reply bytes to ``out``.

    A :class:`RequestSink` by inheritance, so that the parser's calls are native ones."""

    def __init__(
        self,
        settings: Settings,
        cache: Cache,
        counters: ServerCounters,
        request_shutdown: Callable[[bool], None] = lambda graceful: None,
        connection_lines: Callable[[], list[tuple[str, object]]] = lambda: [],
        cluster: ConfigEndpoint | None = None,
    ) -> None:
        """``cluster``: the membership answered to ``config get|set cluster``, if any."""
        self.cluster = cluster
        self.settings = settings
        self.cache = cache
        self.counters = counters
        self.request_shutdown = request_shutdown
        self.connection_lines = connection_lines
        self.started = time.time()
        # -D / `stats detail on`: per-prefix counts, shared with the binary protocol.
        self.prefix_stats = PrefixStats(ord(settings.prefix_delimiter), settings.detail_enabled)
        self.remainder: ev.Retrieve | ev.Resume | None = None  # see Outcome.MORE
        # Set while someone watches (memcachepy.server.watch). In the requests both paths
        # share, so the parser's fast path stays on while they are: one compare each.
        self.lookup_log: LookupLog | None = None
        self.store_log: StoreLog | None = None
        self._handlers: dict[type, Callable[[ev.Event, list[Reply]], int]] = {
            ev.Retrieve: self._retrieve,  # type: ignore[dict-item]
            ev.Store: self._store,  # type: ignore[dict-item]
            ev.StoreTooLarge: self._too_large,  # type: ignore[dict-item]
            ev.Delete: self._delete,  # type: ignore[dict-item]
            ev.Arithmetic: self._arithmetic,  # type: ignore[dict-item]
            ev.Touch: self._touch,  # type: ignore[dict-item]
            ev.FlushAll: self._flush_all,  # type: ignore[dict-item]
            ev.Version: self._version,  # type: ignore[dict-item]
            ev.Verbosity: self._verbosity,  # type: ignore[dict-item]
            ev.Quit: self._quit,  # type: ignore[dict-item]
            ev.Shutdown: self._shutdown,  # type: ignore[dict-item]
            ev.Stats: self._stats,  # type: ignore[dict-item]
            ev.CacheMemlimit: self._memlimit,  # type: ignore[dict-item]
            ev.ConfigGet: self._config_get,  # type: ignore[dict-item]
            ev.ConfigSet: self._config_set,  # type: ignore[dict-item]
            ev.ErrorReply: self._error,  # type: ignore[dict-item]
            ev.Close: self._close,  # type: ignore[dict-item]
            ev.AuthResult: self._auth_result,  # type: ignore[dict-item]
            ev.Resume: self._resume,  # type: ignore[dict-item]
            ev.Watch: self._watch,  # type: ignore[dict-item]
        }
        # mg ms md ma mn me arrive on text connections too
        self.meta = dispatch_meta.MetaDispatch(self)
        self._handlers.update(dispatch_meta.handlers(self.meta))
        # The handlers TextParser.serve bypasses; while one is wrapped, it uses events.
        self._fast_handlers = [(t, self._handlers[t]) for t in _FAST_EVENTS]
        self._plain = True  # see plain(); kept by handlers_changed()
        self.admin = dispatch_admin.AdminDispatch(self)  # slabs, lru_crawler, lru, refresh_certs
        self._handlers[ev.Admin] = self.admin.handle  # type: ignore[assignment]

    def handle(self, event: ev.Event, out: list[Reply]) -> int:
        """Apply ``event``; append its reply to ``out``; return an :class:`Outcome`."""
        return self._handlers[type(event)](event, out)

    # -- requests ---------------------------------------------------------------------

    def _retrieve(self, event: ev.Retrieve, out: list[Reply]) -> int:
        return self.retrieve(event.keys, event.with_cas, event.exptime, out, event.last)

    def retrieve(
        self,
        keys: list[bytes],
        with_cas: bool,
        exptime: int | None,
        out: list[Reply],
        last: bool = True,
    ) -> int:
        """get / gets / gat / gats (the parser's fast path calls this directly)."""
        counters = self.counters
        try:
            if self.prefix_stats.enabled:  # stats detail on: key by key, to record each hit
                hits = self._collect_recorded(keys, with_cas, exptime, out)
                answered = len(keys)
            elif len(keys) <= RETRIEVE_SLICE:
                hits = self._collect(keys, out, with_cas, exptime)
                answered = len(keys)
            else:
                hits, answered = self._retrieve_slices(keys, with_cas, exptime, out, last)
        except ExtstoreOutOfMemory:
            # A value on flash had no memory to be read into: memcached drops the replies
            # stacked so far and answers the error instead.
            out.clear()
            out.append(GET_OOM)
            return Outcome.CONTINUE
        if exptime is None:
            counters.cmd_get += answered
            counters.get_misses += answered - hits
        else:
            counters.cmd_touch += answered
            counters.touch_misses += answered - hits
        if answered < len(keys):
            return Outcome.MORE
        if last:
            out.append(END)
        return Outcome.CONTINUE

    def _retrieve_slices(
        self, keys: list[bytes], with_cas: bool, exptime: int | None, out: list[Reply], last: bool
    ) -> tuple[int, int]:
        """A long multi-get in growing slices, stopping once the reply passes the budget.

        Slices start small (values may be large) and double while the reply stays small,
        so gets of many small values cost few calls. What is left of the keys becomes
        :attr:`remainder`, answered after the connection has sent what is queued.
        Returns (hits, keys answered).
        """
        counted = len(out)  # collect only appends: each piece's bytes are summed once
        size = RETRIEVE_SLICE
        done = hits = replied = 0
        while done < len(keys):
            piece = keys[done : done + size]
            hits += self._collect(piece, out, with_cas, exptime)
            done += len(piece)
            if done < len(keys):
                replied += reply_bytes(out, counted)
                counted = len(out)
                if replied >= REPLY_BUDGET:
                    self.remainder = ev.Retrieve(keys[done:], with_cas, exptime, last)
                    return hits, done
                if replied < REPLY_BUDGET // 4:
                    size *= 2
        return hits, done

    def _collect_recorded(
        self, keys: list[bytes], with_cas: bool, exptime: int | None, out: list[Reply]
    ) -> int:
        """A get while per-prefix stats are on: key by key, recording each hit or miss."""
        hits = 0
        for key in keys:
            hit = self._collect([key], out, with_cas, exptime)
            self.prefix_stats.record_get(key, bool(hit))
            hits += hit
        return hits

    def _collect(
        self, keys: list[bytes], out: list[Reply], with_cas: bool, exptime: int | None
    ) -> int:
        lookup_log = self.lookup_log
        if lookup_log is not None:
            for key in keys:
                lookup_log(key)
        return self.cache.collect(keys, out, with_cas, exptime)  # type: ignore[arg-type]

    def take_remainder(self) -> ev.Retrieve | ev.Resume:
        """The rest of the multi-get or stream that answered :attr:`Outcome.MORE`."""
        remainder, self.remainder = self.remainder, None
        assert remainder is not None
        return remainder

    def _store(self, event: ev.Store, out: list[Reply]) -> int:
        return self._store_any(
            event.command,
            event.key,
            event.flags,
            event.exptime,
            event.data,
            event.cas_unique,
            event.noreply,
            out,
        )

    def store(
        self,
        command: bytes,
        key: bytes,
        flags: int,
        exptime: int,
        data: bytes,
        noreply: bool,
        out: list[Reply],
    ) -> int:
        """set / add / replace with its data block (the parser's fast path)."""
        return self._store_any(command, key, flags, exptime, data, 0, noreply, out)

    def _store_any(
        self,
        command: bytes,
        key: bytes,
        flags: int,
        exptime: int,
        data: bytes,
        cas_unique: int,
        noreply: bool,
        out: list[Reply],
    ) -> int:
        self.counters.cmd_set += 1
        if self.prefix_stats.enabled:
            self.prefix_stats.record_set(key)
        if self.lookup_log is not None:
            self.lookup_log(key)
        # A set first: compiled, comparing bytes is a C call, a dict lookup hashes them.
        mode = StoreMode.SET if command == b"set" else _STORE_MODES[command]
        result = self.cache.store(mode, key, flags, exptime, data, cas_unique)
        if self.store_log is not None:
            self.store_log(command, key, flags, exptime, len(data), result)
        if result == StoreResult.STORED:  # compared by identity, compiled
            if not noreply:
                out.append(STORED)
            return Outcome.CONTINUE
        if result == StoreResult.NOT_FOUND:
            self.counters.cas_misses += 1
        elif result == StoreResult.NO_MEMORY:
            self.counters.store_no_memory += 1
        if not noreply:
            out.append(_STORE_REPLIES[result])
        return Outcome.CONTINUE

    def _too_large(self, event: ev.StoreTooLarge, out: list[Reply]) -> int:
        self.counters.store_too_large += 1
        if self.prefix_stats.enabled:
            self.prefix_stats.record_set(event.key)
        if event.command == b"set":
            # memcached drops the old value so that a failed set never leaves stale data.
            self.cache.delete(event.key)
        if not event.noreply:
            out.append(_STORE_REPLIES[StoreResult.TOO_LARGE])
        return Outcome.CONTINUE

    def _delete(self, event: ev.Delete, out: list[Reply]) -> int:
        return self.delete(event.key, event.noreply, out)

    def delete(self, key: bytes, noreply: bool, out: list[Reply]) -> int:
        """delete (the parser's fast path calls this directly)."""
        if self.prefix_stats.enabled:
            self.prefix_stats.record_delete(key)
        if self.lookup_log is not None:
            self.lookup_log(key)
        if self.cache.delete(key):
            reply = b"DELETED\r\n"
        else:
            self.counters.delete_misses += 1
            reply = NOT_FOUND
        if not noreply:
            out.append(reply)
        return Outcome.CONTINUE

    def _arithmetic(self, event: ev.Arithmetic, out: list[Reply]) -> int:
        return self.arithmetic(event.incr, event.key, event.delta, event.noreply, out)

    def arithmetic(
        self, incr: bool, key: bytes, delta: int, noreply: bool, out: list[Reply]
    ) -> int:
        """incr / decr (the parser's fast path calls this directly)."""
        if self.lookup_log is not None:
            self.lookup_log(key)
        result, value = self.cache.incr_decr(key, incr, delta)
        if result == DeltaResult.OK:
            reply = b"%d\r\n" % value
        elif result == DeltaResult.NOT_FOUND:
            if incr:
                self.counters.incr_misses += 1
            else:
                self.counters.decr_misses += 1
            reply = NOT_FOUND
        elif result == DeltaResult.NON_NUMERIC:
            reply = NON_NUMERIC
        else:
            reply = DELTA_NO_MEMORY
        if not noreply:
            out.append(reply)
        return Outcome.CONTINUE

    def _touch(self, event: ev.Touch, out: list[Reply]) -> int:
        return self.touch(event.key, event.exptime, event.noreply, out)

    def touch(self, key: bytes, exptime: int, noreply: bool, out: list[Reply]) -> int:
        """touch (the parser's fast path calls this directly)."""
        self.counters.cmd_touch += 1
        if self.lookup_log is not None:
            self.lookup_log(key)
        if self.cache.touch(key, exptime):
            reply = b"TOUCHED\r\n"
        else:
            self.counters.touch_misses += 1
            reply = NOT_FOUND
        if not noreply:
            out.append(reply)
        return Outcome.CONTINUE

    def meta_get(
        self,
        key: bytes,
        order: bytes,
        opaque: bytes,
        value: bool,
        quiet: bool,
        no_bump: bool,
        out: list[Reply],
    ) -> int:
        """mg without T, N, R or b (the parser's fast path calls this directly)."""
        return self.meta.get_fields(
            key, False, order, opaque, value, quiet, no_bump, None, None, None, None, out
        )

    def meta_set(
        self,
        key: bytes,
        data: bytes,
        flags: int,
        exptime: int,
        quiet: bool,
        order: bytes,
        opaque: bytes,
        out: list[Reply],
    ) -> int:
        """ms in set mode without C, I or b (the parser's fast path)."""
        return self.meta.set_fields(
            key, False, data, StoreMode.SET, flags, exptime, None, False, quiet, order, opaque, out
        )

    def meta_delete(
        self, key: bytes, quiet: bool, order: bytes, opaque: bytes, out: list[Reply]
    ) -> int:
        """md without C, I, T or b (the parser's fast path)."""
        return self.meta.delete_fields(key, False, None, False, None, quiet, order, opaque, out)

    def event(self, event: ev.Event, out: list[Reply]) -> int:
        """Any request as its event (the parser's batch path, for what has no fast path)."""
        return self._handlers[type(event)](event, out)

    def plain(self) -> bool:
        """Whether the fast-path requests go to their own handlers: no observer (``-vv``,
        latency sampling, a warm-up) wraps them, so the parser may call them directly.

        Asked once per read, so it is a flag, which :meth:`handlers_changed` keeps."""
        return self._plain

    def handlers_changed(self) -> None:
        """The handler table was rewrapped (ops.hooks.RequestHooks calls this)."""
        handlers = self._handlers
        self._plain = all(handlers[t] is handler for t, handler in self._fast_handlers)

    def _flush_all(self, event: ev.FlushAll, out: list[Reply]) -> int:
        self.counters.cmd_flush += 1
        if not self.settings.flush_enabled:
            reply = b"CLIENT_ERROR flush_all not allowed\r\n"
        elif event.delay is None:
            reply = INVALID_EXPTIME
        else:
            self.cache.flush_all(event.delay)
            reply = OK
        if not event.noreply:
            out.append(reply)
        return Outcome.CONTINUE

    def _version(self, event: ev.Version, out: list[Reply]) -> int:
        out.append(b"VERSION %s\r\n" % VERSION.encode())
        return Outcome.CONTINUE

    def _verbosity(self, event: ev.Verbosity, out: list[Reply]) -> int:
        self.settings.verbosity = min(event.level, 2)
        if not event.noreply:
            out.append(OK)
        return Outcome.CONTINUE

    def _quit(self, event: ev.Quit, out: list[Reply]) -> int:
        return Outcome.CLOSE

    def _shutdown(self, event: ev.Shutdown, out: list[Reply]) -> int:
        if not self.settings.enable_shutdown:
            out.append(b"ERROR: shutdown not enabled\r\n")
            return Outcome.CONTINUE
        if event.mode is not None:
            out.append(b"CLIENT_ERROR invalid shutdown mode\r\n")
            return Outcome.CONTINUE
        self.request_shutdown(event.graceful)
        return Outcome.CLOSE

    def _memlimit(self, event: ev.CacheMemlimit, out: list[Reply]) -> int:
        if event.megabytes < 8:
            reply = b"MEMLIMIT_TOO_SMALL cannot set maxbytes to less than 8m\r\n"
        elif event.megabytes > 1000000000:
            reply = b"MEMLIMIT_ADJUST_FAILED input value is megabytes not bytes\r\n"
        elif self.cache.rebalancer.set_limit(event.megabytes * MIB):
            self.settings.memory_limit = event.megabytes * MIB
            reply = OK
        else:  # -e: the memory file's size is fixed, as memcached's is
            reply = b"MEMLIMIT_ADJUST_FAILED out of bounds or unable to adjust\r\n"
        if not event.noreply:
            out.append(reply)
        return Outcome.CONTINUE

    def _config_get(self, event: ev.ConfigGet, out: list[Reply]) -> int:
        if self.cluster is None or event.key != b"cluster":
            out.append(ERROR)
        else:
            out.append(self.cluster.reply())
        return Outcome.CONTINUE

    def _config_set(self, event: ev.ConfigSet, out: list[Reply]) -> int:
        if self.cluster is None or event.key != b"cluster":
            out.append(ERROR)
            return Outcome.CONTINUE
        from memcachepy.cluster.endpoint import ConfigSetRefused  # loaded with the endpoint

        try:
            self.cluster.set_cluster(event.data, event.credential)
        except ConfigSetRefused as refused:
            word = b"SERVER_ERROR" if refused.server_side else b"CLIENT_ERROR"
            out.append(b"%s %s\r\n" % (word, str(refused).encode("ascii", "replace")))
        else:
            out.append(OK)
        return Outcome.CONTINUE

    def _error(self, event: ev.ErrorReply, out: list[Reply]) -> int:
        if event.void_pending:
            extstore_admin.count_aborted(self.cache, event.request)
            out.clear()
        if not event.noreply:
            out.append(event.line)
        return Outcome.CONTINUE

    def _resume(self, event: ev.Resume, out: list[Reply]) -> int:
        """The next slice of a reply answered in slices (lru_crawler metadump)."""
        stream = event.stream
        assert isinstance(stream, ReplyStream)
        if stream.step(out):
            return Outcome.CONTINUE
        self.remainder = event
        return Outcome.MORE

    def _auth_result(self, event: ev.AuthResult, out: list[Reply]) -> int:
        self.counters.auth_cmds += 1
        if event.ok:
            out.append(b"STORED\r\n")
        else:
            self.counters.auth_errors += 1
            out.append(b"CLIENT_ERROR authentication failure\r\n")
            return Outcome.AUTH_FAILED
        return Outcome.CONTINUE

    def _watch(self, event: ev.Watch, out: list[Reply]) -> int:
        # A dispatcher without a server to stream from; the server installs the real handler
        # (memcachepy.server.watch), as memcached answers with watch disabled.
        out.append(b"CLIENT_ERROR watch commands not allowed\r\n")
        return Outcome.CONTINUE

    def _close(self, event: ev.Close, out: list[Reply]) -> int:
        if event.reason in ("line too long", "input limit"):
            self.counters.input_overflows += 1
        # Replies already queued still go out, as in memcached; its conn_close logs any
        # close but end of stream, quit, shutdown and idle timeout as reason=error.
        return Outcome.CLOSE_ERROR

    # -- stats ---------------------------------------------------------------------------

    def _stats(self, event: ev.Stats, out: list[Reply]) -> int:
        args = event.args
        if not args:
            out.append(
                format_stats(
                    stats_report.general_stats(
                        self.settings, self.cache, self.counters, self.started
                    )
                )
            )
            return Outcome.CONTINUE
        sub = args[0]
        if sub == b"reset":
            self.counters.reset()
            stats_report.reset_store_counters(self.cache)
            self.prefix_stats.clear()
            out.append(b"RESET\r\n")
        elif sub == b"detail":
            out.append(self.prefix_stats.command(args[1] if len(args) > 1 else b""))
        elif sub == b"memcachepy":  # memcachepy's own counters, kept out of memcached's list
            out.append(format_stats(stats_report.extra_stats(self.counters)))
        elif sub == b"settings":
            out.append(
                format_stats(
                    stats_report.settings_stats(
                        self.settings, self.cache, self.prefix_stats.enabled
                    )
                )
            )
        elif sub == b"items":
            out.append(format_stats(stats_report.item_stats(self.cache, self.settings)))
        elif sub == b"slabs":
            out.append(format_stats(stats_report.slab_stats(self.cache)))
        elif sub == b"sizes":
            out.append(format_stats(stats_report.size_stats(self.cache)))
        elif sub in (b"sizes_enable", b"sizes_disable"):
            # memcached 1.6.18 sends these two without the END line.
            lines = stats_report.sizes_switch(self.settings, self.cache, sub == b"sizes_enable")
            out.append(format_stats(lines).removesuffix(END))
        elif sub == b"conns":
            out.append(format_stats(self.connection_lines()))
        elif sub == b"extstore":
            out.append(format_stats(stats_report.extstore_page_stats(self.cache)))
        elif sub == b"cachedump":
            if not self.settings.dump_enabled:
                out.append(b"CLIENT_ERROR stats cachedump not allowed\r\n")
                return Outcome.CONTINUE
            return self._cachedump(args[1:], out)
        else:
            out.append(ERROR)
        return Outcome.CONTINUE

    def _cachedump(self, args: list[bytes], out: list[Reply]) -> int:
        if len(args) < 2:
            out.append(b"CLIENT_ERROR bad command line\r\n")
            return Outcome.CONTINUE
        class_id, limit = parse_u32(args[0]), parse_u32(args[1])
        if class_id is None or limit is None:
            out.append(BAD_FORMAT)
            return Outcome.CONTINUE
        if class_id >= 64:  # memcached's MAX_NUMBER_OF_SLAB_CLASSES
            out.append(b"CLIENT_ERROR Illegal slab id\r\n")
            return Outcome.CONTINUE
        return self.admin.cachedump(class_id, limit, out)
