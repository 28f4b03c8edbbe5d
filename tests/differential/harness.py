"""Replay raw byte scripts against a server and record every byte it sends back.

A :class:`Case` is a script of :class:`Step` s, each a chunk of raw bytes sent on one of
several client connections. :func:`run_case` plays it against one server and returns a
:class:`Transcript`: per connection, everything the server sent and whether it closed the
connection. The differential tests play the same case against real memcached and memcachepy
and compare the normalised transcripts byte for byte.

Knowing when a server has answered everything without waiting for silence (slow, and flaky
on a busy machine) uses a probe: ``version\\r\\n`` is sent after the script and the reply is
read until that probe's ``VERSION`` line arrives, which is then cut out of the transcript. A
server that closed the connection instead never answers the probe: that close is recorded.
Steps that must be finished before the next one starts (another connection, a ``{cas:N}``
placeholder, a pause for expiry) use the same probe (``sync=True``).
"""

from __future__ import annotations

import difflib
import re
import selectors
import socket
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

PROBE = b"version\r\n"
VERSION_LINE = re.compile(rb"(?:^|(?<=\n))VERSION [^\r\n]*\r\n")
# A line of a sent script that is a `version` command: its reply is counted with the probes'.
VERSION_COMMAND = re.compile(rb"(?:^|(?<=\n))version(?:[ \r\n]|$)")
STAT_LINE = re.compile(rb"(?:^|(?<=\n))STAT [^\r\n]*\r\n")
CAS_PLACEHOLDER = re.compile(rb"\{cas:(\d+)\}")
VALUE_LINE = re.compile(rb"VALUE ([^ \n]+) ([^ \n]+) (\d+)(?: (\d+))?\r\n")

CLOSED = b"<connection closed by server>"
TIMED_OUT = b"<no answer to the probe: server stuck or still reading>"

# Bounds on every wait (seconds): generous, only reached when a server misbehaves.
PROBE_TIMEOUT = 4.0
SEND_TIMEOUT = 10.0


@dataclass(frozen=True)
class Step:
    """Raw bytes to send on connection ``conn``.

    ``pause``: seconds to sleep before sending (exptime cases).
    ``sync``: wait until the server answered this step before the next one (probe).
    ``settle``: after sending, read until the server is quiet this long or closes, without a
    probe: for steps after which the server is expected to close, or that leave it mid-line.
    """

    data: bytes
    conn: int = 0
    pause: float = 0.0
    sync: bool = False
    settle: float = 0.0


@dataclass(frozen=True)
class Case:
    """One differential scenario: a script and the daemon flags both servers start with.

    ``fresh``: start new servers for this case rather than reusing the shared ones of its flags
    (for cases that change global state: delayed flush, cache_memlimit, -M, shutdown, stats).
    ``probe``: end with the version probe; off when the script ends mid data block, where the
    probe would be read as data; the end is then found by waiting for quiet.
    ``exits``: the script stops the server (shutdown): wait for it, and compare that it exited.
    ``differ``: why memcachepy deliberately answers differently (the test is an xfail).
    ``stat_names``/``stat_values``: stats names memcachepy must report at all / with the
    same value as memcached (stats lines are otherwise left out of the byte comparison).
    """

    id: str
    steps: tuple[Step, ...]
    flags: tuple[str, ...] = ()
    fresh: bool = False
    probe: bool = True
    exits: bool = False
    differ: str | None = None
    stat_names: tuple[str, ...] = ()
    stat_values: tuple[str, ...] = ()


@dataclass
class Transcript:
    """What one server sent on each connection of a case, raw and normalised."""

    raw: dict[int, bytes] = field(default_factory=dict)
    endings: dict[int, bytes] = field(default_factory=dict)
    cas_values: list[bytes] = field(default_factory=list)

    def normalised(self, keep_stats: bool = False) -> dict[int, bytes]:
        return {
            conn: normalise(data, self.cas_values, keep_stats) + self.endings[conn]
            for conn, data in self.raw.items()
        }

    def stats(self) -> dict[bytes, bytes]:
        """Every ``STAT name value`` line seen on any connection (last value wins)."""
        found: dict[bytes, bytes] = {}
        for data in self.raw.values():
            for line in data.split(b"\r\n"):
                parts = line.split(b" ", 2)
                if len(parts) == 3 and parts[0] == b"STAT":
                    found[parts[1]] = parts[2]
        return found


