"""The sans-I/O text parser: events for requests, exact error lines, byte-split robustness."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from memcachepy.protocol import events as ev
from memcachepy.protocol.events import NEED_DATA
from memcachepy.protocol.text import TextParser
from memcachepy.protocol.wire import (
    BAD_DATA_CHUNK,
    BAD_FORMAT,
    ERROR,
    INVALID_EXPTIME,
    LONG_LINE,
    READ_NO_MEMORY,
)


def parse_all(data: bytes, parser: TextParser | None = None) -> list[object]:
    parser = parser or TextParser()
    parser.receive_data(data)
    return drain(parser)


def drain(parser: TextParser) -> list[object]:
    out: list[object] = []
    while (event := parser.next_event()) is not NEED_DATA:
        out.append(event)
    return out


def test_set_with_data_block() -> None:
    assert parse_all(b"set foo 5 100 3\r\nbar\r\n") == [
        ev.Store(b"set", b"foo", 5, 100, b"bar", 0, False)
    ]


def test_cas_and_noreply() -> None:
    assert parse_all(b"cas k 0 0 1 42 noreply\r\nx\r\n") == [
        ev.Store(b"cas", b"k", 0, 0, b"x", 42, True)
    ]


def test_multi_get_and_gats() -> None:
    assert parse_all(b"get a b  c\r\ngats 10 k\r\n") == [
        ev.Retrieve([b"a", b"b", b"c"], False, None),
        ev.Retrieve([b"k"], True, 10),
    ]


def test_bare_newline_terminates_lines_too() -> None:
    assert parse_all(b"get a\n") == [ev.Retrieve([b"a"], False, None)]


@pytest.mark.parametrize(
    ("request_bytes", "reply"),
    [
        (b"\r\n", ERROR),
        (b"bogus\r\n", ERROR),
        (b"GET a\r\n", ERROR),
        (b"get\r\n", ERROR),
        (b"set k 0 0\r\n", ERROR),
        (b"set k 0 0 1 noreply extra\r\n", ERROR),
        (b"set k 0 0 -1\r\n", BAD_FORMAT),
        (b"set k 0 0 4294967295\r\n", BAD_FORMAT),
        (b"set k 0 0 2147483647\r\n", BAD_FORMAT),
        (b"set k abc 0 1\r\n", BAD_FORMAT),
        (b"set " + b"k" * 251 + b" 0 0 1\r\n", BAD_FORMAT),
        (b"get " + b"k" * 251 + b"\r\n", BAD_FORMAT),
        (b"get a " + b"k" * 251 + b" b\r\n", BAD_FORMAT),
        (b"incr k abc\r\n", b"CLIENT_ERROR invalid numeric delta argument\r\n"),
        (b"touch k abc\r\n", b"CLIENT_ERROR invalid exptime argument\r\n"),
        (b"gat abc k\r\n", b"CLIENT_ERROR invalid exptime argument\r\n"),
        (
            b"delete k 1\r\n",
            b"CLIENT_ERROR bad command line format.  Usage: delete <key> [noreply]\r\n",
        ),
    ],
)
def test_error_lines(request_bytes: bytes, reply: bytes) -> None:
    event = parse_all(request_bytes)[0]
    assert isinstance(event, ev.ErrorReply)
    assert (event.line, event.noreply) == (reply, False)


def test_bad_key_in_multiget_voids_unsent_replies() -> None:
    assert parse_all(b"get a " + b"k" * 251 + b"\r\n") == [
        ev.ErrorReply(BAD_FORMAT, False, void_pending=True)
    ]
    assert parse_all(b"set " + b"k" * 251 + b" 0 0 1\r\n")[0] == ev.ErrorReply(BAD_FORMAT, False)


def test_key_of_250_bytes_is_fine() -> None:
    key = b"k" * 250
    assert parse_all(b"get " + key + b"\r\n") == [ev.Retrieve([key], False, None)]


def test_noreply_marks_errors_quiet() -> None:
    assert parse_all(b"set k 0 0 -1 noreply\r\n") == [ev.ErrorReply(BAD_FORMAT, True)]


def test_bad_data_chunk_then_rest_is_the_next_command() -> None:
    events = parse_all(b"set k 0 0 3\r\nabcde\r\nget k\r\n")
    # 3 + 2 bytes are consumed ("abcde"); "\r\n" is then an empty line.
    assert events == [
        ev.ErrorReply(BAD_DATA_CHUNK, False),
        ev.ErrorReply(ERROR),
        ev.Retrieve([b"k"], False, None),
    ]


def test_too_large_value_is_swallowed_without_buffering() -> None:
    parser = TextParser(item_fits=lambda nkey, flags, nbytes: nbytes <= 10)
    parser.receive_data(b"set k 0 0 1000\r\n")
    assert drain(parser) == [ev.StoreTooLarge(b"set", b"k", False)]
    parser.receive_data(b"x" * 600)
    assert drain(parser) == []
    assert parser.buffered == 0
    parser.receive_data(b"x" * 400 + b"\r\nget k\r\n")
    assert drain(parser) == [ev.Retrieve([b"k"], False, None)]


def test_long_line_without_newline_closes_unless_get() -> None:
    assert parse_all(b"x" * 2049) == [ev.Close("line too long")]
    parser = TextParser()
    parser.receive_data(b"get " + b"k " * 2000)
    assert drain(parser) == []
    parser.receive_data(b"\r\n")
    events = drain(parser)
    assert len(events) == 1 and len(events[0].keys) == 2000  # type: ignore[attr-defined]


def test_requeued_event_comes_next() -> None:
    parser = TextParser()
    parser.receive_data(b"version\r\n")
    rest = ev.Retrieve([b"b"], False, None)
    parser.requeue(rest)
    assert drain(parser) == [rest, ev.Version()]


def test_get_line_input_is_bounded() -> None:
    # Past the bound memcached's realloc would have failed: its out-of-memory line, then close.
    parser = TextParser(max_get_line=1 << 20)
    parser.receive_data(b"get " + b"k " * 600_000)
    assert drain(parser) == [ev.ErrorReply(READ_NO_MEMORY), ev.Close("input limit")]
    assert parser.buffered == 0  # the held line is let go at once


def long_line(command: bytes, count: int, extra: bytes = b"") -> tuple[bytes, list[bytes]]:
    keys = [b"key:%06d" % n for n in range(count)]
    return command + b" " + b" ".join(keys) + extra + b"\r\n", keys


def test_long_get_line_is_answered_in_slices_of_its_keys() -> None:
    line, keys = long_line(b"get", 150_000)  # 1.65 MB
    parser = TextParser()
    for start in range(0, len(line), 16384):  # as reads bring it
        parser.receive_data(line[start : start + 16384])
    parser.receive_data(b"get a\r\n")
    events = drain(parser)
    slices = [e for e in events[:-1] if type(e) is ev.Retrieve]
    after = events[-1]
    assert len(slices) == len(events) - 1
    assert all(not e.with_cas and e.exptime is None for e in slices)
    assert [e.last for e in slices] == [False] * (len(slices) - 1) + [True]
    assert [key for e in slices for key in e.keys] == keys
    assert max(len(e.keys) for e in slices) * 10 <= LONG_LINE + 10  # slices, not the whole
    assert after == ev.Retrieve([b"a"], False, None)


def test_long_gats_line_keeps_its_exptime_and_odd_spacing() -> None:
    keys = [b"k%d" % n for n in range(30_000)]
    line = b"gats  -1   " + b"  ".join(keys) + b"   \r\n"
    events = parse_all(line)
    assert len(events) > 1
    assert all(e.with_cas and e.exptime == -1 for e in events)  # type: ignore[attr-defined]
    assert [key for e in events for key in e.keys] == keys  # type: ignore[attr-defined]


def test_long_get_line_with_one_key_too_long_voids_the_reply() -> None:
    line, _ = long_line(b"get", 20_000, b" " + b"x" * 251)
    [event] = parse_all(line + b"get a\r\n")[:1]
    assert type(event) is ev.ErrorReply
    assert (event.line, event.void_pending) == (BAD_FORMAT, True)
    line, _ = long_line(b"gat x", 20_000)
    assert parse_all(line)[0].line == INVALID_EXPTIME  # type: ignore[attr-defined]


def test_http_request_line_closes() -> None:
    assert parse_all(b"GET / HTTP/1.1\r\n") == [ev.Close("http request")]


def test_nul_byte_ends_the_line() -> None:
    assert parse_all(b"get a\x00b c\r\n") == [ev.Retrieve([b"a"], False, None)]


def test_quit_stops_parsing() -> None:
    assert parse_all(b"quit\r\nget a\r\n") == [ev.Quit()]


def test_flush_all_forms() -> None:
    assert parse_all(b"flush_all\r\nflush_all 10\r\nflush_all noreply\r\nflush_all x\r\n") == [
        ev.FlushAll(0, False),
        ev.FlushAll(10, False),
        ev.FlushAll(0, True),
        ev.FlushAll(None, False),
    ]


PIPELINE = (
    b"set a 0 0 5\r\nhello\r\n"
    b"get a b\r\n"
    b"incr n 5\r\n"
    b"delete a noreply\r\n"
    b"append a 0 0 2\r\n\r\n\r\n"
    b"touch a 10\r\n"
    b"bogus\r\n"
    b"set big 0 0 20\r\n" + b"z" * 20 + b"\r\n"
    b"stats items\r\n"
    b"version\r\n"
)


def test_every_byte_split_gives_the_same_events() -> None:
    expected = parse_all(PIPELINE)
    assert len(expected) == 10
    for cut in range(len(PIPELINE) + 1):
        parser = TextParser()
        events = parse_all(PIPELINE[:cut], parser)
        parser.receive_data(PIPELINE[cut:])
        events += drain(parser)
        assert events == expected, cut


def test_byte_at_a_time() -> None:
    parser = TextParser()
    events: list[object] = []
    for i in range(len(PIPELINE)):
        parser.receive_data(PIPELINE[i : i + 1])
        events += drain(parser)
    assert events == parse_all(PIPELINE)


@settings(max_examples=300)
@given(st.lists(st.binary(max_size=64), max_size=8))
def test_parser_never_raises_and_buffer_stays_bounded(chunks: list[bytes]) -> None:
    parser = TextParser(item_fits=lambda nkey, flags, nbytes: nbytes <= 1024)
    for chunk in chunks:
        parser.receive_data(chunk)
        for event in drain(parser):
            assert isinstance(event, tuple)
        # Without a newline nothing but a get line or a declared data block is kept.
        assert parser.buffered <= 2048 + 1024 + 2 + 64


@settings(max_examples=200)
@given(
    st.lists(
        st.tuples(
            st.sampled_from([b"set", b"add", b"replace", b"append", b"prepend"]),
            st.binary(min_size=1, max_size=20).filter(
                lambda k: b" " not in k and b"\n" not in k and b"\r" not in k and b"\0" not in k
            ),
            st.integers(0, 2**32 - 1),
            st.binary(max_size=50),
        ),
        min_size=1,
        max_size=5,
    ),
    st.integers(1, 7),
)
def test_generated_storage_commands_parse_back(
    commands: list[tuple[bytes, bytes, int, bytes]], step: int
) -> None:
    wire = b"".join(
        b"%s %s %d 0 %d\r\n%s\r\n" % (cmd, key, flags, len(data), data)
        for cmd, key, flags, data in commands
    )
    parser = TextParser()
    events: list[object] = []
    for i in range(0, len(wire), step):
        parser.receive_data(wire[i : i + step])
        events += drain(parser)
    assert events == [
        ev.Store(cmd, key, flags, 0, data, 0, False) for cmd, key, flags, data in commands
    ]
