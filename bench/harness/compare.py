"""The side-by-side comparison: every scenario, every server, in turns; then the reports."""

import json
import re
import sys
from contextlib import ExitStack
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path

from .loadgen import LoadOutcome, loadgen_argv, run_loadgen
from .machine import CpuPlan, describe, load_average
from .paths import REPO_DIR
from .plot import write_plot
from .progress import Progress
from .report import BenchInfo, ServerInfo, fmt_rate, fmt_us, render
from .results import RunRecord, summarize
from .scenarios import METRIC_LABELS, Scenario
from .servers import RunningServer, ServerSpec


@dataclass(frozen=True, slots=True)
class CompareOptions:
    specs: list[ServerSpec]
    baseline: str
    scenarios: list[Scenario]
    repeats: int
    duration_s: float
    warmup_s: float
    max_requests: int
    out_dir: Path
    cpus: CpuPlan
    command: str


def _file_name(server: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", server)


def _describe_outcome(sc: Scenario, out: LoadOutcome) -> str:
    r = out.result
    if r is None:
        first = out.stderr.splitlines()[0] if out.stderr else f"exit {out.returncode}"
        return f"FAILED: {first}"
    text = (
        f"{fmt_rate(r.metric(sc.throughput))} {METRIC_LABELS[sc.throughput]}, "
        f"p50 {fmt_us(r.p50_us)} µs, p99 {fmt_us(r.p99_us)} µs, "
        f"loadgen CPU {100 * r.cpu_util:.0f}%"
    )
    if r.errors:
        first = out.stderr.splitlines()[0] if out.stderr else ""
        text += f", INVALID: {r.errors} errors ({first})"
    return text


def _one_run(
    opts: CompareOptions,
    loadgen: Path,
    sc: Scenario,
    srv: RunningServer,
    repeat: int,
    progress: Progress,
) -> RunRecord:
    progress.start_run(f"{sc.name} · {srv.spec.name} · run {repeat + 1}/{opts.repeats}")
    if not srv.alive:
        progress.finish_run("skipped: the server is not running")
        return RunRecord(sc.name, srv.spec.name, repeat, None, None, "server not running")
    argv = opts.cpus.prefix(opts.cpus.loadgen_cpu) + loadgen_argv(
        loadgen,
        srv.port,
        sc,
        opts.duration_s,
        opts.warmup_s,
        opts.max_requests,
        key_prefix=f"{sc.name}:",
    )
    cpu_before = srv.cpu_seconds()
    outcome = run_loadgen(argv, opts.warmup_s + opts.duration_s, progress.tick)
    cpu_after = srv.cpu_seconds()
    server_cpu = None
    if cpu_before is not None and cpu_after is not None and outcome.wall_s > 0:
        server_cpu = (cpu_after - cpu_before) / outcome.wall_s
    problem = ""
    if outcome.result is None or outcome.result.errors:
        problem = (outcome.stderr.splitlines() or [f"loadgen exit {outcome.returncode}"])[0]
    if not srv.alive:
        problem = f"server exited during the run; log tail: {srv.log_tail(5)!r}"
    progress.finish_run(_describe_outcome(sc, outcome))
    return RunRecord(sc.name, srv.spec.name, repeat, outcome.result, server_cpu, problem)


def run_comparison(opts: CompareOptions, loadgen: Path) -> int:
    """Runs everything, writes results.md/.png/.json into opts.out_dir; 1 if a run was invalid."""
    started = datetime.now().astimezone()
    machine = describe()
    load_before = load_average()
    opts.out_dir.mkdir(parents=True, exist_ok=True)
    records: list[RunRecord] = []
    with ExitStack() as stack:
        servers = []
        for spec in opts.specs:
            log = opts.out_dir / f"server-{_file_name(spec.name)}.log"
            pin = opts.cpus.prefix(opts.cpus.server_cpu)
            srv = stack.enter_context(RunningServer(spec, pin, REPO_DIR, log))
            build = f", {srv.build} build" if srv.build else ""
            print(
                f"started {spec.name} on 127.0.0.1:{srv.port} "
                f"({srv.version or 'no version'}{build})",
                file=sys.stderr,
            )
            if srv.build and srv.build != "compiled":
                print(
                    f"warning: {spec.name} runs its {srv.build} build, not the compiled one "
                    "an install from a machine with a C compiler runs",
                    file=sys.stderr,
                )
            servers.append(srv)
        progress = Progress(
            len(opts.scenarios) * opts.repeats * len(servers), opts.warmup_s + opts.duration_s + 1.0
        )
        for sc in opts.scenarios:
            for repeat in range(opts.repeats):
                # Alternate the order so neither server always runs first.
                order = servers if repeat % 2 == 0 else servers[::-1]
                for srv in order:
                    records.append(_one_run(opts, loadgen, sc, srv, repeat, progress))
        progress.close()
        infos = tuple(
            ServerInfo(s.spec.name, " ".join(s.argv), s.version, s.build) for s in servers
        )
    wall = (datetime.now().astimezone() - started).total_seconds()
    names = [s.name for s in opts.specs]
    summaries = {(sc.name, n): summarize(records, sc, n) for sc in opts.scenarios for n in names}
    info = BenchInfo(
        started=started.strftime("%Y-%m-%d %H:%M %Z"),
        machine=machine,
        cpu_note=opts.cpus.note,
        servers=infos,
        baseline=opts.baseline,
        repeats=opts.repeats,
        duration_s=opts.duration_s,
        warmup_s=opts.warmup_s,
        wall_s=wall,
        command=opts.command,
        load_before=load_before,
        load_after=load_average(),
    )
    markdown = render(info, opts.scenarios, summaries)
    (opts.out_dir / "results.md").write_text(markdown, encoding="utf-8")
    raw = {"info": asdict(info), "runs": [r.to_json() for r in records]}
    (opts.out_dir / "results.json").write_text(json.dumps(raw, indent=1) + "\n", encoding="utf-8")
    plot_path = opts.out_dir / "results.png"
    try:
        write_plot(
            plot_path,
            f"{' vs '.join(names)} — {info.started} — {opts.cpus.note}",
            opts.scenarios,
            names,
            opts.baseline,
            summaries,
        )
    except Exception as exc:  # the tables matter more than the picture
        print(f"could not draw the plot: {exc!r}", file=sys.stderr)
    print(markdown)
    print(f"results written to {opts.out_dir}", file=sys.stderr)
    return 0 if all(r.valid for r in records) else 1
