"""Prometheus metrics: the daemon's ``stats`` read at scrape time, and a latency histogram.

:class:`StatsCollector` is a prometheus-client collector. At each scrape it reads what the
``stats``, ``stats items`` and ``stats slabs`` commands would answer at that moment (the
same code builds both) and names each figure as the community memcached_exporter does:
``memcached_current_items``, ``memcached_commands_total{command,status}``,
``memcached_items_evicted_total``, per-class figures with a ``slab`` label, and so on. A
statistic that exporter does not know keeps its own name: ``memcached_<stat>_total`` for a
counter, ``memcached_<stat>`` for a gauge (:data:`GAUGES`).

:class:`LatencySampler` adds what memcached does not offer: a histogram of command service
time (the dispatcher handling one request: parsing done, reply built, network I/O not
included), ``memcachepy_command_duration_seconds{command}``. Timing every request would
cost the request path a wrapper call and a histogram update each. Instead the sampler is a
:mod:`memcachepy.ops.hooks` layer that is switched on at the start of every second for the next
:data:`SAMPLES_PER_WINDOW` requests and then switched off: the histogram counts samples,
not all requests, and the rest of the second runs the unwrapped handlers.

Nothing here imports trio; the HTTP endpoint is in memcachepy.server.operations.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any, Final

from prometheus_client import CollectorRegistry, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from memcachepy.ops.hooks import Handler, RequestHooks
from memcachepy.protocol import events as ev

StatsReader = Callable[[bytes], list[tuple[str, str]]]
"""Reads a stats sub-command (b"" for plain ``stats``) as (name, value) pairs."""

SAMPLES_PER_WINDOW: Final = 64
#: Service times of one request: microseconds for a hit, milliseconds for a big multi-get.
LATENCY_BUCKETS: Final = (
    0.000_005, 0.000_01, 0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.000_5,
    0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0,
)

# stats -> (metric, type, extra label values): the memcached_exporter names.
_GENERAL: Final[dict[str, tuple[str, str]]] = {
    "uptime": ("memcached_uptime_seconds", "gauge"),
    "time": ("memcached_time_seconds", "gauge"),
    "rusage_user": ("memcached_process_user_cpu_seconds_total", "counter"),
    "rusage_system": ("memcached_process_system_cpu_seconds_total", "counter"),
    "bytes_read": ("memcached_read_bytes_total", "counter"),
    "bytes_written": ("memcached_written_bytes_total", "counter"),
    "max_connections": ("memcached_max_connections", "gauge"),
    "curr_connections": ("memcached_current_connections", "gauge"),
    "total_connections": ("memcached_connections_total", "counter"),
    "rejected_connections": ("memcached_connections_rejected_total", "counter"),
    "conn_yields": ("memcached_connections_yielded_total", "counter"),
    "listen_disabled_num": ("memcached_connections_listener_disabled_total", "counter"),
    "bytes": ("memcached_current_bytes", "gauge"),
    "limit_maxbytes": ("memcached_limit_bytes", "gauge"),
    "curr_items": ("memcached_current_items", "gauge"),
    "total_items": ("memcached_items_total", "counter"),
    "evictions": ("memcached_items_evicted_total", "counter"),
    "reclaimed": ("memcached_items_reclaimed_total", "counter"),
    "store_too_large": ("memcached_item_too_large_total", "counter"),
    "store_no_memory": ("memcached_item_no_memory_total", "counter"),
    "direct_reclaims": ("memcached_direct_reclaims_total", "counter"),
    "lru_crawler_starts": ("memcached_lru_crawler_starts_total", "counter"),
    "crawler_items_checked": ("memcached_lru_crawler_items_checked_total", "counter"),
    "crawler_reclaimed": ("memcached_lru_crawler_reclaimed_total", "counter"),
    "moves_to_cold": ("memcached_lru_crawler_moves_to_cold_total", "counter"),
    "moves_to_warm": ("memcached_lru_crawler_moves_to_warm_total", "counter"),
    "moves_within_lru": ("memcached_lru_crawler_moves_within_lru_total", "counter"),
    "total_malloced": ("memcached_malloced_bytes", "gauge"),
    "accepting_conns": ("memcached_accepting_connections", "gauge"),
}
_ITEMS: Final[dict[str, tuple[str, str]]] = {
    "number": ("memcached_slab_current_items", "gauge"),
    "age": ("memcached_slab_items_age_seconds", "gauge"),
    "mem_requested": ("memcached_slab_mem_requested_bytes", "gauge"),
    "evicted": ("memcached_slab_items_evicted_total", "counter"),
    "evicted_nonzero": ("memcached_slab_items_evicted_nonzero_total", "counter"),
    "evicted_time": ("memcached_slab_items_evicted_time_seconds", "gauge"),
    "evicted_unfetched": ("memcached_slab_items_evicted_unfetched_total", "counter"),
    "expired_unfetched": ("memcached_slab_items_expired_unfetched_total", "counter"),
    "outofmemory": ("memcached_slab_items_outofmemory_total", "counter"),
    "reclaimed": ("memcached_slab_items_reclaimed_total", "counter"),
    "tailrepairs": ("memcached_slab_items_tailrepairs_total", "counter"),
    "crawler_reclaimed": ("memcached_slab_items_crawler_reclaimed_total", "counter"),
    "moves_to_cold": ("memcached_slab_items_moves_to_cold", "gauge"),
    "moves_to_warm": ("memcached_slab_items_moves_to_warm", "gauge"),
    "moves_within_lru": ("memcached_slab_items_moves_within_lru", "gauge"),
    "number_hot": ("memcached_slab_hot_items", "gauge"),
    "number_warm": ("memcached_slab_warm_items", "gauge"),
    "number_cold": ("memcached_slab_cold_items", "gauge"),
    "number_temp": ("memcached_slab_temporary_items", "gauge"),
    "age_hot": ("memcached_slab_hot_age_seconds", "gauge"),
    "age_warm": ("memcached_slab_warm_age_seconds", "gauge"),
}
_LRU_HITS: Final = {"hits_to_hot": "hot", "hits_to_warm": "warm", "hits_to_cold": "cold",
                    "hits_to_temp": "temporary"}
_SLABS: Final[dict[str, tuple[str, str]]] = {
    "chunk_size": ("memcached_slab_chunk_size_bytes", "gauge"),
    "chunks_per_page": ("memcached_slab_chunks_per_page", "gauge"),
    "total_pages": ("memcached_slab_current_pages", "gauge"),
    "total_chunks": ("memcached_slab_current_chunks", "gauge"),
    "used_chunks": ("memcached_slab_chunks_used", "gauge"),
    "free_chunks": ("memcached_slab_chunks_free", "gauge"),
    "free_chunks_end": ("memcached_slab_chunks_free_end", "gauge"),
    "mem_requested": ("memcached_slab_mem_requested_bytes", "gauge"),
}
# Their *_hits/*_misses make memcached_commands_total, as in the exporter (and each is also
# exported under its own name, like every other statistic).
_HIT_MISS_COMMANDS: Final = ("get", "delete", "incr", "decr", "cas", "touch")
#: Statistics that are gauges (a level, not a running count); other numbers are counters.
GAUGES: Final = frozenset((
    "curr_items", "curr_connections", "bytes", "threads", "limit_maxbytes", "max_connections",
    "accepting_conns", "hash_power_level", "hash_bytes", "hash_is_expanding",
    "slab_reassign_running", "slab_global_page_pool", "lru_crawler_running",
    "reserved_fds", "log_watchers", "active_slabs", "total_malloced", "malloced",
    "response_obj_bytes", "read_buf_bytes", "read_buf_bytes_free", "read_buf_oom",
    "pointer_size", "uptime", "time", "curr_conns",
))
_SKIPPED: Final = frozenset(("pid", "pointer_size", "version", "libevent"))


def _number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


class _Families:
    """Metric families built during one scrape, created on first use."""

    def __init__(self) -> None:
        self.families: dict[str, Metric] = {}

    def add(self, name: str, kind: str, value: float, help_text: str,
            labels: dict[str, str] | None = None) -> None:
        labels = labels or {}
        family = self.families.get(name)
        if family is None:
            cls = CounterMetricFamily if kind == "counter" else GaugeMetricFamily
            family = cls(name, help_text, labels=list(labels))
            self.families[name] = family
        family.add_metric(list(labels.values()), value)  # type: ignore[attr-defined]


class StatsCollector(Collector):
    """A prometheus-client collector reading the daemon's statistics at scrape time."""

    def __init__(self, read_stats: StatsReader) -> None:
        self._read = read_stats

    def describe(self) -> list[Metric]:
        return []  # unchecked collector: its metrics depend on the live slab classes

    def collect(self) -> Iterator[Metric]:
        out = _Families()
        out.add("memcached_up", "gauge", 1, "Could the memcached server be reached.")
        general = dict(self._read(b""))
        self._general(general, out)
        self._items(self._read(b"items"), out)
        self._slabs(self._read(b"slabs"), out)
        yield from out.families.values()

    def _general(self, stats: dict[str, str], out: _Families) -> None:
        if "version" in stats:
            out.add("memcached_version", "gauge", 1, "The version of this memcached server.",
                    {"version": stats["version"]})
        numbers = {name: v for name, text in stats.items()
                   if name not in _SKIPPED and (v := _number(text)) is not None}
        help_commands = "Total number of all requests broken down by command and status."
        for op in _HIT_MISS_COMMANDS:
            for kind, status in (("hits", "hit"), ("misses", "miss")):
                if f"{op}_{kind}" in numbers:
                    out.add("memcached_commands_total", "counter", numbers[f"{op}_{kind}"],
                            help_commands, {"command": op, "status": status})
        if "cas_badval" in numbers:
            out.add("memcached_commands_total", "counter", numbers["cas_badval"],
                    help_commands, {"command": "cas", "status": "badval"})
        if "cmd_flush" in numbers:
            out.add("memcached_commands_total", "counter", numbers["cmd_flush"],
                    help_commands, {"command": "flush", "status": "hit"})
        if "cmd_set" in numbers:  # memcached counts cas commands in cmd_set too
            cas = sum(numbers.get(f"cas_{k}", 0) for k in ("hits", "misses", "badval"))
            out.add("memcached_commands_total", "counter", numbers["cmd_set"] - cas,
                    help_commands, {"command": "set", "status": "hit"})
        for name, value in numbers.items():
            metric, kind = _GENERAL.get(name) or _own_name(name)
            out.add(metric, kind, value, f"memcached stats: {name}")

    def _items(self, lines: list[tuple[str, str]], out: _Families) -> None:
        for name, text in lines:
            parts = name.split(":")  # items:<class>:<field>
            value = _number(text)
            if len(parts) != 3 or value is None:
                continue
            slab, field = parts[1], parts[2]
            if field in _LRU_HITS:
                out.add("memcached_slab_lru_hits_total", "counter", value,
                        "Number of get_hits to the LRU.", {"slab": slab, "lru": _LRU_HITS[field]})
                continue
            metric, kind = _ITEMS.get(field) or _own_name(field, "memcached_slab_items_")
            out.add(metric, kind, value, f"memcached stats items: {field}", {"slab": slab})

    def _slabs(self, lines: list[tuple[str, str]], out: _Families) -> None:
        per_class: dict[str, dict[str, float]] = {}
        for name, text in lines:
            value = _number(text)
            if value is None:
                continue
            slab, sep, field = name.partition(":")
            if not sep:  # totals: active_slabs, total_malloced
                metric, kind = _GENERAL.get(name) or _own_name(name)
                out.add(metric, kind, value, f"memcached stats slabs: {name}")
                continue
            per_class.setdefault(slab, {})[field] = value
        help_commands = "Total number of all requests broken down by command and status per slab."
        for slab, fields in per_class.items():
            for field, value in fields.items():
                if field in _SLABS:
                    metric, kind = _SLABS[field]
                    out.add(metric, kind, value, f"memcached stats slabs: {field}",
                            {"slab": slab})
                elif field.endswith("_hits") and field[:-5] in _HIT_MISS_COMMANDS:
                    out.add("memcached_slab_commands_total", "counter", value, help_commands,
                            {"slab": slab, "command": field[:-5], "status": "hit"})
                elif field == "cas_badval":
                    out.add("memcached_slab_commands_total", "counter", value, help_commands,
                            {"slab": slab, "command": "cas", "status": "badval"})
                elif field == "cmd_set":
                    cas = fields.get("cas_hits", 0) + fields.get("cas_badval", 0)
                    out.add("memcached_slab_commands_total", "counter", value - cas,
                            help_commands, {"slab": slab, "command": "set", "status": "hit"})
                else:
                    metric, kind = _own_name(field, "memcached_slab_")
                    out.add(metric, kind, value, f"memcached stats slabs: {field}",
                            {"slab": slab})


