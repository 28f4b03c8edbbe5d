"""Fixtures for the differential tests: real memcached and memcachepy side by side.

Each case runs against a memcached and a memcachepy started with the same flags. Servers are
shared between the cases of one flag set (``flush_all`` between cases) unless a case asks for
fresh ones or its flags make sharing unsafe; the two sides run in parallel threads.

``MEMCACHEPY_DIFF_SELFTEST=1`` puts real memcached on both sides: every case must then pass,
which shows the harness itself is deterministic. ``MEMCACHEPY_DIFF_FRESH=1`` starts fresh
servers for every case (slower; rules out leaks between cases when chasing a failure).
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.servers import (
    HOST,
    ServerProcess,
    free_port,
    memcached_argv,
    memcachepy_argv,
    spawn_logged,
)

from .harness import Case, Outcome, run_case

SELFTEST = os.environ.get("MEMCACHEPY_DIFF_SELFTEST", "") == "1"
ALWAYS_FRESH = os.environ.get("MEMCACHEPY_DIFF_FRESH", "") == "1"

REFERENCE = "memcached"
CANDIDATE = "memcachepy"

# Flags after which one server cannot serve many cases: flush_all is refused (-F), or items
# stored in the same second as a flush_all vanish (-C), or idle connections get closed.
UNSHAREABLE_FLAGS = ("-F", "-C", "-A")


def _needs_fresh(case: Case) -> bool:
    if ALWAYS_FRESH or case.fresh:
        return True
    return any(flag in UNSHAREABLE_FLAGS or flag.startswith("idle_timeout") for flag in case.flags)


def _reset(server: ServerProcess) -> bool:
    """Forget every item of a shared server between cases; False if it does not answer."""
    if server.proc.poll() is not None:
        return False
    try:
        with socket.create_connection(server.address, timeout=3.0) as sock:
            sock.sendall(b"flush_all\r\n")
            reply = b""
            deadline = time.monotonic() + 3.0
            while not reply.endswith(b"\r\n") and time.monotonic() < deadline:
                chunk = sock.recv(64)
                if not chunk:
                    break
                reply += chunk
            return reply == b"OK\r\n"
    except OSError:
        return False


class ServerPool:
    """Servers by (side, flags), started on first use and stopped at the end of the session."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.shared: dict[tuple[str, tuple[str, ...]], ServerProcess] = {}
        self.started = 0

    def start(self, side: str, flags: tuple[str, ...]) -> ServerProcess:
        port = free_port(HOST)
        if side == REFERENCE or SELFTEST:
            argv = memcached_argv(port, *flags)
        else:
            argv = memcachepy_argv(port, *flags)
        self.started += 1
        log = self.log_dir / f"{side}-{self.started}.log"
        return spawn_logged(argv, port, str(log))

    @contextmanager
    def server(self, side: str, case: Case) -> Iterator[ServerProcess]:
        if _needs_fresh(case):
            server = self.start(side, case.flags)
            try:
                yield server
            finally:
                server.stop()
            return
        key = (side, case.flags)
        shared = self.shared.get(key)
        if shared is None or not _reset(shared):
            if shared is not None:
                shared.stop()
            shared = self.shared[key] = self.start(side, case.flags)
        server = shared
        yield server
        if server.proc.poll() is not None:
            del self.shared[key]

    def close(self) -> None:
        for server in self.shared.values():
            server.stop()
        self.shared.clear()


def _exited(proc: subprocess.Popen[bytes], wait: float) -> bool:
    deadline = time.monotonic() + wait
    while proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    return proc.poll() is not None


def play(pool: ServerPool, side: str, case: Case) -> Outcome:
    """Run ``case`` on one side and report what happened."""
    with pool.server(side, case) as server:
        transcript = run_case(server.address, case)
        exited = _exited(server.proc, 3.0 if case.exits else 0.0)
        return Outcome(transcript=transcript, exited=exited, argv=server.argv)


@pytest.fixture(scope="session")
def server_pool(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerPool]:
    pool = ServerPool(tmp_path_factory.mktemp("differential-servers"))
    try:
        yield pool
    finally:
        pool.close()


@pytest.fixture(scope="session")
def differential(server_pool: ServerPool) -> Iterator[Callable[[Case], tuple[Outcome, Outcome]]]:
    """Play a case on memcached and memcachepy at once; returns (memcached, memcachepy)."""
    with ThreadPoolExecutor(max_workers=2, thread_name_prefix="differential") as executor:

        def run(case: Case) -> tuple[Outcome, Outcome]:
            reference = executor.submit(play, server_pool, REFERENCE, case)
            candidate = executor.submit(play, server_pool, CANDIDATE, case)
            return reference.result(), candidate.result()

        yield run
