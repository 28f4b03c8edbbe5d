"""What the runner watches during an attack: the server's RSS, and a checker client."""

from __future__ import annotations

import multiprocessing
import socket
import threading
import time
from dataclasses import dataclass
from multiprocessing.connection import Connection

MB = 1 << 20
CHECK_INTERVAL = 0.003  # the checker's pause between a set/get pair and the next
CHECK_TIMEOUT = 2.0  # a reply slower than this is an error


def rss(pid: int) -> int:
    """The process's resident memory in bytes (0 once it is gone)."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


class PeakRss:
    """Samples a process's RSS every few milliseconds in a thread; ``peak`` is the most."""

    def __init__(self, pid: int, interval: float = 0.01) -> None:
        self.pid = pid
        self.interval = interval
        self.peak = rss(pid)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.peak = max(self.peak, rss(self.pid))


@dataclass
class CheckerResult:
    pairs: int  # set/get pairs answered right
    errors: int  # wrong or missing replies, timeouts, lost connections
    slowest: float  # seconds: the slowest single reply
    p99: float  # seconds: the 99th percentile of replies


def read_until(sock: socket.socket, ending: bytes, deadline: float) -> bytes:
    """Read until the bytes end with ``ending``, by ``deadline`` (time.monotonic)."""
    buf = b""
    while not buf.endswith(ending):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError(f"no {ending!r} after {buf[-100:]!r}")
        sock.settimeout(remaining)
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed")
        buf += chunk
    return buf


def auth_request(login: bytes) -> bytes:
    """memcached's -Y authentication: a set whose data is ``user password``."""
    return b"set auth 0 0 %d\r\n%s\r\n" % (len(login), login)


def server_stats(address: tuple[str, int]) -> dict[str, str]:
    """The daemon's ``stats``, name to value (``pid`` finds its process)."""
    with socket.create_connection(address, timeout=10) as sock:
        sock.sendall(b"stats\r\n")
        reply = read_until(sock, b"END\r\n", time.monotonic() + 10).decode("ascii", "replace")
    return {
        fields[1]: fields[2]
        for fields in (line.split(" ", 2) for line in reply.splitlines())
        if len(fields) == 3 and fields[0] == "STAT"
    }


def _check(address: tuple[str, int], login: bytes, stop: float, pipe: Connection) -> None:
    """The checker's process: set then get its own keys until ``stop`` (monotonic); with a
    ``login``, authenticate each new connection first."""
    pairs = errors = 0
    times: list[float] = []
    sock: socket.socket | None = None
    n = 0
    while time.monotonic() < stop and not pipe.poll():
        n += 1
        key = b"checker:%d" % (n % 1000)
        value = b"%020d" % n
        try:
            if sock is None:
                sock = socket.create_connection(address, timeout=CHECK_TIMEOUT)
                if login:
                    sock.sendall(auth_request(login))
                    reply = read_until(sock, b"\r\n", time.monotonic() + CHECK_TIMEOUT)
                    if reply != b"STORED\r\n":
                        raise ValueError(reply[:80])
            for request, ending, expected in (
                (b"set %s 0 0 20\r\n%s\r\n" % (key, value), b"\r\n", b"STORED\r\n"),
                (b"get %s\r\n" % key, b"END\r\n", b"VALUE %s 0 20\r\n%s\r\nEND\r\n" % (key, value)),
            ):
                start = time.monotonic()
                sock.sendall(request)
                reply = read_until(sock, ending, start + CHECK_TIMEOUT)
                times.append(time.monotonic() - start)
                if reply != expected:
                    raise ValueError(reply[:80])
            pairs += 1
        except (OSError, ValueError):
            errors += 1
            if sock is not None:
                sock.close()
            sock = None
            time.sleep(0.05)
        time.sleep(CHECK_INTERVAL)
    times.sort()
    slowest = times[-1] if times else 0.0
    p99 = times[int(len(times) * 0.99)] if times else 0.0
    pipe.send((pairs, errors, slowest, p99))


class Checker:
    """A well-behaved client in a process of its own (so that the attack's work in this
    one never delays it): ``with Checker(address) as checker: ...; checker.result``."""

    def __init__(self, address: tuple[str, int], limit: float = 600.0, login: bytes = b"") -> None:
        context = multiprocessing.get_context("fork")
        self._pipe, child = context.Pipe()
        self._proc = context.Process(
            target=_check, args=(address, login, time.monotonic() + limit, child), daemon=True
        )
        self.result = CheckerResult(0, 0, 0.0, 0.0)

    def __enter__(self) -> Checker:
        self._proc.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._pipe.send(None)  # stop
        if self._pipe.poll(CHECK_TIMEOUT + 5):
            self.result = CheckerResult(*self._pipe.recv())
        else:
            self.result = CheckerResult(0, 1, CHECK_TIMEOUT, CHECK_TIMEOUT)
        self._proc.join(5)
        if self._proc.is_alive():
            self._proc.kill()
