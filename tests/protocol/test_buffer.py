"""The receive buffer: lines and blocks cut the same way whatever the reads' boundaries."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from memcachepy.protocol.buffer import ReceiveBuffer, find_newline


def _lines(buf: ReceiveBuffer) -> list[bytes]:
    out = []
    while (line := buf.take_line()) is not None:
        out.append(line)
    return out


def test_a_read_of_whole_lines_is_cut_without_a_copy() -> None:
    buf = ReceiveBuffer()
    read = b"get a\r\nget b\r\n"
    buf.feed(read)
    assert buf.data is read  # the read itself is the buffer
    assert _lines(buf) == [b"get a\r", b"get b\r"]
    assert len(buf) == 0
    nxt = b"get c\r\n"
    buf.feed(nxt)
    assert buf.data is nxt
    assert _lines(buf) == [b"get c\r"]


def test_a_line_split_over_reads_waits_for_its_newline() -> None:
    buf = ReceiveBuffer()
    buf.feed(b"get a\r\nget l")
    assert buf.take_line() == b"get a\r"
    assert buf.take_line() is None
    assert len(buf) == 5
    buf.feed(b"ong\r\nget z\r\n")
    assert _lines(buf) == [b"get long\r", b"get z\r"]


def test_blocks_are_taken_skipped_and_peeked() -> None:
    buf = ReceiveBuffer()
    buf.feed(b"set k 0 0 5\r\nhel")
    assert buf.take_line() == b"set k 0 0 5\r"
    assert buf.take(7) is None  # not all here: nothing consumed
    assert buf.peek(2) == b"he"
    buf.feed(b"lo\r\nget k\n")
    assert buf.take(7) == b"hello\r\n"
    assert buf.skip(100) == 6
    assert len(buf) == 0


def test_a_line_longer_than_a_copy_is_cut_from_the_gathered_bytes() -> None:
    buf = ReceiveBuffer()
    long_line = b"get " + b"k" * 100_000
    for start in range(0, len(long_line), 16384):
        buf.feed(long_line[start : start + 16384])
        assert buf.take_line() is None
    buf.feed(b"\r\nget x\r\n")
    assert buf.take_line() == long_line + b"\r"
    assert buf.take_line() == b"get x\r"


@given(
    st.lists(st.binary(max_size=12).map(lambda b: b.replace(b"\n", b"")), max_size=12),
    st.lists(st.integers(min_value=1, max_value=9), min_size=1, max_size=40),
)
def test_lines_do_not_depend_on_where_reads_split(lines: list[bytes], cuts: list[int]) -> None:
    stream = b"".join(line + b"\n" for line in lines)
    buf = ReceiveBuffer()
    got: list[bytes] = []
    pos = i = 0
    while pos < len(stream):
        size = cuts[i % len(cuts)]
        i += 1
        buf.feed(stream[pos : pos + size])
        pos += size
        got += _lines(buf)
    assert got == lines
    assert len(buf) == 0


@given(st.binary(max_size=200), st.integers(min_value=0, max_value=210))
def test_find_newline_is_bytes_find(data: bytes, at: int) -> None:
    assert find_newline(data, at) == data.find(b"\n", at)


@given(
    st.integers(min_value=0, max_value=150),
    st.integers(min_value=0, max_value=150),
    st.sampled_from([b"\x0b", b"\x09", b"\x8a", b"\x0a\x0a", b"\x00"]),
)
def test_find_newline_finds_the_first_of_a_run(before: int, at: int, filler: bytes) -> None:
    data = b"x" * before + b"\n" + filler * 20 + b"\n"
    assert find_newline(data, at) == data.find(b"\n", at)
