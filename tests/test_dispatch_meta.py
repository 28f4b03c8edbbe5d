"""Meta command replies for cases a differential test cannot reach (memory exhaustion)."""

from __future__ import annotations

from memcachepy.config import Settings
from memcachepy.dispatch.meta import key_token
from memcachepy.dispatch.reply import Reply
from memcachepy.dispatch.text import TEXT_FRAMING, Dispatcher
from memcachepy.ops.counters import ServerCounters
from memcachepy.protocol.events import NEED_DATA
from memcachepy.protocol.text import TextParser
from memcachepy.store.cache import Cache
from tests.store.clock import FakeClock

MB = 1 << 20


def session(cache: Cache) -> tuple[TextParser, Dispatcher, ServerCounters]:
    counters = ServerCounters()
    return TextParser(cache.item_fits), Dispatcher(Settings(), cache, counters), counters


def ask(parser: TextParser, dispatcher: Dispatcher, data: bytes) -> bytes:
    out: list[Reply] = []
    parser.receive_data(data)
    for _ in range(1000):
        event = parser.next_event()
        if event is NEED_DATA:
            break
        dispatcher.handle(event, out)  # type: ignore[arg-type]
    return b"".join(bytes(part) for part in out)


def full_cache() -> tuple[TextParser, Dispatcher, ServerCounters]:
    """A -M cache whose only page is full of 100 kB items (and no memory for another)."""
    cache = Cache(MB, evict=False, clock=FakeClock(), framing=TEXT_FRAMING)
    parser, dispatcher, counters = session(cache)
    value = b"v" * 100_000
    for i in range(100):
        reply = ask(parser, dispatcher, b"ms k%d %d\r\n%s\r\n" % (i, len(value), value))
        if reply != b"HD\r\n":
            assert reply == b"SERVER_ERROR out of memory storing object\r\n"
            break
    else:
        raise AssertionError("the cache never filled")
    return parser, dispatcher, counters


def test_ms_out_of_memory_drops_the_old_value_whatever_the_mode() -> None:
    parser, dispatcher, counters = full_cache()
    value = b"w" * 100_000
    # A replace that cannot be allocated: the error is never hidden, the old value goes.
    reply = ask(parser, dispatcher, b"ms k0 %d MR q\r\n%s\r\nmg k0 v\r\n" % (len(value), value))
    assert reply == b"SERVER_ERROR out of memory storing object\r\nEN\r\n"
    assert counters.store_no_memory >= 2


def test_vivify_without_memory() -> None:
    # The only page belongs to the 100 kB class: a small item has nowhere to go (-M).
    parser, dispatcher, _ = full_cache()
    # mg N falls back to a plain miss; ma N reports the allocation failure.
    assert ask(parser, dispatcher, b"mg nx N30 v\r\n") == b"EN\r\n"
    assert ask(parser, dispatcher, b"ma nx N30 v\r\n") == (
        b"SERVER_ERROR Out of memory allocating new item\r\n"
    )


def test_key_token_encodes_binary_keys() -> None:
    assert key_token(b"plain", False) == b" kplain"
    assert key_token(b"\x00\xff a", True) == b" kAP8gYQ== b"
