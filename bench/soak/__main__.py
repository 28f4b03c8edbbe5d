"""The long soak: one node, a mixed load at 70% of its peak, for 30 minutes (bounded).

    nice -n 10 python -m bench.soak [--duration 1800] [--workers 2] [--out DIR]

Steps: start ``memcachepy -m 64`` on a free loopback port; measure the peak with the
workers as fast as replies come (``--peak-seconds``); then run them paced at
``--load`` (0.7) of that peak for ``--duration`` seconds. Every 10 s it samples the
daemon's RSS and ``stats``; at the end it checks that ``curr_items`` equals the keys the
workers' models hold and what ``lru_crawler metadump all`` lists, that
``get_hits + get_misses == cmd_get`` and that ``cmd_get``, ``cmd_set`` and ``cmd_touch``
equal what the workers sent. Writes results.json, results.md and soak.png to ``--out``
(default bench/soak/results/<UTC date-time>). Exit status 1 when a reply was an error or
wrong, or a consistency check failed.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.soak.load import WINDOW, Window, run_worker
from bench.soak.report import write_plot, write_report
from bench.soak.wire import Wire

HOST = "127.0.0.1"
MAX_DURATION = 2 * 3600  # the loop bound, whatever --duration says


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def rss_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def start_node(port: int, memory: int, log: Path) -> subprocess.Popen[bytes]:
    argv = [
        sys.executable,
        "-P",
        "-m",
        "memcachepy",
        "-l",
        HOST,
        "-p",
        str(port),
        "-m",
        str(memory),
    ]
    proc = subprocess.Popen(
        argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=log.open("wb")
    )
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        try:
            socket.create_connection((HOST, port), timeout=0.5).close()
            return proc
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError("the node did not start")


def run_phase(
    port: int, workers: int, rate: float | None, duration: float, seed: int, on_tick: Any = None
) -> tuple[dict[int, list[Window]], list[dict[str, Any]]]:
    """Run the workers; their windows by worker, and what each reported at the end."""
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    per_worker = rate / workers if rate else None
    procs = [
        ctx.Process(
            target=run_worker, args=(w, HOST, port, per_worker, duration, queue, seed), daemon=True
        )
        for w in range(workers)
    ]
    for p in procs:
        p.start()
    windows: dict[int, list[Window]] = {}
    finals: list[dict[str, Any]] = []
    deadline = time.monotonic() + duration + 60
    next_tick = time.monotonic()
    while len(finals) < workers:
        if time.monotonic() > deadline:
            raise RuntimeError("workers did not finish in time")
        if on_tick is not None and time.monotonic() >= next_tick:
            on_tick()
            next_tick += WINDOW
        try:
            kind, _wid, body = queue.get(timeout=0.5)
        except Exception:  # queue.Empty: check the clock and tick again
            continue
        if kind == "window":
            windows.setdefault(body.index, []).append(body)
        else:
            finals.append(body)
    for p in procs:
        p.join(10)
    return windows, finals


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.soak",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--duration", type=float, default=1800.0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--load", type=float, default=0.7)
    parser.add_argument("--peak-seconds", type=float, default=20.0)
    parser.add_argument("--memory", type=int, default=64)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    duration = min(args.duration, MAX_DURATION)
    out = args.out or Path(__file__).parent / "results" / datetime.now(UTC).strftime(
        "%Y-%m-%dT%H%M"
    )
    out.mkdir(parents=True, exist_ok=True)
    port = free_port()
    node = start_node(port, args.memory, out / "server.log")
    try:
        peak_windows, peak_finals = run_phase(
            port, args.workers, None, args.peak_seconds, args.seed
        )
        peak_ops = sum(w.ops for ws in peak_windows.values() for w in ws)
        peak = peak_ops / args.peak_seconds
        rate = peak * args.load
        print(
            f"peak {peak:.0f} req/s; soak at {rate:.0f} req/s for {duration:.0f} s", file=sys.stderr
        )
        probe = Wire(HOST, port)
        stats_before = probe.stats()
        samples: list[dict[str, Any]] = []
        started = time.monotonic()

        def tick() -> None:
            s = probe.stats()
            samples.append(
                {
                    "t": time.monotonic() - started,
                    "rss_kb": rss_kb(node.pid),
                    **{
                        k: int(s[k])
                        for k in (
                            "curr_items",
                            "evictions",
                            "bytes",
                            "cmd_get",
                            "get_hits",
                            "get_misses",
                            "curr_connections",
                        )
                    },
                }
            )

        windows, finals = run_phase(port, args.workers, rate, duration, args.seed + 1, tick)
        tick()
        stats_after = probe.stats()
        metadump = probe.metadump_count()
        probe.close()
        node_alive = node.poll() is None
    finally:
        node.terminate()
        node.wait(10)
    result = {
        "started": datetime.now(UTC).isoformat(timespec="seconds"),
        "duration_s": duration,
        "workers": args.workers,
        "memory_mb": args.memory,
        "peak_rps": peak,
        "target_rps": rate,
        "node_alive_at_end": node_alive,
        "samples": samples,
        "stats_before": stats_before,
        "stats_after": stats_after,
        "metadump_items": metadump,
        "model_items": sum(f["present"] for f in finals + peak_finals),
        "windows": [{k: v for k, v in merged.items()} for merged in merge(windows)],
    }
    ok = write_report(out, result)
    write_plot(out / "soak.png", result)
    (out / "results.json").write_text(json.dumps(result, indent=1))
    print((out / "results.md").read_text())
    return 0 if ok else 1


def merge(windows: dict[int, list[Window]]) -> list[dict[str, Any]]:
    """One row per window over all workers: counts, and latency percentiles (ms)."""
    rows = []
    for index in sorted(windows):
        parts = windows[index]
        row: dict[str, Any] = {"t": index * WINDOW}
        for name in ("ops", "errors", "wrong", "misses", "get_keys", "sets", "touches"):
            row[name] = sum(getattr(w, name) for w in parts)
        for prefix, field in (("", "latencies"), ("service_", "service")):
            lat = sorted(x for w in parts for x in getattr(w, field))
            if lat:
                row[f"{prefix}p50_ms"] = lat[len(lat) // 2] * 1e3
                row[f"{prefix}p99_ms"] = lat[min(len(lat) - 1, int(len(lat) * 0.99))] * 1e3
                row[f"{prefix}max_ms"] = lat[-1] * 1e3
        rows.append(row)
    return rows


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    sys.exit(main())
