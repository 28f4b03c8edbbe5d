"""The chaos run's daemons: data nodes that can be killed, paused and restarted, and one
configuration endpoint (``--cluster-config``) whose ``config set cluster`` changes the
membership the clients follow. Data nodes know the membership too (a file of their own,
with R=2), so a node restarted empty warms up from its peers unless the run says not to.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from memcachepy.cluster.discovery import ClusterNode, parse_cluster_config

START_TIMEOUT = 15.0


def free_port(host: str) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def _wait_listening(proc: subprocess.Popen[bytes], host: str, port: int) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"node on port {port} exited with {proc.returncode}")
        try:
            socket.create_connection((host, port), timeout=0.3).close()
            return
        except OSError:
            time.sleep(0.02)
    proc.kill()
    raise RuntimeError(f"node on port {port} did not listen within {START_TIMEOUT} s")


class DataNode:
    """One memcachepy cache node; ``memory_file`` makes warm restarts possible."""

    def __init__(self, host: str, workdir: Path, memory_mb: int = 32) -> None:
        self.host = host
        self.port = free_port(host)
        self.memory_file = workdir / f"node-{self.port}.mem"
        self.log = workdir / f"node-{self.port}.log"
        self.memory_mb = memory_mb
        self.proc: subprocess.Popen[bytes] | None = None
        # --cluster-config FILE --cluster-replicas 2 [--no-warm-up]: set by the Cluster.
        self.cluster_args: list[str] = []

    @property
    def spec(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def cluster_node(self) -> ClusterNode:
        return ClusterNode(self.host, self.host, self.port)

    def start(self, *, warm: bool = False) -> None:
        """Start the daemon; ``warm`` restores the memory file a graceful stop saved."""
        if not warm and self.memory_file.exists():
            self.memory_file.unlink()
        argv = [
            sys.executable,
            "-P",
            "-m",
            "memcachepy",
            "-l",
            self.host,
            "-p",
            str(self.port),
            "-m",
            str(self.memory_mb),
            "-e",
            str(self.memory_file),
            *self.cluster_args,
        ]
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=log
            )
        _wait_listening(self.proc, self.host, self.port)

    def signal(self, sig: int) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)

    def kill(self) -> None:
        self.signal(signal.SIGKILL)
        if self.proc is not None:
            self.proc.wait(10)

    def graceful_stop(self) -> None:
        """SIGUSR1: drain, save the memory file, exit (what the systemd unit sends)."""
        self.signal(signal.SIGUSR1)
        if self.proc is not None:
            self.proc.wait(30)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.kill()
            self.proc.wait(10)


class ConfigEndpoint:
    """A memcachepy node that only serves the membership (``config get cluster``)."""

    def __init__(self, host: str, workdir: Path, nodes: list[ClusterNode]) -> None:
        self.host = host
        self.port = free_port(host)
        self.file = workdir / "cluster.conf"
        self.file.write_text("".join(f"{n}\n" for n in nodes))
        self.token = os.urandom(12).hex()
        token_file = workdir / "admin.token"
        token_file.write_text(self.token + "\n")
        token_file.chmod(0o600)
        argv = [
            sys.executable,
            "-P",
            "-m",
            "memcachepy",
            "-l",
            host,
            "-p",
            str(self.port),
            "-m",
            "8",
            "--cluster-config",
            str(self.file),
            "--cluster-admin-token-file",
            str(token_file),
        ]
        with (workdir / "endpoint.log").open("ab") as log:
            self.proc = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=log
            )
        _wait_listening(self.proc, host, self.port)

    def _ask(self, request: bytes, reply_end: bytes) -> bytes:
        with socket.create_connection((self.host, self.port), timeout=5) as sock:
            sock.sendall(request)
            reply = b""
            while not reply.endswith(reply_end):
                data = sock.recv(65536)
                if not data:
                    break
                reply += data
            return reply

    def version(self) -> int:
        return parse_cluster_config(self._ask(b"config get cluster\r\n", b"END\r\n")).version

    def set_members(self, nodes: list[ClusterNode]) -> None:
        """``config set cluster`` with the next version."""
        body = f"{self.version() + 1}\n{' '.join(str(n) for n in nodes)}\n".encode()
        request = b"config set cluster 0 %d %s\r\n%s\r\n" % (len(body), self.token.encode(), body)
        reply = self._ask(request, b"\r\n")
        if reply != b"OK\r\n":
            raise RuntimeError(f"config set cluster answered {reply!r}")

    def stop(self) -> None:
        self.proc.kill()
        self.proc.wait(10)