def _own_name(stat: str, prefix: str = "memcached_") -> tuple[str, str]:
    """The name of a statistic memcached_exporter does not map: counter or gauge."""
    if stat in GAUGES:
        return prefix + stat, "gauge"
    return f"{prefix}{stat}_total", "counter"


def command_name(event: Any) -> str:
    """The command an event stands for, as the histogram labels it."""
    if isinstance(event, ev.Retrieve):
        if event.exptime is not None:
            return "gats" if event.with_cas else "gat"
        return "gets" if event.with_cas else "get"
    if isinstance(event, ev.Store | ev.StoreTooLarge):
        return event.command.decode("ascii", "replace")
    if isinstance(event, ev.Arithmetic):
        return "incr" if event.incr else "decr"
    return _EVENT_COMMANDS.get(type(event)) or type(event).__name__.lower()


_EVENT_COMMANDS: Final[dict[type, str]] = {
    ev.Delete: "delete", ev.Touch: "touch", ev.FlushAll: "flush_all", ev.Version: "version",
    ev.Verbosity: "verbosity", ev.Quit: "quit", ev.Shutdown: "shutdown", ev.Stats: "stats",
    ev.CacheMemlimit: "cache_memlimit", ev.ConfigGet: "config_get",
    ev.ConfigSet: "config_set", ev.ErrorReply: "error", ev.Close: "close",
    ev.MetaGet: "mg", ev.MetaSet: "ms", ev.MetaSetTooLarge: "ms", ev.MetaDelete: "md",
    ev.MetaArithmetic: "ma", ev.MetaNoop: "mn", ev.MetaDebug: "me", ev.Watch: "watch",
}


