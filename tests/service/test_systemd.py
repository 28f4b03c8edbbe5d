"""sd_notify, the watchdog, reload and socket activation, without systemd as PID 1.

The daemon talks to a real ``AF_UNIX`` datagram socket given as ``NOTIFY_SOCKET``, and is
handed real listening sockets as fd 3 with ``LISTEN_FDS``/``LISTEN_PID``: by a launcher that
does what systemd does (dup2, set the variables with its own pid, exec), and by systemd's
own ``systemd-socket-activate``.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import trio

from memcachepy.config import Settings
from memcachepy.ops.systemd import (
    Notifier,
    activated_listeners,
    listen_fds,
    watchdog_interval,
)
from memcachepy.server.daemon import Server
from tests.e2e.wire import exchange
from tests.servers import HOST, free_port, memcachepy_server, require_binary

ROOT = Path(__file__).resolve().parents[2]
VERSION_REPLY = b"VERSION "


class NotifySocket:
    """A bound datagram socket standing in for systemd's notification socket."""

    def __init__(self, directory: str) -> None:
        self.path = os.path.join(directory, "notify")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)

    def receive(self, timeout: float = 10.0) -> dict[str, str]:
        """The next message as a dict of its fields."""
        self.sock.settimeout(timeout)
        data = self.sock.recv(4096).decode()
        return dict(line.split("=", 1) for line in data.split("\n") if line)

    def receive_until(self, field: str, timeout: float = 10.0) -> list[dict[str, str]]:
        """Messages up to and including the first with ``field`` (others: watchdog pings)."""
        deadline = time.monotonic() + timeout
        messages = []
        while True:
            message = self.receive(max(deadline - time.monotonic(), 0.01))
            messages.append(message)
            if field in message:
                return messages

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def notify() -> Iterator[NotifySocket]:
    directory = tempfile.mkdtemp(prefix="mcpy-", dir="/tmp")  # unix socket paths are short
    sock = NotifySocket(directory)
    yield sock
    sock.close()
    os.unlink(sock.path)
    os.rmdir(directory)


def daemon(*args: str, env: dict[str, str], **popen: Any) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "memcachepy", *args],
        cwd=ROOT,
        env={**os.environ, **env},
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        **popen,
    )


def stop(proc: subprocess.Popen[bytes]) -> int:
    if proc.poll() is None:
        proc.terminate()
    try:
        return proc.wait(10)
    finally:
        if proc.stderr:
            proc.stderr.close()


# -- the protocol pieces --------------------------------------------------------------------


def test_notifier_sends_datagrams_to_a_path_and_does_nothing_without_one(
    notify: NotifySocket,
) -> None:
    notifier = Notifier(notify.path)
    assert notifier.ready("serving\nnow")
    assert notify.receive() == {"READY": "1", "STATUS": "serving now"}
    assert notifier.watchdog() and notify.receive() == {"WATCHDOG": "1"}
    reloading = (notifier.reloading(), notify.receive())[1]
    assert reloading["RELOADING"] == "1" and reloading["MONOTONIC_USEC"].isdigit()
    notifier.close()
    assert not Notifier(None).enabled and not Notifier(None).ready("x")
    assert not Notifier("vsock:2:5").enabled


def test_notifier_reaches_an_abstract_socket() -> None:
    name = f"memcachepy-test-{os.getpid()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        sock.settimeout(5)
        assert Notifier.from_environment({"NOTIFY_SOCKET": "@" + name}).stopping("bye")
        assert sock.recv(100) == b"STOPPING=1\nSTATUS=bye"


