"""The sans-I/O binary parser and the binary dispatcher, without sockets.

Events for every opcode's request shape, memcached's hostile-input rules (0x81, 0x04 and
close, swallowed values, bodies near 2**32), byte-split robustness, and hypothesis-made
valid and invalid frames: the parser never raises and never buffers more than one request.
"""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from memcachepy.config import Settings
from memcachepy.dispatch.binary import BinaryDispatcher
from memcachepy.dispatch.reply import Reply
from memcachepy.dispatch.text import TEXT_FRAMING
from memcachepy.ops.counters import ServerCounters
from memcachepy.protocol import events as ev
from memcachepy.protocol.binary import (
    HEADER_SIZE,
    READ_BUFFER_SIZE,
    SHAPES,
    BinaryParser,
    Header,
    Opcode,
    Reject,
    Request,
    Status,
    ValueTooLarge,
    request,
)
from memcachepy.protocol.events import NEED_DATA
from memcachepy.protocol.wire import Outcome
from memcachepy.store.cache import Cache

VALUE_LIMIT = 1024
STORE_EXTRAS = struct.pack(">II", 7, 0)
INCR_EXTRAS = struct.pack(">QQI", 1, 0, 0)
TOUCH_EXTRAS = struct.pack(">I", 100)


def fits(nkey: int, flags: int, nbytes: int) -> bool:
    return nbytes <= VALUE_LIMIT


def parse_all(data: bytes, parser: BinaryParser | None = None) -> list[object]:
    parser = parser or BinaryParser(fits)
    parser.receive_data(data)
    return drain(parser)


def drain(parser: BinaryParser) -> list[object]:
    out: list[object] = []
    for _ in range(10_000):
        event = parser.next_event()
        if event is NEED_DATA:
            return out
        out.append(event)
    raise AssertionError("the parser kept producing events")


def frame(
    opcode: int,
    key: bytes = b"",
    extras: bytes = b"",
    value: bytes = b"",
    *,
    body_length: int | None = None,
    magic: int = 0x80,
    opaque: int = 0,
    cas: int = 0,
) -> bytes:
    """A request frame whose header may lie about the body length."""
    body = len(key) + len(extras) + len(value) if body_length is None else body_length
    header = Header(magic, opcode, len(key), len(extras), 0, 0, body, opaque, cas)
    return header.pack() + extras + key + value


def only_event(data: bytes) -> object:
    events = parse_all(data)
    assert len(events) == 1, events
    return events[0]


# -- well-formed requests ---------------------------------------------------------------------

VALID = [
    request(Opcode.GET, b"k"),
    request(Opcode.GETQ, b"k"),
    request(Opcode.GETK, b"k"),
    request(Opcode.GETKQ, b"k"),
    request(Opcode.SET, b"k", STORE_EXTRAS, b"value"),
    request(Opcode.SETQ, b"k", STORE_EXTRAS),
    request(Opcode.ADD, b"k", STORE_EXTRAS, b"v"),
    request(Opcode.ADDQ, b"k", STORE_EXTRAS, b"v"),
    request(Opcode.REPLACE, b"k", STORE_EXTRAS, b"v"),
    request(Opcode.REPLACEQ, b"k", STORE_EXTRAS, b"v"),
    request(Opcode.APPEND, b"k", value=b"a"),
    request(Opcode.APPENDQ, b"k", value=b"a"),
    request(Opcode.PREPEND, b"k", value=b"p"),
    request(Opcode.PREPENDQ, b"k", value=b"p"),
    request(Opcode.DELETE, b"k"),
    request(Opcode.DELETEQ, b"k", cas=5),
    request(Opcode.INCREMENT, b"n", INCR_EXTRAS),
    request(Opcode.INCREMENTQ, b"n", INCR_EXTRAS),
    request(Opcode.DECREMENT, b"n", INCR_EXTRAS),
    request(Opcode.DECREMENTQ, b"n", INCR_EXTRAS),
    request(Opcode.FLUSH),
    request(Opcode.FLUSHQ, extras=struct.pack(">I", 10)),
    request(Opcode.NOOP),
    request(Opcode.VERSION),
    request(Opcode.STAT),
    request(Opcode.STAT, b"settings"),
    request(Opcode.TOUCH, b"k", TOUCH_EXTRAS),
    request(Opcode.GAT, b"k", TOUCH_EXTRAS),
    request(Opcode.GATQ, b"k", TOUCH_EXTRAS),
    request(Opcode.GATK, b"k", TOUCH_EXTRAS),
    request(Opcode.GATKQ, b"k", TOUCH_EXTRAS),
]