class LatencySampler:
    """Times the first :data:`SAMPLES_PER_WINDOW` requests of each window (see module doc)."""

    def __init__(self, hooks: RequestHooks, registry: CollectorRegistry,
                 samples: int = SAMPLES_PER_WINDOW,
                 clock: Callable[[], float] = time.perf_counter) -> None:
        self.hooks = hooks
        self.samples = samples
        self._clock = clock
        self._remaining = 0
        self.histogram = Histogram(
            "memcachepy_command_duration_seconds",
            "Time the daemon spends serving one command (parse to reply built, no network "
            f"I/O); sampled: the first {samples} commands of each second.",
            ["command"], buckets=LATENCY_BUCKETS, registry=registry,
        )
        hooks.add("latency", self, lambda event_type: self._remaining > 0)

    def open_window(self) -> None:
        """Time the next ``samples`` requests (called once a second)."""
        if self._remaining <= 0:
            self._remaining = self.samples
            self.hooks.refresh()

    def __call__(self, event: Any, out: list[Any], call: Handler) -> int:
        start = self._clock()
        outcome = call(event, out)
        elapsed = self._clock() - start
        self.histogram.labels(command_name(event)).observe(elapsed)
        self._remaining -= 1
        if self._remaining <= 0:
            self.hooks.refresh()  # back to the unwrapped handlers until the next window
        return outcome


def parse_stat_lines(reply: bytes) -> list[tuple[str, str]]:
    """``STAT name value`` lines (up to ``END``) as pairs."""
    pairs: list[tuple[str, str]] = []
    for line in reply.split(b"\r\n"):
        if line.startswith(b"STAT "):
            _, name, value = (line.decode("utf-8", "replace").split(" ", 2) + [""])[:3]
            pairs.append((name, value))
    return pairs
