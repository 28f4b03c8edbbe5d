"""One soak worker: a mixed load on its own keys, every reply checked against its model.

The worker owns its keys, so it knows what each read must return: a value that differs
from the model is a wrong reply, a miss of a key the model holds is an unexpected miss
(only an eviction may cause one). Latency is measured from the moment a request was due
(open loop), so a stall shows up in the figures instead of delaying the schedule.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field
from multiprocessing.queues import Queue
from typing import Any

from bench.soak.wire import ErrorReply, Wire

KEYS = 4000
COUNTERS = 200
WINDOW = 10.0  # seconds per reported window


@dataclass
class Window:
    """What a worker saw in one window of the run."""

    index: int
    ops: int = 0
    errors: int = 0  # ERROR / CLIENT_ERROR / SERVER_ERROR replies, dropped connections
    wrong: int = 0  # a reply that contradicts the model (a stale or corrupt value)
    misses: int = 0  # a key the model holds was not found
    get_keys: int = 0  # keys asked for by get, multi-get and mg (the daemon's cmd_get)
    sets: int = 0  # set, add, append commands sent (the daemon's cmd_set)
    touches: int = 0
    latencies: list[float] = field(default_factory=list)  # from when the request was due
    service: list[float] = field(default_factory=list)  # from when it was sent


class Model:
    """The worker's keys and what each holds (None: absent)."""

    def __init__(self, wid: int, seed: int, rng: random.Random) -> None:
        self.rng = rng  # keys differ per seed, so each phase of a run starts on fresh keys
        self.keys = [b"s%d:%d:%d" % (seed, wid, i) for i in range(KEYS)]
        self.counters = [b"c%d:%d:%d" % (seed, wid, i) for i in range(COUNTERS)]
        self.values: dict[bytes, tuple[int, bytes] | None] = dict.fromkeys(self.keys)
        self.counts: dict[bytes, int] = {}

    def value(self) -> tuple[int, bytes]:
        size = self.rng.randint(16, 1024)
        byte = self.rng.randrange(33, 127)
        return self.rng.randrange(1 << 16), bytes([byte]) * size

    def present(self) -> int:
        return sum(v is not None for v in self.values.values()) + len(self.counts)


def _one(wire: Wire, model: Model, window: Window) -> None:
    rng = model.rng
    roll = rng.random()
    key = rng.choice(model.keys)
    want = model.values[key]
    if roll < 0.50 or roll < 0.65 and want is None:
        got = wire.get(key).get(key)
        window.get_keys += 1
        _check(window, want, got)
    elif roll < 0.58:
        keys = rng.sample(model.keys, 8)
        found = wire.get(*keys)
        window.get_keys += len(keys)
        for k in keys:
            _check(window, model.values[k], found.get(k))
    elif roll < 0.65:
        window.get_keys += 1
        _check(window, want, wire.meta_get(key))
    elif roll < 0.80:
        flags, value = model.value()
        window.sets += 1
        if wire.store(b"set", key, value, flags) != b"STORED":
            window.wrong += 1
        model.values[key] = (flags, value)
    elif roll < 0.84:
        flags, value = model.value()
        window.sets += 1
        reply = wire.store(b"add", key, value, flags)
        if reply != (b"STORED" if want is None else b"NOT_STORED"):
            window.wrong += 1
        if want is None:
            model.values[key] = (flags, value)
    elif roll < 0.88:
        reply = wire.simple(b"delete " + key)
        if reply != (b"NOT_FOUND" if want is None else b"DELETED"):
            window.wrong += 1
        model.values[key] = None
    elif roll < 0.94:
        counter = rng.choice(model.counters)
        delta = rng.randint(1, 1000)
        if counter not in model.counts:
            window.sets += 1
            if wire.store(b"set", counter, b"0") != b"STORED":
                window.wrong += 1
            model.counts[counter] = 0
        model.counts[counter] += delta
        if wire.simple(b"incr %s %d" % (counter, delta)) != str(model.counts[counter]).encode():
            window.wrong += 1
    elif roll < 0.97:
        window.touches += 1
        reply = wire.simple(b"touch " + key + b" 0")
        if reply != (b"NOT_FOUND" if want is None else b"TOUCHED"):
            window.wrong += 1
    else:
        tail = b"+" * rng.randint(1, 32)
        window.sets += 1
        reply = wire.store(b"append", key, tail)
        if reply != (b"NOT_STORED" if want is None else b"STORED"):
            window.wrong += 1
        if want is not None:
            model.values[key] = (want[0], want[1] + tail)


def _check(window: Window, want: tuple[int, bytes] | None, got: tuple[int, bytes] | None) -> None:
    if got is None:
        if want is not None:
            window.misses += 1
    elif got != want:
        window.wrong += 1


def run_worker(
    wid: int, host: str, port: int, rate: float | None, duration: float, out: Queue[Any], seed: int
) -> None:
    """Load for ``duration`` s at ``rate`` requests/s (None: as fast as replies come)."""
    rng = random.Random(seed * 1000 + wid)
    model = Model(wid, seed, rng)
    wire = Wire(host, port)
    start = time.monotonic()
    end = start + duration
    due = start
    interval = 1.0 / rate if rate else 0.0
    window = Window(0)
    while True:
        now = time.monotonic()
        if now >= end:
            break
        index = int((now - start) // WINDOW)
        if index != window.index:
            out.put(("window", wid, window))
            window = Window(index)
        if rate:
            if due > now:
                time.sleep(due - now)
            sent_at = due
            due += interval
        else:
            sent_at = now
        sent = time.monotonic()
        try:
            _one(wire, model, window)
        except ErrorReply:
            window.errors += 1
        except OSError:
            window.errors += 1
            wire.close()
            wire = Wire(host, port)
        window.ops += 1
        done = time.monotonic()
        window.latencies.append(done - sent_at)
        window.service.append(done - sent)
    out.put(("window", wid, window))
    wire.close()
    out.put(("done", wid, {"present": model.present()}))