@dataclass
class Outcome:
    """One server's result for a case: what it sent, and whether its process exited after."""

    transcript: Transcript
    exited: bool
    argv: list[str]


def _value_blocks(data: bytes) -> list[tuple[int, int, bytes | None]]:
    """(start, end, cas) of each ``VALUE`` header line at a line start, skipping data blocks."""
    found: list[tuple[int, int, bytes | None]] = []
    pos = 0
    limit = len(data)
    for _ in range(limit + 1):
        if pos >= limit:
            break
        match = VALUE_LINE.match(data, pos)
        if match is not None:
            found.append((match.start(), match.end(), match.group(4)))
            pos = match.end() + int(match.group(3)) + 2
            continue
        newline = data.find(b"\n", pos)
        if newline < 0:
            break
        pos = newline + 1
    return found


def cas_in_order(data: bytes) -> list[bytes]:
    """CAS unique values of ``VALUE`` lines, in order of appearance."""
    return [cas for _, _, cas in _value_blocks(data) if cas is not None]


def normalise(data: bytes, cas_order: Sequence[bytes], keep_stats: bool = False) -> bytes:
    """Replace what must differ between two servers by stable placeholders.

    CAS values become ``<cas:N>`` by order of first appearance in the whole case, the
    version becomes ``<version>``, and ``STAT`` lines are dropped unless ``keep_stats`` (their
    values are checked by name instead: see :meth:`Transcript.stats`).
    """
    index = {cas: n for n, cas in enumerate(dict.fromkeys(cas_order))}
    out = bytearray()
    pos = 0
    for start, end, cas in _value_blocks(data):
        if cas is None:
            continue
        header = data[start:end]
        head, _, _ = header.rstrip(b"\r\n").rpartition(b" ")
        out += data[pos:start] + head + b" <cas:%d>\r\n" % index[cas]
        pos = end
    out += data[pos:]
    text = VERSION_LINE.sub(b"VERSION <version>\r\n", bytes(out))
    if not keep_stats:
        text = STAT_LINE.sub(b"", text)
    return text


class Wire:
    """One non-blocking client connection that keeps everything it received."""

    def __init__(self, address: tuple[str, int]) -> None:
        self.sock = socket.create_connection(address, timeout=5.0)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock.setblocking(False)
        self.selector = selectors.DefaultSelector()
        self.selector.register(self.sock, selectors.EVENT_READ)
        self.received = bytearray()
        self.closed = False
        self.versions_expected = 0
        self.kept = bytearray()

    def close(self) -> None:
        self.selector.close()
        self.sock.close()

    def _receive(self, timeout: float) -> bool:
        """Wait up to ``timeout`` for bytes; False when none came (or the peer closed)."""
        if self.closed:
            return False
        if not self.selector.select(max(timeout, 0.0)):
            return False
        try:
            chunk = self.sock.recv(1 << 16)
        except BlockingIOError:
            return True
        except OSError:
            self.closed = True
            return False
        if not chunk:
            self.closed = True
            return False
        self.received += chunk
        return True

    def send(self, data: bytes, probe: bool = False) -> None:
        """Send all of ``data``, reading meanwhile so a large reply cannot deadlock us."""
        if not probe:
            self.versions_expected += len(VERSION_COMMAND.findall(data))
        view = memoryview(data)
        deadline = time.monotonic() + SEND_TIMEOUT
        while view and not self.closed and time.monotonic() < deadline:
            try:
                sent = self.sock.send(view)
                view = view[sent:]
            except BlockingIOError:
                self._receive(0.01)
            except OSError:
                self.closed = True

    def settle(self, quiet: float) -> None:
        """Read until nothing arrived for ``quiet`` seconds or the server closed."""
        deadline = time.monotonic() + max(PROBE_TIMEOUT, quiet * 4)
        while time.monotonic() < deadline and self._receive(quiet):
            pass

    def sync(self) -> bool:
        """Send the probe and read until it is answered; drop its reply. False if it was not."""
        self.send(PROBE, probe=True)
        wanted = self.versions_expected + 1
        deadline = time.monotonic() + PROBE_TIMEOUT
        while len(VERSION_LINE.findall(self.received)) < wanted:
            if self.closed or time.monotonic() >= deadline:
                return False
            self._receive(deadline - time.monotonic())
        probe_reply = list(VERSION_LINE.finditer(self.received))[wanted - 1]
        self.kept += self.received[: probe_reply.start()]
        del self.received[: probe_reply.end()]
        self.versions_expected = 0
        return True

    def drain(self) -> None:
        """Take whatever already arrived, without waiting."""
        while self._receive(0.0):
            pass

    def result(self) -> bytes:
        return bytes(self.kept + self.received)


