"""CPU per request of the sans-I/O request path alone: parser, dispatcher and store.

No sockets and no event loop: a daemon's parser and dispatcher (built as ``Server`` builds
them, default settings) answer a buffer of identical pipelined requests, the way one read
of a pipelining client is answered, and the best of several rounds is reported in
microseconds per request. It isolates what protocol/, dispatch/ and store/ cost (what the
fast paths and mypyc change) from the I/O that ratio.sh also measures.

    python bench/serve_cpu.py                 # every scenario
    python bench/serve_cpu.py mg ms get1      # some of them
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable

from memcachepy.config import Settings
from memcachepy.native.switch import running_build
from memcachepy.protocol.text import TextParser
from memcachepy.server.daemon import Server

KEYS = 10_000
BATCH = 2_000  # requests per buffer (what one serve call answers)
ROUNDS = 7
VALUE = b"v" * 100
VALUE_1K = b"v" * 1024  # ratio.sh's X1K value size


def _key(n: int) -> bytes:
    return b"key:%08d" % (n % KEYS)


SCENARIOS: dict[str, Callable[[int], bytes]] = {
    "get1": lambda n: b"get %s\r\n" % _key(n),
    "set": lambda n: b"set %s 0 0 100\r\n%s\r\n" % (_key(n), VALUE),
    "mget100": lambda n: b"get " + b" ".join(_key(n * 100 + i) for i in range(100)) + b"\r\n",
    "mg": lambda n: b"mg %s v f t\r\n" % _key(n),
    "mg-k-c-O": lambda n: b"mg %s v k c Oab12\r\n" % _key(n),
    "ms": lambda n: b"ms %s 100 T0 F5\r\n%s\r\n" % (_key(n), VALUE),
    "md+ms": lambda n: (
        (b"md %s q\r\n" % _key(n)) if n % 2 else (b"ms %s 100 q\r\n%s\r\n" % (_key(n - 1), VALUE))
    ),
    # Every set replaces an item of its own size (see PREFILL), as X1K's sets do.
    "set1k": lambda n: b"set %s 0 0 1024\r\n%s\r\n" % (_key(n), VALUE_1K),
}
# The value the keys hold before a scenario runs, where it is not VALUE.
PREFILL: dict[str, bytes] = {"set1k": VALUE_1K}


def measure(name: str) -> float:
    """Best microseconds per request over ROUNDS buffers of BATCH requests."""
    server = Server(Settings())
    dispatcher = server.dispatcher
    value = PREFILL.get(name, VALUE)
    for n in range(KEYS):
        dispatcher.store(b"set", _key(n), 0, 0, value, True, [])
    make = SCENARIOS[name]
    data = b"".join(make(n) for n in range(BATCH))
    budget = server.settings.reqs_per_event  # -R: what one serve call answers at most
    best = float("inf")
    for _ in range(ROUNDS):
        parser = TextParser(server.cache.item_fits)
        parser.receive_data(data)
        served = 0
        start = time.perf_counter()
        while served < BATCH:  # as the loop does: serve up to -R, send (here: drop), again
            out: list[bytes | bytearray] = []
            outcome, count = parser.serve(dispatcher, out, budget, 1 << 40)
            assert outcome == 0 and count, (name, outcome, count)
            served += count
        elapsed = time.perf_counter() - start
        best = min(best, elapsed)
    return best / BATCH * 1e6


def main(argv: list[str]) -> None:
    print(f"memcachepy build: {running_build()}")  # pure costs several times compiled
    for name in argv or list(SCENARIOS):
        print(f"{name:10s} {measure(name):7.2f} us/request")


if __name__ == "__main__":
    main(sys.argv[1:])
