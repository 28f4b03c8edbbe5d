"""The meta command parser (mg ms md ma mn me): events, exact error lines, byte splits, fuzzing.

The meta parser is reached through the text parser (meta commands share text connections),
so these tests feed bytes to :class:`TextParser` as a connection would.
"""

from __future__ import annotations

import base64

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from memcachepy.protocol import events as ev
from memcachepy.protocol import meta, wire
from memcachepy.protocol.events import NEED_DATA
from memcachepy.protocol.text import TextParser

ITEM_LIMIT = 1024


def fits(nkey: int, flags: int, nbytes: int) -> bool:
    return nbytes <= ITEM_LIMIT


def parse_all(data: bytes, parser: TextParser | None = None) -> list[object]:
    parser = parser or TextParser(fits)
    parser.receive_data(data)
    return drain(parser)


def drain(parser: TextParser) -> list[object]:
    out: list[object] = []
    for _ in range(10_000):
        event = parser.next_event()
        if event is NEED_DATA:
            return out
        out.append(event)
    raise AssertionError("parser produced events forever")


def one(data: bytes) -> object:
    events = parse_all(data)
    assert len(events) == 1, events
    return events[0]


def error_line(data: bytes) -> bytes:
    event = one(data)
    assert isinstance(event, ev.ErrorReply), event
    assert not event.noreply  # meta errors are never silenced
    return event.line


# -- events ------------------------------------------------------------------------------------


def test_mg_flags_in_request_order() -> None:
    assert one(b"mg k t v c T30 Oxy k q u N10 R5 s f h l\r\n") == ev.MetaGet(
        b"k",
        False,
        b"tcTOkNRsfhl",
        b"Oxy",
        value=True,
        quiet=True,
        no_bump=True,
        ttl=30,
        vivify=10,
        recache=5,
        late_error=None,
    )


def test_mg_without_flags() -> None:
    assert one(b"mg k\r\n") == ev.MetaGet(
        b"k", False, b"", b"", False, False, False, None, None, None, None
    )


def test_ms_reads_its_data_block() -> None:
    assert one(b"ms k 5 T10 F3 c k Oq MA C7 I q\r\nhello\r\n") == ev.MetaSet(
        b"k",
        False,
        b"hello",
        b"A",
        3,
        10,
        cas=7,
        invalidate=True,
        quiet=True,
        order=b"ckO",
        opaque=b"Oq",
    )


def test_ms_defaults_and_data_with_crlf() -> None:
    assert one(b"ms k 2\r\n\r\n\r\n") == ev.MetaSet(
        b"k", False, b"\r\n", b"S", 0, 0, None, False, False, b"", b""
    )


def test_md_and_ma_and_mn_and_me() -> None:
    assert parse_all(b"md k I T5 C9 q k O1\r\nma n N0 J10 D3 MD v t c\r\nmn x\r\nme k\r\n") == [
        ev.MetaDelete(
            b"k", False, cas=9, invalidate=True, ttl=5, quiet=True, order=b"kO", opaque=b"O1"
        ),
        ev.MetaArithmetic(
            b"n",
            False,
            False,
            delta=3,
            initial=10,
            cas=0,
            vivify=0,
            ttl=None,
            value=True,
            quiet=False,
            order=b"Ntc",
            opaque=b"",
            late_error=None,
        ),
        ev.MetaNoop(),
        ev.MetaDebug(b"k", False),
    ]


def test_ma_defaults() -> None:
    event = one(b"ma n\r\n")
    assert isinstance(event, ev.MetaArithmetic)
    assert (event.incr, event.delta, event.initial, event.cas) == (True, 1, 0, 0)


def test_base64_keys_are_decoded() -> None:
    key = b"a key\r\nwith anything\x00"
    encoded = base64.b64encode(key)
    event = one(b"mg " + encoded + b" b v\r\n")
    assert isinstance(event, ev.MetaGet) and (event.key, event.binary) == (key, True)
    assert one(b"me " + encoded + b" b\r\n") == ev.MetaDebug(key, True)


@pytest.mark.parametrize(
    ("token", "decoded"),
    [
        (b"Zm9v", b"foo"),
        (b"Zg==", b"f"),
        (b"Zm8=", b"fo"),
        (b"Zm9v!", b"foo"),  # bytes outside the alphabet are skipped
        (b"Zg=A", b"f\x00"),  # the first group with padding ends the key
        (b"Zg==Zm9v", b"f"),
        (b"Zm9", None),  # not a multiple of four
        (b"Z===", None),  # three pads
        (b"!!!!", None),
    ],
)
def test_base64_decoding_as_memcached(token: bytes, decoded: bytes | None) -> None:
    assert meta.decode_key(token) == decoded


