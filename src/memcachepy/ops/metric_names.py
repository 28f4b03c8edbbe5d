"""What each statistic is called on ``/metrics``, its Prometheus type and its HELP text.

The names are the community memcached_exporter's where it has one (so its dashboards and
alerts work unchanged); a statistic it does not know is ``memcached_<stat>_total`` when it
only grows and ``memcached_<stat>`` when it is a level. One deliberate difference: the
exporter types the per-class ``moves_to_*`` figures gauge, though they only grow; here they
are counters, ``memcached_slab_items_moves_*_total``.

The HELP texts follow memcached's doc/protocol.txt, with memcachepy's own figures explained.
"""

from __future__ import annotations

from typing import Final, NamedTuple


class MetricName(NamedTuple):
    """How one statistic is exported."""

    name: str
    kind: str  # "counter" or "gauge"
    help: str


def _c(name: str, help_text: str) -> MetricName:
    return MetricName(name, "counter", help_text)


def _g(name: str, help_text: str) -> MetricName:
    return MetricName(name, "gauge", help_text)


#: Plain ``stats`` (and the totals of ``stats slabs``).
GENERAL: Final[dict[str, MetricName]] = {
    "uptime": _g("memcached_uptime_seconds", "Number of seconds since the server started."),
    "time": _g("memcached_time_seconds", "Current UNIX time according to the server."),
    "rusage_user": _c(
        "memcached_process_user_cpu_seconds_total",
        "Accumulated user CPU time of the daemon, in seconds.",
    ),
    "rusage_system": _c(
        "memcached_process_system_cpu_seconds_total",
        "Accumulated system CPU time of the daemon, in seconds.",
    ),
    "max_connections": _g(
        "memcached_max_connections", "Maximum number of client connections allowed (-c)."
    ),
    "curr_connections": _g(
        "memcached_current_connections", "Current number of open client connections."
    ),
    "total_connections": _c(
        "memcached_connections_total",
        "Total number of connections opened since the server started.",
    ),
    "rejected_connections": _c(
        "memcached_connections_rejected_total",
        "Connections refused with 'Too many open connections' (-c).",
    ),
    "listen_disabled_num": _c(
        "memcached_connections_listener_disabled_total",
        "Times the server stopped accepting at its connection limit.",
    ),
    "conn_yields": _c(
        "memcached_connections_yielded_total",
        "Times a busy connection yielded to the others after a turn of requests.",
    ),
    "cmd_get": _c(
        "memcached_cmd_get_total", "Keys asked for by get, gets, gat and gats (hits and misses)."
    ),
    "cmd_set": _c(
        "memcached_cmd_set_total", "Storage commands: set, add, replace, append, prepend and cas."
    ),
    "cmd_touch": _c("memcached_cmd_touch_total", "Keys asked for by touch, gat and gats."),
    "cmd_meta": _c("memcached_cmd_meta_total", "Meta protocol commands (mg, ms, md, ma, mn, me)."),
    "get_expired": _c(
        "memcached_get_expired_total",
        "Gets that found an item already expired (counted as misses).",
    ),
    "get_flushed": _c(
        "memcached_get_flushed_total",
        "Gets that found an item invalidated by flush_all (counted as misses).",
    ),
    "store_too_large": _c(
        "memcached_item_too_large_total",
        "Items refused because they exceed the item size limit (-I).",
    ),
    "store_no_memory": _c(
        "memcached_item_no_memory_total",
        "Items refused for lack of memory (-M, or nothing to evict).",
    ),
    "auth_cmds": _c("memcached_auth_cmds_total", "Authentication attempts (-S, -Y)."),
    "auth_errors": _c("memcached_auth_errors_total", "Failed authentication attempts."),
    "idle_kicks": _c(
        "memcached_idle_kicks_total", "Connections closed for being idle longer than idle_timeout."
    ),
    "bytes_read": _c(
        "memcached_read_bytes_total", "Total number of bytes read by this server from the network."
    ),
    "bytes_written": _c(
        "memcached_written_bytes_total", "Total number of bytes sent by this server to the network."
    ),
    "limit_maxbytes": _g(
        "memcached_limit_bytes", "Number of bytes this server may use for items (-m)."
    ),
    "accepting_conns": _g(
        "memcached_accepting_connections", "1 while the server accepts new connections, else 0."
    ),
    "threads": _g(
        "memcached_threads", "Worker threads: always 1, memcachepy serves on one event loop."
    ),
    "hash_power_level": _g(
        "memcached_hash_power_level", "The key index has 2**this slots (-o hashpower= at start)."
    ),
    "hash_bytes": _g(
        "memcached_hash_bytes", "Bytes of the key index's table(s), both while it doubles."
    ),
    "hash_is_expanding": _g(
        "memcached_hash_is_expanding", "1 while the key index moves to its doubled table, else 0."
    ),
    "output_flushes": _c(
        "memcached_output_flushes_total",
        "Replies sent early because they passed 256 KiB (slow readers wait).",
    ),
    "input_overflows": _c(
        "memcached_input_overflows_total",
        "Connections closed for a request line or input over the limits.",
    ),
    "internal_errors": _c(
        "memcached_internal_errors_total",
        "Requests that raised an internal error; each closed its connection.",
    ),
    "slab_reassign_rescues": _c(
        "memcached_slab_reassign_rescues_total",
        "Items copied off a slab page being moved to another class.",
    ),
    "slab_reassign_chunk_rescues": _c(
        "memcached_slab_reassign_chunk_rescues_total",
        "Chunks of large items copied off a page being moved.",
    ),
    "slab_reassign_evictions_nomem": _c(
        "memcached_slab_reassign_evictions_nomem_total",
        "Items evicted by a page move for want of a free chunk.",
    ),
    "slab_reassign_inline_reclaim": _c(
        "memcached_slab_reassign_inline_reclaim_total",
        "Expired items freed while a page was being moved.",
    ),
    "slab_reassign_busy_items": _c(
        "memcached_slab_reassign_busy_items_total",
        "Items a page move found in use and had to wait for.",
    ),
    "slab_reassign_busy_deletes": _c(
        "memcached_slab_reassign_busy_deletes_total",
        "Items deleted while a page move waited for them.",
    ),
    "slab_reassign_running": _g(
        "memcached_slab_reassign_running", "1 while a slab page is being moved, else 0."
    ),
    "slabs_moved": _c(
        "memcached_slabs_moved_total",
        "Slab pages moved between classes (slabs reassign, automove).",
    ),
    "lru_crawler_running": _g(
        "memcached_lru_crawler_running", "1 while the LRU crawler is crawling, else 0."
    ),
    "lru_crawler_starts": _c(
        "memcached_lru_crawler_starts_total", "Times the LRU crawler was started."
    ),
    "lru_maintainer_juggles": _c(
        "memcached_lru_maintainer_juggles_total",
        "Runs of the LRU maintainer (segment balancing steps).",
    ),
    "bytes": _g("memcached_current_bytes", "Current number of bytes used to store items."),
    "curr_items": _g("memcached_current_items", "Current number of items stored by this instance."),
    "total_items": _c(
        "memcached_items_total", "Total number of items stored since the server started."
    ),
    "slab_global_page_pool": _g(
        "memcached_slab_global_page_pool", "Slab pages in the global pool, assigned to no class."
    ),
    "expired_unfetched": _c(
        "memcached_expired_unfetched_total", "Items that expired without ever being read."
    ),
    "evicted_unfetched": _c(
        "memcached_evicted_unfetched_total", "Items evicted without ever being read."
    ),
    "evicted_active": _c(
        "memcached_evicted_active_total",
        "Items at the COLD tail kept because they had just been read.",
    ),
    "evictions": _c(
        "memcached_items_evicted_total",
        "Total number of valid items removed from cache to free memory for new items.",
    ),
    "reclaimed": _c(
        "memcached_items_reclaimed_total",
        "Times an item was stored in the memory of an expired one.",
    ),
    "crawler_reclaimed": _c(
        "memcached_lru_crawler_reclaimed_total", "Total items freed by the LRU crawler."
    ),
    "crawler_items_checked": _c(
        "memcached_lru_crawler_items_checked_total", "Total items examined by the LRU crawler."
    ),
    "lrutail_reflocked": _c(
        "memcached_lrutail_reflocked_total",
        "LRU tail items found in use by another thread (0 here: one thread).",
    ),
    "moves_to_cold": _c(
        "memcached_lru_crawler_moves_to_cold_total",
        "Total number of items moved from HOT or WARM to COLD.",
    ),
    "moves_to_warm": _c(
        "memcached_lru_crawler_moves_to_warm_total",
        "Total number of items moved from COLD to WARM.",
    ),
    "moves_within_lru": _c(
        "memcached_lru_crawler_moves_within_lru_total",
        "Total number of items reshuffled within HOT or WARM.",
    ),
    "direct_reclaims": _c(
        "memcached_direct_reclaims_total", "Times a store had to reclaim or evict items itself."
    ),
    "lru_bumps_dropped": _c(
        "memcached_lru_bumps_dropped_total",
        "LRU bumps dropped for a full queue (0 here: reads only mark items).",
    ),
    "ssl_handshake_errors": _c(
        "memcached_ssl_handshake_errors_total", "TLS handshakes that failed (-Z)."
    ),
    "time_since_server_cert_refresh": _g(
        "memcached_time_since_server_cert_refresh_seconds",
        "Seconds since the TLS certificates were (re)loaded.",
    ),
    "active_slabs": _g("memcached_active_slabs", "Slab classes with at least one page."),
    "total_malloced": _g(
        "memcached_malloced_bytes", "Number of bytes of memory allocated to slab pages."
    ),
    # The warm-up from peers (--cluster-replicas 2 or more; memcachepy.server.warmup).
    "warmup_items": _c(
        "memcachepy_warmup_items_total",
        "Items the warm-up copied from peers into this node (and kept).",
    ),
    "warmup_bytes": _c(
        "memcachepy_warmup_bytes_total", "Value bytes of the items the warm-up copied from peers."
    ),
    "warmup_dropped": _c(
        "memcachepy_warmup_dropped_total",
        "Keys the warm-up did not copy: changed at the source meanwhile, "
        "already here, or deleted here.",
    ),
    "warmup_peers": _g("memcachepy_warmup_peers", "Peers the warm-up has copied from completely."),
    "warmup_peer_failures": _c(
        "memcachepy_warmup_peer_failures_total",
        "Failed attempts at a peer during the warm-up (each retried).",
    ),
    "warmup_seconds": _g(
        "memcachepy_warmup_seconds", "How long the finished warm-up took (0 until it ends)."
    ),
}
#: ``warmup_state`` as an enum: one series per state, 1 for the current one.
WARMUP_STATES: Final = ("idle", "waiting", "running", "done", "aborted")
WARMUP_STATE_METRIC: Final = _g(
    "memcachepy_warmup_state", "The warm-up from peers: 1 for its current state, else 0."
)

