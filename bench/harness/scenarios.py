"""The benchmark scenarios and the targets memcachepy is held to."""

from dataclasses import dataclass
from typing import Literal

Metric = Literal["rps", "keys_per_s", "p50_us", "p99_us", "p999_us"]

METRIC_LABELS: dict[Metric, str] = {
    "rps": "req/s",
    "keys_per_s": "keys/s",
    "p50_us": "p50 µs",
    "p99_us": "p99 µs",
    "p999_us": "p99.9 µs",
}
LOWER_IS_BETTER: frozenset[Metric] = frozenset({"p50_us", "p99_us", "p999_us"})


@dataclass(frozen=True, slots=True)
class Target:
    """A bound on the ratio candidate / baseline for one metric."""

    metric: Metric
    ratio: float

    @property
    def text(self) -> str:
        op = "<=" if self.metric in LOWER_IS_BETTER else ">="
        return f"{op} {self.ratio:g}x"

    def met(self, ratio: float) -> bool:
        if self.metric in LOWER_IS_BETTER:
            return ratio <= self.ratio
        return ratio >= self.ratio


@dataclass(frozen=True, slots=True)
class Scenario:
    """One load shape, run identically against every server."""

    name: str
    title: str
    conns: int
    depth: int
    sets: int
    gets: int
    value_size: int
    keys: int
    multiget: int = 1
    each: bool = False  # a new request per reply (memtier's --pipeline), not per read
    throughput: Metric = "rps"
    targets: tuple[Target, ...] = ()

    @property
    def shape(self) -> str:
        """A one-line description of the load, for reports."""
        if self.sets == 0:
            mix = "gets only"
        elif self.gets == 0:
            mix = "sets only"
        else:
            mix = f"set:get {self.sets}:{self.gets}"
        if self.multiget > 1:
            mix += f", each get asks {self.multiget} keys"
        if self.each:
            mix += ", a new request sent as each reply arrives"
        return (
            f"{self.conns} conns x {self.depth} in flight, {mix}, "
            f"{self.value_size} B values, {self.keys} keys"
        )


@dataclass(frozen=True, slots=True)
class LoadParams:
    """The knobs the command line exposes for the scenario list."""

    value_size: int = 100
    keys: int = 10_000
    mix_value_size: int = 1024
    large_value_size: int = 100 * 1024
    large_keys: int = 200


def default_scenarios(p: LoadParams) -> list[Scenario]:
    """The comparison's scenarios, in report order."""
    v, k = p.value_size, p.keys
    return [
        Scenario(
            name="c4-seq",
            title="4 connections, one request at a time",
            conns=4,
            depth=1,
            sets=1,
            gets=9,
            value_size=v,
            keys=k,
            targets=(Target("rps", 0.7), Target("p99_us", 2.0)),
        ),
        Scenario(
            name="c50-seq",
            title="50 connections, one request at a time",
            conns=50,
            depth=1,
            sets=1,
            gets=9,
            value_size=v,
            keys=k,
            targets=(Target("rps", 0.5),),
        ),
        Scenario(
            name="c4-pipe16",
            title="4 connections, 16 requests in flight each",
            conns=4,
            depth=16,
            sets=1,
            gets=9,
            value_size=v,
            keys=k,
            targets=(Target("rps", 1.0),),
        ),
        Scenario(
            name="c4-inflight16",
            title="4 connections, 16 in flight, a new one sent as each reply arrives",
            conns=4,
            depth=16,
            sets=1,
            gets=9,
            value_size=v,
            keys=k,
            each=True,
            targets=(Target("rps", 1.6),),
        ),
        Scenario(
            name="mget10",
            title="multi-get of 10 keys, 4 connections",
            conns=4,
            depth=1,
            sets=0,
            gets=1,
            value_size=v,
            keys=k,
            multiget=10,
            throughput="keys_per_s",
        ),
        Scenario(
            name="mget100",
            title="multi-get of 100 keys, 4 connections",
            conns=4,
            depth=1,
            sets=0,
            gets=1,
            value_size=v,
            keys=k,
            multiget=100,
            throughput="keys_per_s",
            targets=(Target("keys_per_s", 1.0),),
        ),
        Scenario(
            name="mix-1k",
            title="1:1 set:get with 1 KB values, 4 connections",
            conns=4,
            depth=1,
            sets=1,
            gets=1,
            value_size=p.mix_value_size,
            keys=p.keys,
            targets=(Target("rps", 0.5),),
        ),
        Scenario(
            name="large-100k",
            title="large values (100 KB), 4 connections",
            conns=4,
            depth=1,
            sets=1,
            gets=9,
            value_size=p.large_value_size,
            keys=p.large_keys,
        ),
    ]


def probe_scenarios(p: LoadParams) -> list[Scenario]:
    """The set measured against the probe server (probe_server.py): the shapes of
    memcachepy's performance goal, with its targets (as fast, p99 within 1.2x)."""
    v, k = p.value_size, p.keys
    goal = (Target("rps", 1.0), Target("p99_us", 1.2))
    return [
        Scenario(
            name="A4",
            title="4 connections, one request at a time",
            conns=4,
            depth=1,
            sets=1,
            gets=10,
            value_size=v,
            keys=k,
            targets=goal,
        ),
        Scenario(
            name="A50",
            title="50 connections, one request at a time",
            conns=50,
            depth=1,
            sets=1,
            gets=10,
            value_size=v,
            keys=k,
            targets=goal,
        ),
        Scenario(
            name="P16",
            title="4 connections, 16 kept in flight",
            conns=4,
            depth=16,
            sets=1,
            gets=10,
            value_size=v,
            keys=k,
            each=True,
            targets=goal,
        ),
        Scenario(
            name="M100",
            title="gets of 100 keys, 4 connections",
            conns=4,
            depth=1,
            sets=0,
            gets=1,
            value_size=v,
            keys=k,
            multiget=100,
            throughput="keys_per_s",
            targets=(Target("keys_per_s", 1.0), Target("p99_us", 1.2)),
        ),
        Scenario(
            name="X1K",
            title="1:1 set:get with 1 KB values, 4 connections",
            conns=4,
            depth=1,
            sets=1,
            gets=1,
            value_size=p.mix_value_size,
            keys=k,
            targets=goal,
        ),
    ]


# Names that select a whole set of scenarios.
SCENARIO_SETS = {"probe": probe_scenarios}


def select_scenarios(
    all_scenarios: list[Scenario], names: str | None, params: LoadParams | None = None
) -> list[Scenario]:
    """The scenarios named in a comma-separated list (all of them for None); a set's name
    (``probe``) stands for its scenarios."""
    if not names:
        return all_scenarios
    make = SCENARIO_SETS.get(names)
    if make is not None:
        return make(params or LoadParams())
    by_name = {s.name: s for s in all_scenarios}
    wanted = [n.strip() for n in names.split(",") if n.strip()]
    unknown = [n for n in wanted if n not in by_name]
    if unknown:
        raise ValueError(f"unknown scenario(s) {', '.join(unknown)}; known: {', '.join(by_name)}")
    return [by_name[n] for n in wanted]
