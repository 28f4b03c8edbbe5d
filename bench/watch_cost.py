#!/usr/bin/env python3
"""What ``watch`` streams cost the serving path: throughput with N watchers over none.

    python bench/watch_cost.py                  # memcachepy and memcached, 5 watchers
    python bench/watch_cost.py --servers memcachepy --watchers 5 --kinds fetchers mutations

Each server runs pinned to a core of its own; the load generator (4 connections x 16 in
flight, set:get 1:9, 100-byte values) and the watchers share the other. A watcher is a
connection that sent ``watch KINDS`` and is read as fast as lines arrive, so no line is
skipped for a slow reader. Runs alternate without and with watchers, and the table gives
the medians and their ratio. Every run is bounded by ``--duration``.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness.install import build_loadgen, installed_memcachepy  # noqa: E402
from harness.loadgen import loadgen_argv, run_loadgen  # noqa: E402
from harness.scenarios import Scenario  # noqa: E402
from harness.servers import HOST, RunningServer, resolve_servers  # noqa: E402

LOAD = Scenario(
    name="p16",
    title="4 connections x 16 in flight",
    conns=4,
    depth=16,
    sets=1,
    gets=9,
    value_size=100,
    keys=10_000,
)


class Watchers:
    """N connections in ``watch`` mode, each drained by a thread until stopped."""

    def __init__(self, port: int, count: int, kinds: list[str]) -> None:
        self.port, self.count, self.kinds = port, count, kinds
        self.received = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._socks: list[socket.socket] = []

    def __enter__(self) -> Watchers:
        for _ in range(self.count):
            sock = socket.create_connection((HOST, self.port), timeout=5)
            sock.sendall(b"watch %s\r\n" % " ".join(self.kinds).encode())
            if sock.recv(4) != b"OK\r\n":
                raise RuntimeError("the server did not answer OK to watch")
            sock.settimeout(0.2)
            self._socks.append(sock)
            thread = threading.Thread(target=self._drain, args=(sock,), daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def _drain(self, sock: socket.socket) -> None:
        got = 0
        while not self._stop.is_set():
            try:
                data = sock.recv(1 << 20)
            except TimeoutError:
                continue
            except OSError:
                break
            if not data:
                break
            got += data.count(b"\n")
        with self._lock:
            self.received += got

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=5)
        for sock in self._socks:
            sock.close()


@contextmanager
def pinned_server(name: str, cpu: int, logs: Path) -> Iterator[RunningServer]:
    spec = resolve_servers([name], [])[0]
    pin = ["taskset", "-c", str(cpu)] if os.cpu_count() and os.cpu_count() != 1 else []
    with RunningServer(spec, pin, logs, logs / f"{name}.log") as server:
        yield server


def measure(loadgen: Path, server: RunningServer, duration: float) -> tuple[float, float]:
    """Requests per second, and the share of its core the server used meanwhile."""
    argv = loadgen_argv(loadgen, server.port, LOAD, duration, 0.5, 50_000_000, "watchcost")
    argv[:0] = ["taskset", "-c", "0"]
    cpu_before, start = server.cpu_seconds(), time.monotonic()
    outcome = run_loadgen(argv, duration)
    cpu_after, wall = server.cpu_seconds(), time.monotonic() - start
    if outcome.result is None or outcome.result.errors:
        raise RuntimeError(f"the load generator failed:\n{outcome.stderr}")
    busy = (cpu_after - cpu_before) / wall if cpu_before is not None and cpu_after else 0.0
    return outcome.result.rps, busy


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--servers", nargs="+", default=["memcachepy", "memcached"])
    parser.add_argument("--watchers", type=int, default=5)
    parser.add_argument("--kinds", nargs="*", default=["fetchers"])
    parser.add_argument("--duration", type=float, default=3.0, help="seconds per run")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    if not 0 < args.duration <= 60 or not 0 < args.repeats <= 10 or not 0 < args.watchers <= 20:
        parser.error("--duration in (0, 60], --repeats in 1..10, --watchers in 1..20")
    loadgen = build_loadgen()
    print(f"memcachepy: {installed_memcachepy()}")
    print(f"load: {LOAD.shape}; watchers: {args.watchers} x watch {' '.join(args.kinds)}")
    print(
        "| server | requests/s, no watchers | with watchers | ratio | lines/s per watcher "
        "| server CPU, none / with |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.servers:
            bare: list[tuple[float, float]] = []
            watched: list[tuple[float, float]] = []
            lines: list[float] = []
            with pinned_server(name, 1, Path(tmp)) as server:
                for _ in range(args.repeats):
                    bare.append(measure(loadgen, server, args.duration))
                    with Watchers(server.port, args.watchers, args.kinds) as watchers:
                        watched.append(measure(loadgen, server, args.duration))
                    lines.append(watchers.received / args.watchers / args.duration)
            b = statistics.median(rps for rps, _ in bare)
            w = statistics.median(rps for rps, _ in watched)
            b_cpu = statistics.median(cpu for _, cpu in bare)
            w_cpu = statistics.median(cpu for _, cpu in watched)
            print(
                f"| {name} ({server.build or 'C'}) | {b:,.0f} | {w:,.0f} | {w / b:.2f} "
                f"| {statistics.median(lines):,.0f} | {b_cpu:.0%} / {w_cpu:.0%} |"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
