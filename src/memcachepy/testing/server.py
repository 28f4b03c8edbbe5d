"""A real memcached-compatible server in a child process, with faults on demand.

:class:`Server` starts ``python -P -m memcachepy`` (or any memcached-like program, such as
Debian's ``memcached``) on a free loopback port or a UNIX socket, waits until it answers,
and then lets a test hang it (:meth:`Server.pause`), kill it (:meth:`Server.kill`) or
restart it on the same address, empty or with its items kept (:meth:`Server.restart`).

No trio and no pytest here: plain subprocesses and sockets, so the class works in any
test runner, or in a script.
"""

from __future__ import annotations

import atexit
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from types import TracebackType

from memcachepy.testing.ports import free_port

__all__ = ["Address", "Server", "ServerError"]

Address = tuple[str, int] | str
"""Where a client connects: ``(host, port)``, or a UNIX socket path (as pymemcache takes it)."""

# Flags the Server sets itself: a test that passed them would point it at the wrong place.
_OWN_FLAGS = frozenset(
    {"-p", "--port", "-l", "--listen", "-s", "--unix-socket", "-a", "--unix-mask"}
)
_MEMORY_FILE_FLAGS = ("-e", "--memory-file")
# How many fresh ports a first start tries when another process took the chosen one.
_PORT_ATTEMPTS = 5

_LIVE: set[Server] = set()
_LIVE_LOCK = threading.Lock()


class ServerError(RuntimeError):
    """The server could not be started, stopped or restarted as asked."""


