"""Start-up under a low open-files limit: raise it for -c, or refuse as memcached does.

Each server is a real process whose RLIMIT_NOFILE is lowered in the child before exec,
as `ulimit -n 64` would.
"""

from __future__ import annotations

import resource
import socket
import subprocess
from collections.abc import Callable

import pytest

from tests.servers import HOST, free_port, memcached_argv, memcachepy_argv, spawn

REFUSED = (
    b"failed to set rlimit for open files. Try starting as root or requesting smaller "
    b"maxconns value.\n"
)


def _limit(soft: int, hard: int) -> Callable[[], None]:
    def lower() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))

    return lower


def _can_raise_hard_limit() -> bool:
    """Whether a child may raise its hard limit again (root with CAP_SYS_RESOURCE)."""
    probe = subprocess.run(
        ["python3", "-c", "import resource as r; r.setrlimit(r.RLIMIT_NOFILE, (2000, 2000))"],
        preexec_fn=_limit(64, 64),
        capture_output=True,
        timeout=30,
    )
    return probe.returncode == 0


def _run_until_exit(argv: list[str], lower: Callable[[], None]) -> tuple[int, bytes]:
    proc = subprocess.run(
        argv, preexec_fn=lower, stdin=subprocess.DEVNULL, capture_output=True, timeout=30
    )
    return proc.returncode, proc.stderr


def test_hard_limit_below_maxconns_refuses_to_start_as_memcached() -> None:
    if _can_raise_hard_limit():
        pytest.skip("this process may raise its hard limit: the refusal cannot happen")
    port = free_port()
    code, err = _run_until_exit(memcachepy_argv(port), _limit(64, 64))
    assert (code, err) == (71, REFUSED)
    with pytest.raises(OSError):
        socket.create_connection((HOST, port), timeout=0.5).close()


def test_refusal_matches_memcached() -> None:
    if _can_raise_hard_limit():
        pytest.skip("this process may raise its hard limit: the refusal cannot happen")
    ours = _run_until_exit(memcachepy_argv(free_port()), _limit(64, 64))
    theirs = _run_until_exit(memcached_argv(free_port()), _limit(64, 64))
    assert ours == theirs


def test_smaller_maxconns_fits_the_limit() -> None:
    """-c 16 needs fewer descriptors than 64 allows with the spare: it starts."""
    port = free_port()
    server = spawn(memcachepy_argv(port, "-c", "16"), port, preexec=_limit(128, 128))
    try:
        with socket.create_connection((HOST, port), timeout=5) as sock:
            sock.sendall(b"version\r\n")
            assert sock.recv(100).startswith(b"VERSION ")
    finally:
        server.stop()


def test_soft_limit_is_raised_and_200_connections_are_served() -> None:
    """A soft limit of 64 under a high hard limit is raised: 200 clients all get replies."""
    port = free_port()
    server = spawn(memcachepy_argv(port), port, preexec=_limit(64, 4096))
    clients: list[socket.socket] = []
    try:
        for _ in range(200):
            clients.append(socket.create_connection((HOST, port), timeout=5))
        for sock in clients:
            sock.sendall(b"version\r\n")
        for sock in clients:
            assert sock.recv(100).startswith(b"VERSION ")
        with open(f"/proc/{server.proc.pid}/limits") as limits:
            row = next(line for line in limits if line.startswith("Max open files"))
        assert int(row.split()[3]) >= 1024
    finally:
        for sock in clients:
            sock.close()
        server.stop()
