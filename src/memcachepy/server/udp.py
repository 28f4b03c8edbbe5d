"""The UDP listener (``-U``): memcached's 8-byte frame header around ordinary requests.

Every datagram starts with a frame header: request id, sequence number, datagram count and
a reserved field, each a big-endian u16. A request must fit in one datagram (memcached
drops one whose count is not 1); its payload is parsed like a fresh connection's bytes,
text or binary by the first byte whatever ``-B`` says, as memcached does, and a request left
incomplete at the end of the datagram is dropped.

Responses follow memcached 1.6.18's transmit_udp. Each response object (one per request,
and one per key of a text multi-get, ``END`` riding on the last) is cut into datagrams of at
most 1400 bytes, header included, numbered from 0 with the count of its own datagrams and
the request id. A response with no bytes (a missed first key of a multi-get, a quiet binary
request) goes out as a bare header with count 0, unless a datagram just sent finished the
response before it: memcached retires it along with that one. ``noreply`` sends nothing.

Memory stays bounded: responses are framed and sent in batches of about 256 KiB while the
request is still being answered, and a request can be no larger than one datagram. Between
batches the listener lets the other tasks run, so TCP clients are not held while a
datagram's large reply goes out.

The reply to one datagram is bounded too (UDP reflection, CVE-2018-1000115: a small
spoofed request must not make the server send much to its victim): at most
:data:`REPLY_RATIO` times the request's bytes, and never less than :data:`REPLY_FLOOR`, so
that a get of any one value up to the default item size still works. Past the bound the
rest of the request's responses are not sent: to the client, datagrams that never came.
memcached answers everything; its defence is UDP off by default, as here.
"""

from __future__ import annotations

import logging
import socket
import struct
from collections.abc import Callable, Iterator
from typing import Any, Final, Protocol

import trio

from memcachepy.dispatch.reply import Reply
from memcachepy.ops.counters import ServerCounters
from memcachepy.ops.current import CURRENT_CONNECTION
from memcachepy.ops.hooks import Handler
from memcachepy.protocol import events as ev
from memcachepy.protocol.events import NEED_DATA
from memcachepy.protocol.wire import Outcome

log = logging.getLogger("memcachepy")

FRAME_HEADER: Final = struct.Struct(">HHHH")  # request id, sequence, total, reserved
FRAME_HEADER_SIZE: Final = FRAME_HEADER.size
MAX_DATAGRAM: Final = 1400  # memcached's UDP_MAX_PAYLOAD_SIZE, frame header included
MAX_DATA: Final = MAX_DATAGRAM - FRAME_HEADER_SIZE
READ_SIZE: Final = 65536  # memcached's UDP_READ_BUFFER_SIZE
_U16_MAX: Final = 0xFFFF
# Responses to one request are framed and sent once this many bytes of them wait.
FLUSH_BYTES: Final = 256 * 1024
# Datagrams handled per wake-up before letting other tasks run.
DATAGRAMS_PER_YIELD: Final = 20
# How long one response may wait for room in the socket's send buffer before it is dropped.
SEND_TIMEOUT: Final = 1.0
# The reply to one datagram: at most REPLY_RATIO times its size, and at least REPLY_FLOOR
# (a get of one 1 MiB value, memcached's default -I, with its VALUE line and framing).
REPLY_RATIO: Final = 100
REPLY_FLOOR: Final = 1024 * 1024 + 64 * 1024


class DatagramParser(Protocol):
    def receive_data(self, data: bytes) -> None: ...

    def next_event(self) -> object: ...


Session = Callable[[int], tuple[DatagramParser, Handler]]
"""First payload byte -> a fresh parser and the handler for its events."""