class Server:
    """A memcached-compatible server process for one test (or one session).

    ``args`` are extra memcached-style flags, for example ``["-m", "8"]``; the listen
    address is the Server's own business (``host``/``port``, or ``unix_socket``), so
    ``-l``, ``-p``, ``-s`` and ``-a`` are refused there.

    ``exe`` is the program to run: by default this Python running ``-P -m memcachepy``. A
    program whose name starts with ``memcached`` is taken to be memcached itself and gets
    ``-u root`` when running as root (memcached refuses to run as root otherwise).

    With ``unix_socket=True`` the server listens on a socket file in its own temporary
    directory instead of TCP (memcached's ``-s``, with ``-a unix_mask`` when given) and
    :attr:`address` is that path.

    With ``warm_restarts=True`` the server keeps its items in a memory file (``-e``) in
    its temporary directory, so that :meth:`restart` with ``warm=True`` can keep them; an
    ``-e PATH`` in ``args`` does the same with that file. Off by default: memcached with
    ``-e`` preallocates its slab memory (and then needs ``-m`` of at least 39 MB).

    Use it as a context manager, or call :meth:`start` and :meth:`close`. The process is
    always reaped; a server still running when the interpreter exits is killed, and a
    server started from the main thread dies with its parent process (Linux).
    """

    def __init__(
        self,
        args: Iterable[str] = (),
        *,
        exe: str | Sequence[str] | None = None,
        host: str = "127.0.0.1",
        port: int | None = None,
        unix_socket: bool = False,
        unix_mask: str | None = None,
        warm_restarts: bool = False,
        start_timeout: float = 10.0,
        stop_timeout: float = 10.0,
    ) -> None:
        self.args = list(args)
        own = sorted(_OWN_FLAGS.intersection(self.args))
        if own:
            raise ValueError(
                f"{', '.join(own)}: the Server chooses where it listens "
                "(use host=, port= or unix_socket=)"
            )
        if unix_mask is not None and not unix_socket:
            raise ValueError("unix_mask= needs unix_socket=True")
        self.command = _command(exe)
        self.host = host
        self.start_timeout = start_timeout
        self.stop_timeout = stop_timeout
        self.unix_mask = unix_mask
        self._port_fixed = port is not None
        self._port: int | None = None if unix_socket else port
        self._unix = unix_socket
        self._warm = warm_restarts
        self._user_memory_file = _flag_value(self.args, _MEMORY_FILE_FLAGS)
        self._dir: str | None = None
        self._log: str | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._paused = False
        self._started_once = False

    # -- where it is ----------------------------------------------------------------------

    @property
    def address(self) -> Address:
        """``(host, port)``, or the UNIX socket path: what a pymemcache client takes."""
        if self._unix:
            return self._socket_path()
        if self._port is None:
            raise ServerError("the server has not been started")
        return (self.host, self._port)

    @property
    def port(self) -> int | None:
        """The TCP port (None for a UNIX socket server, or before the first start)."""
        return self._port

    @property
    def unix_socket(self) -> str | None:
        """The UNIX socket path, or None for a TCP server."""
        return self._socket_path() if self._unix else None

    @property
    def memory_file(self) -> str | None:
        """The ``-e`` memory file that warm restarts use, or None without one."""
        if self._user_memory_file is not None:
            return self._user_memory_file
        if not self._warm:
            return None
        return os.path.join(self._workdir(), "memory")

    @property
    def directory(self) -> str | None:
        """The server's temporary directory (log, socket, memory file); gone after close."""
        return self._dir

    @property
    def pid(self) -> int | None:
        """The process id while the server runs, else None."""
        return self._proc.pid if self.running and self._proc is not None else None

    @property
    def process(self) -> subprocess.Popen[bytes] | None:
        """The child process since the last start, for a signal a test sends itself
        (SIGHUP, SIGTERM...); None before a start and after :meth:`kill` or :meth:`close`."""
        return self._proc

    @property
    def running(self) -> bool:
        """True while the process exists (also while paused)."""
        return self._proc is not None and self._proc.poll() is None

    @property
    def paused(self) -> bool:
        """True between :meth:`pause` and :meth:`resume`."""
        return self._paused and self.running

    @property
    def argv(self) -> list[str]:
        """The command line the server runs with."""
        where = (
            ["-s", self._socket_path(), *(["-a", self.unix_mask] if self.unix_mask else [])]
            if self._unix
            else ["-l", self.host, "-p", str(self._port)]
        )
        extra: list[str] = []
        if self._user_memory_file is None and self._warm:
            extra += ["-e", os.path.join(self._workdir(), "memory")]
        if _is_memcached(self.command) and os.geteuid() == 0 and "-u" not in self.args:
            extra += ["-u", "root"]
        return [*self.command, *where, *extra, *self.args]

    def log(self) -> str:
        """Everything the server wrote to stderr and stdout so far (across restarts)."""
        if self._log is None or not os.path.exists(self._log):
            return ""
        with open(self._log, "rb") as log:
            return log.read().decode(errors="replace")

    # -- life cycle -----------------------------------------------------------------------

    def start(self, wait: bool = True) -> Server:
        """Start the server and (with ``wait``) wait until it answers; returns ``self``.

        ``wait=False`` returns at once, so several servers can boot side by side; call
        :meth:`wait_ready` before using it.
        """
        self._spawn()
        if wait:
            self.wait_ready()
        return self

    def reset(self) -> None:
        """Back to a running, empty server: resumed if paused, started if not running."""
        if not self.running:
            self.start()
        elif self._paused:
            self.resume()
        self.flush()

    def close(self) -> None:
        """Kill the server, reap it, and remove its temporary directory."""
        self._kill_process()
        with _LIVE_LOCK:
            _LIVE.discard(self)
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

    def __enter__(self) -> Server:
        if not self.running:
            self.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "paused" if self.paused else "running" if self.running else "stopped"
        where = self._socket_path() if self._unix else f"{self.host}:{self._port}"
        return f"<Server {' '.join(self.command)} {where} {state}>"

    # -- faults ---------------------------------------------------------------------------

    def pause(self) -> None:
        """Freeze the process (SIGSTOP): connections are accepted, nothing is answered."""
        proc = self._require_running()
        proc.send_signal(signal.SIGSTOP)
        self._paused = True
        _wait_state(proc.pid, stopped=True, timeout=self.stop_timeout)

    def resume(self) -> None:
        """Let a paused process run again (SIGCONT); waiting requests are then answered."""
        proc = self._require_running()
        proc.send_signal(signal.SIGCONT)
        self._paused = False

    def kill(self) -> None:
        """Kill the process (SIGKILL) and reap it: new connections are refused."""
        self._kill_process()

    def restart(self, warm: bool = False) -> None:
        """Stop the server and start it again on the same address.

        Cold (the default): the process is killed and its memory file removed, so the
        new one starts empty. Works after :meth:`kill` too.

        ``warm=True``: a graceful stop (SIGUSR1) saves the items to the memory file and
        the new process restores them, as memcached's warm restart does. It needs a
        running server with a memory file (see ``warm_restarts``).
        """
        if warm:
            memory_file = self.memory_file
            if memory_file is None:
                raise ServerError(
                    "a warm restart needs a memory file: create the Server "
                    "with warm_restarts=True (the fixtures: mark the test "
                    "@pytest.mark.memcachepy(warm_restarts=True)) or pass "
                    "-e PATH in args"
                )
            proc = self._require_running()
            proc.send_signal(signal.SIGUSR1)
            if self._paused:
                proc.send_signal(signal.SIGCONT)
            self._paused = False
            try:
                code = proc.wait(self.stop_timeout)
            except subprocess.TimeoutExpired:
                self._kill_process()
                raise ServerError(
                    f"no graceful stop within {self.stop_timeout}s: {self._log_tail()}"
                ) from None
            if code != 0:
                raise ServerError(f"graceful stop exited with {code}: {self._log_tail()}")
            if _is_memcached(self.command):
                # memcached restores only when the wall clock's second has moved on since
                # the saved stop_time (a time delta <= 0 looks like a clock gone wrong).
                time.sleep(1.0 - time.time() % 1.0 + 0.01)
        else:
            self._kill_process()
            memory_file = self.memory_file
            if memory_file is not None:
                # memcached keeps what it restores in PATH and PATH.meta.
                for path in (memory_file, memory_file + ".meta"):
                    if os.path.exists(path):
                        os.unlink(path)
        self.start()

    # -- asking it ------------------------------------------------------------------------

    def connect(self, timeout: float = 5.0) -> socket.socket:
        """A new client socket connected to the server (TCP or UNIX)."""
        address = self.address
        if isinstance(address, str):
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                sock.settimeout(timeout)
                sock.connect(address)
            except BaseException:
                sock.close()
                raise
            return sock
        return socket.create_connection(address, timeout=timeout)

    def stats(self, group: str = "", timeout: float = 5.0) -> dict[str, str]:
        """``stats`` (or ``stats GROUP``, e.g. ``"settings"``) as a name to value dict.

        A paused server raises TimeoutError after ``timeout`` seconds.
        """
        reply = self._ask(f"stats {group}".rstrip(), (b"END\r\n",), timeout)
        stats: dict[str, str] = {}
        for line in reply.decode(errors="replace").split("\r\n"):
            if line.startswith("STAT "):
                _, name, value = (line + " ").split(" ", 2)
                stats[name] = value.rstrip(" ")
        return stats

    def flush(self, timeout: float = 5.0) -> None:
        """Empty the cache (``flush_all``)."""
        reply = self._ask("flush_all", (b"OK\r\n",), timeout)
        if reply != b"OK\r\n":
            raise ServerError(f"flush_all answered {reply!r}")

    def _ask(self, command: str, ends: tuple[bytes, ...], timeout: float) -> bytes:
        """Send one text command and read until its reply ends (or an error line)."""
        with self.connect(timeout) as sock:
            sock.sendall(command.encode() + b"\r\n")
            reply = b""
            deadline = time.monotonic() + timeout
            while not reply.endswith(ends) and not _is_error(reply):
                sock.settimeout(max(deadline - time.monotonic(), 0.001))
                chunk = sock.recv(65536)
                if not chunk:
                    raise ServerError(f"{command!r}: connection closed after {reply!r}")
                reply += chunk
            if _is_error(reply):
                raise ServerError(f"{command!r} answered {reply!r}")
            return reply

    # -- the process ----------------------------------------------------------------------

    def _workdir(self) -> str:
        if self._dir is None:
            self._dir = tempfile.mkdtemp(prefix="memcachepy-test-")
            self._log = os.path.join(self._dir, "server.log")
            with _LIVE_LOCK:
                _LIVE.add(self)  # so that interpreter exit removes the directory too
        return self._dir

    def _socket_path(self) -> str:
        return os.path.join(self._workdir(), "memcached.sock")

    def _require_running(self) -> subprocess.Popen[bytes]:
        if self._proc is None or self._proc.poll() is not None:
            raise ServerError("the server is not running")
        return self._proc

    def _spawn(self) -> None:
        """Start the process without waiting for it (a cluster starts its nodes at once)."""
        if self.running:
            raise ServerError("the server is already running")
        self._workdir()
        if self._unix:
            # A socket file left by a killed process would make the bind fail.
            if os.path.exists(self._socket_path()):
                os.unlink(self._socket_path())
        elif self._port is None:
            self._port = free_port(self.host)
        assert self._log is not None
        with open(self._log, "ab") as log:
            self._proc = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                preexec_fn=_die_with_parent(),
            )
        self._paused = False

    def wait_ready(self) -> None:
        """Wait until a started process answers; a first start retries a port someone took."""
        for attempt in range(_PORT_ATTEMPTS):
            try:
                self._wait_answering()
                self._started_once = True
                return
            except _PortTaken:
                retry = not (self._port_fixed or self._started_once or self._unix)
                if not retry or attempt == _PORT_ATTEMPTS - 1:
                    raise ServerError(f"port {self._port} is in use: {self._log_tail()}") from None
                self._port = free_port(self.host)
                self._spawn()

    def _wait_answering(self) -> None:
        """Poll until our process answers ``stats`` with its own pid (bounded in time).

        Comparing the pid tells our server apart from another process that grabbed the
        port between the choice of a free port and the bind (so ``exe`` must exec the
        server, not fork it).
        """
        proc = self._require_spawned()
        deadline = time.monotonic() + self.start_timeout
        while True:
            code = proc.poll()
            if code is not None:
                self._proc = None
                if "Address already in use" in self._log_tail():
                    raise _PortTaken
                raise ServerError(
                    f"the server exited with {code}: {' '.join(self.argv)}\n{self._log_tail()}"
                )
            try:
                if self.stats(timeout=0.25).get("pid") == str(proc.pid):
                    return
            except ServerError:
                if proc.poll() is None:
                    return  # it answers, though not to a plain stats (-Y, -B binary)
            except OSError:
                pass
            if time.monotonic() > deadline:
                self._kill_process()
                raise ServerError(
                    f"the server did not answer within {self.start_timeout}s: "
                    f"{' '.join(self.argv)}\n{self._log_tail()}"
                )
            time.sleep(0.02)

    def _require_spawned(self) -> subprocess.Popen[bytes]:
        if self._proc is None:
            raise ServerError("the server was not started")
        return self._proc

    def _kill_process(self) -> None:
        proc, self._proc = self._proc, None
        self._paused = False
        if proc is None:
            return
        if proc.poll() is None:
            proc.kill()  # SIGKILL also ends a stopped process
        proc.wait()

    def _log_tail(self, size: int = 2000) -> str:
        return self.log()[-size:]