@pytest.mark.parametrize("wire", VALID, ids=lambda w: Opcode(w[1]).name)
def test_valid_requests_become_request_events(wire: bytes) -> None:
    event = only_event(wire)
    assert isinstance(event, Request)
    header = Header.unpack_from(wire)
    assert event.header == header
    start = HEADER_SIZE
    assert event.extras == wire[start : start + header.extras_length]
    start += header.extras_length
    assert event.key == wire[start : start + header.key_length]
    if SHAPES[header.opcode].body.name == "VALUE":
        assert event.value == wire[start + header.key_length :]


def test_every_implemented_opcode_has_a_shape() -> None:
    assert set(SHAPES) == set(Opcode)


def test_quit_and_the_rest_of_a_pipeline() -> None:
    events = parse_all(request(Opcode.QUIT) + request(Opcode.NOOP))
    assert [e.header.opcode for e in events] == [Opcode.QUIT, Opcode.NOOP]  # type: ignore[attr-defined]


def test_stat_and_touch_leave_the_rest_of_the_body_to_the_next_request() -> None:
    # memcached reads only the extras and key of these; the rest is parsed as a request.
    noop = request(Opcode.NOOP, opaque=9)
    events = parse_all(frame(Opcode.TOUCH, b"k", TOUCH_EXTRAS, noop))
    assert [type(e) for e in events] == [Request, Request]
    assert events[1].header.opaque == 9  # type: ignore[attr-defined]
    events = parse_all(frame(Opcode.STAT, b"", b"", noop))
    assert events[1].header.opcode == Opcode.NOOP  # type: ignore[attr-defined]


# -- hostile input ------------------------------------------------------------------------------


def test_undefined_opcode_answers_unknown_command_and_swallows_the_body() -> None:
    noop = request(Opcode.NOOP)
    # memcached discards `body length` bytes after the key it has already read.
    events = parse_all(frame(0x40, b"abc") + b"xyz" + noop)
    assert events[0] == Reject(
        Header.unpack_from(frame(0x40, b"abc")), Status.UNKNOWN_COMMAND, False, 3
    )
    assert events[1].header.opcode == Opcode.NOOP  # type: ignore[attr-defined]
    for opcode in (0x1B, 0x1F, 0x25, 0x30, 0xFF):
        event = only_event(frame(opcode))
        assert isinstance(event, Reject) and event.status == Status.UNKNOWN_COMMAND
        assert not event.close


def test_undefined_opcode_with_a_body_past_2_gib_swallows_nothing() -> None:
    events = parse_all(frame(0x40, body_length=0xFFFFFFF0) + request(Opcode.NOOP))
    assert [type(e) for e in events] == [Reject, Request]


def test_key_and_extras_longer_than_the_body_answer_0x81_and_close() -> None:
    parser = BinaryParser(fits)
    events = parse_all(frame(Opcode.GET, b"abc", body_length=2) + request(Opcode.NOOP), parser)
    assert len(events) == 1
    assert isinstance(events[0], Reject)
    assert (events[0].status, events[0].close) == (Status.UNKNOWN_COMMAND, True)
    assert parser.closed and parser.buffered == 0
    parser.receive_data(request(Opcode.NOOP))
    assert drain(parser) == []


@pytest.mark.parametrize(
    "wire",
    [
        frame(Opcode.SET, b"k", b"1234", b"v"),  # set needs 8 bytes of extras
        frame(Opcode.SET, b"", STORE_EXTRAS, b"v"),  # and a key
        frame(Opcode.GET, b"k", b"1234"),
        frame(Opcode.GET),
        frame(Opcode.GET, b"k", body_length=2),
        frame(Opcode.DELETE, b"k", b"x"),
        frame(Opcode.INCREMENT, b"n", b"short"),
        frame(Opcode.INCREMENT, b"n", INCR_EXTRAS, b"extra"),
        frame(Opcode.VERSION, b"x"),
        frame(Opcode.NOOP, extras=b"1"),
        frame(Opcode.QUIT, value=b"x"),
        frame(Opcode.FLUSH, extras=b"12"),
        frame(Opcode.FLUSH, b"k"),
        frame(Opcode.STAT, extras=b"1234"),
        frame(Opcode.TOUCH, b"k"),
        frame(Opcode.GAT, b"", TOUCH_EXTRAS),
        frame(Opcode.APPEND, b"k", b"1234", b"v"),
        frame(Opcode.SASL_LIST_MECHS, b"k"),
        frame(Opcode.GET, b"k" * 251),  # keys are at most 250 bytes
        frame(0x40, b"k" * 251),  # checked before the opcode
    ],
    ids=lambda w: f"{w[1]:#04x}-{len(w)}",
)
def test_wrong_shape_answers_invalid_arguments_and_closes(wire: bytes) -> None:
    event = only_event(wire + request(Opcode.NOOP))
    assert isinstance(event, Reject)
    assert (event.status, event.close) == (Status.INVALID_ARGUMENTS, True)


