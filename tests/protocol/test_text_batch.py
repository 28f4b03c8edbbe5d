"""TextParser.serve: a whole read in one call hands over exactly the events of next_event."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from memcachepy.protocol import events as ev
from memcachepy.protocol.text import NOT_PLAIN, OUTPUT_FULL, TextParser
from tests.protocol.test_text import PIPELINE, parse_all


class Recorder:
    """A sink that writes every call down as the event it stands for."""

    def __init__(self, stop_on: type | None = None) -> None:
        self.seen: list[object] = []
        self.stop_on = stop_on

    def _note(self, event: object, out: list[Any]) -> int:
        self.seen.append(event)
        out.append(b"x")
        return 7 if self.stop_on is not None and isinstance(event, self.stop_on) else 0

    def retrieve(self, keys: list[bytes], with_cas: bool, exptime: int | None,
                 out: list[Any]) -> int:
        return self._note(ev.Retrieve(list(keys), with_cas, exptime), out)

    def store(self, command: bytes, key: bytes, flags: int, exptime: int, data: bytes,
              noreply: bool, out: list[Any]) -> int:
        return self._note(ev.Store(command, key, flags, exptime, data, 0, noreply), out)

    def delete(self, key: bytes, noreply: bool, out: list[Any]) -> int:
        return self._note(ev.Delete(key, noreply), out)

    def arithmetic(self, incr: bool, key: bytes, delta: int, noreply: bool,
                   out: list[Any]) -> int:
        return self._note(ev.Arithmetic(incr, key, delta, noreply), out)

    def touch(self, key: bytes, exptime: int, noreply: bool, out: list[Any]) -> int:
        return self._note(ev.Touch(key, exptime, noreply), out)

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


def test_fast_lines_hand_over_the_events_of_next_event() -> None:
    sink = Recorder()
    parser = TextParser()
    parser.receive_data(FAST)
    serve_all(parser, sink)
    assert sink.seen == parse_all(FAST)


def test_every_byte_split_hands_over_the_same_events() -> None:
    for data in (PIPELINE, FAST):
        expected = parse_all(data)
        for cut in range(len(data) + 1):
            sink = Recorder()
            parser = TextParser()
            parser.receive_data(data[:cut])
            serve_all(parser, sink)
            parser.receive_data(data[cut:])
            serve_all(parser, sink)
            assert sink.seen == expected, cut


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
@given(st.lists(st.sampled_from([
    b"get a b\r\n", b"set k 0 0 3\r\nabc\r\n", b"delete k\r\n", b"incr k 1\r\n",
    b"touch k 1\r\n", b"gats 1 k\r\n", b"get  k\r\n", b"set k 0 0 1\r\nxx\r\n",
    b"bogus\r\n", b"\0\r\n", b"set k 0 0 4\r\n", b"get k\n", b"\r",
]), max_size=12), st.integers(0, 200), st.integers(1, 5))
def test_any_mix_split_anywhere(parts: list[bytes], cut: int, budget: int) -> None:
    data = b"".join(parts)
    cut = min(cut, len(data))
    sink = Recorder()
    parser = TextParser()
    parser.receive_data(data[:cut])
    serve_all(parser, sink, budget)
    parser.receive_data(data[cut:])
    serve_all(parser, sink, budget)
    assert sink.seen == parse_all(data)


def test_a_request_that_adds_an_observer_ends_the_batch() -> None:
    class Verbosity(Recorder):
        def plain(self) -> bool:  # `verbosity 2` wraps every handler in command logging
            return not any(isinstance(event, ev.Verbosity) for event in self.seen)

    sink = Verbosity()
    parser = TextParser()
    parser.receive_data(b"get a\r\nverbosity 2\r\nget b\r\n")
    assert parser.serve(sink, [], 100, 1 << 30) == (NOT_PLAIN, 2)
    assert parser.next_event() == ev.Retrieve([b"b"], False, None)
