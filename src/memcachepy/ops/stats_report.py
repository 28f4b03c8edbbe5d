"""What the ``stats`` family reports: name/value pairs built from the live daemon state.

Shared by every protocol (the text ``stats`` commands, and later the binary ``stat``
opcode and the metrics endpoint), so each figure is computed in one place. The views of
the store that only the stats need (LRU segments, the size histogram, ``stats
cachedump``, ``stats reset``) are here too, read from the cache's own structures.
"""

from __future__ import annotations

import os
import resource
import time
from dataclasses import fields
from importlib import metadata
from typing import NamedTuple

from memcachepy import VERSION
from memcachepy.config import PROTOCOLS, Settings
from memcachepy.native.switch import running_build
from memcachepy.ops.counters import ServerCounters
from memcachepy.store.cache import Cache
from memcachepy.store.items import (
    CONTINUATION,
    HEADER,
    KEY_BINARY,
    LINKED,
    SEG_COLD,
    SEG_HOT,
    SEG_SHIFT,
    SEG_TEMP,
    SEG_WARM,
)
from memcachepy.store.slabs import OFFSET_MASK, PAGE_SHIFT

# What plain `stats` says for "libevent": memcachepy's event loop.
try:
    _LOOP = f"trio-{metadata.version('trio')}"
except metadata.PackageNotFoundError:  # pragma: no cover - trio is a dependency
    _LOOP = "trio"


_reserved: list[int] = []


def _reserved_fds(curr_connections: int) -> int:
    """Descriptors not held by client connections (listeners, files, the loop), counted
    at the first ``stats``: like memcached's figure it stays put while clients come and go."""
    if not _reserved:
        try:
            _reserved.append(max(len(os.listdir("/proc/self/fd")) - curr_connections, 0))
        except OSError:
            _reserved.append(0)
    return _reserved[0]