#: Per slab class from ``stats items`` (``items:<class>:<field>``), with a ``slab`` label.
ITEMS: Final[dict[str, MetricName]] = {
    "number": _g(
        "memcached_slab_current_items", "Number of items currently stored in this slab class."
    ),
    "number_hot": _g("memcached_slab_hot_items", "Number of items in the HOT LRU segment."),
    "number_warm": _g("memcached_slab_warm_items", "Number of items in the WARM LRU segment."),
    "number_cold": _g("memcached_slab_cold_items", "Number of items in the COLD LRU segment."),
    "number_temp": _g(
        "memcached_slab_temporary_items", "Number of items in the TEMP LRU segment (short TTLs)."
    ),
    "age_hot": _g("memcached_slab_hot_age_seconds", "Age of the oldest item in HOT."),
    "age_warm": _g("memcached_slab_warm_age_seconds", "Age of the oldest item in WARM."),
    "age": _g(
        "memcached_slab_items_age_seconds",
        "Seconds since the oldest item in this slab class was last used.",
    ),
    "mem_requested": _g(
        "memcached_slab_mem_requested_bytes",
        "Bytes the items of this class take (header, key and value).",
    ),
    "evicted": _c(
        "memcached_slab_items_evicted_total", "Items evicted from this class before they expired."
    ),
    "evicted_nonzero": _c(
        "memcached_slab_items_evicted_nonzero_total",
        "Items with an expiry time evicted from this class before it passed.",
    ),
    "evicted_time": _g(
        "memcached_slab_items_evicted_time_seconds",
        "Seconds since the last access of the most recent item evicted here.",
    ),
    "outofmemory": _c(
        "memcached_slab_items_outofmemory_total",
        "Stores into this class refused with an out of memory error.",
    ),
    "tailrepairs": _c(
        "memcached_slab_items_tailrepairs_total",
        "Times a stuck LRU tail item had to be repaired (0 here).",
    ),
    "reclaimed": _c(
        "memcached_slab_items_reclaimed_total",
        "Times an item of this class was stored in an expired item's memory.",
    ),
    "expired_unfetched": _c(
        "memcached_slab_items_expired_unfetched_total",
        "Items of this class that expired without ever being read.",
    ),
    "evicted_unfetched": _c(
        "memcached_slab_items_evicted_unfetched_total",
        "Items of this class evicted without ever being read.",
    ),
    "evicted_active": _c(
        "memcached_slab_items_evicted_active_total",
        "COLD tail items of this class kept because they had just been read.",
    ),
    "crawler_reclaimed": _c(
        "memcached_slab_items_crawler_reclaimed_total",
        "Items of this class freed by the LRU crawler.",
    ),
    "crawler_items_checked": _c(
        "memcached_slab_items_crawler_items_checked_total",
        "Items of this class examined by the LRU crawler.",
    ),
    "lrutail_reflocked": _c(
        "memcached_slab_items_lrutail_reflocked_total",
        "LRU tail items found in use by another thread (0 here).",
    ),
    "moves_to_cold": _c(
        "memcached_slab_items_moves_to_cold_total",
        "Items of this class moved from HOT or WARM into COLD.",
    ),
    "moves_to_warm": _c(
        "memcached_slab_items_moves_to_warm_total", "Items of this class moved from COLD into WARM."
    ),
    "moves_within_lru": _c(
        "memcached_slab_items_moves_within_lru_total",
        "Items of this class reshuffled within HOT or WARM.",
    ),
    "direct_reclaims": _c(
        "memcached_slab_items_direct_reclaims_total",
        "Times a store into this class had to reclaim or evict itself.",
    ),
}
#: ``items:<class>:hits_to_<segment>``: one counter with an ``lru`` label.
LRU_HITS: Final = {
    "hits_to_hot": "hot",
    "hits_to_warm": "warm",
    "hits_to_cold": "cold",
    "hits_to_temp": "temporary",
}
LRU_HITS_METRIC: Final = _c(
    "memcached_slab_lru_hits_total", "Get hits per slab class, by the LRU segment the item was in."
)

