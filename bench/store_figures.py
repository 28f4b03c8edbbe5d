#!/usr/bin/env python3
"""Figures for the store: scan resistance, expiry, size shift, warm restart, memory.

    python bench/store_figures.py                 # everything (about 6 minutes)
    python bench/store_figures.py memory scan     # some of: scan expiry shift restart memory

Each figure runs real daemons on loopback (the memcachepy installed in this Python, and Debian's
memcached 1.6.18 where a comparison is asked for) and prints one Markdown section; the
README quotes them. Every loop is bounded in count and time.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"
MB = 1 << 20


# -- servers ----------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


class Server:
    def __init__(self, kind: str, *args: str) -> None:
        self.port = free_port()
        if kind == "memcached":
            binary = shutil.which("memcached") or "/usr/bin/memcached"
            argv = [binary, "-t", "1", "-l", HOST, "-p", str(self.port), "-U", "0", "-u", "root"]
        else:
            # -P: the installed build, not a memcachepy folder in the current directory.
            argv = [sys.executable, "-P", "-m", "memcachepy", "-l", HOST, "-p", str(self.port)]
        self.argv = argv + list(args)
        self.log = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(
            self.argv,
            cwd=ROOT,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=self.log,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                socket.create_connection((HOST, self.port), timeout=0.2).close()
                return
            except OSError:
                if self.proc.poll() is not None:
                    break
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"{' '.join(self.argv)} did not start")

    def connect(self) -> socket.socket:
        sock = socket.create_connection((HOST, self.port), timeout=60)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock

    def rss(self) -> int:
        with open(f"/proc/{self.proc.pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
        raise RuntimeError("no VmRSS")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


def read_until(sock: socket.socket, end: bytes, timeout: float = 60) -> bytes:
    buf = bytearray()
    deadline = time.monotonic() + timeout
    while not buf.endswith(end):
        if time.monotonic() > deadline:
            raise TimeoutError(end)
        chunk = sock.recv(1 << 20)
        if not chunk:
            break
        buf += chunk
    return bytes(buf)


def stats(sock: socket.socket, sub: bytes = b"") -> dict[str, str]:
    sock.sendall(b"stats %s\r\n" % sub)
    lines = read_until(sock, b"END\r\n").decode().split("\r\n")
    return {p[1]: p[2] for p in (line.split(" ") for line in lines) if len(p) == 3}


def sync(sock: socket.socket) -> None:
    sock.sendall(b"version\r\n")
    read_until(sock, b"\r\n")


def set_many(sock: socket.socket, keys: list[bytes], value: bytes, exptime: int = 0) -> None:
    for i in range(0, len(keys), 500):
        sock.sendall(
            b"".join(
                b"set %s 0 %d %d noreply\r\n%s\r\n" % (k, exptime, len(value), value)
                for k in keys[i : i + 500]
            )
        )
    sync(sock)


def get_hits(sock: socket.socket, keys: list[bytes]) -> set[bytes]:
    sock.sendall(b"get " + b" ".join(keys) + b"\r\n")
    reply = read_until(sock, b"END\r\n")
    found, pos = set(), 0
    while reply.startswith(b"VALUE ", pos):
        eol = reply.index(b"\r\n", pos)
        parts = reply[pos:eol].split(b" ")
        found.add(parts[1])
        pos = eol + 2 + int(parts[3]) + 2
    return found


# -- figures ------------------------------------------------------------------------------


def scan(kind: str, *flags: str) -> tuple[float, float]:
    """A working set (10% of the cache, read twice) read continuously while another client
    writes 5x the cache of one-hit keys. Returns the hit rate over the scan and its last half.
    """
    server = Server(kind, "-m", "64", *flags)
    try:
        value = b"v" * 1000
        capacity = 64 * MB // 1184  # 1,000-byte values take 1,184-byte chunks
        working = [b"work:%06d" % i for i in range(capacity // 10)]
        with server.connect() as sock:
            set_many(sock, working, value)
            for _ in range(2):
                for i in range(0, len(working), 100):
                    get_hits(sock, working[i : i + 100])
        done = threading.Event()
        progress = [0]
        scan_total = 5 * capacity

        def scanner() -> None:
            with server.connect() as sock:
                for start_at in range(0, scan_total, 500):
                    set_many(
                        sock, [b"scan:%08d" % i for i in range(start_at, start_at + 500)], value
                    )
                    progress[0] = start_at + 500
            done.set()

        thread = threading.Thread(target=scanner)
        thread.start()
        hits = reads = late_hits = late_reads = 0
        with server.connect() as sock:
            i = 0
            deadline = time.monotonic() + 600
            while not done.is_set() and time.monotonic() < deadline:
                batch = [working[(i + j) % len(working)] for j in range(50)]
                i += 50
                got = len(get_hits(sock, batch))
                hits += got
                reads += 50
                if progress[0] >= scan_total // 2:
                    late_hits += got
                    late_reads += 50
        thread.join(600)
        return hits / max(reads, 1), late_hits / max(late_reads, 1)
    finally:
        server.stop()


def figure_scan() -> None:
    print("## Scan resistance\n")
    print("-m 64, 1,000-byte values; a working set of 10% of the cache, read twice, then read")
    print("continuously (gets of 50 keys) while a second client writes 5x the cache of keys")
    print("read never. Hit rate of the working set over the whole scan / its second half.\n")
    print("| server | LRU | hit rate | second half |")
    print("| --- | --- | ---: | ---: |")
    for kind, label, flags in (
        ("memcachepy", "segmented (default)", ()),
        ("memcachepy", "flat (`-o no_lru_maintainer`)", ("-o", "no_lru_maintainer")),
        ("memcached", "segmented (default)", ()),
        ("memcached", "flat (`-o no_lru_maintainer`)", ("-o", "no_lru_maintainer")),
    ):
        whole, late = scan(kind, *flags)
        print(f"| {kind} | {label} | {whole:.1%} | {late:.1%} |", flush=True)
    print()


def figure_expiry() -> None:
    print("## Expiry without reads\n")
    print(
        "| server | items (TTL 2 s) | all freed after the last set | crawler_reclaimed "
        "| reclaimed |"
    )
    print("| --- | ---: | ---: | ---: | ---: |")
    for kind in ("memcachepy", "memcached"):
        server = Server(kind, "-m", "64")
        try:
            with server.connect() as sock:
                set_many(sock, [b"ttl:%06d" % i for i in range(100_000)], b"x" * 20, exptime=2)
                stored = time.monotonic()
                figures = stats(sock)
                while time.monotonic() - stored < 120:
                    figures = stats(sock)
                    if int(figures["curr_items"]) == 0:
                        break
                    time.sleep(0.1)
                took = time.monotonic() - stored
                freed = int(figures["curr_items"]) == 0
                print(
                    f"| {kind} | 100,000 | {took:.1f} s{'' if freed else ' (not all)'} | "
                    f"{figures['crawler_reclaimed']} | {figures['reclaimed']} |",
                    flush=True,
                )
        finally:
            server.stop()
    print()


def size_shift(*flags: str, seconds: int = 120) -> list[float]:
    server = Server("memcachepy", "-m", "64", *flags)
    try:
        with server.connect() as sock:
            set_many(sock, [b"small:%07d" % i for i in range(600_000)], b"s" * 100)
            rng = random.Random(1)
            keys = [b"big:%05d" % i for i in range(1000)]
            big = b"b" * 20_000
            rates = []
            for _ in range(seconds):
                second_end = time.monotonic() + 1
                hits = reads = 0
                while time.monotonic() < second_end:
                    batch = rng.sample(keys, 20)
                    found = get_hits(sock, batch)
                    hits += len(found)
                    reads += len(batch)
                    missing = [k for k in batch if k not in found]
                    if missing:
                        set_many(sock, missing, big)
                rates.append(hits / max(reads, 1))
            return rates
    finally:
        server.stop()


def recovered_at(rates: list[float], level: float = 0.9) -> int | None:
    for second in range(len(rates)):
        if all(r >= level for r in rates[second:]):
            return second
    return None


def figure_shift() -> None:
    print("## Size shift\n")
    print("-m 64 filled with 600,000 100-byte values, then 1,000 keys of 20 KB values read")
    print("(cache-aside: a miss is set) for 120 s.\n")
    print("| automove | 20 KB hit rate, s 0-10 / 50-60 / 110-120 | >= 90% from |")
    print("| --- | --- | ---: |")
    for label, flags in (
        ("1 (default, 30 s window)", ()),
        ("1, `slab_automove_window=10`", ("-o", "slab_automove_window=10")),
        ("2", ("-o", "slab_automove=2")),
        ("0 (off)", ("-o", "slab_automove=0")),
    ):
        rates = size_shift(*flags)
        spans = " / ".join(
            f"{sum(rates[a:b]) / (b - a):.0%}" for a, b in ((0, 10), (50, 60), (110, 120))
        )
        second = recovered_at(rates)
        print(f"| {label} | {spans} | {'never' if second is None else f'{second} s'} |", flush=True)
    print()


def figure_restart() -> None:
    print("## Warm restart\n")
    directory = tempfile.mkdtemp()
    memory = os.path.join(directory, "memory")
    try:
        rng = random.Random(2)
        items = {}
        for i in range(100_000):
            size = rng.choice([1, 10, 100, 300, 1000, 3000]) if i % 100 else 70_000
            items[b"w%06d" % i] = rng.randbytes(size)
        server = Server("memcachepy", "-m", "256", "-e", memory)
        with server.connect() as sock:
            for i in range(0, len(items), 500):
                sock.sendall(
                    b"".join(
                        b"set %s 0 0 %d noreply\r\n%s\r\n" % (k, len(v), v)
                        for k, v in list(items.items())[i : i + 500]
                    )
                )
            sync(sock)
            used = int(stats(sock, b"slabs")["total_malloced"])
        began = time.monotonic()
        server.stop(signal.SIGUSR1)
        saved = time.monotonic() - began
        began = time.monotonic()
        server = Server("memcachepy", "-m", "256", "-e", memory)
        restored = time.monotonic() - began
        with server.connect() as sock:
            keys = list(items)
            same = 0
            for i in range(0, len(keys), 100):
                sock.sendall(b"get " + b" ".join(keys[i : i + 100]) + b"\r\n")
                reply = read_until(sock, b"END\r\n")
                pos = 0
                while reply.startswith(b"VALUE ", pos):
                    eol = reply.index(b"\r\n", pos)
                    parts = reply[pos:eol].split(b" ")
                    data = reply[eol + 2 : eol + 2 + int(parts[3])]
                    same += data == items[parts[1]]
                    pos = eol + 2 + int(parts[3]) + 2
        server.stop()
        print(
            f"100,000 items (1 B to 70 KB, {used // MB} MB of pages): graceful stop and save "
            f"{saved:.2f} s, start and restore {restored:.2f} s (both including process "
            f"start/exit), {same:,} of {len(items):,} values back byte for byte.\n"
        )
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def figure_memory() -> None:
    print("## Memory per item\n")
    print("1,000,000 items, 30-byte keys, 100-byte values, `-m 1024`; RSS after the sets,")
    print("minus the RSS of the same daemon empty, divided by the items. The chunk is the")
    print("slab chunk each item takes; the index is `hash_bytes` (memcached: its bucket array).\n")
    print(
        "| server | RSS empty | RSS with 1M items | per item | overhead per item (beyond "
        "key + value) | chunk | hash_bytes |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    growth = {}
    for kind in ("memcachepy", "memcached"):
        server = Server(kind, "-m", "1024")
        try:
            time.sleep(0.5)
            empty = server.rss()
            with server.connect() as sock:
                value = b"v" * 100
                for start_at in range(0, 1_000_000, 1000):
                    sock.sendall(
                        b"".join(
                            b"set key-%026d 0 0 100 noreply\r\n%s\r\n" % (i, value)
                            for i in range(start_at, start_at + 1000)
                        )
                    )
                sync(sock)
                time.sleep(1)  # let a background index expansion finish, as memcached's
                figures = stats(sock)
                slabs = stats(sock, b"slabs")
                assert int(figures["curr_items"]) == 1_000_000, figures["curr_items"]
            full = server.rss()
            chunk = max(
                (
                    int(v)
                    for k, v in slabs.items()
                    if k.endswith(":chunk_size")
                    and int(slabs[k.replace("chunk_size", "used_chunks")]) > 0
                ),
                default=0,
            )
            per_item = (full - empty) / 1_000_000
            growth[kind] = full - empty
            print(
                f"| {kind} | {empty / MB:.0f} MB | {full / MB:.0f} MB | {per_item:.0f} B | "
                f"{per_item - 130:.0f} B | {chunk} B | {int(figures['hash_bytes']) / MB:.1f}"
                f" MB |",
                flush=True,
            )
        finally:
            server.stop()
    print(
        f"\nRSS growth memcachepy / memcached: {growth['memcachepy'] / growth['memcached']:.2f}\n"
    )


FIGURES: dict[str, Callable[[], None]] = {
    "scan": figure_scan,
    "expiry": figure_expiry,
    "shift": figure_shift,
    "restart": figure_restart,
    "memory": figure_memory,
}


def main(argv: list[str]) -> int:
    names = argv or list(FIGURES)
    unknown = [n for n in names if n not in FIGURES]
    if unknown:
        print(f"unknown figure(s): {', '.join(unknown)}; choose from {', '.join(FIGURES)}")
        return 2
    print(f"# Store figures ({time.strftime('%Y-%m-%d %H:%M')}, {os.cpu_count()} CPUs)\n")
    for name in names:
        FIGURES[name]()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