def test_bad_magic_closes_with_nothing() -> None:
    assert parse_all(b"\x81" + bytes(23)) == [ev.Close("bad magic byte")]
    events = parse_all(request(Opcode.NOOP) + b"get a\r\n" + bytes(17))
    assert [type(e) for e in events] == [Request, ev.Close]


def test_too_large_value_is_swallowed_without_buffering() -> None:
    parser = BinaryParser(fits)
    wire = request(Opcode.SET, b"k", STORE_EXTRAS, b"x" * 5000)
    parser.receive_data(wire[:2000])
    events = drain(parser)
    assert events == [ValueTooLarge(Header.unpack_from(wire), STORE_EXTRAS, b"k", True)]
    assert parser.mid_request and parser.buffered == 0
    parser.receive_data(wire[2000:4000])
    assert drain(parser) == [] and parser.buffered == 0
    parser.receive_data(wire[4000:] + request(Opcode.NOOP))
    assert [type(e) for e in drain(parser)] == [Request]
    assert not parser.mid_request


def test_append_too_large_counts_no_flags() -> None:
    seen: list[tuple[int, int, int]] = []

    def record(nkey: int, flags: int, nbytes: int) -> bool:
        seen.append((nkey, flags, nbytes))
        return False

    parser = BinaryParser(record)
    assert [type(e) for e in parse_all(request(Opcode.APPEND, b"key", value=b"abc"), parser)] == [
        ValueTooLarge
    ]
    parse_all(request(Opcode.SET, b"key", STORE_EXTRAS, b"abcd"), parser)
    assert seen == [(3, 0, 3), (3, 7, 4)]


def test_value_of_2_gib_or_more_closes_without_allocating() -> None:
    for body in (0xFFFFFFFF, 0xFFFFFFF0, 0x80000000 + 9):
        parser = BinaryParser(fits)
        wire = frame(Opcode.SET, b"k", STORE_EXTRAS, body_length=body)
        assert parse_all(wire + b"x" * 100, parser) == [ev.Close("value length past 2 GiB")]
        assert parser.buffered == 0


def test_value_just_under_2_gib_is_swallowed_as_too_large() -> None:
    parser = BinaryParser(fits)
    body = 0x7FFFFFFF
    events = parse_all(frame(Opcode.SET, b"k", STORE_EXTRAS, body_length=body), parser)
    assert [type(e) for e in events] == [ValueTooLarge]
    parser.receive_data(b"x" * 100_000)
    assert drain(parser) == [] and parser.buffered == 0 and parser.mid_request


def test_sasl_answers_unknown_command_and_swallows_the_data() -> None:
    events = parse_all(
        request(Opcode.SASL_LIST_MECHS)
        + request(Opcode.SASL_AUTH, b"PLAIN", value=b"\0user\0pw")
        + request(Opcode.NOOP)
    )
    assert [(type(e), getattr(e, "status", None)) for e in events] == [
        (Reject, Status.UNKNOWN_COMMAND),
        (Reject, Status.UNKNOWN_COMMAND),
        (Request, None),
    ]


def test_key_and_extras_beyond_the_read_buffer_close() -> None:
    parser = BinaryParser(fits)
    header = Header(0x80, Opcode.GET, 20000, 0, 0, 0, 20000, 0, 0).pack()
    parser.receive_data(header + b"k" * 1000)
    assert drain(parser) == []  # memcached waits until its 16 KiB buffer is full
    parser.receive_data(b"k" * READ_BUFFER_SIZE)
    assert drain(parser) == [ev.Close("header, extras and key exceed the read buffer")]


# -- byte splits --------------------------------------------------------------------------------

PIPELINE = b"".join(VALID) + frame(0x40, b"abc") + b"zzz" + request(Opcode.NOOP, opaque=1)