#: Per slab class from ``stats slabs`` (``<class>:<field>``), with a ``slab`` label.
SLABS: Final[dict[str, MetricName]] = {
    "chunk_size": _g("memcached_slab_chunk_size_bytes", "Bytes of one chunk of this slab class."),
    "chunks_per_page": _g(
        "memcached_slab_chunks_per_page", "Number of chunks in one 1 MiB page of this class."
    ),
    "total_pages": _g(
        "memcached_slab_current_pages", "Number of pages assigned to this slab class."
    ),
    "total_chunks": _g("memcached_slab_current_chunks", "Number of chunks in this class's pages."),
    "used_chunks": _g("memcached_slab_chunks_used", "Chunks of this class holding items."),
    "free_chunks": _g("memcached_slab_chunks_free", "Chunks of this class free for items."),
    "free_chunks_end": _g(
        "memcached_slab_chunks_free_end",
        "Free chunks at the end of the last page (0 here: pages are carved at once).",
    ),
}

#: The ``*_hits``/``*_misses`` statistics of these commands become ``memcached_commands_total``
#: (and are exported only there).
HIT_MISS_COMMANDS: Final = ("get", "delete", "incr", "decr", "cas", "touch")
COMMANDS_METRIC: Final = _c(
    "memcached_commands_total",
    "Requests by command and status (hit, miss, badval), as memcached_exporter counts them.",
)
SLAB_COMMANDS_METRIC: Final = _c(
    "memcached_slab_commands_total",
    "Hits per slab class by command (get, set, delete, incr, decr, cas, touch).",
)
#: Statistics exported only inside memcached_commands_total, never under their own names.
IN_COMMANDS: Final = frozenset(
    [f"{op}_{kind}" for op in HIT_MISS_COMMANDS for kind in ("hits", "misses")]
    + ["cas_badval", "cmd_flush"]
)

