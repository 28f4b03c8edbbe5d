"""Starting, probing and stopping the servers under test."""

import shlex
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from .machine import process_cpu_seconds

HOST = "127.0.0.1"
# The yardstick server (see its docstring): about the least a trio server does per request.
PROBE = Path(__file__).resolve().parent.parent / "probe_server.py"

BUILTIN_COMMANDS = {
    "memcached": "memcached -t 1 -l 127.0.0.1 -p {port} -U 0 -u root -m 64",
    # -P: the memcachepy installed in this Python, whatever the current directory holds.
    "memcachepy": "{python} -P -m memcachepy -l 127.0.0.1 -p {port} -m 64",
    "probe": f"{{python}} {shlex.quote(str(PROBE))} -p {{port}}",
}


class ServerError(RuntimeError):
    """A server would not start, or died."""


@dataclass(frozen=True, slots=True)
class ServerSpec:
    """A named server command; `{port}` and `{python}` are filled in at start."""

    name: str
    command: str

    def argv(self, port: int) -> list[str]:
        return [
            word.replace("{port}", str(port)).replace("{python}", sys.executable)
            for word in shlex.split(self.command)
        ]


def parse_server_definition(text: str) -> ServerSpec:
    """Parses a `NAME=COMMAND` option; the command must contain `{port}`."""
    name, sep, command = text.partition("=")
    name, command = name.strip(), command.strip()
    if not sep or not name or not command:
        raise ValueError(f"--server wants NAME=COMMAND, got {text!r}")
    if "{port}" not in command:
        raise ValueError(f"the command for {name} must contain {{port}}: {command!r}")
    return ServerSpec(name, command)


def resolve_servers(names: list[str], custom: list[ServerSpec]) -> list[ServerSpec]:
    """Specs for the names asked for; a name given twice becomes `name#2`, a second instance."""
    known = {name: ServerSpec(name, cmd) for name, cmd in BUILTIN_COMMANDS.items()}
    known.update({spec.name: spec for spec in custom})
    specs: list[ServerSpec] = []
    for name in names:
        if name not in known:
            raise ValueError(
                f"unknown server {name!r}: use one of {', '.join(known)} "
                "or define it with --server NAME=COMMAND"
            )
        taken = {s.name for s in specs}
        unique, n = name, 1
        while unique in taken:
            n += 1
            unique = f"{name}#{n}"
        specs.append(ServerSpec(unique, known[name].command))
    return specs


def free_port() -> int:
    """A loopback TCP port nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        port: int = s.getsockname()[1]
        return port


def ask_stats(port: int, group: bytes, timeout: float = 2.0) -> dict[str, str]:
    """``stats <group>`` as name -> value (empty on any failure or an ERROR reply)."""
    try:
        with socket.create_connection((HOST, port), timeout=timeout) as s:
            s.sendall(b"stats " + group + b"\r\n")
            reply = b""
            while not reply.endswith((b"END\r\n", b"ERROR\r\n")):
                chunk = s.recv(65536)
                if not chunk:
                    break
                reply += chunk
    except OSError:
        return {}
    found = {}
    for line in reply.decode("ascii", "replace").splitlines():
        words = line.split(" ", 2)
        if len(words) == 3 and words[0] == "STAT":
            found[words[1]] = words[2]
    return found


def ask(port: int, request: bytes, timeout: float = 2.0) -> bytes:
    """Sends one request and returns the first reply line (empty on any failure)."""
    try:
        with socket.create_connection((HOST, port), timeout=timeout) as s:
            s.sendall(request)
            reply = b""
            while b"\r\n" not in reply:
                chunk = s.recv(4096)
                if not chunk:
                    break
                reply += chunk
            return reply.split(b"\r\n", 1)[0]
    except OSError:
        return b""


class RunningServer:
    """One server process, pinned and logging to a file, for the length of a `with`."""

    def __init__(self, spec: ServerSpec, pin: list[str], cwd: Path, log_path: Path) -> None:
        self.spec = spec
        self.port = free_port()
        self.argv = [*pin, *spec.argv(self.port)]
        self.cwd = cwd
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None
        self.version = ""
        # memcachepy's `stats settings` says which build runs: compiled or pure.
        self.build = ""

    def __enter__(self) -> "RunningServer":
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self, ready_timeout: float = 30.0) -> None:
        """Starts the process and waits until a TCP connect to its port succeeds."""
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                self.argv,
                cwd=self.cwd,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + ready_timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise ServerError(
                    f"{self.spec.name} exited with {self.process.returncode} "
                    f"before listening:\n{self.log_tail()}"
                )
            try:
                socket.create_connection((HOST, self.port), timeout=0.5).close()
            except OSError:
                time.sleep(0.05)
                continue
            self.version = ask(self.port, b"version\r\n").decode("ascii", "replace")
            self.build = ask_stats(self.port, b"settings").get("build", "")
            return
        self.stop()
        raise ServerError(
            f"{self.spec.name} did not accept connections on port {self.port} "
            f"within {ready_timeout:.0f} s:\n{self.log_tail()}"
        )

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def cpu_seconds(self) -> float | None:
        return process_cpu_seconds(self.process.pid) if self.alive and self.process else None

    def log_tail(self, lines: int = 20) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self, grace: float = 5.0) -> None:
        """SIGTERM, then SIGKILL if it has not exited within `grace` seconds."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=grace)
