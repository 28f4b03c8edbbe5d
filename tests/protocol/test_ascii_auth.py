"""ASCII authentication in front of the text parser: nothing reaches the store before it."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from memcachepy.auth.authfile import Authfile
from memcachepy.protocol import events as ev
from memcachepy.protocol.ascii_auth import (
    BAD_TERMINATION,
    BAD_TOKEN_FORMAT,
    UNAUTHENTICATED,
    AsciiAuthParser,
)
from memcachepy.protocol.events import NEED_DATA
from memcachepy.protocol.text import TextParser

AUTH = Authfile([(b"alice", b"s3cret"), (b"bob", b"pw")])


def parser() -> AsciiAuthParser:
    return AsciiAuthParser(TextParser(), AUTH.check)


def feed(p: AsciiAuthParser, data: bytes) -> list[object]:
    p.receive_data(data)
    out: list[object] = []
    while (event := p.next_event()) is not NEED_DATA:
        out.append(event)
    return out


def test_every_command_is_refused_before_auth() -> None:
    p = parser()
    assert feed(p, b"get a\r\nversion\r\nset a 0 0\r\n") == [ev.ErrorReply(UNAUTHENTICATED)] * 3
    assert not p.authenticated


def test_good_credentials_then_normal_parsing_of_what_follows() -> None:
    p = parser()
    events = feed(p, b"set x 0 0 12\r\nalice s3cret\r\nget a\r\n")
    assert events == [ev.AuthResult(True), ev.Retrieve([b"a"], False, None)]
    assert p.authenticated


def test_wrong_and_malformed_credentials() -> None:
    p = parser()
    assert feed(p, b"set x 0 0 11\r\nalice wrong\r\n") == [ev.AuthResult(False)]
    assert feed(p, b"set x 0 0 5\r\nalice\r\n") == [ev.ErrorReply(BAD_TOKEN_FORMAT)]
    assert feed(p, b"set x 0 0 3\r\nabcde") == [ev.ErrorReply(BAD_TERMINATION)]
    assert not p.authenticated


def test_credentials_split_at_every_byte() -> None:
    wire = b"set k 0 0 6\r\nbob pw\r\nget k\r\n"
    for cut in range(len(wire) + 1):
        p = parser()
        events = feed(p, wire[:cut]) + feed(p, wire[cut:])
        assert events == [ev.AuthResult(True), ev.Retrieve([b"k"], False, None)], cut


def test_constant_time_check_needs_both_parts() -> None:
    assert AUTH.check(b"bob", b"pw")
    assert not AUTH.check(b"bob", b"s3cret")
    assert not AUTH.check(b"alice", b"pw")
    assert not AUTH.check(b"", b"")


COMMANDS = st.sampled_from(
    [
        b"get a\r\n",
        b"set a 0 0 1\r\nx\r\n",
        b"delete a\r\n",
        b"incr a 1\r\n",
        b"flush_all\r\n",
        b"stats\r\n",
        b"set a 0 0 9\r\nmallory x\r\n",
        b"touch a 1\r\n",
        b"set a 0 0 3\r\nbob\r\n",
        b"\r\n",
        b"garbage\r\n",
    ]
)


@settings(max_examples=300)
@given(st.lists(COMMANDS, max_size=12), st.integers(1, 9))
def test_no_interleaving_before_auth_reaches_the_store(commands: list[bytes], step: int) -> None:
    wire = b"".join(commands)
    p = parser()
    events: list[object] = []
    for i in range(0, len(wire), step):
        events += feed(p, wire[i : i + step])
    # Without the right credentials only refusals come out: no request event at all.
    assert all(isinstance(e, ev.ErrorReply | ev.AuthResult) for e in events)
    assert not any(isinstance(e, ev.AuthResult) and e.ok for e in events)
    assert not p.authenticated
