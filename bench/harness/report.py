"""The Markdown results table."""

from dataclasses import dataclass

from .results import Summary, ratio
from .scenarios import METRIC_LABELS, Metric, Scenario


@dataclass(frozen=True, slots=True)
class ServerInfo:
    name: str
    command: str
    version: str
    build: str = ""  # memcachepy's: compiled or pure


@dataclass(frozen=True, slots=True)
class BenchInfo:
    """How a comparison was run, for the report's header."""

    started: str
    machine: str
    cpu_note: str
    servers: tuple[ServerInfo, ...]
    baseline: str
    repeats: int
    duration_s: float
    warmup_s: float
    wall_s: float
    command: str
    load_before: str
    load_after: str


def fmt_rate(x: float | None) -> str:
    if x is None:
        return "—"
    if x >= 1e6:
        return f"{x / 1e6:.2f}M"
    if x >= 1e3:
        return f"{x / 1e3:.1f}k"
    return f"{x:.0f}"


def fmt_us(x: float | None) -> str:
    if x is None:
        return "—"
    return f"{x:.1f}" if x < 100 else f"{x:.0f}"


def fmt_value(metric: Metric, x: float | None) -> str:
    return fmt_rate(x) if metric in ("rps", "keys_per_s") else fmt_us(x)


def fmt_pct(x: float | None) -> str:
    return "—" if x is None else f"{100 * x:.0f}%"


def _row(cells: list[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def _metrics_shown(s: Scenario) -> list[Metric]:
    shown: list[Metric] = [s.throughput, "p50_us", "p99_us"]
    shown += [t.metric for t in s.targets if t.metric not in shown]
    return shown


def comparison_table(
    scenarios: list[Scenario],
    servers: list[str],
    baseline: str,
    summaries: dict[tuple[str, str], Summary],
) -> list[str]:
    """Medians per server, each candidate's ratio to the baseline, the target and the verdict."""
    candidates = [s for s in servers if s != baseline]
    head = [
        "Scenario",
        "Metric",
        *servers,
        *[f"{c} / {baseline}" for c in candidates],
        "Target",
        "Met",
    ]
    lines = [
        _row(head),
        _row(["---"] * 2 + ["---:"] * (len(servers) + len(candidates)) + ["---", "---"]),
    ]
    for sc in scenarios:
        for metric in _metrics_shown(sc):
            target = next((t for t in sc.targets if t.metric == metric), None)
            cells = [sc.name, METRIC_LABELS[metric]]
            cells += [_median_cell(summaries[(sc.name, srv)], metric) for srv in servers]
            verdicts = []
            for cand in candidates:
                r = ratio(summaries[(sc.name, cand)], summaries[(sc.name, baseline)], metric)
                cells.append("—" if r is None else f"{r:.2f}x")
                if target is not None:
                    verdict = "n/a" if r is None else ("met" if target.met(r) else "**not met**")
                    verdicts.append(verdict if len(candidates) == 1 else f"{cand}: {verdict}")
            cells += [target.text if target else "", ", ".join(verdicts)]
            lines.append(_row(cells))
    return lines


def _median_cell(s: Summary, metric: Metric) -> str:
    if not s.ok:
        return "failed" if s.runs else "—"
    return fmt_value(metric, s.medians.get(metric))


def detail_table(
    scenarios: list[Scenario], servers: list[str], summaries: dict[tuple[str, str], Summary]
) -> list[str]:
    """Every median for every run, with the spread of the throughput and CPU use."""
    head = [
        "Scenario",
        "Server",
        "Throughput (min–max)",
        "p50 µs",
        "p99 µs",
        "p99.9 µs",
        "Hits",
        "Errors",
        "Valid runs",
        "Loadgen CPU",
        "Server CPU",
    ]
    lines = [_row(head), _row(["---", "---"] + ["---:"] * (len(head) - 2))]
    for sc in scenarios:
        for srv in servers:
            s = summaries[(sc.name, srv)]
            tp = s.medians.get(sc.throughput)
            lo, hi = s.spread.get(sc.throughput, (None, None))
            tp_cell = (
                (f"{fmt_rate(tp)} {METRIC_LABELS[sc.throughput]} ({fmt_rate(lo)}–{fmt_rate(hi)})")
                if tp is not None
                else "—"
            )
            lines.append(
                _row(
                    [
                        sc.name,
                        srv,
                        tp_cell,
                        fmt_us(s.medians.get("p50_us")),
                        fmt_us(s.medians.get("p99_us")),
                        fmt_us(s.medians.get("p999_us")),
                        fmt_pct(s.hit_ratio),
                        str(s.errors),
                        f"{s.valid_runs}/{s.runs}",
                        fmt_pct(s.loadgen_cpu),
                        fmt_pct(s.server_cpu),
                    ]
                )
            )
    return lines


def render(
    info: BenchInfo, scenarios: list[Scenario], summaries: dict[tuple[str, str], Summary]
) -> str:
    """The whole results.md."""
    servers = [s.name for s in info.servers]
    out = [
        f"# memcachepy benchmark, {info.started}",
        "",
        f"Every figure is the median of {info.repeats} run{'' if info.repeats == 1 else 's'} "
        f"of {info.duration_s:g} s "
        f"(after {info.warmup_s:g} s of warm-up) per scenario and server; the servers take "
        "turns within each scenario, so they see the same machine, the same load and the "
        f"same run. Ratios are server / {info.baseline}.",
        "",
        "## Comparison",
        "",
        *comparison_table(scenarios, servers, info.baseline, summaries),
        "",
        "Throughput: higher is better; latency: lower is better. A ratio is only given when "
        "every reply of the runs behind it verified (see Errors below).",
        "",
        "## All figures (medians)",
        "",
        *detail_table(scenarios, servers, summaries),
        "",
        "Loadgen CPU and Server CPU: share of one core used during the run (a load generator "
        "near 100% would be the bottleneck).",
        "",
        "## Scenarios",
        "",
        *[f"- **{s.name}**: {s.title} ({s.shape})" for s in scenarios],
        "",
        "## Setup",
        "",
        f"- Machine: {info.machine}",
        f"- CPUs: {info.cpu_note}",
        f"- Load average (1, 5, 15 min) before: {info.load_before}; after: {info.load_after} "
        "(anything above what the benchmark itself adds is other work sharing the cores)",
        *[
            f"- {s.name}: `{s.command}` ({s.version or 'no version reply'}"
            + (f"; {s.build} build)" if s.build else ")")
            for s in info.servers
        ],
        "- Load: bench/loadgen.c (epoll, closed loop, every reply parsed and verified), "
        "loopback only",
        f"- Command: `{info.command}`; total wall time {info.wall_s:.0f} s",
    ]
    problems = [(k, p) for k, s in summaries.items() for p in s.problems]
    if problems:
        out += ["", "## Problems", ""]
        out += [f"- {scenario} on {server}: {p}" for (scenario, server), p in problems]
    return "\n".join(out) + "\n"