def substitute_cas(data: bytes, seen: Sequence[bytes]) -> bytes:
    """Fill ``{cas:N}`` with the N-th distinct CAS value this server has sent so far."""
    distinct = list(dict.fromkeys(seen))

    def fill(match: re.Match[bytes]) -> bytes:
        n = int(match.group(1))
        return distinct[n] if n < len(distinct) else b"0"

    return CAS_PLACEHOLDER.sub(fill, data)


def run_case(address: tuple[str, int], case: Case) -> Transcript:
    """Play ``case`` against the server at ``address`` and record what it sent."""
    wires: dict[int, Wire] = {}
    endings: dict[int, bytes] = {}
    try:
        for step in case.steps:
            if step.pause:
                time.sleep(step.pause)
            wire = wires.get(step.conn)
            if wire is None:
                wire = wires[step.conn] = Wire(address)
            seen = [cas for w in wires.values() for cas in cas_in_order(w.result())]
            wire.send(substitute_cas(step.data, seen))
            if step.settle:
                wire.settle(step.settle)
            if step.sync and not wire.closed and not wire.sync():
                endings[step.conn] = CLOSED if wire.closed else TIMED_OUT
        for conn, wire in wires.items():
            if conn in endings:
                continue
            if wire.closed:
                wire.drain()
                endings[conn] = CLOSED
            elif not case.probe:
                wire.settle(0.25)
                endings[conn] = CLOSED if wire.closed else b""
            elif wire.sync():
                wire.drain()
                endings[conn] = CLOSED if wire.closed else b""
            else:
                endings[conn] = CLOSED if wire.closed else TIMED_OUT
    finally:
        for wire in wires.values():
            wire.close()
    transcript = Transcript(endings=endings)
    for conn, wire in sorted(wires.items()):
        transcript.raw[conn] = wire.result()
    transcript.cas_values = [cas for data in transcript.raw.values() for cas in cas_in_order(data)]
    return transcript


def render(transcripts: dict[int, bytes], width: int = 160) -> list[str]:
    """Readable lines for an assertion message: one per reply line, long ones shortened."""
    lines: list[str] = []
    for conn, data in sorted(transcripts.items()):
        for line in data.splitlines(keepends=True):
            shown = repr(line[:width])
            if len(line) > width:
                shown += f" ... ({len(line)} bytes)"
            lines.append(f"conn {conn}: {shown}")
    return lines


def differences(
    reference: dict[int, bytes], candidate: dict[int, bytes], max_lines: int = 120
) -> str:
    """A unified diff of two normalised transcripts, or '' when they are byte-equal."""
    if reference == candidate:
        return ""
    diff = list(
        difflib.unified_diff(
            render(reference), render(candidate), "memcached", "memcachepy", lineterm="", n=4
        )
    )
    if len(diff) > max_lines:
        diff = diff[:max_lines] + [f"... {len(diff) - max_lines} more diff lines"]
    if len(diff) <= 2:  # equal once shortened: the difference is inside a long line
        diff.append("(replies differ inside a line longer than shown)")
    return "\n".join(diff)