def test_watchdog_interval_is_half_of_watchdog_usec_for_this_process_only() -> None:
    assert watchdog_interval({"WATCHDOG_USEC": "30000000"}) == 15.0
    assert watchdog_interval({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": str(os.getpid())})
    assert watchdog_interval({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "1"}) is None
    assert watchdog_interval({}) is None and watchdog_interval({"WATCHDOG_USEC": "x"}) is None


def test_listen_fds_takes_only_what_is_meant_for_this_process() -> None:
    env = {"LISTEN_PID": "1", "LISTEN_FDS": "2", "LISTEN_FDNAMES": "a:b"}
    assert listen_fds(env) == [] and env == {}  # another process's: ignored, and unset
    assert listen_fds({"LISTEN_PID": str(os.getpid())}) == []
    assert activated_listeners({}) == []


def test_a_passed_socket_that_is_not_listening_is_refused() -> None:
    # In a child process: fd 3 is a UDP socket, as a ListenDatagram= would pass.
    code = (
        "import os, socket\n"
        "from memcachepy.ops.systemd import ActivationError, activated_listeners\n"
        "udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
        "os.dup2(udp.fileno(), 3)\n"
        "try:\n"
        "    activated_listeners({'LISTEN_PID': str(os.getpid()), 'LISTEN_FDS': '1'})\n"
        "except ActivationError as exc:\n"
        "    print(exc)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=30
    )
    assert result.stdout.strip() == "passed fd 3 is not a listening stream socket", result


# -- the daemon ------------------------------------------------------------------------------


def test_ready_watchdog_reload_and_stopping_at_the_right_moments(notify: NotifySocket) -> None:
    port = free_port()
    proc = daemon("-p", str(port), env={"NOTIFY_SOCKET": notify.path, "WATCHDOG_USEC": "200000"})
    try:
        ready = notify.receive()
        # READY=1 is the first message, and it means the port accepts connections now.
        assert ready["READY"] == "1" and f"port {port}:" in ready["STATUS"]
        with socket.create_connection((HOST, port), timeout=5) as sock:
            assert exchange(sock, b"version\r\n").startswith(VERSION_REPLY)
        start = time.monotonic()
        pings = 0
        while time.monotonic() - start < 0.65:
            assert notify.receive(2) == {"WATCHDOG": "1"}
            pings += 1
        assert 3 <= pings <= 9  # every 0.1 s: half of WatchdogSec (fewer on a busy machine)

        proc.send_signal(signal.SIGHUP)
        messages = notify.receive_until("RELOADING")
        assert messages[-1]["MONOTONIC_USEC"].isdigit()
        assert notify.receive_until("READY")[-1]["STATUS"].startswith(f"port {port}:")
        with socket.create_connection((HOST, port), timeout=5) as sock:
            assert exchange(sock, b"version\r\n").startswith(VERSION_REPLY)

        proc.terminate()
        stopping = notify.receive_until("STOPPING")[-1]
        assert stopping["STATUS"].startswith("stopping: ")
        assert proc.wait(10) == 0
    finally:
        stop(proc)


def test_graceful_stop_says_it_is_draining(notify: NotifySocket) -> None:
    port = free_port()
    proc = daemon("-p", str(port), env={"NOTIFY_SOCKET": notify.path})
    try:
        assert notify.receive()["READY"] == "1"
        proc.send_signal(signal.SIGUSR1)
        assert notify.receive_until("STOPPING")[-1]["STATUS"].startswith("draining")
        assert proc.wait(10) == 0
    finally:
        stop(proc)


def test_watchdog_pings_come_from_the_event_loop(
    monkeypatch: pytest.MonkeyPatch, notify: NotifySocket
) -> None:
    """A wedged event loop stops the pings (so systemd would restart the daemon)."""
    monkeypatch.setenv("NOTIFY_SOCKET", notify.path)
    monkeypatch.setenv("WATCHDOG_USEC", "100000")
    arrivals: list[float] = []
    notify.sock.settimeout(0.2)
    done = threading.Event()

    def collect() -> None:
        while not done.is_set():
            try:
                if notify.sock.recv(4096) == b"WATCHDOG=1":
                    arrivals.append(time.monotonic())
            except TimeoutError:
                continue

    wedge: list[float] = []

    async def main() -> None:
        server = Server(Settings(port=0))
        with trio.fail_after(10):
            async with trio.open_nursery() as nursery:
                await nursery.start(partial(server.serve, handle_signals=False))
                await trio.sleep(0.4)
                wedge.append(time.monotonic())
                time.sleep(0.6)  # a blocking call: nothing else on the loop runs
                wedge.append(time.monotonic())
                await trio.sleep(0.4)
                server.request_shutdown(False)

    thread = threading.Thread(target=collect)
    thread.start()
    try:
        trio.run(main)
    finally:
        done.set()
        thread.join()
    begin, end = wedge
    before = [t for t in arrivals if t < begin]
    during = [t for t in arrivals if begin + 0.02 < t < end]
    after = [t for t in arrivals if t > end]
    assert len(before) >= 2 and during == [] and len(after) >= 2, (before, during, after)


def launcher(listener: socket.socket, *args: str, pid_matches: bool = True) -> list[str]:
    """What systemd does for a socket-activated service: fd 3, LISTEN_* with its pid, exec."""
    code = (
        "import os, sys\n"
        "os.dup2(int(sys.argv[1]), 3)\n"
        f"os.environ.update(LISTEN_PID=str(os.getpid(){'' if pid_matches else ' + 1'}), "
        "LISTEN_FDS='1', LISTEN_FDNAMES='memcachepy')\n"
        "os.execv(sys.executable, [sys.executable, '-m', 'memcachepy', *sys.argv[2:]])\n"
    )
    return [sys.executable, "-c", code, str(listener.fileno()), *args]


@pytest.fixture
def passed_listener() -> Iterator[socket.socket]:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        sock.listen(16)
        yield sock


def test_socket_activation_serves_the_passed_socket_instead_of_binding(
    passed_listener: socket.socket, notify: NotifySocket
) -> None:
    port = passed_listener.getsockname()[1]
    unused = free_port()
    proc = subprocess.Popen(
        launcher(passed_listener, "-p", str(unused)),
        cwd=ROOT,
        env={**os.environ, "NOTIFY_SOCKET": notify.path},
        pass_fds=(passed_listener.fileno(),),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        assert f"port {port}:" in notify.receive()["STATUS"]
        passed_listener.close()  # the daemon holds its own copy now
        with socket.create_connection((HOST, port), timeout=5) as sock:
            assert exchange(sock, b"set k 0 0 1\r\nx\r\nget k\r\n", b"END\r\n").endswith(
                b"VALUE k 0 1\r\nx\r\nEND\r\n"
            )
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection((HOST, unused), timeout=2).close()
    finally:
        assert stop(proc) == 0


def test_sockets_meant_for_another_process_are_ignored(
    passed_listener: socket.socket, notify: NotifySocket
) -> None:
    own = free_port()
    proc = subprocess.Popen(
        launcher(passed_listener, "-p", str(own), pid_matches=False),
        cwd=ROOT,
        env={**os.environ, "NOTIFY_SOCKET": notify.path},
        pass_fds=(passed_listener.fileno(),),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        assert f"port {own}:" in notify.receive()["STATUS"]
        with socket.create_connection((HOST, own), timeout=5) as sock:
            assert exchange(sock, b"version\r\n").startswith(VERSION_REPLY)
    finally:
        assert stop(proc) == 0


def connect_when_listening(port: int) -> socket.socket:
    """A connection to systemd-socket-activate, which listens at once and execs on one."""
    deadline = time.monotonic() + 10
    while True:
        try:
            return socket.create_connection((HOST, port), timeout=10)
        except ConnectionRefusedError:
            assert time.monotonic() < deadline
            time.sleep(0.05)


def test_systemd_socket_activate_starts_the_daemon_on_the_first_connection() -> None:
    tool = require_binary("systemd-socket-activate")
    port = free_port()
    proc = subprocess.Popen(
        [
            tool,
            "-l",
            f"{HOST}:{port}",
            "--fdname=memcachepy",
            "-E",
            "PATH",
            sys.executable,
            "-m",
            "memcachepy",
            "-p",
            str(free_port()),
        ],
        cwd=ROOT,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        with connect_when_listening(port) as sock:
            assert exchange(sock, b"version\r\n", timeout=15).startswith(VERSION_REPLY)
    finally:
        assert stop(proc) == 0


def test_under_socket_activation_the_start_up_line_comes_before_the_first_client() -> None:
    tool = require_binary("systemd-socket-activate")
    port = free_port()
    proc = subprocess.Popen(
        [tool, "-l", f"{HOST}:{port}", "-E", "PATH", sys.executable, "-m", "memcachepy", "-vv"],
        cwd=ROOT,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        # This connection is what makes systemd-socket-activate start the daemon.
        with connect_when_listening(port) as sock:
            assert exchange(sock, b"version\r\n", timeout=15).startswith(VERSION_REPLY)
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=10)
    lines = [line for line in err.decode().splitlines() if " memcachepy " in line]
    listening = [
        i for i, line in enumerate(lines) if line.endswith(f"INFO listening on tcp {HOST}:{port}")
    ]
    first_client = [i for i, line in enumerate(lines) if "new connection" in line]
    assert listening and first_client and listening[0] < first_client[0], lines


def _resident_mib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):  # the peak, in kB
            return int(line.split()[1]) // 1024
    raise AssertionError("no VmHWM")


def test_a_cache_full_of_the_smallest_items_fits_the_memory_max_rule() -> None:
    """What the rule rests on: filled with 10-byte keys and 1-byte values (the most items,
    so the largest key index, per MB) until it evicts, the daemon stays below it."""
    from memcachepy.ops.systemd import recommended_memory_max

    megabytes = 16
    with memcachepy_server("-m", str(megabytes)) as server, server.connect(30) as sock:
        evictions, sent = 0, 0
        while not evictions:
            assert sent < 1_000_000, "no evictions"
            sock.sendall(
                b"".join(
                    b"set %010d 0 0 1 noreply\r\nx\r\n" % n for n in range(sent, sent + 20_000)
                )
            )
            sent += 20_000
            stats = exchange(sock, b"stats\r\n", b"END\r\n")
            evictions = int(stats.split(b"STAT evictions ")[1].split(b"\r\n")[0])
        peak = _resident_mib(server.proc.pid)
    assert peak < recommended_memory_max(megabytes << 20) >> 20, peak


def test_a_memory_max_below_the_rule_is_warned_about(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from memcachepy.ops import systemd

    mib = 1024 * 1024
    assert systemd.recommended_memory_max(64 * mib) == 176 * mib
    monkeypatch.setattr(systemd, "cgroup_memory_max", lambda: 100 * mib)
    with caplog.at_level("WARNING", logger="memcachepy"):
        systemd.check_memory_max(64 * mib)
        assert "MemoryMax=100M) is below the 176M that -m 64 may need" in caplog.text
        caplog.clear()
        monkeypatch.setattr(systemd, "cgroup_memory_max", lambda: None)  # not limited
        systemd.check_memory_max(64 * mib)
        assert caplog.text == ""