def test_every_byte_split_gives_the_same_events() -> None:
    expected = parse_all(PIPELINE)
    assert len(expected) == len(VALID) + 2
    for cut in range(len(PIPELINE) + 1):
        parser = BinaryParser(fits)
        events = parse_all(PIPELINE[:cut], parser)
        parser.receive_data(PIPELINE[cut:])
        events += drain(parser)
        assert events == expected, cut


def test_byte_at_a_time() -> None:
    parser = BinaryParser(fits)
    events: list[object] = []
    for i in range(len(PIPELINE)):
        parser.receive_data(PIPELINE[i : i + 1])
        events += drain(parser)
    assert events == parse_all(PIPELINE)


# -- generated frames ---------------------------------------------------------------------------

BOUND = max(READ_BUFFER_SIZE, HEADER_SIZE + 255 + 250 + VALUE_LIMIT)

opcodes = st.one_of(st.sampled_from(list(Opcode)), st.integers(0, 255))
lengths = st.one_of(st.integers(0, 40), st.integers(0, 70_000), st.integers(0, 2**32 - 1))


@st.composite
def valid_frames(draw: st.DrawFn) -> bytes:
    opcode = draw(st.sampled_from(list(Opcode)))
    shape = SHAPES[opcode]
    extras = bytes(draw(st.sampled_from(shape.extras)))
    key = b"" if shape.key is False else draw(st.binary(min_size=1, max_size=250))
    if shape.key is None:
        key = draw(st.sampled_from([b"", b"items", b"settings"]))
    value = (
        draw(st.binary(max_size=VALUE_LIMIT)) if shape.body.name in ("VALUE", "SWALLOW") else b""
    )
    return request(
        opcode,
        key,
        extras,
        value,
        opaque=draw(st.integers(0, 2**32 - 1)),
        cas=draw(st.integers(0, 2**64 - 1)),
    )


@st.composite
def hostile_frames(draw: st.DrawFn) -> bytes:
    key = draw(st.binary(max_size=300))
    extras = draw(st.binary(max_size=30))
    value = draw(st.binary(max_size=64))
    body = draw(st.one_of(st.just(len(key) + len(extras) + len(value)), lengths))
    magic = draw(st.sampled_from([0x80, 0x80, 0x80, 0x81, 0x00]))
    header = Header(
        magic,
        draw(opcodes),
        len(key),
        len(extras),
        draw(st.integers(0, 255)),
        draw(st.integers(0, 0xFFFF)),
        body,
        0,
        0,
    )
    return header.pack() + extras + key + value


def feed(parser: BinaryParser, wire: bytes, cuts: list[int]) -> list[object]:
    events: list[object] = []
    pieces = sorted(c % (len(wire) + 1) for c in cuts)
    start = 0
    for end in [*pieces, len(wire)]:
        parser.receive_data(wire[start:end])
        start = max(start, end)
        events += drain(parser)
        assert parser.buffered <= BOUND
    return events


@settings(max_examples=150, deadline=None)
@given(
    st.lists(valid_frames(), min_size=1, max_size=6), st.lists(st.integers(0, 10**6), max_size=6)
)
def test_generated_valid_frames_parse_back(frames: list[bytes], cuts: list[int]) -> None:
    events = feed(BinaryParser(fits), b"".join(frames), cuts)
    assert len(events) == len(frames)
    for wire, event in zip(frames, events, strict=True):
        header = Header.unpack_from(wire)
        if header.opcode in (Opcode.SASL_LIST_MECHS, Opcode.SASL_AUTH, Opcode.SASL_STEP):
            assert isinstance(event, Reject) and not event.close
        else:
            assert isinstance(event, Request) and event.header == header


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.one_of(valid_frames(), hostile_frames(), st.binary(max_size=40)), min_size=1, max_size=6
    ),
    st.lists(st.integers(0, 10**6), max_size=8),
)
def test_generated_hostile_frames_never_raise_and_stay_bounded(
    frames: list[bytes], cuts: list[int]
) -> None:
    parser = BinaryParser(fits)
    events = feed(parser, b"".join(frames), cuts)
    for index, event in enumerate(events):
        assert isinstance(event, (Request, ValueTooLarge, Reject, ev.Close))
        if isinstance(event, ev.Close) or (isinstance(event, Reject) and event.close):
            assert index == len(events) - 1  # nothing after the connection is closed
            assert parser.closed


