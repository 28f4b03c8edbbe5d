"""TextParser.serve: a whole read in one call hands over exactly the events of next_event."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from memcachepy.protocol import events as ev
from memcachepy.protocol.text import RequestSink, TextParser
from memcachepy.protocol.text_events import RETRIEVE_CAS, RETRIEVE_TOUCH, retrieval_kind
from memcachepy.protocol.wire import NOT_PLAIN, OUTPUT_FULL
from tests.protocol.test_text import PIPELINE, parse_all


class Recorder(RequestSink):
    """A sink that writes every call down as the event it stands for."""

    def __init__(self, stop_on: type | None = None) -> None:
        self.seen: list[object] = []
        self.stop_on = stop_on
        self.direct = 0  # meta requests handed over as calls rather than events

    def _note(self, event: object, out: list[Any]) -> int:
        self.seen.append(event)
        out.append(b"x")
        return 7 if self.stop_on is not None and isinstance(event, self.stop_on) else 0

    def retrieve(
        self, keys: list[bytes], with_cas: bool, exptime: int | None, out: list[Any]
    ) -> int:
        return self._note(ev.Retrieve(list(keys), with_cas, exptime), out)

    def store(
        self,
        command: bytes,
        key: bytes,
        flags: int,
        exptime: int,
        data: bytes,
        noreply: bool,
        out: list[Any],
    ) -> int:
        return self._note(ev.Store(command, key, flags, exptime, data, 0, noreply), out)

    def delete(self, key: bytes, noreply: bool, out: list[Any]) -> int:
        return self._note(ev.Delete(key, noreply), out)

    def arithmetic(self, incr: bool, key: bytes, delta: int, noreply: bool, out: list[Any]) -> int:
        return self._note(ev.Arithmetic(incr, key, delta, noreply), out)

    def touch(self, key: bytes, exptime: int, noreply: bool, out: list[Any]) -> int:
        return self._note(ev.Touch(key, exptime, noreply), out)

    def meta_get(
        self,
        key: bytes,
        order: bytes,
        opaque: bytes,
        value: bool,
        quiet: bool,
        no_bump: bool,
        out: list[Any],
    ) -> int:
        self.direct += 1
        return self._note(
            ev.MetaGet(key, False, order, opaque, value, quiet, no_bump, None, None, None, None),
            out,
        )

    def meta_set(
        self,
        key: bytes,
        data: bytes,
        flags: int,
        exptime: int,
        quiet: bool,
        order: bytes,
        opaque: bytes,
        out: list[Any],
    ) -> int:
        self.direct += 1
        return self._note(
            ev.MetaSet(key, False, data, b"S", flags, exptime, None, False, quiet, order, opaque),
            out,
        )

    def meta_delete(
        self, key: bytes, quiet: bool, order: bytes, opaque: bytes, out: list[Any]
    ) -> int:
        self.direct += 1
        return self._note(ev.MetaDelete(key, False, None, False, None, quiet, order, opaque), out)

    def event(self, event: ev.Event, out: list[Any]) -> int:
        return self._note(event, out)

    def plain(self) -> bool:
        return True


def serve_all(parser: TextParser, sink: Recorder, budget: int = 1000) -> int:
    """Serve until nothing complete is left; returns how many serve calls it took."""
    calls = 0
    while True:
        calls += 1
        outcome, count = parser.serve(sink, [], budget, 1 << 30)
        if outcome or count < budget:
            return calls


def serve_in_two(data: bytes, cut: int, budget: int = 1000) -> list[object]:
    """What a parser hands over when ``data`` arrives in two reads, cut at ``cut``."""
    sink = Recorder()
    parser = TextParser()
    parser.receive_data(data[:cut])
    serve_all(parser, sink, budget)
    parser.receive_data(data[cut:])
    serve_all(parser, sink, budget)
    return sink.seen


# The fast paths and the lines that look like them but must take the general rules.
FAST = (
    b"get a\r\nget a b c\r\ngets a\r\ngat 10 a b\r\ngats 5 c\r\n"
    b"set k 1 2 3\r\nabc\r\nadd k 0 0 1 noreply\r\nx\r\nreplace k 0 -1 0\r\n\r\n"
    b"set k 0 0 2\r\nxyz\r\n"  # bad data chunk
    b"set k 0 0 -1\r\nset k 0 0 5 junk\r\nab\r\n"
    b"delete a\r\ndelete a noreply\r\ndelete a 0\r\ndelete a 1\r\n"
    b"incr n 5\r\ndecr n 18446744073709551615 noreply\r\nincr n x\r\nincr n 1 2\r\n"
    b"touch a 10\r\ntouch a x\r\ntouch a 10 noreply\r\n"
    b"get  a\r\nget a \r\nget a\0b\r\nget " + b"k" * 251 + b"\r\n"
    b"gat x a\r\ngat 10\r\nget\r\n\r\n\n"
    b"set " + b"k" * 251 + b" 0 0 1\r\nx\r\n"
    b"version\r\nmn\r\nmg a v\r\n"
)
# mg ms md with the flags their fast paths take, and lines just outside them.
META = (
    b"mg a\r\nmg a s v t f c k O123 q\r\nmg a u l h\r\nmg a v v\r\nmg a vx\r\n"
    b"mg a T30 v\r\nmg a b\r\nmg a N5 R3\r\nmg a E7\r\nmg a O" + b"x" * 32 + b"\r\n"
    b"mg a O" + b"x" * 31 + b" k\r\nmg " + b"k" * 251 + b" v\r\nmg\r\nmg a \xff\r\n"
    b"mg a " + b" ".join(bytes((c,)) for c in b"vkfcstqhlu") + b" O1 Z Y X W V U\r\n"
    b"mg a " + b" ".join(bytes((c,)) for c in b"vkfcstqhlu") + b" O1 Z Y X W V\r\n"
    b"ms a 3\r\nabc\r\nms a 3 T30 F5 q k c O9\r\nxyz\r\nms a 3 T-1 F+4\r\nabc\r\n"
    b"ms a 3 Tx\r\nabc\r\nms a 3 F-1\r\nabc\r\nms a 2\r\nabc\r\nms a -1\r\n"
    b"ms a 3 I\r\nabc\r\nms a 3 MA\r\nabc\r\nms a 3 C9\r\nabc\r\nms a 0 q q\r\n\r\n"
    b"ms a\r\nms a x\r\nms a 3 b\r\nYWJj\r\nms a 3 v\r\nabc\r\nms a 3\r\nab\n\r\n"
    b"md a\r\nmd a q k O1\r\nmd a C5\r\nmd a q q\r\nmd a I T5\r\nmd a v\r\nmd\r\n"
    b"ma a\r\nme a\r\nmx a\r\n"
)


def test_fast_lines_hand_over_the_events_of_next_event() -> None:
    sink = Recorder()
    parser = TextParser()
    parser.receive_data(FAST)
    serve_all(parser, sink)
    assert sink.seen == parse_all(FAST)


def test_every_byte_split_hands_over_the_same_events() -> None:
    for data in (PIPELINE, FAST, META):
        expected = parse_all(data)
        for cut in range(len(data) + 1):
            assert serve_in_two(data, cut) == expected, cut


def test_meta_lines_hand_over_the_events_of_next_event() -> None:
    sink = Recorder()
    parser = TextParser(lambda nkey, flags, nbytes: nbytes < 100)
    data = META + b"ms big 100\r\n" + b"x" * 100 + b"\r\nmg big v\r\n"
    parser.receive_data(data)
    serve_all(parser, sink)
    assert sink.seen == parse_all(data, TextParser(lambda nkey, flags, nbytes: nbytes < 100))
    meta = sum(type(event) in (ev.MetaGet, ev.MetaSet, ev.MetaDelete) for event in sink.seen)
    assert 8 <= sink.direct < meta  # both ways taken


def test_long_get_lines_hand_over_the_events_of_next_event() -> None:
    keys = b" ".join(b"k%d" % n for n in range(20_000))
    data = (
        b"set k 0 0 1\r\nx\r\nget " + keys + b"\r\ngats 9 " + keys + b"\r\nget a\r\n"
        b"get " + keys + b" " + b"x" * 251 + b"\r\ngat x " + keys + b"\r\nmg k v\r\n"
    )
    expected = parse_all(data)
    assert sum(type(e) is ev.Retrieve and not e.last for e in expected) == 2  # sliced
    for cut in (0, 1, 4, 70_000, len(data) // 2, len(data) - 3, len(data)):
        for budget in (1, 3, 1000):
            assert serve_in_two(data, cut, budget) == expected, (cut, budget)


def test_budget_stops_the_batch_and_the_rest_follows() -> None:
    sink = Recorder()
    parser = TextParser()
    parser.receive_data(FAST)
    calls = serve_all(parser, sink, budget=3)
    expected = parse_all(FAST)
    assert sink.seen == expected
    assert calls == len(expected) // 3 + 1


def test_an_outcome_ends_the_batch() -> None:
    sink = Recorder(stop_on=ev.Delete)
    parser = TextParser()
    parser.receive_data(b"get a\r\ndelete b\r\nget c\r\n")
    assert parser.serve(sink, [], 100, 1 << 30) == (7, 2)
    assert sink.seen == [ev.Retrieve([b"a"], False, None), ev.Delete(b"b", False)]


def test_output_bound_ends_the_batch() -> None:
    sink = Recorder()
    parser = TextParser()
    parser.receive_data(b"get a\r\n" * 20)
    out: list[Any] = []
    assert parser.serve(sink, out, 100, 8) == (OUTPUT_FULL, 8)


@settings(max_examples=200)
@given(
    st.lists(
        st.sampled_from(
            [
                b"get a b\r\n",
                b"set k 0 0 3\r\nabc\r\n",
                b"delete k\r\n",
                b"incr k 1\r\n",
                b"touch k 1\r\n",
                b"gats 1 k\r\n",
                b"get  k\r\n",
                b"set k 0 0 1\r\nxx\r\n",
                b"bogus\r\n",
                b"\0\r\n",
                b"set k 0 0 4\r\n",
                b"get k\n",
                b"\r",
                b"mg k v t\r\n",
                b"ms k 2 T9\r\nab\r\n",
                b"md k q\r\n",
                b"ms k 1 q\r\nab\r\n",
                b"mg k v v\r\n",
                b"ms k 3\r\n",
            ]
        ),
        max_size=12,
    ),
    st.integers(0, 200),
    st.integers(1, 5),
)
def test_any_mix_split_anywhere(parts: list[bytes], cut: int, budget: int) -> None:
    data = b"".join(parts)
    assert serve_in_two(data, min(cut, len(data)), budget) == parse_all(data)


def test_a_request_that_adds_an_observer_ends_the_batch() -> None:
    class Verbosity(Recorder):
        def plain(self) -> bool:  # `verbosity 2` wraps every handler in command logging
            return not any(isinstance(event, ev.Verbosity) for event in self.seen)

    sink = Verbosity()
    parser = TextParser()
    parser.receive_data(b"get a\r\nverbosity 2\r\nget b\r\n")
    assert parser.serve(sink, [], 100, 1 << 30) == (NOT_PLAIN, 2)
    assert parser.next_event() == ev.Retrieve([b"b"], False, None)


WORDS = [b"get", b"gets", b"gat", b"set", b"add", b"delete", b"incr", b"touch", b"mg", b"ms"]
WORDS += [b"k", b"a", b"0", b"1", b"3", b"-1", b"v", b"noreply", b"abc", b"\0"]


@given(
    st.lists(
        st.tuples(
            st.lists(st.sampled_from(WORDS), min_size=0, max_size=6),
            st.lists(st.sampled_from([b" ", b" ", b"  ", b"\t"]), min_size=8, max_size=8),
            st.booleans(),
            st.booleans(),
        ),
        max_size=6,
    ),
    st.integers(0, 200),
)
def test_any_spacing_hands_over_the_events_of_next_event(
    lines: list[tuple[list[bytes], list[bytes], bool, bool]], cut: int
) -> None:
    """Leading, trailing and doubled spaces: the fast paths take a line only where the
    general rules read it the same way."""
    data = b""
    for words, gaps, lead, trail in lines:
        line = words[0] if words else b""
        for word, gap in zip(words[1:], gaps, strict=False):
            line += gap + word
        data += (b" " if lead else b"") + line + (b" " if trail else b"") + b"\r\n"
    assert serve_in_two(data, min(cut, len(data))) == parse_all(data)


# (with_cas, touches) of each retrieval command, as memcached's process_get_command.
RETRIEVALS = {
    b"get": (False, False),
    b"gets": (True, False),
    b"gat": (False, True),
    b"gats": (True, True),
}


@given(st.binary(max_size=5) | st.sampled_from([*RETRIEVALS, b"get ", b"Get", b"gatss"]))
def test_the_retrievals_are_get_gets_gat_and_gats(command: bytes) -> None:
    got = retrieval_kind(command)
    if command in RETRIEVALS:
        assert (bool(got & RETRIEVE_CAS), bool(got & RETRIEVE_TOUCH)) == RETRIEVALS[command]
        assert got >= 0
    else:
        assert got == -1
