"""A chaos client process: ClusterClient(replicas=2) on keys it alone writes.

Each value carries its key's version, so every read is checked against the worker's own
history: the latest version, or a miss. A value of an older version, or of a key deleted
since, is a stale read. Requests are tagged with the phase running when they were sent
(a shared integer the controller moves on). Every 50 ms the worker also notes each
node's state as its client sees it, for the time to re-admission.
"""

from __future__ import annotations

import ctypes
import logging
import os
import random
import time
from dataclasses import dataclass, field
from multiprocessing.queues import Queue
from multiprocessing.sharedctypes import Synchronized
from typing import Any

from pymemcache.exceptions import MemcacheError

from memcachepy.cluster import ClusterClient

CLONE_NEWNET = 0x40000000
POLICY: dict[str, Any] = {"connect_timeout": 0.5, "timeout": 0.5, "failure_limit": 2,
                          "retry_timeout": 0.5, "dead_timeout": 1.0}


@dataclass
class PhaseTally:
    requests: int = 0
    reads: int = 0
    misses: int = 0
    stale: int = 0
    errors: int = 0
    latencies: list[float] = field(default_factory=list)


def enter_netns(name: str) -> None:
    """Join network namespace ``name`` (``ip netns add``) before any socket is made."""
    libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open(f"/run/netns/{name}", os.O_RDONLY)
    try:
        if libc.setns(fd, CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), f"setns {name}")
    finally:
        os.close(fd)


def value_of(wid: int, key: int, version: int) -> bytes:
    return b"%d:%d:%d:" % (wid, key, version) + b"x" * (40 + key % 200)


def version_in(value: bytes) -> int:
    return int(value.split(b":", 3)[2])


def run(wid: int, endpoint: tuple[str, int], phase: Synchronized[int], stop_at: float,
        out: Queue[Any], netns: str | None, seed: int, read_repair: bool, nkeys: int,
        writes: float) -> None:
    """Load until the controller sets ``phase`` to -1 (or ``stop_at``, a hard bound).

    ``nkeys`` keys; a share ``writes`` of the requests are writes (one in ten a delete).
    """
    if netns:
        enter_netns(netns)
    # Ejections and returns are the point of the run; the report counts them, not the log.
    logging.getLogger("memcachepy.cluster").setLevel(logging.ERROR)
    rng = random.Random(seed * 100 + wid)
    client = ClusterClient.from_config_endpoint(endpoint, poll_interval=0.5, replicas=2,
                                                read_repair=read_repair, **POLICY)
    keys = [f"w{wid}:{i}" for i in range(nkeys)]
    versions: list[int | None] = [1] * nkeys
    for i, key in enumerate(keys):
        client.set(key, value_of(wid, i, 1))
    out.put(("ready", wid, None))
    tallies: dict[int, PhaseTally] = {}
    states: list[tuple[float, str, str]] = []  # (time, node, state) when a state changes
    last_state: dict[str, str] = {}
    next_look = 0.0
    while time.monotonic() < stop_at:
        current = phase.value
        if current < 0:
            break
        tally = tallies.setdefault(current, PhaseTally())
        i = rng.randrange(nkeys)
        roll = rng.random()
        started = time.monotonic()
        try:
            if roll >= writes:
                tally.reads += 1
                got = client.get(keys[i])
                want = versions[i]
                if got is None:
                    tally.misses += want is not None
                elif want is None or version_in(got) != want:
                    tally.stale += 1
            elif roll < writes * 0.9:
                version = (versions[i] or 0) + 1
                client.set(keys[i], value_of(wid, i, version))
                versions[i] = version
            else:
                client.delete(keys[i])
                versions[i] = None
        except (MemcacheError, OSError):
            tally.errors += 1
        now = time.monotonic()
        tally.requests += 1
        tally.latencies.append(now - started)
        if now >= next_look:
            next_look = now + 0.05
            for status in client.node_status():
                name = f"{status.server.host}:{status.server.port}"
                if last_state.get(name) != status.state:
                    last_state[name] = status.state
                    states.append((now, name, status.state))
    stats = client.stats()
    client.close()
    out.put(("done", wid, {"tallies": {p: vars(t) for p, t in tallies.items()},
                           "states": states, "client_stats": stats}))