def general_stats(
    settings: Settings, cache: Cache, counters: ServerCounters, started: float
) -> list[tuple[str, object]]:
    """The lines of a plain ``stats``: memcached 1.6.18's names, in its order.

    Figures memcachepy has no counterpart for (libevent's read buffers, NAPI, a global
    response object pool) read 0; memcachepy's own counters are in ``stats memcachepy``.
    """
    c = counters
    cc = cache.counters
    usage = resource.getrusage(resource.RUSAGE_SELF)
    now = time.time()
    tuning = settings.store
    lines: list[tuple[str, object]] = [
        ("pid", os.getpid()),
        ("uptime", int(now - started)),
        ("time", int(now)),
        ("version", VERSION),
        ("libevent", _LOOP),
        ("pointer_size", 64),
        ("rusage_user", usage.ru_utime),
        ("rusage_system", usage.ru_stime),
        ("max_connections", settings.max_connections),
        ("curr_connections", c.curr_connections),
        ("total_connections", c.total_connections),
    ]
    if settings.maxconns_fast:
        lines.append(("rejected_connections", c.rejected_connections))
    lines += [
        ("connection_structures", c.curr_connections + 1),
        ("response_obj_oom", c.response_obj_oom),
        ("response_obj_count", 0),
        ("response_obj_bytes", 0),
        ("read_buf_count", 0),
        ("read_buf_bytes", 0),
        ("read_buf_bytes_free", 0),
        ("read_buf_oom", c.read_buf_oom),
        ("reserved_fds", _reserved_fds(c.curr_connections)),
        ("cmd_get", c.cmd_get),
        ("cmd_set", c.cmd_set),
        ("cmd_flush", c.cmd_flush),
        ("cmd_touch", c.cmd_touch),
        ("cmd_meta", c.cmd_meta),
        ("get_hits", cc.total("get_hits")),
        ("get_misses", c.get_misses),
        ("get_expired", cc.get_expired),
        ("get_flushed", cc.get_flushed),
        *_extstore_get_stats(cache),
        ("delete_misses", c.delete_misses),
        ("delete_hits", cc.total("delete_hits")),
        ("incr_misses", c.incr_misses),
        ("incr_hits", cc.total("incr_hits")),
        ("decr_misses", c.decr_misses),
        ("decr_hits", cc.total("decr_hits")),
        ("cas_misses", c.cas_misses),
        ("cas_hits", cc.total("cas_hits")),
        ("cas_badval", cc.total("cas_badval")),
        ("touch_hits", cc.total("touch_hits")),
        ("touch_misses", c.touch_misses),
        ("store_too_large", c.store_too_large),
        ("store_no_memory", c.store_no_memory),
        ("auth_cmds", c.auth_cmds),
        ("auth_errors", c.auth_errors),
    ]
    if settings.idle_timeout:
        lines.append(("idle_kicks", c.idle_kicks))
    lines += [
        ("bytes_read", c.bytes_read),
        ("bytes_written", c.bytes_written),
        ("limit_maxbytes", settings.memory_limit),
        ("accepting_conns", 1),
        ("listen_disabled_num", 0),  # listening is never paused: see maxconns_fast
        ("time_in_listen_disabled_us", 0),
        ("threads", 1),  # one event loop, whatever -t says
        ("conn_yields", c.conn_yields),
        ("hash_power_level", cache.index.power),
        ("hash_bytes", cache.index.nbytes),
        ("hash_is_expanding", int(cache.index.expanding)),
    ]
    if tuning.slab_reassign:
        lines += [
            ("slab_reassign_rescues", cc.slab_reassign_rescues),
            ("slab_reassign_chunk_rescues", cc.slab_reassign_chunk_rescues),
            ("slab_reassign_evictions_nomem", cc.slab_reassign_evictions_nomem),
            ("slab_reassign_inline_reclaim", cc.slab_reassign_inline_reclaim),
            ("slab_reassign_busy_items", cc.slab_reassign_busy_items),
            ("slab_reassign_busy_deletes", cc.slab_reassign_busy_deletes),
            ("slab_reassign_running", int(cache.rebalancer.running)),
            ("slabs_moved", cc.slabs_moved),
        ]
    if tuning.lru_crawler:
        lines += [
            ("lru_crawler_running", int(cache.crawler.running)),
            ("lru_crawler_starts", cache.crawler.starts),
        ]
    if tuning.lru_maintainer:
        lines.append(("lru_maintainer_juggles", cc.lru_maintainer_juggles))
    lines += [
        ("malloc_fails", 0),
        ("log_worker_dropped", 0),
        ("log_worker_written", 0),
        ("log_watcher_skipped", c.log_watcher_skipped),
        ("log_watcher_sent", c.log_watcher_sent),
        ("log_watchers", c.log_watchers),
    ]
    lines += _extstore_stats(cache)
    if settings.tls_enabled:
        lines += [
            ("ssl_handshake_errors", c.ssl_handshake_errors),
            ("time_since_server_cert_refresh", int(now - c.ssl_cert_loaded_at)),
        ]
    lines += [("unexpected_napi_ids", 0), ("round_robin_fallback", 0)]
    lines += [
        ("bytes", cache.bytes),
        ("curr_items", len(cache)),
        ("total_items", cc.total_items),
        ("slab_global_page_pool", len(cache.slabs.pool)),
        ("expired_unfetched", cc.total("expired_unfetched")),
        ("evicted_unfetched", cc.total("evicted_unfetched")),
    ]
    if tuning.lru_maintainer:
        lines.append(("evicted_active", cc.total("evicted_active")))
    lines += [
        ("evictions", cc.total("evicted")),
        ("reclaimed", cc.total("reclaimed")),
        ("crawler_reclaimed", cc.total("crawler_reclaimed")),
        ("crawler_items_checked", cc.total("crawler_items_checked")),
        ("lrutail_reflocked", 0),
    ]
    if tuning.lru_maintainer:
        lines += [
            ("moves_to_cold", cc.total("moves_to_cold")),
            ("moves_to_warm", cc.total("moves_to_warm")),
            ("moves_within_lru", cc.total("moves_within_lru")),
            ("direct_reclaims", cc.total("direct_reclaims")),
            ("lru_bumps_dropped", cache.counters.lru_bumps_dropped),
        ]
    return lines