# -- errors --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("request_bytes", "reply"),
    [
        (b"mg\r\n", wire.ERROR),
        (b"mz k\r\n", wire.ERROR),
        (b"mg " + b"k" * 251 + b" v\r\n", wire.BAD_FORMAT),
        (b"mg k z\r\n", wire.INVALID_FLAG),
        (b"mg k E\r\n", wire.INVALID_FLAG),  # not in memcached 1.6.18
        (b"mg k x\r\n", wire.INVALID_FLAG),
        (b"mg k v v\r\n", wire.DUPLICATE_FLAG),
        (b"mg k \x80\r\n", wire.DUPLICATE_FLAG),
        (b"mg k Tx\r\n", wire.BAD_TOKEN),
        (b"mg k N\r\n", wire.BAD_TOKEN),
        (b"mg k Fx\r\n", wire.BAD_FORMAT),
        (b"mg k Nx Fx\r\n", wire.BAD_TOKEN),  # F keeps the previous message
        (b"mg k Nx z\r\n", wire.INVALID_FLAG),
        (b"mg k Jx Dx\r\n", b"CLIENT_ERROR invalid numeric delta value\r\n"),
        (b"mg Zm9 b\r\n", wire.DECODING_KEY),
        (b"mg k " + b"v " * 18 + b"\r\n", wire.MG_TOO_MANY_FLAGS),
        (b"md k z\r\n", wire.INVALID_OR_DUPLICATE),
        (b"md k O" + b"o" * 32 + b"\r\n", wire.OPAQUE_TOO_LONG),
        (b"ma k MX\r\n", wire.MA_BAD_MODE),
        (b"ma k MDD\r\n", wire.INVALID_OR_DUPLICATE),
        (b"ma k " + b"v " * 18 + b"\r\n", wire.TOO_MANY_FLAGS),
        (b"me\r\n", wire.BAD_FORMAT),
        (b"me Zm9 b\r\n", wire.BAD_FORMAT),
        (b"ms k\r\n", wire.BAD_FORMAT),
        (b"ms k x\r\n", wire.BAD_FORMAT),
        (b"ms k -1\r\n", wire.BAD_FORMAT),
        (b"ms k 2147483646\r\n", wire.BAD_FORMAT),
    ],
)
def test_error_lines(request_bytes: bytes, reply: bytes) -> None:
    assert error_line(request_bytes) == reply


def test_unknown_two_letter_m_command_never_closes() -> None:
    assert parse_all(b"mz HTTP/1.1\r\n") == [ev.ErrorReply(wire.ERROR)]
    assert parse_all(b"mzz HTTP/1.1\r\n") == [ev.Close("http request")]


def test_too_long_opaque_in_mg_fails_after_the_flags_before_it() -> None:
    event = one(b"mg k T30 O" + b"o" * 32 + b" t v\r\n")
    assert isinstance(event, ev.MetaGet)
    assert (event.order, event.late_error) == (b"T", wire.OPAQUE_TOO_LONG)


def test_rejected_ms_line_leaves_the_data_as_a_command() -> None:
    assert parse_all(b"ms k x\r\nmn\r\n") == [ev.ErrorReply(wire.BAD_FORMAT), ev.MetaNoop()]


@pytest.mark.parametrize(
    ("flags", "reply"),
    [
        (b"z", wire.INVALID_FLAG),
        (b"v v", wire.DUPLICATE_FLAG),
        (b"MZ", wire.MS_BAD_MODE),
        (b"MEE", b"CLIENT_ERROR incorrect length for M token\r\n"),
        (b"O" + b"o" * 32, wire.OPAQUE_TOO_LONG),
        (b"MZ O" + b"o" * 32, wire.MS_BAD_MODE),
        (b"Fx", wire.BAD_FORMAT),
    ],
)
def test_rejected_ms_flags_swallow_the_data(flags: bytes, reply: bytes) -> None:
    parser = TextParser(fits)
    assert parse_all(b"ms k 4 " + flags + b"\r\nmn\r\n", parser) == [ev.ErrorReply(reply)]
    assert parser.mid_request  # replies are held until the block is gone
    assert parse_all(b"\r\nmn\r\n", parser) == [ev.MetaNoop()]


def test_too_large_ms_is_swallowed_without_buffering() -> None:
    parser = TextParser(fits)
    assert parse_all(b"ms k 5000 q\r\n", parser) == [ev.MetaSetTooLarge(b"k")]
    parser.receive_data(b"x" * 3000)
    assert drain(parser) == [] and parser.buffered == 0
    assert parse_all(b"x" * 2000 + b"\r\nmn\r\n", parser) == [ev.MetaNoop()]


