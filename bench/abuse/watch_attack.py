"""The watch attack: 5 ``watch`` streams drained while a few clients send gets.

A rough figure, requests/s with the watchers over without; the watchers read in a process
of their own, so that their reading does not take the load's threads' turns at the GIL.
"""

from __future__ import annotations

import multiprocessing
import selectors
import socket
import threading
import time
from multiprocessing.connection import Connection

from bench.abuse.attacks import Address, Scale, attack
from bench.abuse.probes import read_until

WATCHERS = 5
CLIENTS = 4
BATCH = 50  # gets pipelined per round trip


def _read_ends(sock: socket.socket, end: bytes, count: int, deadline: float) -> None:
    """Read until ``count`` replies ending with ``end`` have come."""
    seen = 0
    tail = b""
    while seen < count:
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed")
        data = tail + chunk
        seen += data.count(end) - tail.count(end)
        tail = data[-len(end) :]


def throughput(address: Address, seconds: float) -> float:
    """Requests/s of CLIENTS threads, each pipelining BATCH gets of one small key."""
    counts = [0] * CLIENTS
    stop = time.monotonic() + seconds

    def load(n: int) -> None:
        with socket.create_connection(address, timeout=10) as sock:
            while time.monotonic() < stop:
                sock.sendall(b"get watched\r\n" * BATCH)
                _read_ends(sock, b"END\r\n", BATCH, time.monotonic() + 10)
                counts[n] += BATCH

    threads = [threading.Thread(target=load, args=(n,)) for n in range(CLIENTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(seconds + 15)
    return sum(counts) / seconds


def _watch(address: Address, pipe: Connection, limit: float) -> None:
    """The watchers' process: open the streams, say so, drain them until told to stop."""
    deadline = time.monotonic() + limit
    lines = [0] * WATCHERS
    socks = [socket.create_connection(address, timeout=10) for _ in range(WATCHERS)]
    try:
        with selectors.DefaultSelector() as selector:
            for n, sock in enumerate(socks):
                sock.sendall(b"watch fetchers mutations\r\n")
                # "OK", then the stream: the first lines may come in the same read.
                first = read_until(sock, b"\n", time.monotonic() + 10)
                if not first.startswith(b"OK\r\n"):
                    raise ConnectionError(f"watch answered {first[:80]!r}")
                lines[n] = first.count(b"\n") - 1
                sock.setblocking(False)
                selector.register(sock, selectors.EVENT_READ, n)
            pipe.send("watching")
            while not pipe.poll() and time.monotonic() < deadline:
                for key, _ in selector.select(timeout=0.05):
                    n = key.data
                    try:
                        chunk = socks[n].recv(1 << 16)
                    except BlockingIOError:
                        continue
                    if not chunk:
                        selector.unregister(socks[n])
                    lines[n] += chunk.count(b"\n")
    finally:
        for sock in socks:
            sock.close()
    pipe.send(lines)


@attack("watch", "5 watch streams, drained as lines come, under 4 client threads' gets")
def watch(address: Address, scale: Scale) -> str:
    with socket.create_connection(address, timeout=10) as sock:
        sock.sendall(b"set watched 0 0 5\r\nhello\r\n")
        read_until(sock, b"\r\n", time.monotonic() + 10)
    # Without the watchers before and after, their mean: the machine's drift cancels.
    alone = throughput(address, scale.hold)
    context = multiprocessing.get_context("fork")
    pipe, child = context.Pipe()
    watchers = context.Process(target=_watch, args=(address, child, 60 + 3 * scale.hold))
    watchers.start()
    try:
        if not pipe.poll(15) or pipe.recv() != "watching":
            return "the watch streams did not open"
        watched = throughput(address, scale.hold)
        pipe.send("stop")
        lines: list[int] = pipe.recv() if pipe.poll(15) else []
    finally:
        watchers.join(5)
        if watchers.is_alive():
            watchers.kill()
    alone = (alone + throughput(address, scale.hold)) / 2
    if len(lines) != WATCHERS:
        return "the watchers' process gave no counts"
    ratio = watched / alone if alone else 0.0
    return (
        f"{ratio:.2f} = {watched:,.0f} requests/s with {WATCHERS} watchers / {alone:,.0f} "
        f"without; each watcher read at least {min(lines):,} lines"
    )