def _extstore_get_stats(cache: Cache) -> list[tuple[str, object]]:
    ext = cache.extstore
    if ext is None:
        return []
    f = ext.counters
    return [
        ("get_extstore", f.get_extstore),
        ("get_aborted_extstore", f.get_aborted_extstore),
        ("get_oom_extstore", f.get_oom_extstore),
        ("recache_from_extstore", f.recache_from_extstore),
        ("miss_from_extstore", f.miss_from_extstore),
        ("badcrc_from_extstore", f.badcrc_from_extstore),
    ]


def _extstore_stats(cache: Cache) -> list[tuple[str, object]]:
    """memcached's storage_stats: the flash tier's figures (none without it)."""
    ext = cache.extstore
    if ext is None:
        return []
    f = ext.counters
    pages = ext.pages
    st = pages.stats
    return [
        ("extstore_compact_lost", f.compact_lost),
        ("extstore_compact_rescues", f.compact_rescues),
        ("extstore_compact_skipped", f.compact_skipped),
        ("extstore_page_allocs", st.page_allocs),
        ("extstore_page_evictions", st.page_evictions),
        ("extstore_page_reclaims", st.page_reclaims),
        ("extstore_pages_free", pages.pages_free),
        ("extstore_pages_used", pages.pages_used),
        ("extstore_objects_evicted", st.objects_evicted),
        ("extstore_objects_read", st.objects_read),
        ("extstore_objects_written", st.objects_written),
        ("extstore_objects_used", st.objects_used),
        ("extstore_bytes_evicted", st.bytes_evicted),
        ("extstore_bytes_written", st.bytes_written),
        ("extstore_bytes_read", st.bytes_read),
        ("extstore_bytes_used", st.bytes_used),
        ("extstore_bytes_fragmented", pages.bytes_fragmented),
        ("extstore_limit_maxbytes", len(pages.pages) * ext.config.page_size),
        ("extstore_io_queue", 0),  # reads and writes complete before the request does
    ]


def _extstore_settings(s: Settings) -> list[tuple[str, object]]:
    """The ext_* lines of ``stats settings`` (a memcached build with extstore prints them
    with or without ext_path)."""
    e = s.extstore
    return [
        ("ext_item_size", e.item_size),
        ("ext_item_age", e.item_age),
        ("ext_low_ttl", e.low_ttl),
        ("ext_recache_rate", e.recache_rate),
        ("ext_wbuf_size", e.wbuf_size),
        ("ext_compact_under", e.compact_under),
        ("ext_drop_under", e.drop_under),
        ("ext_max_sleep", e.max_sleep),
        ("ext_max_frag", b"%.2f" % e.max_frag),
        ("slab_automove_freeratio", b"%.3f" % e.automove_freeratio),
        ("ext_drop_unread", e.drop_unread),
    ]


def extstore_page_stats(cache: Cache) -> list[tuple[str, object]]:
    """``stats extstore``: each page's version, bytes used, bucket and free bucket."""
    ext = cache.extstore
    if ext is None:
        return []
    lines: list[tuple[str, object]] = []
    for number in range(len(ext.pages.pages)):
        version, used, bucket = ext.pages.page_data(number)
        lines += [
            (f"{number}:version", version),
            (f"{number}:bytes", used),
            (f"{number}:bucket", bucket),
            (f"{number}:free_bucket", 0),
        ]
    return lines


def extra_stats(counters: ServerCounters) -> list[tuple[str, object]]:
    """``stats memcachepy``: counters memcached does not have (kept out of ``stats`` so
    its field list stays memcached's)."""
    c = counters
    return [
        ("output_flushes", c.output_flushes),
        ("input_overflows", c.input_overflows),
        ("internal_errors", c.internal_errors),
        ("idle_kicks", c.idle_kicks),
    ]


