"""``-e`` under disk trouble: a full disk, a read-only one, a file deleted while running.

Each gives a clear error and never a torn restore. The small filesystems are tmpfs mounts
the tests make (root only; elsewhere they skip, and fail in CI where they must run).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from pymemcache.client.base import Client

from tests.servers import IN_CI, free_port, memcachepy_argv, spawn

VALUES = {f"k{i}".encode(): os.urandom(2000) for i in range(2000)}  # ~4 MB


@pytest.fixture
def tmpfs(tmp_path: Path) -> Iterator[Path]:
    """A 24 MB tmpfs mounted for the test."""
    mount = tmp_path / "mnt"
    mount.mkdir()
    if os.geteuid() != 0:
        if IN_CI:
            pytest.fail("the disk tests need root to mount a tmpfs")
        pytest.skip("the disk tests need root to mount a tmpfs")
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=24m", "tmpfs", str(mount)], check=True)
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def start(memory: Path, port: int) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        memcachepy_argv(port, "-m", "16", "-e", str(memory)),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def fill(port: int) -> None:
    client = Client(("127.0.0.1", port), connect_timeout=5, timeout=10)
    for key, value in VALUES.items():
        assert client.set(key, value, noreply=False)
    client.close()


def stop_gracefully(server: subprocess.Popen[bytes]) -> tuple[int, str]:
    server.send_signal(signal.SIGUSR1)
    _, err = server.communicate(timeout=30)
    return server.returncode, err.decode()


def restored_count(memory: Path) -> int:
    port = free_port()
    server = spawn(memcachepy_argv(port, "-m", "16", "-e", str(memory)), port)
    try:
        client = Client(server.address, connect_timeout=5, timeout=10)
        count = int(client.stats()[b"curr_items"])
        if count:
            keys = list(VALUES)
            for at in range(0, len(keys), 200):
                batch = keys[at : at + 200]
                assert client.get_many(batch) == {k: VALUES[k] for k in batch}
        client.close()
        return count
    finally:
        server.stop()


def test_a_disk_too_small_for_m_stops_the_start_with_a_clear_error(tmpfs: Path) -> None:
    (tmpfs / "ballast").write_bytes(bytes(12 << 20))  # leaves 12 MB for a 16 MB cache
    result = subprocess.run(
        memcachepy_argv(free_port(), "-m", "16", "-e", str(tmpfs / "memory")),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 1
    assert "cannot reserve 16 MB for -m 16: No space left on device" in result.stderr


def test_a_disk_that_fills_up_while_serving_cannot_break_the_save(tmpfs: Path) -> None:
    memory = tmpfs / "memory"
    port = free_port()
    server = start(memory, port)
    spawn_wait(server, port)
    # Everything else on the disk is taken: the cache's pages were reserved at start, so
    # writing them (and saving) still works instead of the daemon dying of SIGBUS.
    with open(tmpfs / "ballast", "wb", buffering=0) as ballast:
        with pytest.raises(OSError, match="No space left"):
            for _ in range(64):
                ballast.write(bytes(1 << 20))
    fill(port)
    status, err = stop_gracefully(server)
    assert status == 0, err
    assert restored_count(memory) == len(VALUES)


def spawn_wait(server: subprocess.Popen[bytes], port: int) -> None:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        assert server.poll() is None, server.stderr.read() if server.stderr else ""
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.3).close()
            return
        except OSError:
            time.sleep(0.05)
    raise AssertionError("the daemon did not start")


def test_a_read_only_disk_refuses_to_start_and_keeps_the_saved_file(tmpfs: Path) -> None:
    memory = tmpfs / "memory"
    port = free_port()
    server = start(memory, port)
    spawn_wait(server, port)
    fill(port)
    assert stop_gracefully(server)[0] == 0
    saved = memory.read_bytes()
    subprocess.run(["mount", "-o", "remount,ro", str(tmpfs)], check=True)
    result = subprocess.run(
        memcachepy_argv(free_port(), "-m", "16", "-e", str(memory)),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 1
    assert f"memory file {memory}: Read-only file system" in result.stderr
    subprocess.run(["mount", "-o", "remount,rw", str(tmpfs)], check=True)
    assert memory.read_bytes() == saved
    assert restored_count(memory) == len(VALUES)


@pytest.mark.parametrize("replaced", [False, True])
def test_a_memory_file_deleted_while_running_is_not_saved_into(
    tmp_path: Path, replaced: bool
) -> None:
    memory = tmp_path / "memory"
    port = free_port()
    server = start(memory, port)
    spawn_wait(server, port)
    fill(port)
    memory.unlink()
    if replaced:
        memory.write_bytes(b"someone else's file")
    status, err = stop_gracefully(server)
    assert status == 1
    assert f"memory file {memory} was deleted or replaced while the daemon ran" in err
    if replaced:
        assert memory.read_bytes() == b"someone else's file"  # left alone
    else:
        assert not memory.exists()
        assert restored_count(memory) == 0  # a clean start, not a half-saved cache
