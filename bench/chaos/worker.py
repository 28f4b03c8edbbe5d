"""A chaos client process: ClusterClient(replicas=2) on keys it alone writes.

Each value carries its key's version, so every read is checked against the worker's own
history: the latest version, or a miss. A value of an older version, or of a key deleted
since, is a stale read. Misses are told apart: of a key whose last write the cluster
acknowledged (the figure that matters), of a key never written or deleted (right), and of
a key whose last write failed (either answer is right). Requests are tagged with the
phase running when they were sent (a shared integer the controller moves on). Every 50 ms
the worker also notes each node's state as its client sees it, for the time to
re-admission.
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
# A share of the reads ask for keys never written: they must miss, and are reported apart.
NEVER_WRITTEN_READS = 0.05
POLICY: dict[str, Any] = {
    "connect_timeout": 0.5,
    "timeout": 0.5,
    "failure_limit": 2,
    "retry_timeout": 0.5,
    "dead_timeout": 1.0,
}


@dataclass
class PhaseTally:
    requests: int = 0
    reads: int = 0
    reads_acked: int = 0  # reads of a key whose last write the cluster acknowledged
    misses: int = 0  # ... that missed: the figure the goal is about
    reads_unwritten: int = 0  # reads of a key never written, or deleted (a miss is right)
    misses_unwritten: int = 0
    misses_unacked: int = 0  # misses of a key whose last write failed (either is right)
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


def run(
    wid: int,
    endpoint: tuple[str, int],
    phase: Synchronized[int],
    stop_at: float,
    out: Queue[Any],
    netns: str | None,
    seed: int,
    read_repair: bool,
    nkeys: int,
    writes: float,
) -> None:
    """Load until the controller sets ``phase`` to -1 (or ``stop_at``, a hard bound).

    ``nkeys`` keys; a share ``writes`` of the requests are writes (one in ten a delete).
    """
    if netns:
        enter_netns(netns)
    # Ejections and returns are the point of the run; the report counts them, not the log.
    logging.getLogger("memcachepy.cluster").setLevel(logging.ERROR)
    rng = random.Random(seed * 100 + wid)
    client = ClusterClient.from_config_endpoint(
        endpoint, poll_interval=0.5, replicas=2, read_repair=read_repair, **POLICY
    )
    keys = [f"w{wid}:{i}" for i in range(nkeys)]
    never = [f"w{wid}:never:{i}" for i in range(nkeys)]  # read, never written
    versions: list[int | None] = [1] * nkeys  # last acknowledged version; None: deleted
    # Versions a failed write may or may not have left (None: a delete that failed).
    unsure: list[set[int | None]] = [set() for _ in range(nkeys)]
    for i, key in enumerate(keys):
        client.set(key, value_of(wid, i, 1))
    out.put(("ready", wid, None))
    tallies: dict[int, PhaseTally] = {}
    states: list[tuple[float, str, str]] = []  # (time, node, state) when a state changes
    last_state: dict[str, str] = {}
    next_look = 0.0
    next_version = 2
    while time.monotonic() < stop_at:
        current = phase.value
        if current < 0:
            break
        tally = tallies.setdefault(current, PhaseTally())
        i = rng.randrange(nkeys)
        roll = rng.random()
        started = time.monotonic()
        try:
            if roll >= writes and rng.random() < NEVER_WRITTEN_READS:
                tally.reads += 1
                tally.reads_unwritten += 1
                if client.get(never[i]) is None:
                    tally.misses_unwritten += 1
                else:
                    tally.stale += 1
            elif roll >= writes:
                tally.reads += 1
                got = client.get(keys[i])
                want = versions[i]
                if want is None and not unsure[i]:
                    tally.reads_unwritten += 1
                elif not unsure[i]:
                    tally.reads_acked += 1
                if got is None:
                    if unsure[i]:
                        tally.misses_unacked += 1
                    elif want is None:
                        tally.misses_unwritten += 1
                    else:
                        tally.misses += 1
                elif version_in(got) != want and version_in(got) not in unsure[i]:
                    tally.stale += 1
            elif roll < writes * 0.9:
                version = next_version
                next_version += 1
                try:
                    stored = client.set(keys[i], value_of(wid, i, version))
                except BaseException:
                    unsure[i].add(version)
                    raise
                if stored:
                    versions[i] = version
                    unsure[i].clear()
                else:
                    unsure[i].add(version)
            else:
                try:
                    client.delete(keys[i])
                except BaseException:
                    unsure[i].add(versions[i])
                    versions[i] = None
                    raise
                versions[i] = None
                unsure[i].clear()
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
    out.put(
        (
            "done",
            wid,
            {
                "tallies": {p: vars(t) for p, t in tallies.items()},
                "states": states,
                "client_stats": stats,
            },
        )
    )