def settings_stats(
    settings: Settings, cache: Cache, detail_enabled: bool = False
) -> list[tuple[str, object]]:
    """The lines of ``stats settings``, memcached 1.6.18's (built with TLS, without
    extstore), in its order, then memcachepy's own: ``build`` (compiled or pure)."""
    s = settings
    t = settings.store
    tls = s.tls
    return [
        ("maxbytes", s.memory_limit),
        ("maxconns", s.max_connections),
        ("tcpport", s.port if s.tcp_enabled else 0),
        ("udpport", s.udp_port),
        ("inter", s.listen),
        ("verbosity", s.verbosity),
        ("oldest", cache.oldest_live),
        ("evictions", "on" if s.evict else "off"),
        ("domain_socket", s.unix_socket or "NULL"),
        ("umask", f"{s.unix_mask:o}"),
        ("shutdown_command", s.enable_shutdown),
        ("growth_factor", b"%.2f" % s.growth_factor),
        ("chunk_size", s.min_chunk),
        ("num_threads", s.threads),
        ("num_threads_per_udp", 1),
        ("stat_key_prefix", s.prefix_delimiter),
        ("detail_enabled", detail_enabled),
        ("reqs_per_event", s.reqs_per_event),
        ("cas_enabled", s.use_cas),
        ("tcp_backlog", s.backlog),
        ("binding_protocol", PROTOCOLS[s.protocol]),
        ("auth_enabled_sasl", "yes" if s.sasl else "no"),
        ("auth_enabled_ascii", s.auth_file or "no"),
        ("item_size_max", s.item_size_max),
        ("maxconns_fast", s.maxconns_fast),
        ("hashpower_init", s.hashpower_init),
        ("slab_reassign", t.slab_reassign),
        ("slab_automove", t.slab_automove),
        ("slab_automove_ratio", b"%.2f" % t.slab_automove_ratio),
        ("slab_automove_window", t.slab_automove_window),
        ("slab_chunk_max", cache.slabs.chunk_max),
        ("lru_crawler", t.lru_crawler),
        ("lru_crawler_sleep", t.lru_crawler_sleep),
        ("lru_crawler_tocrawl", t.lru_crawler_tocrawl),
        ("tail_repair_time", s.tail_repair_time),
        ("flush_enabled", s.flush_enabled),
        ("dump_enabled", s.dump_enabled),
        ("hash_algorithm", s.hash_algorithm),
        ("lru_maintainer_thread", t.lru_maintainer),
        ("lru_segmented", t.lru_segmented),
        ("hot_lru_pct", t.hot_lru_pct),
        ("warm_lru_pct", t.warm_lru_pct),
        ("hot_max_factor", b"%.2f" % t.hot_max_factor),
        ("warm_max_factor", b"%.2f" % t.warm_max_factor),
        ("temp_lru", t.temp_lru),
        ("temporary_ttl", t.temporary_ttl),
        ("idle_timeout", s.idle_timeout),
        ("watcher_logbuf_size", s.watcher_logbuf_size),
        ("worker_logbuf_size", s.worker_logbuf_size),
        ("read_buf_mem_limit", s.read_buf_mem_limit),
        ("track_sizes", cache.sizes is not None),
        ("inline_ascii_response", False),
        *_extstore_settings(s),
        ("ssl_enabled", s.tls_enabled),
        ("ssl_chain_cert", tls.chain_cert or "(null)"),
        ("ssl_key", tls.key or "(null)"),
        ("ssl_verify_mode", tls.verify_mode),
        ("ssl_keyformat", tls.accepted.get("ssl_keyformat", "1")),
        ("ssl_ciphers", tls.ciphers or "NULL"),
        ("ssl_ca_cert", tls.ca_cert or "NULL"),
        ("ssl_wbuf_size", int(tls.accepted.get("ssl_wbuf_size", "16")) * 1024),
        ("ssl_session_cache", "ssl_session_cache" in tls.accepted),
        ("ssl_kernel_tls", "ssl_kernel_tls" in tls.accepted),
        ("ssl_min_version", tls.min_version),
        ("num_napi_ids", s.napi_ids if s.napi_ids is not None else "(null)"),
        ("memory_file", s.memory_file or "(null)"),
        # Last, after memcached's lines: tools reading them by position keep working
        # (memcached's t/ suite reads these by name and counts only plain `stats`).
        ("build", running_build()),
    ]