# -- the dispatcher -------------------------------------------------------------------------------


@pytest.fixture
def dispatcher() -> BinaryDispatcher:
    cache = Cache(8 << 20, item_size_max=VALUE_LIMIT * 4, framing=TEXT_FRAMING)
    return BinaryDispatcher(Settings(), cache, ServerCounters())


def answers(dispatcher: BinaryDispatcher, wire: bytes) -> list[tuple[int, int, bytes, bytes]]:
    """(opcode, status, key, value) of each response frame to the requests in ``wire``."""
    handle = dispatcher.session().handle
    out: list[Reply] = []
    for event in parse_all(wire, BinaryParser(dispatcher.cache.item_fits)):
        if handle(event, out) == Outcome.CLOSE:  # type: ignore[arg-type]
            break
    data = b"".join(bytes(piece) for piece in out)
    frames = []
    while data:
        header = Header.unpack_from(data)
        assert header.magic == 0x81
        body = data[HEADER_SIZE : HEADER_SIZE + header.body_length]
        key = body[header.extras_length : header.extras_length + header.key_length]
        frames.append(
            (header.opcode, header.status, key, body[header.extras_length + header.key_length :])
        )
        data = data[HEADER_SIZE + header.body_length :]
    return frames


def test_quiet_requests_answer_only_hits_and_errors(dispatcher: BinaryDispatcher) -> None:
    wire = (
        request(Opcode.SETQ, b"a", STORE_EXTRAS, b"1")
        + request(Opcode.GETQ, b"a")
        + request(Opcode.GETQ, b"nx")
        + request(Opcode.GETKQ, b"a")
        + request(Opcode.ADDQ, b"a", STORE_EXTRAS, b"2")
        + request(Opcode.DELETEQ, b"nx")
        + request(Opcode.INCREMENTQ, b"a", INCR_EXTRAS)
        + request(Opcode.FLUSHQ)
        + request(Opcode.NOOP)
    )
    assert answers(dispatcher, wire) == [
        (Opcode.GETQ, Status.OK, b"", b"1"),
        (Opcode.GETKQ, Status.OK, b"a", b"1"),
        (Opcode.ADDQ, Status.KEY_EXISTS, b"", b"Data exists for key."),
        (Opcode.DELETEQ, Status.KEY_NOT_FOUND, b"", b"Not found"),
        (Opcode.NOOP, Status.OK, b"", b""),
    ]


def test_incr_creates_with_initial_value_unless_exptime_is_all_ones(
    dispatcher: BinaryDispatcher,
) -> None:
    create = struct.pack(">QQI", 5, 42, 0)
    no_create = struct.pack(">QQI", 5, 42, 0xFFFFFFFF)
    assert answers(
        dispatcher,
        request(Opcode.INCREMENT, b"n", no_create)
        + request(Opcode.INCREMENT, b"n", create)
        + request(Opcode.INCREMENT, b"n", create)
        + request(Opcode.DECREMENT, b"n", struct.pack(">QQI", 100, 0, 0)),
    ) == [
        (Opcode.INCREMENT, Status.KEY_NOT_FOUND, b"", b"Not found"),
        (Opcode.INCREMENT, Status.OK, b"", struct.pack(">Q", 42)),
        (Opcode.INCREMENT, Status.OK, b"", struct.pack(">Q", 47)),
        (Opcode.DECREMENT, Status.OK, b"", struct.pack(">Q", 0)),
    ]


def test_stat_frames_end_with_an_empty_one(dispatcher: BinaryDispatcher) -> None:
    frames = answers(dispatcher, request(Opcode.STAT, b"settings") + request(Opcode.STAT, b"bogus"))
    assert (Opcode.STAT, Status.OK, b"binding_protocol", b"auto-negotiate") in frames
    assert frames[-2:] == [
        (Opcode.STAT, Status.OK, b"", b""),
        (Opcode.STAT, Status.KEY_NOT_FOUND, b"", b"Not found"),
    ]


def test_bad_magic_drops_responses_memcached_had_not_sent(dispatcher: BinaryDispatcher) -> None:
    # An error makes memcached write out what it holds; a plain set answer stays queued.
    assert answers(
        dispatcher,
        request(Opcode.GET, b"nx")
        + request(Opcode.SET, b"k", STORE_EXTRAS, b"v")
        + bytes(HEADER_SIZE),
    ) == [(Opcode.GET, Status.KEY_NOT_FOUND, b"", b"Not found")]
