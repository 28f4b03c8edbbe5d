"""The results plot: throughput, p50 and p99 per scenario, one bar per server."""

from pathlib import Path
from typing import TYPE_CHECKING

from .results import Summary
from .scenarios import METRIC_LABELS, Metric, Scenario

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.container import BarContainer

PANELS: tuple[tuple[str, Metric | None], ...] = (
    ("Throughput (req/s; keys/s for multi-get)", None),
    ("p50 latency (µs)", "p50_us"),
    ("p99 latency (µs)", "p99_us"),
)


def write_plot(
    path: Path,
    title: str,
    scenarios: list[Scenario],
    servers: list[str],
    baseline: str,
    summaries: dict[tuple[str, str], Summary],
) -> None:
    """Writes a PNG with one panel per metric; bars are medians, whiskers min..max."""
    import matplotlib  # imported here: the runner checks first that it is installed

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(PANELS), figsize=(6 * len(PANELS), 5.5))
    width = 0.8 / max(len(servers), 1)
    xs = list(range(len(scenarios)))
    for ax, (label, fixed) in zip(axes, PANELS, strict=True):
        for i, server in enumerate(servers):
            heights, lows, highs = [], [], []
            for sc in scenarios:
                s = summaries[(sc.name, server)]
                metric = fixed or sc.throughput
                m = s.medians.get(metric, 0.0)
                lo, hi = s.spread.get(metric, (m, m))
                heights.append(m)
                lows.append(m - lo)
                highs.append(hi - m)
            pos = [x + (i - (len(servers) - 1) / 2) * width for x in xs]
            bars = ax.bar(pos, heights, width, label=server, yerr=[lows, highs], capsize=2)
            if fixed is None and server != baseline:
                _label_ratios(ax, bars, scenarios, server, baseline, summaries)
        ax.set_title(label)
        ax.set_yscale("log")
        ax.set_xticks(xs)
        ax.set_xticklabels(
            [_tick(sc, fixed) for sc in scenarios], rotation=35, ha="right", fontsize=8
        )
        ax.grid(axis="y", which="both", alpha=0.3)
    axes[0].legend()
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _tick(sc: Scenario, fixed: Metric | None) -> str:
    if fixed is None and sc.throughput != "rps":
        return f"{sc.name} ({METRIC_LABELS[sc.throughput]})"
    return sc.name


def _label_ratios(
    ax: "Axes",
    bars: "BarContainer",
    scenarios: list[Scenario],
    server: str,
    baseline: str,
    summaries: dict[tuple[str, str], Summary],
) -> None:
    """Writes candidate/baseline throughput above each candidate bar."""
    for bar, sc in zip(bars, scenarios, strict=True):
        mine = summaries[(sc.name, server)]
        c = mine.medians.get(sc.throughput)
        b = summaries[(sc.name, baseline)].medians.get(sc.throughput)
        if c and b:
            top = mine.spread.get(sc.throughput, (c, c))[1]  # above the whisker
            ax.annotate(
                f"{c / b:.2f}x",
                (bar.get_x() + bar.get_width() / 2, top),
                ha="center",
                va="bottom",
                fontsize=7,
                rotation=90,
                xytext=(0, 3),
                textcoords="offset points",
            )
