"""What the ``stats`` family reports: name/value pairs built from the live daemon state.

Shared by every protocol (the text ``stats`` commands, and later the binary ``stat``
opcode and the metrics endpoint), so each figure is computed in one place.
"""

from __future__ import annotations

import os
import resource
import time

from memcachepy import VERSION
from memcachepy.config import Settings
from memcachepy.stats import ServerCounters
from memcachepy.store.cache import Cache


def general_stats(
    settings: Settings, cache: Cache, counters: ServerCounters, started: float
) -> list[tuple[str, object]]:
    """The lines of a plain ``stats``, in memcached's order."""
    c = counters
    cc = cache.counters
    usage = resource.getrusage(resource.RUSAGE_SELF)
    now = time.time()
    lines: list[tuple[str, object]] = [
        ("pid", os.getpid()),
        ("uptime", int(now - started)),
        ("time", int(now)),
        ("version", VERSION),
        ("pointer_size", 64),
        ("rusage_user", usage.ru_utime),
        ("rusage_system", usage.ru_stime),
        ("max_connections", settings.max_connections),
        ("curr_connections", c.curr_connections),
        ("total_connections", c.total_connections),
        ("rejected_connections", c.rejected_connections),
        ("cmd_get", c.cmd_get),
        ("cmd_set", c.cmd_set),
        ("cmd_flush", c.cmd_flush),
        ("cmd_touch", c.cmd_touch),
        ("get_hits", cc.total("get_hits")),
        ("get_misses", c.get_misses),
        ("get_expired", cc.get_expired),
        ("get_flushed", cc.get_flushed),
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
        ("idle_kicks", c.idle_kicks),
        ("bytes_read", c.bytes_read),
        ("bytes_written", c.bytes_written),
        ("limit_maxbytes", settings.memory_limit),
        ("accepting_conns", 1),
        ("threads", 1),
        ("conn_yields", c.conn_yields),
        ("output_flushes", c.output_flushes),
        ("input_overflows", c.input_overflows),
        ("internal_errors", c.internal_errors),
        ("slabs_moved", cc.slabs_moved),
        ("bytes", cache.bytes),
        ("curr_items", cache.curr_items),
        ("total_items", cc.total_items),
        ("expired_unfetched", cc.total("expired_unfetched")),
        ("evicted_unfetched", cc.total("evicted_unfetched")),
        ("evictions", cc.total("evicted")),
        ("reclaimed", cc.total("reclaimed")),
    ]
    if settings.tls_enabled:
        lines += [
            ("ssl_handshake_errors", c.ssl_handshake_errors),
            ("time_since_server_cert_refresh", int(now - c.ssl_cert_loaded_at)),
        ]
    return lines

def settings_stats(settings: Settings, cache: Cache) -> list[tuple[str, object]]:
    """The lines of ``stats settings``."""
    s = settings
    return [
        ("auth_enabled_ascii", s.auth_file or "no"),
        ("maxbytes", s.memory_limit),
        ("maxconns", s.max_connections),
        ("tcpport", s.port),
        ("udpport", 0),
        ("inter", s.listen),
        ("verbosity", s.verbosity),
        ("oldest", cache.oldest_live),
        ("evictions", "on" if s.evict else "off"),
        ("growth_factor", b"%.2f" % s.growth_factor),
        ("chunk_size", s.min_chunk),
        ("num_threads", 1),
        ("detail_enabled", False),
        ("cas_enabled", s.use_cas),
        ("binding_protocol", "ascii"),
        ("item_size_max", s.item_size_max),
        ("slab_chunk_max", cache.slabs.chunk_max),
        ("shutdown_command", s.enable_shutdown),
        ("flush_enabled", s.flush_enabled),
        ("idle_timeout", s.idle_timeout),
    ]

def item_stats(cache: Cache) -> list[tuple[str, object]]:
    """The lines of ``stats items``: per slab class with items."""
    lines: list[tuple[str, object]] = []
    for cls in cache.slabs.classes[1:]:
        number = cache.items.counts[cls.id]
        k = cache.counters.classes[cls.id]
        if not number and not k.evicted and not k.outofmemory:
            continue
        prefix = f"items:{cls.id}:"
        lines += [
            (prefix + "number", number),
            (prefix + "age", cache.oldest_age(cls.id)),
            (prefix + "mem_requested", k.mem_requested),
            (prefix + "evicted", k.evicted),
            (prefix + "evicted_nonzero", k.evicted_nonzero),
            (prefix + "evicted_time", k.evicted_time),
            (prefix + "outofmemory", k.outofmemory),
            (prefix + "reclaimed", k.reclaimed),
            (prefix + "expired_unfetched", k.expired_unfetched),
            (prefix + "evicted_unfetched", k.evicted_unfetched),
        ]
    return lines

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
