"""Filling the cache with 3x its memory keeps it under the limit, evicting, with bounded RSS."""

from __future__ import annotations

import random

from tests.e2e.wire import exchange
from tests.servers import memcachepy_server

MB = 1 << 20
# Measured: RSS = -m + 32 MB at -m 64 and -m + 44 MB at -m 1024 for this mix
# (docs/discussion/store.md).
RSS_OVERHEAD_BOUND = 64 * MB


def rss(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


def stats(sock) -> dict[bytes, bytes]:  # type: ignore[no-untyped-def]
    reply = exchange(sock, b"stats\r\n", b"END\r\n")
    return {p[1]: p[2] for p in (line.split(b" ") for line in reply.split(b"\r\n")) if len(p) == 3}


def test_fill_three_times_memory_with_mixed_sizes() -> None:
    limit_mb = 64
    rng = random.Random(7)
    with memcachepy_server("-m", str(limit_mb)) as srv, srv.connect(timeout=60) as sock:
        written = 0
        i = 0
        while written < 3 * limit_mb * MB:
            batch = []
            for _ in range(50):
                n = rng.choice([10, 100, 1000, 5000, 20000, 100000, 500000])
                data = b"%d" % (i % 10) * n
                batch.append(b"set fill%d %d 0 %d noreply\r\n%s\r\n" % (i, i, n, data))
                written += n
                i += 1
            sock.sendall(b"".join(batch))
        figures = stats(sock)
        assert int(figures[b"limit_maxbytes"]) == limit_mb * MB
        assert 0 < int(figures[b"bytes"]) <= limit_mb * MB
        assert int(figures[b"evictions"]) > 0
        assert int(figures[b"curr_items"]) < i
        # The newest items are intact: right flags, right bytes.
        last = i - 1
        reply = exchange(sock, b"get fill%d\r\n" % last, b"END\r\n")
        assert reply.startswith(b"VALUE fill%d %d " % (last, last))
        assert rss(srv.proc.pid) <= limit_mb * MB + RSS_OVERHEAD_BOUND