def segment_counts(cache: Cache, class_id: int) -> tuple[int, int, int, int]:
    """Items of a class in its HOT, WARM, COLD and TEMP lists."""
    counts = cache.items.seg_counts
    hot, warm, cold, temp = (class_id | seg << SEG_SHIFT for seg in range(4))
    return counts[hot], counts[warm], counts[cold], counts[temp]


def segment_ages(cache: Cache, class_id: int) -> tuple[int, int, int]:
    """Seconds since the tail items of HOT, WARM and COLD were last used."""
    now = cache.now()
    return (
        cache.lru.tail_age(class_id | SEG_HOT << SEG_SHIFT, now),
        cache.lru.tail_age(class_id | SEG_WARM << SEG_SHIFT, now),
        cache.lru.tail_age(class_id | SEG_COLD << SEG_SHIFT, now),
    )


def segment_hits(cache: Cache, class_id: int) -> tuple[int, int, int, int]:
    """Read hits on items of a class while in HOT, WARM, COLD and TEMP."""
    hits = cache.lru_hits
    hot, warm, cold, temp = (
        int(hits[class_id | seg << SEG_SHIFT]) for seg in (SEG_HOT, SEG_WARM, SEG_COLD, SEG_TEMP)
    )
    return hot, warm, cold, temp


def item_stats(cache: Cache, settings: Settings | None = None) -> list[tuple[str, object]]:
    """The lines of ``stats items``: per slab class with items, in memcached's order."""
    tuning = settings.store if settings is not None else cache.tuning
    lines: list[tuple[str, object]] = []
    for cls in cache.slabs.classes[1:]:
        number = cache.items.counts[cls.id]
        k = cache.counters.classes[cls.id]
        if not number and not k.evicted and not k.outofmemory:
            continue
        prefix = f"items:{cls.id}:"
        lines.append((prefix + "number", number))
        hot, warm, cold, temp = segment_counts(cache, cls.id)
        age_hot, age_warm, age = segment_ages(cache, cls.id)
        if tuning.lru_maintainer:
            lines += [
                (prefix + "number_hot", hot),
                (prefix + "number_warm", warm),
                (prefix + "number_cold", cold),
            ]
            if tuning.temp_lru:
                lines.append((prefix + "number_temp", temp))
            lines += [(prefix + "age_hot", age_hot), (prefix + "age_warm", age_warm)]
        lines += [
            (prefix + "age", age),
            (prefix + "mem_requested", k.mem_requested),
            (prefix + "evicted", k.evicted),
            (prefix + "evicted_nonzero", k.evicted_nonzero),
            (prefix + "evicted_time", k.evicted_time),
            (prefix + "outofmemory", k.outofmemory),
            (prefix + "tailrepairs", 0),
            (prefix + "reclaimed", k.reclaimed),
            (prefix + "expired_unfetched", k.expired_unfetched),
            (prefix + "evicted_unfetched", k.evicted_unfetched),
        ]
        if tuning.lru_maintainer:
            lines.append((prefix + "evicted_active", k.evicted_active))
        lines += [
            (prefix + "crawler_reclaimed", k.crawler_reclaimed),
            (prefix + "crawler_items_checked", k.crawler_items_checked),
            (prefix + "lrutail_reflocked", 0),
        ]
        if tuning.lru_maintainer:
            hits = segment_hits(cache, cls.id)
            lines += [
                (prefix + "moves_to_cold", k.moves_to_cold),
                (prefix + "moves_to_warm", k.moves_to_warm),
                (prefix + "moves_within_lru", k.moves_within_lru),
                (prefix + "direct_reclaims", k.direct_reclaims),
                (prefix + "hits_to_hot", hits[0]),
                (prefix + "hits_to_warm", hits[1]),
                (prefix + "hits_to_cold", hits[2]),
                (prefix + "hits_to_temp", hits[3]),
            ]
    return lines


