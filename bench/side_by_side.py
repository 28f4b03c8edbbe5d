"""Instructions per request of memcachepy's request path beside the probe's, by callgrind.

Each server answers the same requests through the same synchronous step a wake-up of its
loop runs: poll the epoll set, read, answer every whole request, send. A client on the
other end of a socketpair sends each read's requests and waits for the replies. There is
no event loop and no background task, so what is counted is the request path alone,
system call wrappers included, kernel time excluded: the part of a request that is the
server's own code. memcachepy is the compiled daemon's ``Multiplexer`` (``serve_for``, as its
loop task calls it); the probe is ``bench/probe_server.py``'s ``serve_connection``.

callgrind counts instructions exactly, whatever else the machine does. Each figure is the
difference between two runs of different lengths divided by the difference in requests,
so start-up, the prefill and the imports cancel out. The client's own send and receive
are the same code for both servers and are included in both.

    python bench/side_by_side.py                 # every scenario (about 4 minutes)
    python bench/side_by_side.py A P16           # some of them
    python bench/side_by_side.py --cache A X1K   # and misses of simulated caches

With ``--cache``, callgrind also simulates the caches (32 KB L1 for instructions and for
data, a 1 MB last level, 64-byte lines; the machine's own are not read, so figures agree
between machines) and the table adds each server's misses per request: L1 instruction
reads, L1 data reads and last-level data reads. Instructions alone do not tell the time a
request takes; a miss costs about ten cycles in L1, and hundreds past the last level.
"""

from __future__ import annotations

import gc
import os
import random
import re
import select
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

KEYS = 10_000
VALUE = b"v" * 100

# name: (requests per read, set:get weights, keys per get, value size)
SCENARIOS: dict[str, tuple[int, tuple[int, int], int, int]] = {
    "A": (1, (1, 10), 1, 100),  # A4 and A50: one request per read
    "P16": (16, (1, 10), 1, 100),  # pipelined: 16 requests per read
    "M100": (1, (0, 1), 100, 100),  # gets of 100 keys
    "X1K": (1, (1, 1), 1, 1024),  # 1 KB values, set:get 1:1
}
SHORT, LONG = 500, 2500  # reads per run; the figure is the difference over the two


def _reads(name: str, count: int) -> list[tuple[bytes, int]]:
    """Each read's bytes and how many replies end in END or STORED."""
    per_read, (sets, gets), keys, size = SCENARIOS[name]
    rng = random.Random(1)
    value = b"v" * size
    reads = []
    for _ in range(count):
        parts = []
        for _ in range(per_read):
            if rng.randrange(sets + gets) < sets:
                key = b"key:%08d" % rng.randrange(KEYS)
                parts.append(b"set %s 0 0 %d\r\n%s\r\n" % (key, size, value))
            else:
                chosen = [b"key:%08d" % rng.randrange(KEYS) for _ in range(keys)]
                parts.append(b"get " + b" ".join(chosen) + b"\r\n")
        reads.append((b"".join(parts), per_read))
    return reads


def _memcachepy(ours: socket.socket, size: int) -> Callable[[], None]:
    from memcachepy.config import Settings
    from memcachepy.server.connections import SERVE_SLICE
    from memcachepy.server.daemon import Server
    from memcachepy.server.multiplexer import EPOLLIN, Connection

    server = Server(Settings(memory_limit=256 << 20))
    value = b"v" * size
    for n in range(KEYS):
        server.dispatcher.store(b"set", b"key:%08d" % n, 0, 0, value, True, [])
    mux = server.loop.mux
    conn = Connection(ours, "side-by-side", False)
    mux.connections[conn.fd] = conn
    mux.epoll.register(conn.fd, EPOLLIN)
    mux.muxed[conn.fd] = conn
    server.counters.curr_connections += 1
    return lambda: mux.serve_for(SERVE_SLICE)


def _probe(ours: socket.socket, size: int) -> Callable[[], None]:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import probe_server

    cache = probe_server.Cache()
    value = b"v" * size + b"\r\n"
    for n in range(KEYS):
        cache.set(b"key:%08d" % n, b"0", 0, value, 0.0)
    poller = select.epoll()
    poller.register(ours.fileno(), select.EPOLLIN)
    sockets = {ours.fileno(): ours}
    held = {ours.fileno(): b""}

    def serve() -> None:  # the probe's loop body, until a poll finds nothing
        while ready := poller.poll(0):
            now = time.monotonic()
            for fd, _ in ready:
                probe_server.serve_connection(poller, sockets, held, cache, fd, now)

    return serve


