"""Prometheus metrics: the daemon's ``stats`` read at scrape time, and a latency histogram.

:class:`StatsCollector` is a prometheus-client collector. At each scrape it reads what the
``stats``, ``stats items`` and ``stats slabs`` commands would answer at that moment (the
same code builds both) and names each figure as the community memcached_exporter does:
``memcached_current_items``, ``memcached_commands_total{command,status}``,
``memcached_items_evicted_total``, per-class figures with a ``slab`` label, and so on
(the names, types and HELP texts are in :mod:`memcachepy.ops.metric_names`). Each statistic is
one series: the hits and misses that make ``memcached_commands_total`` are not exported
again under their own names. ``memcached_up`` is 0 when reading the statistics failed.

:class:`LatencySampler` adds what memcached does not offer: a histogram of command service
time (the dispatcher handling one request: parsing done, reply built, network I/O not
included), ``memcachepy_command_duration_seconds{command}``. Timing every request would
cost the request path a wrapper call and a histogram update each. Instead the sampler is a
:mod:`memcachepy.ops.hooks` layer that is switched on at the start of every second for the next
:data:`SAMPLES_PER_WINDOW` requests and then switched off: the histogram counts samples,
not all requests, and the rest of the second runs the unwrapped handlers.

Nothing here imports trio; the HTTP endpoint is in memcachepy.server.service.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from typing import Any, Final

from prometheus_client import CollectorRegistry, Histogram, disable_created_metrics
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from memcachepy.ops import metric_names as names
from memcachepy.ops.hooks import Handler, RequestHooks
from memcachepy.ops.metric_names import MetricName
from memcachepy.protocol import events as ev

StatsReader = Callable[[bytes], list[tuple[str, str]]]
"""Reads a stats sub-command (b"" for plain ``stats``) as (name, value) pairs."""

SAMPLES_PER_WINDOW: Final = 64
#: Service times of one request: microseconds for a hit, milliseconds for a big multi-get.
LATENCY_BUCKETS: Final = (
    0.000_005,
    0.000_01,
    0.000_025,
    0.000_05,
    0.000_1,
    0.000_25,
    0.000_5,
    0.001,
    0.002_5,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    1.0,
)

log = logging.getLogger("memcachepy")


def _number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


class _Families:
    """Metric families built during one scrape, created on first use."""

    def __init__(self) -> None:
        self.families: dict[str, Metric] = {}

    def add(self, metric: MetricName, value: float, labels: dict[str, str] | None = None) -> None:
        labels = labels or {}
        family = self.families.get(metric.name)
        if family is None:
            cls = CounterMetricFamily if metric.kind == "counter" else GaugeMetricFamily
            family = cls(metric.name, metric.help, labels=list(labels))
            self.families[metric.name] = family
        family.add_metric(list(labels.values()), value)  # type: ignore[attr-defined]


_UP: Final = MetricName(
    "memcached_up", "gauge", "1 if this scrape read the server's statistics, 0 if reading failed."
)
_VERSION: Final = MetricName("memcached_version", "gauge", "The version of this memcached server.")


class StatsCollector(Collector):
    """A prometheus-client collector reading the daemon's statistics at scrape time."""

    def __init__(self, read_stats: StatsReader) -> None:
        self._read = read_stats

    def describe(self) -> list[Metric]:
        return []  # unchecked collector: its metrics depend on the live slab classes

    def collect(self) -> Iterator[Metric]:
        out = _Families()
        try:
            general, items, slabs = self._read(b""), self._read(b"items"), self._read(b"slabs")
        except Exception:
            # As memcached_exporter does when memcached does not answer: up 0, nothing else
            # (a partial set of series would look like real zeros on a dashboard).
            log.exception("metrics: reading the statistics failed")
            out.add(_UP, 0)
            yield from out.families.values()
            return
        out.add(_UP, 1)
        self._general(dict(general), out)
        self._items(items, out)
        self._slabs(slabs, out)
        yield from out.families.values()

    def _general(self, stats: dict[str, str], out: _Families) -> None:
        if "version" in stats:
            out.add(_VERSION, 1, {"version": stats["version"]})
        if "warmup_state" in stats:
            for state in names.WARMUP_STATES:
                out.add(
                    names.WARMUP_STATE_METRIC,
                    float(state == stats["warmup_state"]),
                    {"state": state},
                )
        numbers = {
            name: v
            for name, text in stats.items()
            if name not in names.SKIPPED and (v := _number(text)) is not None
        }
        commands = names.COMMANDS_METRIC
        for op in names.HIT_MISS_COMMANDS:
            for kind, status in (("hits", "hit"), ("misses", "miss")):
                if f"{op}_{kind}" in numbers:
                    out.add(commands, numbers[f"{op}_{kind}"], {"command": op, "status": status})
        if "cas_badval" in numbers:
            out.add(commands, numbers["cas_badval"], {"command": "cas", "status": "badval"})
        if "cmd_flush" in numbers:
            out.add(commands, numbers["cmd_flush"], {"command": "flush", "status": "hit"})
        if "cmd_set" in numbers:  # memcached counts cas commands in cmd_set too
            cas = sum(numbers.get(f"cas_{k}", 0) for k in ("hits", "misses", "badval"))
            out.add(commands, numbers["cmd_set"] - cas, {"command": "set", "status": "hit"})
        for name, value in numbers.items():
            if name not in names.IN_COMMANDS:
                out.add(
                    names.GENERAL.get(name) or names.own_name(name, "memcached_", "stats"), value
                )

    def _items(self, lines: list[tuple[str, str]], out: _Families) -> None:
        for name, text in lines:
            parts = name.split(":")  # items:<class>:<field>
            value = _number(text)
            if len(parts) != 3 or value is None:
                continue
            slab, field = parts[1], parts[2]
            if field in names.LRU_HITS:
                out.add(names.LRU_HITS_METRIC, value, {"slab": slab, "lru": names.LRU_HITS[field]})
                continue
            metric = names.ITEMS.get(field) or names.own_name(
                field, "memcached_slab_items_", "stats items"
            )
            out.add(metric, value, {"slab": slab})

    def _slabs(self, lines: list[tuple[str, str]], out: _Families) -> None:
        per_class: dict[str, dict[str, float]] = {}
        for name, text in lines:
            value = _number(text)
            if value is None:
                continue
            slab, sep, field = name.partition(":")
            if not sep:  # totals: active_slabs, total_malloced
                out.add(
                    names.GENERAL.get(name) or names.own_name(name, "memcached_", "stats slabs"),
                    value,
                )
                continue
            per_class.setdefault(slab, {})[field] = value
        commands = names.SLAB_COMMANDS_METRIC
        for slab, fields in per_class.items():
            for field, value in fields.items():
                if field in names.SLABS:
                    out.add(names.SLABS[field], value, {"slab": slab})
                elif field.endswith("_hits") and field[:-5] in names.HIT_MISS_COMMANDS:
                    out.add(commands, value, {"slab": slab, "command": field[:-5], "status": "hit"})
                elif field == "cas_badval":
                    out.add(commands, value, {"slab": slab, "command": "cas", "status": "badval"})
                elif field == "cmd_set":
                    cas = fields.get("cas_hits", 0) + fields.get("cas_badval", 0)
                    out.add(
                        commands, value - cas, {"slab": slab, "command": "set", "status": "hit"}
                    )
                else:
                    out.add(
                        names.own_name(field, "memcached_slab_", "stats slabs"),
                        value,
                        {"slab": slab},
                    )


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
    ev.Delete: "delete",
    ev.Touch: "touch",
    ev.FlushAll: "flush_all",
    ev.Version: "version",
    ev.Verbosity: "verbosity",
    ev.Quit: "quit",
    ev.Shutdown: "shutdown",
    ev.Stats: "stats",
    ev.CacheMemlimit: "cache_memlimit",
    ev.ConfigGet: "config_get",
    ev.ConfigSet: "config_set",
    ev.ErrorReply: "error",
    ev.Close: "close",
    ev.MetaGet: "mg",
    ev.MetaSet: "ms",
    ev.MetaSetTooLarge: "ms",
    ev.MetaDelete: "md",
    ev.MetaArithmetic: "ma",
    ev.MetaNoop: "mn",
    ev.MetaDebug: "me",
    ev.Watch: "watch",
}


class LatencySampler:
    """Times the first :data:`SAMPLES_PER_WINDOW` requests of each window (see module doc)."""

    def __init__(
        self,
        hooks: RequestHooks,
        registry: CollectorRegistry,
        samples: int = SAMPLES_PER_WINDOW,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        self.hooks = hooks
        self.samples = samples
        self._clock = clock
        self._remaining = 0
        # prometheus-client would add a memcachepy_command_duration_seconds_created gauge,
        # a family no dashboard wants (and the text format shows it as a separate family).
        disable_created_metrics()  # type: ignore[no-untyped-call]
        self.histogram = Histogram(
            "memcachepy_command_duration_seconds",
            "Time the daemon spends serving one command (parse to reply built, no network "
            f"I/O); sampled: the first {samples} commands of each second.",
            ["command"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
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