def size_stats(cache: Cache) -> list[tuple[str, object]]:
    """``stats sizes``: items per non-empty 32-byte size bucket (with ``-o track_sizes``)."""
    if cache.sizes is None:
        return [("sizes_status", "disabled")]
    return [(str(n * 32), count) for n, count in enumerate(cache.sizes) if count]


def sizes_switch(settings: Settings, cache: Cache, enable: bool) -> list[tuple[str, object]]:
    """``stats sizes_enable`` / ``stats sizes_disable``."""
    if enable and not settings.use_cas:
        return [("sizes_status", "error"), ("sizes_error", "cas_support_disabled")]
    # Counting starts with the items stored from now on.
    cache.tuning.track_sizes = enable
    if not enable:
        cache.sizes = None
    elif cache.sizes is None:
        cache.sizes = [0] * (cache.item_size_max // 32 + 2)
    return [("sizes_status", "enabled" if enable else "disabled")]


class ColdWalk:
    """``stats cachedump``'s walk: one class's COLD list from its head, a slice at a time.

    memcached's item_cachedump walks the COLD list only, under its lock. Between two
    slices the list may change here: the walk keeps the next item and its CAS, and ends
    where that item is gone or moved (a dump is a sample, never a promise).
    """

    def __init__(self, cache: Cache, class_id: int) -> None:
        self.cache = cache
        self.lru = class_id | SEG_COLD << SEG_SHIFT
        valid = 0 < class_id < len(cache.slabs.classes)
        self.next = cache.items.heads[self.lru] if valid else -1
        self.next_cas = self._cas(self.next)

    def _cas(self, cid: int) -> int:
        if cid < 0:
            return 0
        page = self.cache.slabs.pages[cid >> PAGE_SHIFT]
        cas: int = HEADER.unpack_from(page, cid & OFFSET_MASK)[2]
        return cas

    def _still_there(self, cid: int) -> bool:
        slabs = self.cache.slabs
        if slabs.page_class[cid >> PAGE_SHIFT] != self.lru & ((1 << SEG_SHIFT) - 1):
            return False
        header = HEADER.unpack_from(slabs.pages[cid >> PAGE_SHIFT], cid & OFFSET_MASK)
        iflags = header[8]
        return (
            bool(iflags & LINKED)
            and not iflags & CONTINUATION
            and header[2] == self.next_cas
            and self.cache.items.segment(cid) == SEG_COLD
        )

    @property
    def done(self) -> bool:
        return self.next < 0

    def rows(self, count: int) -> list[tuple[bytes, int, int]]:
        """(key, data length, absolute exptime or 0) of up to ``count`` more items; items
        with binary keys are skipped, as memcached skips them."""
        cache = self.cache
        cid = self.next
        if cid >= 0 and not self._still_there(cid):
            cid = -1
        rows: list[tuple[bytes, int, int]] = []
        while cid >= 0 and len(rows) < count:
            page = cache.slabs.pages[cid >> PAGE_SHIFT]
            header = HEADER.unpack_from(page, cid & OFFSET_MASK)
            exptime, nbytes, iflags = header[3], header[6], header[8]
            if not iflags & KEY_BINARY:
                rows.append((cache.key_of(cid), nbytes, exptime + cache.started if exptime else 0))
            cid = cache.items.toward_tail(cid)
        self.next = cid
        self.next_cas = self._cas(cid)
        return rows


def reset_store_counters(cache: Cache) -> None:
    """``stats reset`` in the store: zero the history counters; what describes the present
    (bytes requested, items) stays."""
    for counters in cache.counters.classes:
        for name in (f.name for f in fields(counters)):
            if name not in ("mem_requested", "lru_hits", "class_id"):
                setattr(counters, name, 0)
    c = cache.counters
    c.total_items = c.get_expired = c.get_flushed = c.slabs_moved = 0
    c.slab_reassign_rescues = c.slab_reassign_chunk_rescues = 0
    c.slab_reassign_evictions_nomem = c.slab_reassign_inline_reclaim = 0
    c.slab_reassign_busy_items = c.slab_reassign_busy_deletes = 0
    c.lru_maintainer_juggles = 0
    cache.crawler.starts = 0
    hits = cache.lru_hits  # zeroed in place: the class counters share it
    for slot in range(len(hits)):
        hits[slot] = 0
    if cache.extstore is not None:
        cache.extstore.reset_counters()


def slab_stats(cache: Cache) -> list[tuple[str, object]]:
    """The lines of ``stats slabs``: per slab class with pages, then totals."""
    lines: list[tuple[str, object]] = []
    active = 0
    for cls in cache.slabs.classes[1:]:
        if not cls.pages:
            continue
        active += 1
        k = cache.counters.classes[cls.id]
        p = f"{cls.id}:"
        lines += [
            (p + "chunk_size", cls.chunk_size),
            (p + "chunks_per_page", cls.per_page),
            (p + "total_pages", len(cls.pages)),
            (p + "total_chunks", cls.total_chunks),
            (p + "used_chunks", cls.total_chunks - len(cls.free)),
            (p + "free_chunks", len(cls.free)),
            (p + "free_chunks_end", 0),
            (p + "get_hits", k.get_hits),
            (p + "cmd_set", k.cmd_set),
            (p + "delete_hits", k.delete_hits),
            (p + "incr_hits", k.incr_hits),
            (p + "decr_hits", k.decr_hits),
            (p + "cas_hits", k.cas_hits),
            (p + "cas_badval", k.cas_badval),
            (p + "touch_hits", k.touch_hits),
        ]
    lines += [("active_slabs", active), ("total_malloced", cache.slabs.malloced)]
    return lines


class ConnectionRow(NamedTuple):
    """One client connection as ``stats conns`` shows it."""

    fd: int
    addr: str  # the peer: tcp:127.0.0.1:40000, unix:<AF 1>
    listen_addr: str  # where it connected to
    state: str  # conn_parse_cmd, conn_nread, conn_waiting
    idle: int  # seconds since its last command


def connection_stats(
    listeners: list[tuple[int, str, bool]], clients: list[ConnectionRow], uptime: int
) -> list[tuple[str, object]]:
    """``stats conns`` in memcached's order (by file descriptor): listeners (TCP, UNIX and
    UDP, given as (fd, address, is_udp)) and clients."""
    rows: list[tuple[int, list[tuple[str, object]]]] = []
    for fd, address, udp in listeners:
        lines: list[tuple[str, object]] = [(f"{fd}:UDP", "UDP")] if udp else []
        lines += [
            (f"{fd}:addr", address),
            (f"{fd}:state", "conn_read" if udp else "conn_listening"),
            (f"{fd}:secs_since_last_cmd", uptime),
        ]
        rows.append((fd, lines))
    for c in clients:
        rows.append(
            (
                c.fd,
                [
                    (f"{c.fd}:addr", c.addr),
                    (f"{c.fd}:listen_addr", c.listen_addr),
                    (f"{c.fd}:state", c.state),
                    (f"{c.fd}:secs_since_last_cmd", c.idle),
                ],
            )
        )
    return [line for _, lines in sorted(rows, key=lambda row: row[0]) for line in lines]
