"""Attacks with the dump commands: ``lru_crawler metadump`` and ``stats cachedump``.

Each fills its fresh daemon first, in the attack's ``prepare`` step: the row's RSS and the
checker's replies are those of the dumps alone.
"""

from __future__ import annotations

import socket
import time
from collections import Counter

from bench.abuse.attacks import Address, Scale, attack, connect, sockets
from bench.abuse.probes import MB, PeakRss, read_until, server_stats

METADUMP = b"lru_crawler metadump all\r\n"
BUSY = b"BUSY currently processing crawler request\r\n"
SMALL_ITEMS = 1_000_000  # of 10-byte values, in the full attack: more than -m 64 holds


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
        # Answered once every set before it is: the fill is over.
        sock.sendall(b"version\r\n")
        read_until(sock, b"\r\n", time.monotonic() + 120)


def read_dump(sock: socket.socket, deadline: float, pause: float = 0.0) -> tuple[str, int]:
    """One metadump's reply: ("dumped", lines), ("busy", 0), the reply line if it was
    something else, or ("closed" or "timeout", lines read); ``pause`` seconds between reads
    of at most 64 KB."""
    first = b""  # the reply's start, until its first line is whole
    lines = 0
    tail = b""
    while time.monotonic() < deadline:
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            break
        except OSError:
            return "closed", lines
        if not chunk:
            return "closed", lines
        if b"\n" not in first:
            first += chunk[:200]
            line = first.split(b"\r\n", 1)[0]
            if b"\n" in first and not line.startswith(b"key=") and line != b"END":
                return ("busy" if line.startswith(b"BUSY") else line.decode("ascii", "replace")), 0
        lines += chunk.count(b"\n")
        tail = (tail + chunk)[-6:]
        if tail == b"\nEND\r\n" or first == b"END\r\n":
            return "dumped", lines - 1
        if pause:
            time.sleep(pause)
    return "timeout", lines


def fill_memory(address: Address, scale: Scale) -> None:
    """As many 1,000-byte values as -m holds."""
    fill(address, scale.memory_mb * MB // 1000, 1000)


def fill_small(address: Address, scale: Scale) -> None:
    """1,000,000 10-byte values (a tenth in the quick form)."""
    fill(address, scale.count(SMALL_ITEMS), 10)


@attack(
    "metadump",
    "10 connections send lru_crawler metadump all at once, cache filled",
    prepare=fill_memory,
)
def metadump(address: Address, scale: Scale) -> str:
    with sockets() as opened:
        for _ in range(10):
            sock = connect(address)
            if sock is not None:
                opened.append(sock)
        for sock in opened:  # back to back: all ten arrive while the first dump runs
            sock.sendall(METADUMP)
        deadline = time.monotonic() + 10 * scale.hold
        outcomes = [read_dump(sock, deadline) for sock in opened]
    counts = Counter(outcome for outcome, _ in outcomes)
    lines = max((n for outcome, n in outcomes if outcome == "dumped"), default=0)
    parts = [f"{counts.pop('dumped', 0)} dumped {lines:,} lines"]
    parts.append(f"{counts.pop('busy', 0)} of {len(opened)} answered BUSY")
    parts += [f"{n} {outcome}" for outcome, n in counts.most_common()]
    return ", ".join(parts)


@attack(
    "slow-metadump",
    "a metadump of 1,000,000 small items, read 64 KB every 50 ms",
    prepare=fill_small,
)
def slow_metadump(address: Address, scale: Scale) -> str:
    stats = server_stats(address)
    pid = int(stats["pid"])
    seconds = 2 * scale.hold
    with sockets() as opened:
        sock = socket.socket()
        opened.append(sock)
        # A small window (set before the connection sets it): what the reader has not
        # taken stays in the daemon.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        sock.settimeout(5)
        sock.connect(address)
        with PeakRss(pid) as peak:
            before = peak.peak
            sock.sendall(METADUMP)
            outcome, lines = read_dump(sock, time.monotonic() + seconds, pause=0.05)
    state = {"dumped": "the whole dump", "timeout": "the dump not over"}.get(outcome, outcome)
    items = int(stats["curr_items"])
    growth = (peak.peak - before) / MB
    read = f"{lines:,} lines of {items:,} items read in {seconds:.0f} s"
    return f"{read} ({state}); RSS +{growth:.1f} MB meanwhile"


def cold_class(sock: socket.socket, seconds: float) -> int:
    """The slab class holding the most items, once the LRU maintainer has moved what it
    will of them into COLD, which cachedump walks: when the COLD count holds still for
    0.3 s, or after ``seconds``."""
    deadline = time.monotonic() + seconds
    last = -1
    while True:
        sock.sendall(b"stats items\r\n")
        reply = read_until(sock, b"END\r\n", time.monotonic() + 10).decode()
        counts: dict[tuple[int, str], int] = {}
        for line in reply.splitlines():
            if line.startswith("STAT items:"):
                _, name, value = line.split()
                _, class_id, field = name.split(":")
                counts[int(class_id), field] = int(value)
        fullest = max(
            (c for c, field in counts if field == "number"),
            key=lambda c: counts[c, "number"],
            default=0,
        )
        cold = counts.get((fullest, "number_cold"), 0)
        if (cold == last and cold > 0) or time.monotonic() > deadline:
            return fullest
        last = cold
        time.sleep(0.3)


@attack(
    "cachedump",
    "stats cachedump of the fullest class 5 times, 1,000,000 small items",
    prepare=fill_small,
)
def cachedump(address: Address, scale: Scale) -> str:
    sizes = []
    with sockets() as opened:
        sock = connect(address, timeout=30)
        if sock is None:
            return "refused"
        opened.append(sock)
        class_id = cold_class(sock, 10 * scale.hold)
        for _ in range(5):
            sock.sendall(b"stats cachedump %d 0\r\n" % class_id)
            sizes.append(len(read_until(sock, b"END\r\n", time.monotonic() + 30)))
    return f"5 replies of at most {max(sizes):,} bytes from class {class_id}"
