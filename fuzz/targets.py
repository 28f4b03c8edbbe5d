"""The fuzz targets: one function per parser, taking the fuzzer's bytes.

Each target feeds its parser the input twice: whole, and in pieces whose sizes the input
itself chooses (its first byte seeds them). Both runs must end without an exception and
yield the same events: the parsers are sans-I/O, so how bytes arrive must not change what
they mean. Inputs stay below the parsers' line limit (2048 bytes without a newline),
where the buffered amount may legitimately decide (a too-long line closes the
connection only once that much is buffered).

* ``text``: memcached's text protocol (TextParser, ``config`` commands on).
* ``meta``: the same parser, every input made a meta command (``mg``/``ms``/...).
* ``binary``: the binary protocol (BinaryParser, SASL on).
* ``ascii_auth``: the ``-Y`` wrapper in front of a TextParser; the credential
  ``user pass`` is valid, so inputs that authenticate go on to the text parser.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any, Protocol

from memcachepy.protocol import events as ev
from memcachepy.protocol.ascii_auth import AsciiAuthParser
from memcachepy.protocol.binary import BinaryParser, ValueTooLarge
from memcachepy.protocol.events import NEED_DATA
from memcachepy.protocol.text import TextParser

MAX_INPUT = 2000  # under MAX_LINE_WITHOUT_NEWLINE, see the module docstring
MAX_EVENTS = 5000
META_COMMANDS = (b"mg ", b"ms ", b"md ", b"ma ", b"mn", b"me ", b"mx ")


class Parser(Protocol):
    def receive_data(self, data: bytes) -> None: ...

    def next_event(self) -> Any: ...


def _small_fits(nkey: int, flags: int, nbytes: int) -> bool:
    return nbytes <= 512  # a small -I, so the "too large" paths are reached too


def drain(parser: Parser, events: list[Any]) -> bool:
    """Collect events until NEED_DATA; False once the parser closed the connection."""
    for _ in range(MAX_EVENTS):
        event = parser.next_event()
        if event is NEED_DATA:
            return True
        events.append(event)
        if isinstance(event, ev.Close):
            return False
    raise AssertionError(f"more than {MAX_EVENTS} events from {MAX_EVENTS} bytes")


def feed(make: Callable[[], Parser], data: bytes, pieces: list[int] | None) -> list[Any]:
    parser = make()
    events: list[Any] = []
    if pieces is None:
        parser.receive_data(data)
        drain(parser, events)
        return events
    at = 0
    for size in pieces:
        parser.receive_data(data[at : at + size])
        at += size
        if not drain(parser, events):
            break
    return events


def split_sizes(data: bytes) -> list[int]:
    rng = random.Random(data[:1])
    sizes, left = [], len(data)
    while left > 0:
        size = min(left, rng.choice((1, 1, 2, 3, 7, 16, 64, 300)))
        sizes.append(size)
        left -= size
    return sizes


def _split_blind(event: Any) -> Any:
    """The event with what may rightly depend on where reads end set aside: a binary
    ValueTooLarge's ``past_buffer`` says whether the value went on past the bytes read so
    far, as memcached's reply to it does."""
    if isinstance(event, ValueTooLarge):
        return event._replace(past_buffer=False)
    return event


def check(make: Callable[[], Parser], data: bytes) -> None:
    """The whole input and the same input in pieces parse to the same events."""
    data = data[:MAX_INPUT]
    whole = [_split_blind(event) for event in feed(make, data, None)]
    pieces = [_split_blind(event) for event in feed(make, data, split_sizes(data))]
    if whole != pieces:
        raise AssertionError(f"events differ when split:\n{whole!r}\n{pieces!r}")


def text(data: bytes) -> None:
    check(lambda: TextParser(_small_fits, config_commands=True), data)


def meta(data: bytes) -> None:
    if not data:
        return
    command = META_COMMANDS[data[0] % len(META_COMMANDS)]
    check(lambda: TextParser(_small_fits), command + data[1:])


def binary(data: bytes) -> None:
    check(lambda: BinaryParser(_small_fits, sasl=True), data)


def ascii_auth(data: bytes) -> None:
    check(
        lambda: AsciiAuthParser(
            TextParser(_small_fits), lambda user, password: (user, password) == (b"user", b"pass")
        ),
        data,
    )


TARGETS: dict[str, Callable[[bytes], None]] = {
    "text": text,
    "meta": meta,
    "binary": binary,
    "ascii_auth": ascii_auth,
}
