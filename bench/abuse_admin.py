"""Attacks on the admin and side paths: metadump, cachedump, UDP multi-gets, watch, auth.

Plain functions, each bounded in count and time, returning a dict of figures, so that an
abuse harness can register them. Each takes the address of a running server (memcachepy
or memcached) and, where memory is measured, its process id. While an attack runs, a
checker client sets and gets its own key every few milliseconds and records its errors
and its slowest reply.

    python -m bench.abuse_admin metadump --port 11211 --pid 1234
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from bench.abuse.probes import MB, read_until, rss

Address = tuple[str, int]


def rss_mb(pid: int) -> float:
    """The resident set of process ``pid``, in MB (0 if it is gone)."""
    return rss(pid) / MB


class Checker:
    """A well-behaved client: a set and a get of its own key every ``interval`` seconds."""

    def __init__(self, address: Address, interval: float = 0.003, timeout: float = 5.0) -> None:
        self.address = address
        self.interval = interval
        self.timeout = timeout
        self.errors = 0
        self.requests = 0
        self.waits: list[float] = []
        self.started: list[float] = []  # when each wait began (time.monotonic)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Checker:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(self.timeout + 1)

    def _run(self) -> None:
        sock: socket.socket | None = None
        n = 0
        # Bounded: at most one request pair per interval for at most an hour.
        deadline = time.monotonic() + 3600
        while not self._stop.is_set() and time.monotonic() < deadline:
            n += 1
            value = str(n).encode()
            start = time.monotonic()
            try:
                if sock is None:
                    sock = socket.create_connection(self.address, timeout=self.timeout)
                sock.sendall(b"set checker 0 0 %d\r\n%s\r\nget checker\r\n" % (len(value), value))
                reply = _read_until(sock, b"END\r\n", self.timeout)
                if reply != b"STORED\r\nVALUE checker 0 %d\r\n%s\r\nEND\r\n" % (len(value), value):
                    self.errors += 1
            except OSError:
                self.errors += 1
                if sock is not None:
                    sock.close()
                sock = None
            self.waits.append(time.monotonic() - start)
            self.started.append(start)
            self.requests += 1
            time.sleep(self.interval)
        if sock is not None:
            sock.close()

    def figures(self) -> dict[str, Any]:
        waits = sorted(self.waits) or [0.0]
        return {
            "checker_requests": self.requests,
            "checker_errors": self.errors,
            "checker_max_ms": round(waits[-1] * 1000, 1),
            "checker_p99_ms": round(waits[int(len(waits) * 0.99)] * 1000, 1),
            "checker_over_50ms": sum(1 for w in waits if w > 0.05),
        }


def _read_until(sock: socket.socket, end: bytes, timeout: float) -> bytes:
    return read_until(sock, end, time.monotonic() + timeout)


@contextmanager
def _rss_watch(pid: int | None) -> Iterator[dict[str, float]]:
    """Samples the server's RSS every 20 ms while the block runs."""
    figures = {"rss_before_mb": rss_mb(pid) if pid else 0.0, "rss_peak_mb": 0.0}
    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(0.02):
            figures["rss_peak_mb"] = max(figures["rss_peak_mb"], rss_mb(pid) if pid else 0.0)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    try:
        yield figures
    finally:
        stop.set()
        thread.join()
        figures["rss_after_mb"] = rss_mb(pid) if pid else 0.0
        figures["rss_peak_mb"] = max(figures["rss_peak_mb"], figures["rss_after_mb"])
        for key in list(figures):
            figures[key] = round(figures[key], 1)


def fill(address: Address, items: int, value_size: int = 100, batch: int = 1000) -> None:
    """Store ``items`` keys ``k<n>`` of ``value_size`` bytes, pipelined with noreply."""
    value = b"v" * value_size
    with socket.create_connection(address, timeout=60) as sock:
        for start in range(0, items, batch):
            sock.sendall(
                b"".join(
                    b"set k%d 0 0 %d noreply\r\n%s\r\n" % (n, value_size, value)
                    for n in range(start, min(items, start + batch))
                )
            )
        sock.sendall(b"version\r\n")
        _read_until(sock, b"\r\n", 120)


def fill_memory(address: Address, megabytes: int, value_size: int = 1000) -> int:
    """Store enough values to fill ``megabytes`` of cache; returns how many were sent."""
    items = megabytes * 1024 * 1024 // value_size
    fill(address, items, value_size)
    return items


