"""The text parser under a bound: partial requests let go (shed), long lines in bounded steps."""

from __future__ import annotations

import re

from hypothesis import given
from hypothesis import strategies as st

from memcachepy.protocol import events as ev
from memcachepy.protocol.buffer import ReceiveBuffer
from memcachepy.protocol.text import TextParser
from memcachepy.protocol.text_events import scan_long_keys
from memcachepy.protocol.wire import (
    BAD_FORMAT,
    KEY_MAX_LENGTH,
    READ_NO_MEMORY,
    VALUE_NO_MEMORY,
)
from tests.protocol.test_text import drain, long_line


def test_a_value_still_arriving_is_shed_and_answered_as_memcached_out_of_chunks() -> None:
    parser = TextParser()
    parser.receive_data(b"set k 1 0 100000\r\n" + b"v" * 50_000)
    assert drain(parser) == []
    assert parser.shed()
    assert parser.buffered == 0  # let go at once
    assert drain(parser) == [ev.ErrorReply(VALUE_NO_MEMORY)]
    assert parser.mid_request  # the rest is discarded as it comes, as memcached swallows
    parser.receive_data(b"v" * 50_000 + b"\r\nget k\r\n")
    assert drain(parser) == [ev.Retrieve([b"k"], False, None)]
    assert not parser.mid_request


def test_a_cas_with_noreply_keeps_its_noreply_when_shed() -> None:
    parser = TextParser()
    parser.receive_data(b"cas k 0 0 9000 5 noreply\r\n" + b"v" * 100)
    drain(parser)
    assert parser.shed()
    assert drain(parser) == [ev.ErrorReply(VALUE_NO_MEMORY, True)]


def test_an_ms_still_arriving_is_shed_quiet_with_q() -> None:
    parser = TextParser()
    parser.receive_data(b"ms k 30000 T0\r\n" + b"v" * 20_000)
    assert drain(parser) == []
    assert parser.shed()
    assert drain(parser) == [ev.ErrorReply(VALUE_NO_MEMORY)]
    parser.receive_data(b"v" * 10_000 + b"\r\nms k 30000 q\r\n" + b"v" * 20_000)
    assert drain(parser) == []
    assert parser.shed()
    assert drain(parser) == [ev.ErrorReply(VALUE_NO_MEMORY, True)]
    parser.receive_data(b"v" * 10_000 + b"\r\nmn\r\n")
    assert drain(parser) == [ev.MetaNoop()]


def test_a_get_line_still_arriving_is_shed_and_closes() -> None:
    parser = TextParser()
    parser.receive_data(b"get " + b"k " * 5000)
    assert drain(parser) == []
    assert parser.shed()
    assert parser.buffered == 0
    assert drain(parser) == [ev.ErrorReply(READ_NO_MEMORY), ev.Close("input limit")]


def test_nothing_partial_nothing_shed() -> None:
    parser = TextParser()
    assert not parser.shed()
    parser.receive_data(b"get a")  # a short line: no more than memcached's read buffer
    assert not parser.shed()
    parser.receive_data(b"\r\nset k 0 0 3\r\nabc\r\n")  # whole requests wait, not shed
    assert not parser.shed()
    assert len(drain(parser)) == 2


def test_the_keys_of_a_long_line_are_checked_in_bounded_steps() -> None:
    line, keys = long_line(b"get", 80_000)  # 880 KB: checked 256 KiB per event
    parser = TextParser()
    for start in range(0, len(line), 16384):
        parser.receive_data(line[start : start + 16384])
    events = drain(parser)
    empty = [e for e in events if type(e) is ev.Retrieve and not e.keys]
    assert len(empty) == 3 and events[:3] == empty  # before any key is answered
    assert [key for e in events for key in e.keys] == keys  # type: ignore[attr-defined]


def test_a_long_line_voided_by_its_last_key_answers_nothing_before_the_error() -> None:
    line, _ = long_line(b"get", 80_000, b" " + b"x" * 251)
    parser = TextParser()
    for start in range(0, len(line), 16384):
        parser.receive_data(line[start : start + 16384])
    events = drain(parser)
    assert all(type(e) is ev.Retrieve and not e.keys for e in events[:-1])
    assert events[-1] == ev.ErrorReply(BAD_FORMAT, void_pending=True)


def test_a_long_line_is_taken_without_a_copy() -> None:
    buf = ReceiveBuffer()
    buf.feed(b"x" * 100_000)
    buf.feed(b"y" * 10 + b"\nget a\r\n")
    held = buf.data
    found = buf.take_long_line()
    assert found is not None
    data, start, end = found
    assert data is held and (start, end) == (0, 100_010)
    assert buf.take_line() == b"get a\r"
    assert buf.take_long_line() is None


_TOO_LONG = re.compile(rb"[^ ]{%d}" % (KEY_MAX_LENGTH + 1))


@given(
    st.lists(
        st.one_of(
            st.integers(0, 3).map(lambda n: b" " * n),
            st.integers(1, 400).map(lambda n: b"k" * n),
        ),
        max_size=40,
    ),
    st.booleans(),
)
def test_scan_long_keys_finds_what_a_regex_finds(pieces: list[bytes], wrap: bool) -> None:
    line = b"get " + b"".join(pieces)
    data: bytes | bytearray = bytearray(line) if wrap else line
    at = 4
    while 0 <= at < len(line):  # in steps, as the parser goes
        at = scan_long_keys(data, at, 4, len(line))
    assert (at < 0) == (_TOO_LONG.search(line, 4) is not None)
