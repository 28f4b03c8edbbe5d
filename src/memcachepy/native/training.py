"""``python -m memcachepy.native.training``: the load a profile-guided build learns from.

setup.py compiles the modules instrumented, runs this, and compiles them again with the
counts it left (gcc's ``-fprofile-use``), so that the code the commonest commands run is
laid out together and the rest out of its way. It starts the daemon on 127.0.0.1 and a
free port (:class:`memcachepy.testing.Server`), checks that it runs compiled, and sends
it what the benchmarks send: gets of one key and of a hundred, sets of 100 bytes and of
1 KB, one request per read and sixteen, and the other commands of the fast path. Every
loop is bounded in count; the whole run takes a few seconds, and fails (exit 1) rather
than wait past its deadline.
"""

from __future__ import annotations

import random
import subprocess
import sys
import time
from collections.abc import Callable
from typing import BinaryIO

from memcachepy.testing.server import Server, ServerError

DEADLINE = 120.0  # seconds for the whole run, start-up included
KEYS = 10_000
VALUE = b"v" * 100
VALUE_1K = b"v" * 1024


class TrainingError(Exception):
    pass


def _read_reply(reader: BinaryIO) -> bytes:
    """One reply: a get's values up to END, an mg's value, or one line. Returns its last line."""
    while True:
        line = reader.readline()
        if not line.endswith(b"\r\n"):
            raise TrainingError("the daemon closed the connection")
        fields = line.split()
        if fields[0] == b"VALUE":
            reader.read(int(fields[3]) + 2)
            continue
        if fields[0] == b"VA":
            reader.read(int(fields[1]) + 2)
        elif fields[0].endswith(b"ERROR"):
            raise TrainingError(line.decode(errors="replace").strip())
        return line


Request = Callable[[random.Random], bytes]


def _key(rng: random.Random) -> bytes:
    return b"key:%08d" % rng.randrange(KEYS)


def _mix(sets: int, gets: int, value: bytes) -> Request:
    def make(rng: random.Random) -> bytes:
        if rng.randrange(sets + gets) < sets:
            return b"set %s 0 0 %d\r\n%s\r\n" % (_key(rng), len(value), value)
        return b"get %s\r\n" % _key(rng)

    return make


def _multi_get(rng: random.Random) -> bytes:
    return b"get " + b" ".join(_key(rng) for _ in range(100)) + b"\r\n"


def _others(rng: random.Random) -> bytes:
    key = _key(rng)
    return rng.choice(
        (
            b"gets %s\r\n" % key,
            b"mg %s v f t\r\n" % key,
            b"mg %s s v\r\n" % key,
            b"ms %s 100 T0\r\n%s\r\n" % (key, VALUE),
            b"md %s\r\n" % key,
            b"delete %s\r\n" % key,
            b"set n:%s 0 0 1\r\n1\r\n" % key,
            b"incr n:%s 3\r\n" % key,
            b"touch %s 0\r\n" % key,
        )
    )


# (connections, requests per read, rounds, request): each round sends every connection
# one read's requests, then reads every reply.
WORKLOADS: tuple[tuple[int, int, int, Request], ...] = (
    (4, 1, 3_000, _mix(1, 10, VALUE)),
    (4, 16, 300, _mix(1, 10, VALUE)),
    (32, 1, 150, _mix(1, 10, VALUE)),
    (4, 1, 100, _multi_get),
    (4, 1, 1_500, _mix(1, 1, VALUE_1K)),
    (4, 1, 800, _others),
)


def _run(server: Server, deadline: float) -> None:
    rng = random.Random(1)
    with server.connect() as first:
        for n in range(KEYS):
            first.sendall(b"set key:%08d 0 0 %d noreply\r\n%s\r\n" % (n, len(VALUE), VALUE))
    if server.stats("settings").get("build") != "compiled":
        raise TrainingError("the daemon does not run compiled")
    for connections, per_read, rounds, make in WORKLOADS:
        socks = [server.connect(timeout=10) for _ in range(connections)]
        readers = [sock.makefile("rb") for sock in socks]
        for _ in range(rounds):
            for sock in socks:
                sock.sendall(b"".join(make(rng) for _ in range(per_read)))
            for reader in readers:
                for _ in range(per_read):
                    _read_reply(reader)
            if time.monotonic() > deadline:
                raise TrainingError("the load did not finish in time")
        for sock in socks:
            sock.close()


def main() -> int:
    deadline = time.monotonic() + DEADLINE
    server = Server(["-m", "64"])
    try:
        server.start()
        _run(server, deadline)
        # A clean exit (Server.close kills): the instrumented build writes its counts as
        # the process ends.
        process = server.process
        assert process is not None
        process.terminate()
        code = process.wait(timeout=server.stop_timeout)
    except (TrainingError, ServerError, OSError, subprocess.TimeoutExpired) as error:
        print(f"memcachepy training: {error}", file=sys.stderr)
        return 1
    finally:
        server.close()
    return 0 if code == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