def _metadump(address: Address, timeout: float, read_delay: float = 0.0) -> tuple[str, int]:
    """One ``lru_crawler metadump all``: ("done", lines) or ("busy", 0) or ("error", 0)."""
    with socket.create_connection(address, timeout=timeout) as sock:
        sock.sendall(b"lru_crawler metadump all\r\n")
        deadline = time.monotonic() + timeout
        tail = b""
        lines = 0
        while time.monotonic() < deadline:
            sock.settimeout(max(0.01, deadline - time.monotonic()))
            chunk = sock.recv(65536)
            if not chunk:
                return "error", lines
            lines += chunk.count(b"\n")
            tail = (tail + chunk)[-64:]
            if tail.startswith(b"BUSY") or tail.endswith(
                b"BUSY currently processing crawler request\r\n"
            ):
                return "busy", 0
            if tail.endswith(b"END\r\n"):
                return "done", lines - 1
            if read_delay:
                time.sleep(read_delay)
    return "timeout", lines


def attack_metadump(
    address: Address, pid: int | None = None, dumps: int = 10, timeout: float = 60.0
) -> dict[str, Any]:
    """``dumps`` concurrent ``lru_crawler metadump all`` over whatever the cache holds."""
    results: list[tuple[str, int]] = []
    lock = threading.Lock()

    def one() -> None:
        try:
            result = _metadump(address, timeout)
        except OSError:
            result = ("error", 0)
        with lock:
            results.append(result)

    with Checker(address) as checker, _rss_watch(pid) as rss:
        start = time.monotonic()
        threads = [threading.Thread(target=one) for _ in range(dumps)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout + 5)
        elapsed = time.monotonic() - start
    return {
        "attack": f"{dumps} concurrent metadumps",
        **rss,
        **checker.figures(),
        "dumps_done": sum(1 for r, _ in results if r == "done"),
        "dumps_busy": sum(1 for r, _ in results if r == "busy"),
        "dumps_failed": sum(1 for r, _ in results if r not in ("done", "busy")),
        "lines": max((n for _, n in results), default=0),
        "seconds": round(elapsed, 2),
    }


def attack_slow_metadump(
    address: Address, pid: int | None = None, seconds: float = 5.0
) -> dict[str, Any]:
    """One metadump whose client reads 64 KB every 50 ms: the server must not buffer it."""
    with Checker(address) as checker, _rss_watch(pid) as rss:
        outcome, lines = _metadump(address, seconds, read_delay=0.05)
    return {"attack": "slow metadump reader", **rss, **checker.figures(), "outcome": outcome}


def attack_cachedump(
    address: Address, pid: int | None = None, class_id: int = 1, rounds: int = 5
) -> dict[str, Any]:
    """``stats cachedump CLASS 0`` a few times: the reply size and the checker's waits."""
    sizes = []
    with Checker(address) as checker, _rss_watch(pid) as rss:
        with socket.create_connection(address, timeout=30) as sock:
            for _ in range(rounds):
                sock.sendall(b"stats cachedump %d 0\r\n" % class_id)
                sizes.append(len(_read_until(sock, b"END\r\n", 30)))
    return {
        "attack": "stats cachedump",
        **rss,
        **checker.figures(),
        "reply_bytes": max(sizes),
    }


def _udp_get(keys: list[bytes], request_id: int = 1) -> bytes:
    return struct.pack(">HHHH", request_id, 0, 1, 0) + b"get " + b" ".join(keys) + b"\r\n"


def attack_udp_multiget(
    address: Address,
    udp_port: int,
    pid: int | None = None,
    values: int = 1000,
    value_size: int = 1024 * 1024 - 512,
    keys_per_datagram: int = 1000,
) -> dict[str, Any]:
    """One UDP datagram asking for ``keys_per_datagram`` large values (stored first over
    TCP, each key ``u<n>``): the TCP checker's waits, and the reply-to-request byte ratio."""
    value = b"x" * value_size
    with socket.create_connection(address, timeout=60) as sock:
        for n in range(values):
            sock.sendall(b"set u%d 0 0 %d noreply\r\n%s\r\n" % (n, value_size, value))
        sock.sendall(b"version\r\n")
        _read_until(sock, b"\r\n", 60)
    keys = [b"u%d" % (n % values) for n in range(keys_per_datagram)]
    request = _udp_get(keys)
    received = 0
    with Checker(address) as checker, _rss_watch(pid) as rss:
        time.sleep(0.05)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            udp.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
            udp.sendto(request, (address[0], udp_port))
            udp.settimeout(2.0)
            deadline = time.monotonic() + 20
            try:
                while time.monotonic() < deadline:
                    received += len(udp.recv(65536))
            except TimeoutError:
                pass
    return {
        "attack": f"UDP get of {keys_per_datagram} x {value_size // 1024} KB",
        "request_bytes": len(request),
        **rss,
        **checker.figures(),
        "reply_bytes_received": received,
    }