class Framer:
    """Cuts one request's responses into datagrams, as memcached's transmit_udp does."""

    __slots__ = ("request_id", "_sent_one")

    def __init__(self, request_id: int) -> None:
        self.request_id = request_id
        self._sent_one = False

    def frame(self, body: bytes | None) -> list[bytes]:
        """The datagrams for one response (None: noreply, nothing at all)."""
        if body is None:
            return []
        if not body:
            # The datagram that finishes a response also retires the empty ones after it,
            # so only an empty response before anything was sent goes out, as a bare header.
            if self._sent_one:
                return []
            self._sent_one = True
            return [FRAME_HEADER.pack(self.request_id, 0, 0, 0)]
        self._sent_one = True
        total = min(-(-len(body) // MAX_DATA), _U16_MAX)
        return [
            FRAME_HEADER.pack(self.request_id, sequence & _U16_MAX, total, 0)
            + body[start : start + MAX_DATA]
            for sequence, start in enumerate(range(0, len(body), MAX_DATA))
        ]


def frame_responses(request_id: int, responses: list[bytes | None]) -> list[bytes]:
    """The datagrams memcached sends for a request's responses (None: noreply)."""
    return _frame_all(Framer(request_id), responses)


def answer(data: bytes, session: Session) -> Iterator[list[bytes]]:
    """The datagrams answering one request datagram, in batches of bounded size.

    Responses are held until :data:`FLUSH_BYTES` of them are waiting (memcached holds them
    until the request is done), so a multi-get of many large values never sits in memory
    whole; a bad key in a multi-get culls those still held, as memcached culls its unsent
    responses.
    """
    if len(data) <= FRAME_HEADER_SIZE:
        return
    request_id, _, total, _ = FRAME_HEADER.unpack_from(data)
    if total != 1:
        return  # memcached drops requests spread over several datagrams
    payload = data[FRAME_HEADER_SIZE:]
    parser, handle = session(payload[0])
    parser.receive_data(payload)
    framer = Framer(request_id)
    held: list[bytes | None] = []
    held_bytes = 0
    allowed = max(REPLY_FLOOR, REPLY_RATIO * len(data))
    # Each request consumes at least one byte, so the payload bounds the loop.
    for _ in range(len(payload) + 1):
        # No connection: `watch` is refused. Set again after each await between batches,
        # as the loop serves other connections meanwhile.
        CURRENT_CONNECTION.fd = -1
        event = parser.next_event()
        if event is NEED_DATA:
            break
        if isinstance(event, ev.ErrorReply) and event.void_pending:
            held.clear()
            held_bytes = 0
        outcome = Outcome.CONTINUE
        for body, result in _respond(event, handle):
            outcome = result
            size = len(body) if body else 0
            if size > allowed:
                log.debug("udp request %d: reply over %d bytes, not sent", request_id, allowed)
                outcome = Outcome.CLOSE  # the rest is neither looked up nor sent
                break
            allowed -= size
            held.append(body)
            held_bytes += size
            if held_bytes >= FLUSH_BYTES:
                yield _frame_all(framer, held)
                held.clear()
                held_bytes = 0
        if outcome == Outcome.CLOSE or outcome == Outcome.CLOSE_ERROR:
            break  # the rest of the datagram is dropped
    if held:
        yield _frame_all(framer, held)


def _frame_all(framer: Framer, responses: list[bytes | None]) -> list[bytes]:
    return [datagram for body in responses for datagram in framer.frame(body)]


def handle_datagram(data: bytes, session: Session) -> list[bytes]:
    """Every datagram answering one request datagram (possibly none)."""
    return [datagram for batch in answer(data, session) for datagram in batch]


def _respond(event: object, handle: Handler) -> Iterator[tuple[bytes | None, int]]:
    """Each response to one request event, with the event's outcome."""
    if isinstance(event, ev.Retrieve) and len(event.keys) > 1:
        # A text multi-get answers one response per key over UDP, END riding on the last.
        last = len(event.keys) - 1
        for index, key in enumerate(event.keys):
            out: list[Reply] = []
            handle(event._replace(keys=[key], last=event.last and index == last), out)
            yield b"".join(out), Outcome.CONTINUE
        return
    out = []
    outcome = handle(event, out)
    if out:
        yield b"".join(out), outcome
    elif isinstance(event, ev.Close) or getattr(event, "noreply", False):
        yield None, outcome
    else:
        yield b"", outcome


def open_udp_sockets(hosts: list[str], port: int) -> list[socket.socket]:
    """Non-blocking UDP sockets bound to ``port`` on each of ``hosts`` ("" = every address)."""
    sockets: list[socket.socket] = []
    try:
        for host in hosts:
            infos = socket.getaddrinfo(
                host or None, port, type=socket.SOCK_DGRAM, flags=socket.AI_PASSIVE
            )
            family, kind, proto, _, address = infos[0]
            sock = socket.socket(family, kind, proto)
            sockets.append(sock)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind(address)
            sock.setblocking(False)
    except BaseException:
        for sock in sockets:
            sock.close()
        raise
    return sockets


class UdpListener:
    """Serves one bound UDP socket until cancelled."""

    def __init__(self, sock: socket.socket, session: Session, counters: ServerCounters) -> None:
        self.sock = sock
        self.session = session
        self.counters = counters

    async def serve(self) -> None:
        sock = self.sock
        while True:
            await trio.lowlevel.wait_readable(sock)
            for _ in range(DATAGRAMS_PER_YIELD):
                try:
                    data, address = sock.recvfrom(READ_SIZE)
                except BlockingIOError:
                    break
                except OSError as exc:  # e.g. ICMP port unreachable from an earlier reply
                    log.debug("udp receive: %s", exc)
                    continue
                self.counters.bytes_read += len(data)
                try:
                    for datagrams in answer(data, self.session):
                        await self._send(datagrams, address)
                        # A send that never blocks never yields: without this, one
                        # datagram asking for a gigabyte held every TCP client.
                        await trio.lowlevel.checkpoint()
                except Exception:  # one bad datagram must not stop the listener
                    log.exception("udp request from %s failed", address)
            await trio.lowlevel.checkpoint()

    async def _send(self, datagrams: list[bytes], address: Any) -> None:
        with trio.move_on_after(SEND_TIMEOUT):
            for n, datagram in enumerate(datagrams):
                if n and not n % DATAGRAMS_PER_YIELD:
                    await trio.lowlevel.checkpoint()  # a 1 MB value is 750 datagrams
                for _ in range(3):  # a full send buffer: wait for room, a few times at most
                    try:
                        self.sock.sendto(datagram, address)
                    except BlockingIOError:
                        await trio.lowlevel.wait_writable(self.sock)
                        continue
                    except OSError as exc:
                        log.debug("udp send to %s: %s", address, exc)
                        return
                    self.counters.bytes_written += len(datagram)
                    break