#: Statistics that are levels, not running counts (for those a table above does not name).
GAUGES: Final = frozenset(
    (
        "curr_items",
        "curr_connections",
        "bytes",
        "threads",
        "limit_maxbytes",
        "max_connections",
        "accepting_conns",
        "hash_power_level",
        "hash_bytes",
        "hash_is_expanding",
        "slab_reassign_running",
        "slab_global_page_pool",
        "lru_crawler_running",
        "reserved_fds",
        "log_watchers",
        "active_slabs",
        "total_malloced",
        "malloced",
        "response_obj_bytes",
        "read_buf_bytes",
        "read_buf_bytes_free",
        "read_buf_oom",
        "pointer_size",
        "uptime",
        "time",
        "curr_conns",
    )
)
#: Not numbers worth a series (the version is ``memcached_version{version}``).
SKIPPED: Final = frozenset(("pid", "pointer_size", "version", "libevent"))


# memcached's figures for which memcachepy has no buffers or threads of its own: each
# says what it is and what it reads here.
_OWN_HELP: Final = {
    "connection_structures": "Connection structures in use (clients and a listener).",
    "response_obj_oom": "Requests refused for want of reply memory (-o read_buf_mem_limit).",
    "response_obj_count": "Response objects in memcached's pool (0: none here).",
    "response_obj_bytes": "Bytes of memcached's response object pool (0: none here).",
    "read_buf_count": "Read buffers in memcached's pool (0: none here).",
    "read_buf_bytes": "Bytes of memcached's read buffers (0: none here).",
    "read_buf_bytes_free": "Free bytes of memcached's read buffers (0: none here).",
    "read_buf_oom": "Partial requests or reply backlogs let go (-o conn_mem_limit).",
    "reserved_fds": "File descriptors not used by client connections.",
    "time_in_listen_disabled_us": "Microseconds spent with listening paused (never here).",
    "hash_power_level": "Hash table size as a power of 2, as memcached would size it.",
    "hash_bytes": "Bytes of the hash table, as memcached would size it.",
    "hash_is_expanding": "Whether the hash table is growing (never here).",
    "malloc_fails": "Failed memory allocations.",
    "log_worker_dropped": "Log lines dropped by workers (watch).",
    "log_worker_written": "Log lines written by workers (watch).",
    "log_watcher_skipped": "Log lines skipped for slow watchers.",
    "log_watcher_sent": "Log lines sent to watchers.",
    "log_watchers": "Connections running watch.",
    "unexpected_napi_ids": "Connections with an unknown NAPI id (none here).",
    "round_robin_fallback": "Connections placed round-robin for want of a NAPI id.",
}


def own_name(stat: str, prefix: str, source: str) -> MetricName:
    """A statistic no table names (added later, or from a newer memcached)."""
    help_text = _OWN_HELP.get(stat) or (
        f"The '{stat}' figure of '{source}' (see memcached's protocol.txt)."
    )
    if stat in GAUGES:
        return _g(prefix + stat, help_text)
    return _c(f"{prefix}{stat}_total", help_text)
