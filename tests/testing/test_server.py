"""memcachepy.testing.Server used directly, outside the fixtures."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import pytest
from pymemcache.client.base import Client

import memcachepy.testing.server as server_module
from memcachepy.testing import Server, ServerError
from memcachepy.testing.ports import free_port

ROOT = Path(__file__).resolve().parents[2]


def client(server: Server) -> Client:
    # Acknowledged writes: a later request on another connection cannot overtake them.
    return Client(server.address, default_noreply=False)


def test_server_imports_without_pytest_or_trio() -> None:
    code = "import sys, memcachepy.testing; print(sorted({'pytest', 'trio'} & set(sys.modules)))"
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert out.stdout.strip() == "[]"


def test_plugin_is_registered_through_the_pytest11_entry_point() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    plugin = "memcachepy.testing.plugin"
    assert project["entry-points"]["pytest11"] == {plugin: plugin}
    assert "pytest" not in project["dependencies"]


def test_flags_the_server_owns_are_refused() -> None:
    with pytest.raises(ValueError, match="-p"):
        Server(["-m", "8", "-p", "11211"])
    with pytest.raises(ValueError, match="unix_socket"):
        Server(unix_mask="700")


def test_reset_and_warm_restart_without_a_memory_file() -> None:
    with Server() as server:
        directory = server.directory
        assert directory is not None and os.path.isdir(directory)
        client(server).set("k", "v")
        with pytest.raises(ServerError, match="warm_restarts=True"):
            server.restart(warm=True)
        assert client(server).get("k") == b"v"  # refused before stopping anything
        server.pause()
        server.reset()
        assert not server.paused and client(server).get("k") is None
        server.kill()
        server.reset()
        assert server.running and client(server).set("k", "v")
    assert not server.running and not os.path.exists(directory)


def test_memory_file_from_args(tmp_path: Path) -> None:
    path = str(tmp_path / "memory")
    with Server(["-e", path]) as server:
        assert server.memory_file == path and os.path.exists(path)
        client(server).set("k", "v")
        server.restart(warm=True)
        assert client(server).get("k") == b"v"
        server.restart()  # cold: the saved items are dropped with the file
        assert client(server).get("k") is None
        server.kill()
        with pytest.raises(ServerError, match="not running"):
            server.restart(warm=True)  # a killed server saved nothing


def test_a_taken_port_is_retried_on_first_start(monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        taken = squatter.getsockname()[1]
        with pytest.raises(ServerError, match=f"port {taken} is in use"):
            Server(port=taken).start()
        ports = iter([taken, free_port()])
        monkeypatch.setattr(server_module, "free_port", lambda host: next(ports))
        with Server() as server:
            assert server.port != taken and client(server).set("k", "v")


def test_a_failed_start_quotes_the_server() -> None:
    server = Server(["--no-such-flag"])
    with pytest.raises(ServerError, match="no-such-flag") as caught:
        server.start()
    assert "exited with" in str(caught.value) and not server.running
    server.close()


def _gone(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rpartition(")")[2].split()[0] == "Z"  # dead, not yet reaped
    except FileNotFoundError:
        return True


def test_server_dies_with_a_killed_parent(tmp_path: Path) -> None:
    code = (
        "import os, signal; from memcachepy.testing import Server; "
        "s = Server().start(); print(s.pid, flush=True); os.kill(os.getpid(), signal.SIGKILL)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT), "TMPDIR": str(tmp_path)},
        timeout=30,
    )  # TMPDIR: the killed parent cannot remove its directory
    pid = int(out.stdout)
    deadline = time.monotonic() + 5
    while not _gone(pid) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert _gone(pid)
