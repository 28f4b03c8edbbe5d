"""Real server processes (memcachepy or Debian's memcached) on loopback, for the tests.

A thin layer over the shipped :mod:`memcachepy.testing`, which starts the servers of
:func:`memcachepy_server` and :func:`memcached_server` and hands out the free ports. What
this module adds is what the older tests hold on to: a :class:`ServerProcess` with its
``Popen``, for the signals a test sends (SIGHUP, SIGUSR1, a graceful SIGTERM and its exit
status), and :func:`spawn` for a command line the tests build themselves (socket
activation, ``-s``, TLS), which a :class:`~memcachepy.testing.Server` refuses to take.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import pytest

from memcachepy.testing import Server

# The one source of ports, which memcachepy.testing draws on too: never one port twice.
from memcachepy.testing.ports import free_port as free_port

HOST = "127.0.0.1"
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def require_binary(name: str) -> str:
    """Path of a system program; skip the test without it, but fail in CI where it must exist."""
    path = shutil.which(name)
    if path is None:
        message = f"{name} is not installed (apt-get install it; .ci/run does)"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    return path


@dataclass
class ServerProcess:
    """A server started as a child process; ``port`` is where it listens."""

    proc: subprocess.Popen[bytes]
    port: int
    host: str = HOST
    argv: list[str] = field(default_factory=list)

    @property
    def address(self) -> tuple[str, int]:
        return (self.host, self.port)

    def connect(self, timeout: float = 5.0) -> socket.socket:
        return socket.create_connection(self.address, timeout=timeout)

    def kill(self, sig: int = signal.SIGKILL, timeout: float = 5.0) -> None:
        """Send ``sig`` (SIGKILL by default) and, for a fatal one, wait until it is gone."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            if sig in (signal.SIGKILL, signal.SIGTERM, signal.SIGINT):
                self.proc.wait(timeout)

    def respawn(self, timeout: float = 10.0) -> ServerProcess:
        """Start the same command again on the same host and port (after a kill)."""
        return spawn(self.argv, self.port, self.host, timeout)

    def stop(self, timeout: float = 5.0) -> int:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout)
        return int(self.proc.returncode)


def _wait_listening(proc: subprocess.Popen[bytes], host: str, port: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
            raise RuntimeError(f"server exited with {proc.returncode}: {err}")
        try:
            socket.create_connection((host, port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.02)
    proc.kill()
    raise RuntimeError(f"server did not listen on {host}:{port} within {timeout}s")


def spawn(
    argv: list[str],
    port: int,
    host: str = HOST,
    timeout: float = 10.0,
    preexec: Callable[[], None] | None = None,
) -> ServerProcess:
    """Start ``argv`` and wait until it accepts TCP connections on ``host:port``.

    ``preexec`` runs in the child before exec (to lower a resource limit, say).

    stderr goes to an anonymous file, not a pipe: a client may turn logging on with
    ``verbosity 2``, and a pipe nobody reads would block the server once full. A start
    failure quotes the end of it.
    """
    with tempfile.TemporaryFile() as log:
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=log,
            preexec_fn=preexec,
        )
        try:
            _wait_listening(proc, host, port, timeout)
        except RuntimeError as error:
            log.seek(0)
            tail = log.read()[-2000:].decode(errors="replace")
            raise RuntimeError(f"{error} {' '.join(argv)}\n{tail}") from None
    return ServerProcess(proc=proc, port=port, host=host, argv=argv)


def spawn_logged(
    argv: list[str], port: int, log_path: str, host: str = HOST, timeout: float = 10.0
) -> ServerProcess:
    """Like :func:`spawn`, but the server's stderr goes to the file ``log_path``.

    A server that logs a lot (``-vv``, ``verbosity``) into a pipe nobody reads blocks once
    the pipe is full; a file never fills. A start failure quotes the end of the log.
    """
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=log
        )
    try:
        _wait_listening(proc, host, port, timeout)
    except RuntimeError as error:
        with open(log_path, "rb") as log:
            tail = log.read()[-2000:].decode(errors="replace")
        raise RuntimeError(f"{error} {' '.join(argv)}\n{tail}") from None
    return ServerProcess(proc=proc, port=port, host=host, argv=argv)


def memcachepy_argv(port: int, *args: str, host: str = HOST) -> list[str]:
    # -u root as for memcached below: as root without -u memcachepy warns on stderr.
    user = ["-u", "root"] if os.geteuid() == 0 and "-u" not in args else []
    return [sys.executable, "-m", "memcachepy", "-l", host, "-p", str(port), *user, *args]


def memcached_argv(port: int, *args: str, host: str = HOST) -> list[str]:
    binary = require_binary("memcached")
    # -U 0: no UDP, as memcachepy's default; -u root lets the test run as root.
    return [binary, "-l", host, "-p", str(port), "-U", "0", "-u", "root", *args]


@contextmanager
def _started(server: Server) -> Iterator[ServerProcess]:
    """A started :class:`~memcachepy.testing.Server` as a ServerProcess: stopped with
    SIGTERM afterwards, as a test would stop it, then closed (its directory removed)."""
    with server:
        proc, port = server.process, server.port
        assert proc is not None and port is not None
        process = ServerProcess(proc=proc, port=port, host=server.host, argv=server.argv)
        try:
            yield process
        finally:
            process.stop()


def memcachepy_server(
    *args: str, host: str = HOST, port: int | None = None
) -> contextlib.AbstractContextManager[ServerProcess]:
    """A memcachepy daemon with memcached-style ``args``, stopped afterwards.

    ``port`` defaults to a free one.
    """
    # -u root as memcachepy_argv: as root without -u memcachepy warns on stderr.
    user = ["-u", "root"] if os.geteuid() == 0 and "-u" not in args else []
    return _started(Server([*user, *args], host=host, port=port))


def memcached_server(
    *args: str, host: str = HOST, port: int | None = None
) -> contextlib.AbstractContextManager[ServerProcess]:
    """Debian's real memcached with ``args``, stopped afterwards (skips if not installed).

    ``port`` defaults to a free one.
    """
    # -U 0: no UDP, as memcachepy's default (the Server adds -u root as root).
    return _started(
        Server(["-U", "0", *args], exe=require_binary("memcached"), host=host, port=port)
    )
