"""Runs as recorded, and their medians per scenario and server."""

import statistics
from dataclasses import dataclass, field
from typing import Any

from .loadgen import LoadResult
from .scenarios import Metric, Scenario

METRICS: tuple[Metric, ...] = ("rps", "keys_per_s", "p50_us", "p99_us", "p999_us")


@dataclass(frozen=True, slots=True)
class RunRecord:
    """One loadgen run of one scenario against one server."""

    scenario: str
    server: str
    repeat: int
    result: LoadResult | None
    server_cpu_util: float | None
    problem: str = ""

    @property
    def valid(self) -> bool:
        """A run counts only when it completed requests and every reply verified."""
        return self.result is not None and self.result.errors == 0 and self.result.rps > 0

    def to_json(self) -> dict[str, Any]:
        return {
            "scenario": self.scenario,
            "server": self.server,
            "repeat": self.repeat,
            "valid": self.valid,
            "problem": self.problem,
            "server_cpu_util": self.server_cpu_util,
            "loadgen": self.result.raw if self.result else None,
        }


@dataclass(slots=True)
class Summary:
    """Medians over the valid runs of one scenario on one server."""

    scenario: str
    server: str
    runs: int = 0
    valid_runs: int = 0
    medians: dict[Metric, float] = field(default_factory=dict)
    spread: dict[Metric, tuple[float, float]] = field(default_factory=dict)
    errors: int = 0
    hit_ratio: float | None = None
    loadgen_cpu: float | None = None
    server_cpu: float | None = None
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.valid_runs > 0


def _median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def summarize(records: list[RunRecord], scenario: Scenario, server: str) -> Summary:
    """Medians (and min..max) of each metric over the valid runs of a scenario on a server."""
    mine = [r for r in records if r.scenario == scenario.name and r.server == server]
    valid = [r.result for r in mine if r.valid and r.result is not None]
    s = Summary(scenario.name, server, runs=len(mine), valid_runs=len(valid))
    s.errors = sum(r.result.errors for r in mine if r.result is not None)
    s.problems = [r.problem for r in mine if r.problem]
    for metric in METRICS:
        values = [v.metric(metric) for v in valid]
        if values:
            s.medians[metric] = statistics.median(values)
            s.spread[metric] = (min(values), max(values))
    lookups = sum(v.hits + v.misses for v in valid)
    if lookups:
        s.hit_ratio = sum(v.hits for v in valid) / lookups
    s.loadgen_cpu = _median([v.cpu_util for v in valid])
    s.server_cpu = _median(
        [r.server_cpu_util for r in mine if r.valid and r.server_cpu_util is not None]
    )
    return s


def ratio(candidate: Summary, baseline: Summary, metric: Metric) -> float | None:
    """candidate / baseline for a metric, when both have a positive median."""
    c, b = candidate.medians.get(metric), baseline.medians.get(metric)
    if c is None or b is None or b <= 0:
        return None
    return c / b