class _PortTaken(Exception):
    """The process exited because another one listens on its port."""


def _command(exe: str | Sequence[str] | None) -> list[str]:
    if exe is None:
        # -P: the installed build, never a memcachepy folder in the current directory.
        return [sys.executable, "-P", "-m", "memcachepy"]
    if isinstance(exe, str):
        found = shutil.which(exe)
        if found is None:
            raise ServerError(f"{exe}: program not found")
        return [found]
    return list(exe)


def _is_memcached(command: Sequence[str]) -> bool:
    return os.path.basename(command[0]).startswith("memcached")


def _flag_value(args: Sequence[str], names: Sequence[str]) -> str | None:
    for i, arg in enumerate(args):
        if arg in names and i + 1 < len(args):
            return args[i + 1]
        for name in names:
            if name.startswith("--") and arg.startswith(name + "="):
                return arg[len(name) + 1 :]
    return None


def _is_error(reply: bytes) -> bool:
    return reply.startswith((b"ERROR", b"CLIENT_ERROR", b"SERVER_ERROR")) and reply.endswith(
        b"\r\n"
    )


def _wait_state(pid: int, *, stopped: bool, timeout: float) -> None:
    """Wait until /proc says the process is (or is no longer) stopped; Linux only."""
    path = f"/proc/{pid}/stat"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with open(path) as stat:
                state = stat.read().rpartition(")")[2].split()[0]
        except (OSError, IndexError):
            return  # no /proc: the signal is delivered before the next request is read
        if (state in ("T", "t")) == stopped:
            return
        time.sleep(0.002)
    raise ServerError(f"process {pid} did not {'stop' if stopped else 'continue'}")


def _death_signal_setter() -> Callable[..., int] | None:
    """prctl(PR_SET_PDEATHSIG), looked up before any fork; None off Linux."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        import ctypes

        prctl: Callable[..., int] = ctypes.CDLL(None, use_errno=True).prctl
        return prctl
    except (OSError, AttributeError):
        return None


_DEATH_SIGNAL = _death_signal_setter()
_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> Callable[[], None] | None:
    """A preexec_fn: SIGKILL the server when the test process dies, finalizers or not.

    The kernel sends it when the thread that forked exits, so only servers started from
    the main thread get it (a worker thread ending would kill its servers).
    """
    prctl = _DEATH_SIGNAL
    if prctl is None or threading.current_thread() is not threading.main_thread():
        return None
    parent = os.getpid()

    def arm() -> None:
        prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != parent:  # the parent died before prctl took effect
            os._exit(1)

    return arm


@atexit.register
def _kill_leftovers() -> None:
    """Servers nobody closed die with the interpreter instead of outliving it."""
    with _LIVE_LOCK:
        leftovers = list(_LIVE)
    for server in leftovers:
        server.close()
