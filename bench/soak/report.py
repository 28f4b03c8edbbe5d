"""The soak's verdict (results.md) and its plot (soak.png: RSS, throughput, latency)."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def _delta(result: dict[str, Any], name: str) -> int:
    return int(result["stats_after"][name]) - int(result["stats_before"][name])


def checks(result: dict[str, Any]) -> list[tuple[str, str, bool]]:
    """(what, measured, passed) for each verdict of the run."""
    rows = result["windows"]
    total = {
        k: sum(r[k] for r in rows)
        for k in ("ops", "errors", "wrong", "misses", "get_keys", "sets", "touches")
    }
    after = result["stats_after"]
    samples = result["samples"]
    # RSS drift: from the first sample a minute in (the cache is warm by then) to the last.
    warm = next((s for s in samples if s["t"] >= 60), samples[0])
    drift = (samples[-1]["rss_kb"] - warm["rss_kb"]) / 1024
    curr = int(after["curr_items"])
    evictions = int(after["evictions"])
    return [
        ("error replies and dropped connections", str(total["errors"]), total["errors"] == 0),
        ("wrong (stale or corrupt) replies", str(total["wrong"]), total["wrong"] == 0),
        (
            f"unexpected misses (evictions: {evictions})",
            str(total["misses"]),
            total["misses"] == 0 or evictions > 0,
        ),
        (
            "curr_items = keys the workers hold = metadump lines",
            f"{curr} / {result['model_items']} / {result['metadump_items']}",
            curr == result["model_items"] == result["metadump_items"] or evictions > 0,
        ),
        (
            "get_hits + get_misses = cmd_get",
            f"{int(after['get_hits']) + int(after['get_misses'])} / {after['cmd_get']}",
            int(after["get_hits"]) + int(after["get_misses"]) == int(after["cmd_get"]),
        ),
        (
            "cmd_get, cmd_set, cmd_touch = what the workers sent",
            f"{_delta(result, 'cmd_get')}/{total['get_keys']}, "
            f"{_delta(result, 'cmd_set')}/{total['sets']}, "
            f"{_delta(result, 'cmd_touch')}/{total['touches']}",
            (_delta(result, "cmd_get"), _delta(result, "cmd_set"), _delta(result, "cmd_touch"))
            == (total["get_keys"], total["sets"], total["touches"]),
        ),
        (
            "RSS drift after the first minute (MB)",
            f"{drift:+.1f} ({warm['rss_kb'] / 1024:.1f} -> {samples[-1]['rss_kb'] / 1024:.1f})",
            abs(drift) <= max(8.0, 0.05 * warm["rss_kb"] / 1024),
        ),
        ("node alive at the end", str(result["node_alive_at_end"]), result["node_alive_at_end"]),
    ]


def write_report(out: Path, result: dict[str, Any]) -> bool:
    """Write results.md; whether every check passed."""
    rows = result["windows"]
    ops = sum(r["ops"] for r in rows)
    p99s = [r["p99_ms"] for r in rows if "p99_ms" in r]
    service = [r["service_p99_ms"] for r in rows if "service_p99_ms" in r]
    lines = [
        f"# Soak {result['started']}",
        "",
        f"One memcachepy node `-m {result['memory_mb']}`, {result['workers']} worker "
        f"processes, {result['duration_s']:.0f} s at {result['target_rps']:.0f} req/s "
        f"(70% of the measured peak {result['peak_rps']:.0f} req/s); {ops} requests; "
        f"p99 per 10 s window, from when each request was due: {min(p99s):.2f} .. "
        f"{max(p99s):.2f} ms (median window {sorted(p99s)[len(p99s) // 2]:.2f} ms); "
        f"from when it was sent: {min(service):.2f} .. {max(service):.2f} ms "
        f"(median window {sorted(service)[len(service) // 2]:.2f} ms).",
        "",
        "| check | measured | ok |",
        "| --- | --- | --- |",
    ]
    verdicts = checks(result)
    lines += [f"| {what} | {value} | {'yes' if ok else 'NO'} |" for what, value, ok in verdicts]
    (out / "results.md").write_text("\n".join(lines) + "\n")
    return all(ok for _, _, ok in verdicts)


def write_plot(path: Path, result: dict[str, Any]) -> None:
    import matplotlib  # imported here: only the report needs it

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    samples, rows = result["samples"], result["windows"]
    fig, axes = plt.subplots(3, 1, figsize=(9, 8), sharex=True)
    axes[0].plot([s["t"] / 60 for s in samples], [s["rss_kb"] / 1024 for s in samples])
    axes[0].set_ylabel("RSS (MB)")
    axes[1].plot([r["t"] / 60 for r in rows], [r["ops"] / 10 for r in rows])
    axes[1].set_ylabel("requests/s")
    for name, label in (
        ("p99_ms", "p99 from due time"),
        ("service_p50_ms", "p50 from send"),
        ("service_p99_ms", "p99 from send"),
    ):
        axes[2].plot(
            [r["t"] / 60 for r in rows if name in r],
            [r[name] for r in rows if name in r],
            label=label,
        )
    axes[2].set_ylabel("latency (ms)")
    axes[2].set_yscale("log")
    axes[2].legend()
    axes[2].set_xlabel("minutes")
    fig.suptitle(
        f"memcachepy soak: {result['duration_s'] / 60:.0f} min at {result['target_rps']:.0f} req/s"
    )
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
