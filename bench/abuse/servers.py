"""The daemons under attack: memcachepy (this Python's build) and Debian's memcached."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass

from bench.abuse.attacks import PORT
from bench.abuse.probes import auth_request, read_until

HOST = "127.0.0.1"  # attacks stay on loopback
MEMCACHED = "/usr/bin/memcached"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def memcachepy_argv(port: int, flags: list[str]) -> list[str]:
    # -P: the installed build, never a source folder that happens to be the cwd.
    user = ["-u", "root"] if os.geteuid() == 0 else []
    return [sys.executable, "-P", "-m", "memcachepy", "-l", HOST, "-p", str(port), *user, *flags]


def memcached_argv(port: int, flags: list[str]) -> list[str]:
    user = ["-u", "root"] if os.geteuid() == 0 else []
    return [MEMCACHED, "-l", HOST, "-p", str(port), "-U", "0", *user, *flags]


ARGV = {"memcachepy": memcachepy_argv, "memcached": memcached_argv}


def available(name: str) -> bool:
    return name == "memcachepy" or shutil.which(MEMCACHED) is not None


@dataclass
class Daemon:
    name: str
    proc: subprocess.Popen[bytes]
    port: int
    login: bytes = b""  # under -Y: what a client must send first

    @property
    def address(self) -> tuple[str, int]:
        return (HOST, self.port)

    def alive(self) -> bool:
        """Still running and answering ``version`` (after the login, under -Y)."""
        if self.proc.poll() is not None:
            return False
        try:
            with socket.create_connection(self.address, timeout=3) as sock:
                if self.login:
                    sock.sendall(auth_request(self.login))
                    if read_until(sock, b"\r\n", time.monotonic() + 3) != b"STORED\r\n":
                        return False
                sock.sendall(b"version\r\n")
                return sock.recv(100).startswith(b"VERSION ")
        except OSError:
            return False

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


def start(name: str, flags: list[str], login: bytes = b"", timeout: float = 20.0) -> Daemon:
    """Start ``name`` with ``flags`` on a free loopback port; wait until it answers.
    ``PORT`` in a flag is that port's number (for -U: UDP's port space is another, where
    the same number is almost always free too; a clash fails the start)."""
    port = free_port()
    flags = [flag.replace(PORT, str(port)) for flag in flags]
    proc = subprocess.Popen(
        ARGV[name](port, flags), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    daemon = Daemon(name, proc, port, login)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{name} exited with {proc.returncode} at start")
        if daemon.alive():
            return daemon
        time.sleep(0.05)
    daemon.stop()
    raise RuntimeError(f"{name} did not answer within {timeout:.0f} s")
