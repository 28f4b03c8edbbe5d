"""``memcachepy cluster up``: N nodes on loopback, used from pymemcache, stopped cleanly."""

from __future__ import annotations

import os
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from pymemcache.client.base import Client
from pymemcache.client.hash import HashClient

from memcachepy.cluster import ClusterClient, KetamaRing, parse_cluster_config
from tests.e2e.wire import exchange
from tests.servers import HOST

from .nodes import bindable

READY = "Ctrl-C stops the cluster."


class ClusterUp:
    """A running ``memcachepy cluster up`` and what its banner said."""

    def __init__(
        self,
        *args: str,
        command: tuple[str, ...] = (sys.executable, "-m", "memcachepy"),
        cwd: Path | None = None,
    ) -> None:
        self.proc = subprocess.Popen(
            [*command, "cluster", "up", *args],
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.output: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)

    def _read_until(self, done: Callable[[str], bool], what: str, timeout: float) -> list[str]:
        deadline = time.monotonic() + timeout
        while not (self.output and done(self.output[-1])):
            try:
                line = self.lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                pytest.fail(f"no {what} within {timeout} s: {self.output}")
            if line is None:
                pytest.fail(f"cluster up exited before {what}: {self.output}")
            self.output.append(line)
        return self.output

    def read_until(self, wanted: str, timeout: float = 20.0) -> list[str]:
        """Output lines up to the one equal to ``wanted``."""
        return self._read_until(lambda line: line == wanted, repr(wanted), timeout)

    def read_until_prefix(self, prefix: str, timeout: float = 20.0) -> str:
        """The next output line that starts with ``prefix``."""
        return self._read_until(
            lambda line: line.startswith(prefix), repr(prefix) + "...", timeout
        )[-1]

    def nodes(self) -> dict[int, int]:
        """port -> pid of each node listed in the banner."""
        found = re.findall(
            rf"^  node {re.escape(HOST)}:(\d+)  pid (\d+)$", "\n".join(self.output), re.MULTILINE
        )
        return {int(port): int(pid) for port, pid in found}

    def banner_value(self, label: str) -> str:
        for line in self.output:
            if line.startswith(label + ": "):
                return line[len(label) + 2 :].split("  ")[0]
        raise KeyError(label)