def child(server: str, name: str, count: int) -> None:
    """Answer ``count`` reads of a scenario (run under callgrind by :func:`measure`)."""
    # The reads first: the cyclic collector's passes while they are built (more in the
    # longer run) then cover the same objects for both servers. Otherwise a pass over a
    # server's young objects (its imports, its prefill) lands in the difference, spread
    # over its requests, where a daemon collects a few times a second over far more. The
    # server's set-up is collected and frozen before the requests for the same reason.
    reads = _reads(name, count)
    gc.freeze()
    ours, client = socket.socketpair()
    ours.setblocking(False)
    serve = (_memcachepy if server == "memcachepy" else _probe)(ours, SCENARIOS[name][3])
    gc.collect()
    gc.freeze()
    for data, replies in reads:
        client.sendall(data)
        serve()
        got = b""
        while got.count(b"END\r\n") + got.count(b"STORED\r\n") < replies:
            chunk = client.recv(1 << 20)
            if not chunk:
                raise SystemExit(f"{server} closed the connection")
            got += chunk


# The simulated caches of --cache: size, associativity, line size.
CACHE_SIM = ["--cache-sim=yes", "--I1=32768,8,64", "--D1=32768,8,64", "--LL=1048576,16,64"]
# The events --cache reports, as callgrind names them.
MISSES = {
    "I1mr": "L1 instruction misses",
    "D1mr": "L1 data read misses",
    "DLmr": "LL data read misses",
}


def _events(server: str, name: str, count: int, cache: bool) -> dict[str, int]:
    """callgrind's totals of a run: Ir, and with ``cache`` the simulated misses."""
    with tempfile.TemporaryDirectory() as scratch:
        run = subprocess.run(
            [
                "valgrind",
                "--tool=callgrind",
                *(CACHE_SIM if cache else []),
                f"--callgrind-out-file={scratch}/out",
                sys.executable,
                "-P",
                __file__,
                "--child",
                server,
                name,
                str(count),
            ],
            capture_output=True,
            text=True,
            check=False,
        )
    names = re.search(r"Events\s*:\s*(.+)", run.stderr)
    totals = re.search(r"Collected\s*:\s*(.+)", run.stderr)
    if run.returncode or names is None or totals is None:
        raise SystemExit(f"{server} {name}: {run.stderr[-800:]}")
    return dict(zip(names.group(1).split(), map(int, totals.group(1).split()), strict=True))


def measure(server: str, name: str, cache: bool = False) -> dict[str, float]:
    """callgrind's events per request of a scenario (P16's reads hold 16 requests)."""
    short = _events(server, name, SHORT, cache)
    long = _events(server, name, LONG, cache)
    requests = (LONG - SHORT) * SCENARIOS[name][0]
    return {event: (long[event] - short[event]) / requests for event in short}


def main(argv: list[str]) -> None:
    if argv[:1] == ["--child"]:
        child(argv[1], argv[2], int(argv[3]))
        return
    if shutil.which("valgrind") is None:
        raise SystemExit("valgrind is needed (apt-get install valgrind)")
    from memcachepy.native.switch import running_build

    cache = "--cache" in argv
    names = [name for name in argv if name != "--cache"] or list(SCENARIOS)
    print(f"memcachepy build: {running_build()}; Python {sys.version.split()[0]}")
    columns = ["Ir", *(MISSES if cache else [])]
    print("| scenario | " + " | ".join(f"{c}: memcachepy | probe | ratio" for c in columns) + " |")
    print("| --- |" + " ---: | ---: | ---: |" * len(columns))
    for name in names:
        ours = measure("memcachepy", name, cache)
        theirs = measure("probe", name, cache)
        cells = [f"{ours[c]:,.0f} | {theirs[c]:,.0f} | {ours[c] / theirs[c]:.2f}" for c in columns]
        print(f"| {name} | " + " | ".join(cells) + " |", flush=True)
    print("per request, the client's send and receive included in both: Ir instructions", end="")
    print("".join(f", {c} {label}" for c, label in MISSES.items()) if cache else "")


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")  # the same key index layout every run
    main(sys.argv[1:])