def throughput(address: Address, seconds: float = 3.0, clients: int = 4) -> float:
    """Requests per second of ``clients`` connections pipelining gets of one small key."""
    counts = [0] * clients
    stop = time.monotonic() + seconds

    def run(n: int) -> None:
        with socket.create_connection(address, timeout=10) as sock:
            batch = b"get tp\r\n" * 50
            while time.monotonic() < stop:
                sock.sendall(batch)
                _read_until_count(sock, b"END\r\n", 50)
                counts[n] += 50

    with socket.create_connection(address, timeout=10) as sock:
        sock.sendall(b"set tp 0 0 5\r\nhello\r\n")
        _read_until(sock, b"\r\n", 10)
    threads = [threading.Thread(target=run, args=(n,)) for n in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(seconds + 10)
    return sum(counts) / seconds


def _read_until_count(sock: socket.socket, end: bytes, count: int) -> None:
    seen = 0
    tail = b""
    while seen < count:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed")
        data = tail + chunk
        seen += data.count(end) - tail.count(end)
        tail = data[-len(end) :]


def attack_watch(address: Address, streams: int = 5, seconds: float = 3.0) -> dict[str, Any]:
    """Throughput with no watcher, then with ``streams`` ``watch`` connections reading."""
    base = throughput(address, seconds)
    stop = threading.Event()
    lines = [0] * streams

    def watch(n: int) -> None:
        with socket.create_connection(address, timeout=10) as sock:
            sock.sendall(b"watch fetchers mutations\r\n")
            sock.settimeout(0.5)
            while not stop.is_set():
                try:
                    chunk = sock.recv(1 << 16)
                except TimeoutError:
                    continue
                if not chunk:
                    return
                lines[n] += chunk.count(b"\n")

    threads = [threading.Thread(target=watch, args=(n,), daemon=True) for n in range(streams)]
    for thread in threads:
        thread.start()
    time.sleep(0.2)
    watched = throughput(address, seconds)
    stop.set()
    for thread in threads:
        thread.join(5)
    return {
        "attack": f"{streams} watch streams",
        "requests_per_s_alone": round(base),
        "requests_per_s_watched": round(watched),
        "ratio": round(watched / base, 2) if base else 0.0,
        "watch_lines": sum(lines),
    }


def attack_auth_guesses(
    address: Address, guesses: int = 20, seconds: float = 10.0
) -> dict[str, Any]:
    """Wrong ``-Y`` passwords pipelined on one connection: how many are answered in time."""
    answered = 0
    with socket.create_connection(address, timeout=seconds) as sock:
        sock.sendall(b"set x 0 0 11\r\nalice wrong\r\n" * guesses)
        deadline = time.monotonic() + seconds
        buf = b""
        try:
            while answered < guesses and time.monotonic() < deadline:
                sock.settimeout(max(0.01, deadline - time.monotonic()))
                chunk = sock.recv(65536)
                if not chunk:
                    break
                buf += chunk
                answered = buf.count(b"\r\n")
        except TimeoutError:
            pass
    return {
        "attack": f"{guesses} pipelined wrong passwords",
        "answered": answered,
        "seconds": seconds,
    }


ATTACKS: dict[str, Callable[..., dict[str, Any]]] = {
    "metadump": attack_metadump,
    "slow-metadump": attack_slow_metadump,
    "cachedump": attack_cachedump,
    "udp-multiget": attack_udp_multiget,
    "watch": attack_watch,
    "auth-guesses": attack_auth_guesses,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("attack", choices=sorted(ATTACKS))
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=11211)
    parser.add_argument("--pid", type=int, default=None)
    parser.add_argument("--udp-port", type=int, default=None)
    parser.add_argument("--fill-mb", type=int, default=0, help="fill the cache first")
    parser.add_argument("--fill-items", type=int, default=0, help="store N small items first")
    args = parser.parse_args()
    address = (args.host, args.port)
    if args.fill_mb:
        fill_memory(address, args.fill_mb)
    if args.fill_items:
        fill(address, args.fill_items)
    kwargs: dict[str, Any] = {}
    if args.attack in ("metadump", "slow-metadump", "cachedump", "udp-multiget"):
        kwargs["pid"] = args.pid
    if args.attack == "udp-multiget":
        kwargs["udp_port"] = args.udp_port
    print(json.dumps(ATTACKS[args.attack](address, **kwargs)))


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