def alive(pid: int) -> bool:
    """Whether the process runs (a zombie nobody reaped yet counts as gone)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


@contextmanager
def cluster_up(
    *args: str,
    command: tuple[str, ...] = (sys.executable, "-m", "memcachepy"),
    cwd: Path | None = None,
) -> Iterator[ClusterUp]:
    cluster = ClusterUp(*args, command=command, cwd=cwd)
    try:
        yield cluster
    finally:
        if cluster.proc.poll() is None:
            cluster.proc.kill()  # the nodes get SIGTERM when their parent dies
            cluster.proc.wait(10)


def test_three_nodes_used_from_pymemcache_then_stopped_by_ctrl_c() -> None:
    with cluster_up("--nodes", "3", "--base-port", "0") as cluster:
        cluster.read_until(READY)
        nodes = cluster.nodes()
        assert len(nodes) == 3
        first, second, _ = nodes
        assert cluster.banner_value("configuration endpoint") == f"{HOST}:{first}"
        membership = Path(cluster.banner_value("membership file"))

        # As in the README: pymemcache with memcachepy's ketama ring.
        client = HashClient([(HOST, port) for port in nodes], hasher=KetamaRing)
        keys = [f"key-{i}" for i in range(60)]
        client.set_many({key: b"v" for key in keys})
        assert client.get_many(keys) == {key: b"v" for key in keys}
        for port in nodes:
            direct = Client((HOST, port), timeout=5)
            assert direct.get_many(keys)  # every node holds some keys
            direct.close()
        client.close()

        # Every node is a configuration endpoint listing all three.
        with ClusterClient.from_config_endpoint((HOST, first)) as discovered:
            assert {server.port for server in discovered.servers} == set(nodes)
            assert discovered.get("key-1") == b"v"

        # SIGHUP is passed on: the nodes re-read the edited membership file.
        membership.write_text(f"{HOST}:{first}\n")
        cluster.proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 5
        while True:
            with socket.create_connection((HOST, second), timeout=5) as sock:
                config = parse_cluster_config(exchange(sock, b"config get cluster\r\n", b"END\r\n"))
            if config.version == 2 or time.monotonic() > deadline:
                break
            time.sleep(0.02)
        assert [n.port for n in config.nodes] == [first]

        cluster.proc.send_signal(signal.SIGINT)
        assert cluster.proc.wait(15) == 0
        assert cluster.read_until("cluster stopped")[-2:] == ["stopping 3 nodes", "cluster stopped"]
        assert not any(alive(pid) for pid in nodes.values())
        assert all(bindable(HOST, port) for port in nodes)
        assert not membership.parent.exists()  # its temporary directory is removed


def test_sigterm_stops_the_cluster_and_dir_is_kept(tmp_path: Path) -> None:
    with cluster_up(
        "--nodes", "1", "--base-port", "0", "--dir", str(tmp_path), "--", "-m", "8"
    ) as cluster:
        cluster.read_until(READY)
        (pid,) = cluster.nodes().values()
        cluster.proc.send_signal(signal.SIGTERM)
        assert cluster.proc.wait(15) == 0
        assert not alive(pid)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "admin.token",
        "cluster.conf",
        f"node-{next(iter(cluster.nodes()))}.log",
    ]
    assert (tmp_path / "admin.token").stat().st_mode & 0o077 == 0


def test_a_node_that_died_is_counted_out() -> None:
    with cluster_up("--nodes", "2", "--base-port", "0", "--", "-m", "8") as cluster:
        cluster.read_until(READY)
        (port, pid), _ = cluster.nodes().items()
        os.kill(pid, signal.SIGKILL)
        exited = cluster.read_until_prefix(f"node {HOST}:{port} exited with status -9 ")
        assert exited.endswith("; 1 of 2 nodes running")
        cluster.proc.send_signal(signal.SIGTERM)
        assert cluster.proc.wait(15) == 0
        assert cluster.read_until("cluster stopped")[-2:] == [
            "stopping 1 node (1 had exited)",
            "cluster stopped",
        ]


def test_port_in_use_is_refused_before_starting_anything() -> None:
    with socket.create_server((HOST, 0)) as listener:
        busy = listener.getsockname()[1]
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "memcachepy",
                "cluster",
                "up",
                "--nodes",
                "2",
                "--base-port",
                str(busy),
            ],
            capture_output=True,
            text=True,
            timeout=30,
        )
    assert result.returncode == 1
    assert f"port {busy} on {HOST} is in use" in result.stderr


@pytest.mark.skipif(sys.platform != "linux", reason="parent-death signal is Linux only")
def test_nodes_die_with_a_killed_command() -> None:
    with cluster_up("--nodes", "1", "--base-port", "0") as cluster:
        cluster.read_until(READY)
        (pid,) = cluster.nodes().values()
        cluster.proc.kill()
        cluster.proc.wait(10)
        deadline = time.monotonic() + 10
        while alive(pid) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert not alive(pid)


ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("shadow", ["checkout", "package"])
def test_cluster_up_from_the_folder_that_holds_the_checkout(tmp_path: Path, shadow: str) -> None:
    """The installed command, run where a folder named memcachepy sits: a checkout (no
    __init__.py, a namespace package to Python), or a broken package. The nodes must run
    the installed memcachepy, not what the current directory holds."""
    script = Path(sys.executable).parent / "memcachepy"
    if not script.exists():
        pytest.skip(f"no memcachepy console script beside {sys.executable}")
    folder = tmp_path / "memcachepy"
    folder.mkdir()
    (folder / "src").symlink_to(ROOT / "src")
    (folder / "pyproject.toml").write_text((ROOT / "pyproject.toml").read_text())
    if shadow == "package":
        (folder / "__init__.py").write_text("raise ImportError('the shadow was imported')\n")
    with cluster_up(
        "--nodes", "2", "--base-port", "0", command=(str(script),), cwd=tmp_path
    ) as cluster:
        cluster.read_until(READY)
        nodes = cluster.nodes()
        assert len(nodes) == 2
        for port in nodes:
            with socket.create_connection((HOST, port), timeout=5) as sock:
                assert exchange(sock, b"version\r\n", b"\r\n").startswith(b"VERSION 1.6.18")
        cluster.proc.send_signal(signal.SIGINT)
        assert cluster.proc.wait(15) == 0
