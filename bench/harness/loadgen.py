"""Running bench/build/loadgen and reading its JSON result line."""

import json
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .scenarios import Metric, Scenario
from .servers import HOST

PRELOAD_TIMEOUT_S = 30.0
DRAIN_TIMEOUT_S = 2.0


@dataclass(frozen=True, slots=True)
class LoadResult:
    """What one loadgen run measured (the JSON line, with the fields the reports use)."""

    rps: float
    keys_per_s: float
    p50_us: float
    p99_us: float
    p999_us: float
    mean_us: float
    hits: int
    misses: int
    errors: int
    cpu_util: float
    raw: dict[str, Any]

    @classmethod
    def from_json(cls, line: str) -> "LoadResult":
        raw = json.loads(line)
        return cls(
            rps=float(raw["rps"]),
            keys_per_s=float(raw["keys_per_s"]),
            p50_us=float(raw["p50_us"]),
            p99_us=float(raw["p99_us"]),
            p999_us=float(raw["p999_us"]),
            mean_us=float(raw["mean_us"]),
            hits=int(raw["hits"]),
            misses=int(raw["misses"]),
            errors=int(raw["errors"]),
            cpu_util=float(raw["cpu_util"]),
            raw=raw,
        )

    def metric(self, name: Metric) -> float:
        value: float = getattr(self, name)
        return value


@dataclass(frozen=True, slots=True)
class LoadOutcome:
    """A run's result, or why there is none; `stderr` holds loadgen's diagnostics."""

    result: LoadResult | None
    returncode: int
    stderr: str
    wall_s: float


def loadgen_argv(
    binary: Path,
    port: int,
    scenario: Scenario,
    duration: float,
    warmup: float,
    max_requests: int,
    key_prefix: str,
) -> list[str]:
    """The loadgen command line for one scenario against one server."""
    return [
        str(binary),
        "--host",
        HOST,
        "--port",
        str(port),
        "--conns",
        str(scenario.conns),
        "--depth",
        str(scenario.depth),
        "--ratio",
        f"{scenario.sets}:{scenario.gets}",
        "--multiget",
        str(scenario.multiget),
        "--keys",
        str(scenario.keys),
        "--value-size",
        str(scenario.value_size),
        "--duration",
        f"{duration:g}",
        "--warmup",
        f"{warmup:g}",
        "--requests",
        str(max_requests),
        "--key-prefix",
        key_prefix,
        "--preload-timeout",
        f"{PRELOAD_TIMEOUT_S:g}",
        "--drain-timeout",
        f"{DRAIN_TIMEOUT_S:g}",
        *(["--each"] if scenario.each else []),
    ]


def run_loadgen(
    argv: list[str], expected_s: float, on_tick: Callable[[float], None] | None = None
) -> LoadOutcome:
    """Runs the loadgen to completion (killing it past a generous deadline)."""
    deadline_s = expected_s + PRELOAD_TIMEOUT_S + DRAIN_TIMEOUT_S + 15.0
    start = time.monotonic()
    proc = subprocess.Popen(
        argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        while proc.poll() is None:
            elapsed = time.monotonic() - start
            if elapsed > deadline_s:
                proc.kill()
                break
            if on_tick is not None:
                on_tick(elapsed)
            time.sleep(0.2)
        out, err = proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    wall = time.monotonic() - start
    lines = [line for line in out.splitlines() if line.startswith("{")]
    result = None
    if lines:
        try:
            result = LoadResult.from_json(lines[-1])
        except (ValueError, KeyError):
            err += f"\nunreadable loadgen output: {lines[-1][:200]}"
    return LoadOutcome(result, proc.returncode, err.strip(), wall)
