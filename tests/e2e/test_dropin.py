"""memcachepy in place of Debian's memcached: its command line, -d/-P/-u, UNIX sockets."""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import stat
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from pymemcache.client.base import Client

from tests.servers import HOST, free_port

DEBIAN_LINE = [
    "-m",
    "64",
    "-p",
    "PORT",
    "-u",
    "memcache",
    "-l",
    "127.0.0.1",
    "-P",
    "/var/run/memcached/memcached.pid",
]


def _ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
        return True
    except OSError:
        return False


def _exchange(
    family: int, address: str | tuple[str, int], request: bytes, timeout: float = 5.0
) -> bytes:
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        sock.connect(address)
        sock.sendall(request)
        data = b""
        while not data.endswith(b"END\r\n"):
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
        return data


def _wait_for_file(path: Path, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.02)


def _wait_connectable(family: int, address: str | tuple[str, int], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.socket(family, socket.SOCK_STREAM) as sock:
                sock.connect(address)
            return
        except OSError:
            assert time.monotonic() < deadline, f"nothing listens on {address}"
            time.sleep(0.02)


def _stop(pid: int, timeout: float = 10.0) -> None:
    try:
        os.kill(pid, 15)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)
    os.kill(pid, 9)


@pytest.fixture
def run_dir() -> Iterator[Path]:
    """A directory that nobody owns, as Debian makes /run/memcached for memcache (pytest's
    tmp_path is root's, mode 0700)."""
    path = Path(tempfile.mkdtemp(prefix="memcachepy-run-"))
    entry = pwd.getpwnam("nobody")
    os.chown(path, entry.pw_uid, entry.pw_gid)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def _wait_gone(pid: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while Path(f"/proc/{pid}").exists():
        assert time.monotonic() < deadline, f"process {pid} still runs"
        time.sleep(0.02)


@pytest.mark.skipif(os.geteuid() != 0, reason="-u needs root")
def test_debian_line_daemonizes_drops_to_nobody_and_serves_both_addresses(run_dir: Path) -> None:
    port = free_port()
    pid_file = run_dir / "memcached.pid"
    argv = [a.replace("PORT", str(port)) for a in DEBIAN_LINE]
    argv[argv.index("memcache")] = "nobody"
    argv[argv.index("/var/run/memcached/memcached.pid")] = str(pid_file)
    six = _ipv6_loopback()
    if six:
        argv += ["-l", "::1"]
    result = subprocess.run(
        [sys.executable, "-m", "memcachepy", *argv, "-d"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stderr  # the parent returns once detached
    _wait_for_file(pid_file)
    pid = int(pid_file.read_text())
    try:
        _wait_connectable(socket.AF_INET, (HOST, port))
        stored = _exchange(socket.AF_INET, (HOST, port), b"set k 0 0 2\r\nv4\r\nget k\r\n")
        assert stored == b"STORED\r\nVALUE k 0 2\r\nv4\r\nEND\r\n"
        # Answering means the event loop runs, which starts after the drop.
        status = Path(f"/proc/{pid}/status").read_text()
        uid_line = next(line for line in status.splitlines() if line.startswith("Uid:"))
        nobody = pwd.getpwnam("nobody").pw_uid
        assert uid_line.split()[1:] == [str(nobody)] * 4  # real, effective, saved, fs
        assert os.getsid(pid) == pid  # a session of its own: detached from our terminal
        if six:
            _wait_connectable(socket.AF_INET6, ("::1", port))
            assert _exchange(socket.AF_INET6, ("::1", port), b"get k\r\n") == (
                b"VALUE k 0 2\r\nv4\r\nEND\r\n"
            )
        stats = _exchange(socket.AF_INET, (HOST, port), b"stats\r\n")
        assert b"STAT pid %d\r\n" % pid in stats  # the pid file holds the daemon's pid
        assert pid_file.stat().st_uid == nobody  # written as the user, as memcached does
    finally:
        _stop(pid)
    _wait_gone(pid)
    assert not pid_file.exists()  # so the user could remove it at SIGTERM


def _daemon_pid(port: int) -> int:
    _wait_connectable(socket.AF_INET, (HOST, port))
    stats = _exchange(socket.AF_INET, (HOST, port), b"stats\r\n")
    return int(
        next(line.split()[2] for line in stats.splitlines() if line.startswith(b"STAT pid "))
    )


@pytest.mark.skipif(os.geteuid() != 0, reason="-u needs root")
def test_a_pid_file_the_user_cannot_write_is_refused_before_detaching(tmp_path: Path) -> None:
    port = free_port()
    pid_file = tmp_path / "memcached.pid"  # root's directory, mode 0700
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "memcachepy",
            "-d",
            "-p",
            str(port),
            "-u",
            "nobody",
            "-P",
            str(pid_file),
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    pid = _daemon_pid(port)
    try:
        assert result.returncode == 0  # memcached starts without its pid file too
        assert result.stderr.endswith(
            f" memcachepy ERROR user nobody cannot create files in "
            f"{tmp_path}: no pid file will be written\n"
        )
        assert not pid_file.exists()
    finally:
        _stop(pid)


def test_a_relative_pid_file_is_where_the_command_ran(tmp_path: Path) -> None:
    # The daemon moves to / (as memcached's daemon() does); the path is taken before that.
    port = free_port()
    user = ["-u", "root"] if os.geteuid() == 0 else []
    result = subprocess.run(
        [sys.executable, "-m", "memcachepy", "-d", "-p", str(port), "-P", "relative.pid", *user],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stderr
    pid = _daemon_pid(port)
    try:
        _wait_for_file(tmp_path / "relative.pid")
        assert int((tmp_path / "relative.pid").read_text()) == pid
    finally:
        _stop(pid)
    _wait_gone(pid)
    assert not (tmp_path / "relative.pid").exists()


@pytest.mark.skipif(os.geteuid() != 0, reason="the warning is about running as root")
def test_root_warning_is_logged_once_with_one_level(tmp_path: Path) -> None:
    port = free_port()
    log = tmp_path / "stderr"
    with log.open("w") as err:  # -v keeps the daemon's stderr: this file
        result = subprocess.run(
            [sys.executable, "-m", "memcachepy", "-d", "-v", "-p", str(port)],
            stderr=err,
            timeout=30,
        )
    assert result.returncode == 0
    pid = _daemon_pid(port)
    _stop(pid)
    _wait_gone(pid)
    warnings = [line for line in log.read_text().splitlines() if "running as root" in line]
    assert len(warnings) == 1, warnings
    assert " memcachepy WARNING running as root without -u: " in warnings[0]


def test_unix_socket_with_mask_serves_pymemcache_text_and_binary(tmp_path: Path) -> None:
    path = tmp_path / "memcached.sock"
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "memcachepy",
            "-s",
            str(path),
            "-a",
            "0700",
            "-p",
            str(port),
            "-u",
            "root",
        ],
        stderr=subprocess.PIPE,
    )
    try:
        _wait_for_file(path)
        _wait_connectable(socket.AF_UNIX, str(path))
        mode = os.stat(path).st_mode
        assert stat.S_ISSOCK(mode) and stat.S_IMODE(mode) == 0o700
        client = Client(str(path), timeout=5)
        client.set("key", b"value")
        assert client.get("key") == b"value"
        client.close()
        # The binary protocol over the same socket (a version request: opcode 0x0b).
        with socket.socket(socket.AF_UNIX) as sock:
            sock.settimeout(5)
            sock.connect(str(path))
            sock.sendall(bytes([0x80, 0x0B]) + bytes(22))
            header = sock.recv(24)
            assert header[:2] == bytes([0x81, 0x0B]) and header[6:8] == b"\x00\x00"
        # As in memcached, -s turns TCP off: -p is not listened on.
        with pytest.raises(ConnectionRefusedError), socket.create_connection((HOST, port)):
            pass
    finally:
        proc.terminate()
        proc.wait(10)
    assert not path.exists()  # removed at exit


def test_stale_unix_socket_is_replaced_and_a_live_one_refused(tmp_path: Path) -> None:
    path = tmp_path / "s.sock"
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(str(path))
    stale.close()  # a file left behind by a killed server
    argv = [sys.executable, "-m", "memcachepy", "-s", str(path), "-u", "root"]
    first = subprocess.Popen(argv, stderr=subprocess.DEVNULL)
    try:
        _wait_connectable(socket.AF_UNIX, str(path))
        second = subprocess.run(argv, capture_output=True, text=True, timeout=30)
        assert second.returncode == 71 and "listening" in second.stderr
    finally:
        first.terminate()
        first.wait(10)


def test_root_without_u_warns_on_stderr_naming_u() -> None:
    if os.geteuid() != 0:
        pytest.skip("the warning is about running as root")
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "memcachepy", "-p", str(port)], stderr=subprocess.PIPE, text=True
    )
    # The port accepts before the warning is logged ("once serving"), so read stderr for
    # it rather than wait for a connection; the timer bounds a server that never warns.
    deadline = threading.Timer(20, proc.terminate)
    deadline.start()
    lines: list[str] = []
    try:
        assert proc.stderr is not None
        for line in proc.stderr:
            lines.append(line)
            if "WARNING" in line:
                break
    finally:
        deadline.cancel()
        proc.terminate()
        _, rest = proc.communicate(timeout=10)
    warnings = [line for line in lines + rest.splitlines() if "WARNING" in line and "root" in line]
    assert warnings and "-u" in warnings[0]


def test_port_file_and_ephemeral_ports(tmp_path: Path) -> None:
    """memcached's MEMCACHED_PORT_FILENAME with -p -1 -U -1 (t/issue_67)."""
    ports = tmp_path / "ports"
    proc = subprocess.Popen(
        [sys.executable, "-m", "memcachepy", "-p", "-1", "-U", "-1", "-u", "root"],
        env={**os.environ, "MEMCACHED_PORT_FILENAME": str(ports)},
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_for_file(ports)
        found = dict(line.split(": ") for line in ports.read_text().splitlines())
        assert set(found) == {"TCP INET", "UDP INET"}
        tcp, udp = int(found["TCP INET"]), int(found["UDP INET"])
        assert tcp not in (0, 11211) and udp != 0
        _wait_connectable(socket.AF_INET, (HOST, tcp))
    finally:
        proc.terminate()
        proc.wait(10)
