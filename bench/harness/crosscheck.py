"""--crosscheck: loadgen and Debian's memcaslap drive the same memcached with similar loads."""

import re
import statistics
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from .loadgen import LoadResult, loadgen_argv, run_loadgen
from .machine import CpuPlan
from .paths import REPO_DIR
from .report import fmt_pct, fmt_rate, fmt_us
from .scenarios import Scenario
from .servers import BUILTIN_COMMANDS, HOST, RunningServer, ServerSpec

KEY_PREFIX = "crosscheck-key-"  # with the index, keys of 16..19 bytes
MEMCASLAP_KEY_BYTES = 19  # memcaslap insists on more than 16


@dataclass(frozen=True, slots=True)
class Case:
    """A load for both tools; sets:gets is loadgen's ratio of requests."""

    title: str
    conns: int
    multiget: int
    sets: int
    gets: int


# memcaslap's set share (10 %) counts each key of a multi-get as one operation, so with
# gets of 10 keys it sends 10 sets per 9 multi-gets: loadgen is given the same mix.
CASES = (
    Case("4 conns, 1 request at a time", 4, 1, 1, 9),
    Case("50 conns, 1 request at a time", 50, 1, 1, 9),
    Case("4 conns, gets of 10 keys", 4, 10, 10, 9),
)


@dataclass(frozen=True, slots=True)
class MemcaslapResult:
    tps: float
    avg_us: float | None
    get_misses: int | None


def _memcaslap_config(value_size: int, set_share: float) -> str:
    return (
        f"key\n{MEMCASLAP_KEY_BYTES} {MEMCASLAP_KEY_BYTES} 1\n"
        f"value\n{value_size} {value_size} 1\n"
        f"cmd\n0 {set_share:g}\n1 {1 - set_share:g}\n"
    )


def run_memcaslap(
    pin: list[str], port: int, case: Case, seconds: int, config: Path
) -> tuple[MemcaslapResult | None, str]:
    """One memcaslap run (single thread); its TPS counts every key of a multi-get."""
    argv = [
        *pin,
        "memcaslap",
        "-s",
        f"{HOST}:{port}",
        "-T",
        "1",
        "-c",
        str(case.conns),
        "-t",
        f"{seconds}s",
        "-S",
        f"{seconds}s",
        "-F",
        str(config),
    ]
    if case.multiget > 1:
        argv += ["-d", str(case.multiget)]
    try:
        done = subprocess.run(
            argv, capture_output=True, text=True, timeout=seconds + 30, check=False
        )
    except subprocess.TimeoutExpired:
        return None, "memcaslap did not finish in time"
    text = done.stdout + done.stderr
    tps = re.search(r"TPS: (\d+)", text)
    if tps is None:
        return None, text.strip()[-300:]
    avg = re.search(
        r"Total Statistics \(\d+ events\)\s+Min:\s+\d+\s+Max:\s+\d+\s+Avg:\s+(\d+)", text
    )
    misses = re.search(r"get_misses: (\d+)", text)
    return MemcaslapResult(
        float(tps.group(1)),
        float(avg.group(1)) if avg else None,
        int(misses.group(1)) if misses else None,
    ), ""


def _median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def run_crosscheck(
    loadgen: Path,
    cpus: CpuPlan,
    duration_s: float,
    repeats: int,
    value_size: int,
    keys: int,
    out_dir: Path,
) -> int:
    """Prints (and saves as crosscheck.md) loadgen's and memcaslap's medians side by side."""
    seconds = max(1, round(duration_s))
    spec = ServerSpec("memcached", BUILTIN_COMMANDS["memcached"])
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = [
        f"| Load (10 % of keys set, {value_size} B values) | loadgen | memcaslap "
        "| loadgen / memcaslap | loadgen mean µs | memcaslap avg µs | loadgen CPU "
        "| loadgen errors |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    failed = False
    pin = cpus.prefix(cpus.loadgen_cpu)
    with (
        tempfile.TemporaryDirectory() as tmp,
        RunningServer(
            spec, cpus.prefix(cpus.server_cpu), REPO_DIR, out_dir / "crosscheck-memcached.log"
        ) as srv,
    ):
        config = Path(tmp) / "memcaslap.cfg"
        config.write_text(_memcaslap_config(value_size, 0.1), encoding="ascii")
        for case in CASES:
            sc = Scenario(
                name="crosscheck",
                title=case.title,
                conns=case.conns,
                depth=1,
                sets=case.sets,
                gets=case.gets,
                value_size=value_size,
                keys=keys,
                multiget=case.multiget,
            )
            argv = pin + loadgen_argv(loadgen, srv.port, sc, seconds, 0.0, 100_000_000, KEY_PREFIX)
            lg_runs: list[LoadResult] = []
            ms_runs: list[MemcaslapResult] = []
            problems: list[str] = []
            for repeat in range(repeats):
                print(f"crosscheck: {case.title}, round {repeat + 1}/{repeats}", flush=True)
                # Alternate which tool goes first, as the comparison does with servers.
                for tool in ("loadgen", "memcaslap")[:: 1 if repeat % 2 == 0 else -1]:
                    if tool == "loadgen":
                        outcome = run_loadgen(argv, seconds)
                        if outcome.result is None:
                            problems.append(f"loadgen: {outcome.stderr[:200]}")
                        else:
                            lg_runs.append(outcome.result)
                    else:
                        ms, why = run_memcaslap(pin, srv.port, case, seconds, config)
                        if ms is None:
                            problems.append(f"memcaslap: {why[:200]}")
                        else:
                            ms_runs.append(ms)
            # memcaslap counts each key of a multi-get as one operation: compare keys/s.
            unit = "keys/s" if case.multiget > 1 else "req/s"
            lg_rate = _median([r.keys_per_s if case.multiget > 1 else r.rps for r in lg_runs])
            ms_rate = _median([m.tps for m in ms_runs])
            errors = sum(r.errors for r in lg_runs)
            failed |= errors > 0 or bool(problems)
            ratio = f"{lg_rate / ms_rate:.2f}x" if lg_rate and ms_rate else "—"
            rows.append(
                f"| {case.title} | {fmt_rate(lg_rate)} {unit} | {fmt_rate(ms_rate)} {unit} "
                f"| {ratio} | {fmt_us(_median([r.mean_us for r in lg_runs]))} "
                f"| {fmt_us(_median([m.avg_us for m in ms_runs if m.avg_us is not None]))} "
                f"| {fmt_pct(_median([r.cpu_util for r in lg_runs]))} | {errors} |"
            )
            rows += [f"|   problem: {p} | | | | | | | |" for p in problems]
    text = "\n".join(
        [
            "# loadgen vs memcaslap on memcached",
            "",
            f"memcached -t 1; medians of {repeats} rounds of {seconds} s per tool, the tools "
            f"taking turns; single-threaded memcaslap (-T 1); {cpus.note}.",
            "",
            *rows,
            "",
        ]
    )
    (out_dir / "crosscheck.md").write_text(text, encoding="utf-8")
    print(text)
    print(f"written to {out_dir / 'crosscheck.md'}")
    return 1 if failed else 0
