"""Per-phase figures of a chaos run, its table (results.md) and its plot (chaos.png)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

COUNTS = (
    "requests",
    "reads",
    "reads_acked",
    "misses",
    "reads_unwritten",
    "misses_unwritten",
    "misses_unacked",
    "stale",
    "errors",
)


def _p99(values: list[float]) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


def readmission(result: dict[str, Any], phase: dict[str, Any]) -> float | None:
    """Seconds from the fault's end until every client used the node again (max)."""
    back, node = phase["back_at"], phase["node"]
    if back is None or not node:
        return None
    worst = 0.0
    for r in result["workers_results"]:
        before = [s for t, n, s in r["states"] if n == node and t < back]
        after = [t for t, n, s in r["states"] if n == node and t >= back and s == "up"]
        if before and before[-1] == "up" and not after:
            continue  # this client never lost the node
        if not after:
            return float("inf")
        worst = max(worst, after[0] - back)
    return worst


def summarize(result: dict[str, Any]) -> dict[str, Any]:
    rows = []
    every: list[float] = []
    for index, phase in enumerate(result["phases"]):
        row: dict[str, Any] = {"phase": phase["name"], **dict.fromkeys(COUNTS, 0)}
        latencies: list[float] = []
        for r in result["workers_results"]:
            tally = r["tallies"].get(index) or r["tallies"].get(str(index))
            if tally:
                for name in COUNTS:
                    row[name] += tally.get(name, 0)
                latencies += tally["latencies"]
        every += latencies
        row["p99_ms"] = _p99(latencies) * 1e3
        row["max_ms"] = max(latencies, default=0.0) * 1e3
        # Misses of acknowledged keys, out of the reads of acknowledged keys.
        acked = row["reads_acked"] or row["reads"]
        row["miss_rate"] = row["misses"] / acked if acked else 0.0
        row["readmission_s"] = readmission(result, phase)
        row["skipped"] = phase["skipped"]
        row["notes"] = phase["notes"]
        rows.append(row)
    total: dict[str, Any] = {name: sum(r[name] for r in rows) for name in COUNTS}
    acked = total["reads_acked"] or total["reads"]
    total["miss_rate"] = total["misses"] / acked if acked else 0.0
    total["p99_ms"] = _p99(every) * 1e3
    total["max_ms"] = max(every, default=0.0) * 1e3
    repairs: dict[str, int] = {}
    for r in result["workers_results"]:
        for name, value in r["client_stats"].items():
            repairs[name] = repairs.get(name, 0) + value
    warmups = result.get("warmups", [])
    return {
        "phases": rows,
        "total": total,
        "client_stats": repairs,
        "warmups": {
            "count": len(warmups),
            "aborted": sum(w["aborted"] for w in warmups),
            "items": sum(w["items"] for w in warmups),
            "max_seconds": max((w["seconds"] for w in warmups), default=0.0),
        },
    }


def write_report(path: Path, result: dict[str, Any]) -> None:
    s = result["summary"]
    lines = [
        f"# Chaos run: {result['scenario']}",
        "",
        f"{result['nodes']} memcachepy nodes, replicas={result['replicas']}, "
        f"{result['workers']} client processes of {result['keys_per_worker']} keys each, "
        f"{result['writes']:.0%} writes, read repair "
        f"{'on' if result['read_repair'] else 'off'}, warm-up "
        f"{'on' if result.get('warm_up', False) else 'off'}; policy {result['policy']}.",
        "",
        "Misses: of keys whose last write the cluster acknowledged (rate: of the reads of "
        "such keys); apart, of keys never written or deleted (right answers) and of keys "
        "whose last write failed.",
        "",
        "| phase | requests | acked misses | never-written misses | unacked misses | stale "
        "| errors | p99 ms | max ms | re-admission s |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for row in [
        *s["phases"],
        {"phase": "**total**", **s["total"], "readmission_s": None, "skipped": None, "notes": []},
    ]:
        back = row["readmission_s"]
        back_text = "" if back is None else f"{back:.2f}"
        name = row["phase"] + (f" (skipped: {row['skipped']})" if row["skipped"] else "")
        name += "".join(f"; {note}" for note in row["notes"])
        lines.append(
            f"| {name} | {row['requests']} | {row['misses']} ({row['miss_rate']:.2%}) | "
            f"{row['misses_unwritten']} | {row['misses_unacked']} | "
            f"{row['stale']} | {row['errors']} | {row['p99_ms']:.1f} | {row['max_ms']:.0f} | "
            f"{back_text} |"
        )
    w = s["warmups"]
    lines += [
        "",
        f"Warm-ups: {w['count']} ({w['aborted']} aborted), {w['items']} items "
        f"copied, the longest {w['max_seconds']:.1f} s.",
        "",
        "Client counters: " + ", ".join(f"{k} {v}" for k, v in s["client_stats"].items()),
    ]
    path.write_text("\n".join(lines) + "\n")


def write_plot(path: Path, result: dict[str, Any]) -> None:
    import matplotlib  # imported here: only the plot needs it

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = result["summary"]["phases"]
    names = [r["phase"] for r in rows]
    fig, axes = plt.subplots(3, 1, figsize=(10, 8), sharex=True)
    xs = list(range(len(rows)))
    axes[0].bar(xs, [r["miss_rate"] * 100 for r in rows])
    axes[0].set_ylabel("misses (% of reads)")
    axes[1].bar(xs, [r["p99_ms"] for r in rows])
    axes[1].set_ylabel("p99 (ms)")
    axes[2].bar(xs, [r["readmission_s"] or 0 for r in rows])
    axes[2].set_ylabel("re-admission (s)")
    for x, r in zip(xs, rows, strict=True):
        if r["stale"] or r["errors"]:
            axes[0].annotate(f"stale {r['stale']} err {r['errors']}", (x, 0), color="red")
    axes[2].set_xticks(xs, names, rotation=30, ha="right")
    fig.suptitle(f"chaos {result['scenario']}: stale reads {result['summary']['total']['stale']}")
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