def test_bad_data_chunk_is_never_silenced() -> None:
    assert parse_all(b"ms k 1 q\r\nab\r\n") == [
        ev.ErrorReply(b"CLIENT_ERROR bad data chunk\r\n", False),
        ev.ErrorReply(wire.ERROR),
    ]


def test_text_set_after_ms_is_untouched() -> None:
    assert parse_all(b"ms k 1\r\na\r\nset k 0 0 1\r\nb\r\n")[1] == ev.Store(
        b"set", b"k", 0, 0, b"b", 0, False
    )


# -- byte splits and generated frames -----------------------------------------------------------

PIPELINE = (
    b"ms k 5 T10 F3 c\r\nhello\r\n"
    b"mg k v t f c k Oa\r\n"
    b"md k q\r\n"
    b"ma n N0 J5 D2 v\r\n"
    b"mz\r\n"
    b"ms j 2 z\r\nxy\r\n"
    b"ms big 2000\r\n" + b"z" * 2000 + b"\r\n"
    b"mn\r\n"
    b"me k\r\n"
    b"ms e 0 b\r\n\r\n"
)


def test_every_byte_split_gives_the_same_events() -> None:
    expected = parse_all(PIPELINE)
    assert len(expected) == 10
    for cut in range(len(PIPELINE) + 1):
        parser = TextParser(fits)
        events = parse_all(PIPELINE[:cut], parser)
        parser.receive_data(PIPELINE[cut:])
        events += drain(parser)
        assert events == expected, cut


def test_byte_at_a_time() -> None:
    parser = TextParser(fits)
    events: list[object] = []
    for i in range(len(PIPELINE)):
        parser.receive_data(PIPELINE[i : i + 1])
        events += drain(parser)
    assert events == parse_all(PIPELINE)


FLAG_LETTERS = b"bcfhklOqstuvNRTFCMJDIPLEx"
flag_tokens = st.builds(
    lambda letter, arg: bytes([letter]) + arg,
    st.sampled_from(list(FLAG_LETTERS) + [0x7F, 0x80, ord("z"), ord("+")]),
    st.one_of(
        st.just(b""),
        st.from_regex(rb"\A[-+]?[0-9]{1,21}\Z"),
        st.binary(max_size=40).map(lambda b: b.replace(b" ", b"").replace(b"\n", b"")),
    ),
)
meta_lines = st.builds(
    lambda cmd, key, size, flags: (
        b" ".join([cmd, key] + ([size] if cmd == b"ms" else []) + flags) + b"\r\n"
    ),
    st.sampled_from([b"mg", b"ms", b"md", b"ma", b"mn", b"me", b"mz"]),
    st.one_of(st.from_regex(rb"\A[a-zA-Z0-9+/=]{1,8}\Z"), st.just(b"k" * 251)),
    st.one_of(st.integers(0, 40).map(lambda n: b"%d" % n), st.just(b"x"), st.just(b"99999")),
    st.lists(flag_tokens, max_size=22),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(meta_lines, st.binary(max_size=48)), max_size=6), st.integers(1, 64))
def test_parser_never_raises_and_buffer_stays_bounded(frames: list[bytes], step: int) -> None:
    parser = TextParser(fits)
    wire = b"".join(frames)
    for i in range(0, len(wire), step):
        parser.receive_data(wire[i : i + step])
        for event in drain(parser):
            assert isinstance(event, tuple)  # every event is a NamedTuple
            if isinstance(event, ev.ErrorReply):
                assert event.line.endswith(b"\r\n")
        # A line without newline is dropped past 2048 bytes, a data block past the item limit.
        assert parser.buffered <= max(2048, ITEM_LIMIT + 2) + step


safe_keys = st.binary(min_size=1, max_size=30).filter(lambda k: not any(c in k for c in b" \r\n\0"))


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(
            safe_keys,
            st.binary(max_size=60),
            st.integers(0, 2**32 - 1),
            st.sampled_from([b"S", b"E", b"A", b"P", b"R"]),
            st.booleans(),
        ),
        min_size=1,
        max_size=5,
    ),
    st.integers(1, 9),
)
def test_generated_ms_frames_parse_back(
    commands: list[tuple[bytes, bytes, int, bytes, bool]], step: int
) -> None:
    wire = b""
    for key, data, flags, mode, binary in commands:
        sent_key = base64.b64encode(key) if binary else key
        wire += b"ms %s %d F%d M%s%s\r\n%s\r\n" % (
            sent_key,
            len(data),
            flags,
            mode,
            b" b" if binary else b"",
            data,
        )
    parser = TextParser()
    events: list[object] = []
    for i in range(0, len(wire), step):
        parser.receive_data(wire[i : i + step])
        events += drain(parser)
    assert events == [
        ev.MetaSet(key, binary, data, mode, flags, 0, None, False, False, b"", b"")
        for key, data, flags, mode, binary in commands
    ]
