"""ElastiCache's ``config get|set``: only with ``config_commands``, else unknown as in memcached."""

from __future__ import annotations

import pytest

from memcachepy.protocol import events as ev
from memcachepy.protocol.text import TextParser
from memcachepy.protocol.wire import (
    BAD_DATA_CHUNK,
    BAD_FORMAT,
    CONFIG_TOO_LARGE,
    ERROR,
    MAX_CONFIG_BLOCK,
)
from tests.protocol.test_text import drain, parse_all

BODY = b"3\nnode-a|10.0.0.1|11211 node-b||11212\n"
SET = b"config set cluster 0 %d tok3n\r\n%s\r\n" % (len(BODY), BODY)


def config_parser() -> TextParser:
    return TextParser(config_commands=True)


def test_without_config_commands_config_is_an_unknown_command() -> None:
    # memcached 1.6.18 answers ERROR and reads the would-be data block as commands.
    assert parse_all(b"config get cluster\r\n") == [ev.ErrorReply(ERROR)]
    assert parse_all(b"config set cluster 0 3\r\nabc\r\nget k\r\n") == [
        ev.ErrorReply(ERROR),
        ev.ErrorReply(ERROR),
        ev.Retrieve([b"k"], False, None),
    ]
    # memcached dispatches on the first letter: unknown "c..." words skip the HTTP/ check.
    assert parse_all(b"config get HTTP/1.1\r\n") == [ev.ErrorReply(ERROR)]


def test_config_get() -> None:
    assert parse_all(b"config get cluster\r\nconfig get other\r\n", config_parser()) == [
        ev.ConfigGet(b"cluster"),
        ev.ConfigGet(b"other"),
    ]


def test_config_set_reads_its_data_block() -> None:
    events = parse_all(SET + b"config set cluster 7 3\r\n1\n\n\r\nget k\r\n", config_parser())
    assert events == [
        ev.ConfigSet(b"cluster", 0, BODY, b"tok3n"),
        ev.ConfigSet(b"cluster", 7, b"1\n\n", None),
        ev.Retrieve([b"k"], False, None),
    ]


@pytest.mark.parametrize(
    "line",
    [
        b"config\r\n",
        b"config get\r\n",
        b"config get cluster x\r\n",
        b"config foo cluster\r\n",
        b"config set cluster 0\r\n",
        b"config set cluster 0 3 tok extra\r\n",
    ],
)
def test_wrong_forms_answer_error(line: bytes) -> None:
    assert parse_all(line, config_parser()) == [ev.ErrorReply(ERROR)]


@pytest.mark.parametrize(
    "line",
    [
        b"config set cluster x 3\r\n",
        b"config set cluster 0 -1\r\n",
        b"config set " + b"k" * 251 + b" 0 3\r\n",
    ],
)
def test_bad_numbers_answer_bad_format_without_reading_a_block(line: bytes) -> None:
    assert parse_all(line + b"get k\r\n", config_parser()) == [
        ev.ErrorReply(BAD_FORMAT),
        ev.Retrieve([b"k"], False, None),
    ]


def test_bad_data_chunk() -> None:
    events = parse_all(b"config set cluster 0 3\r\n1\n\nxx\r\nget k\r\n", config_parser())
    assert events[0] == ev.ErrorReply(BAD_DATA_CHUNK, False)
    assert events[-1] == ev.Retrieve([b"k"], False, None)


def test_too_large_block_is_discarded_unread() -> None:
    parser = config_parser()
    size = MAX_CONFIG_BLOCK + 1
    parser.receive_data(b"config set cluster 0 %d\r\n" % size)
    assert drain(parser) == [ev.ErrorReply(CONFIG_TOO_LARGE)]
    assert parser.mid_request  # the reply waits until the block is gone, as for a set
    parser.receive_data(b"x" * size + b"\r\nget k\r\n")
    assert drain(parser) == [ev.Retrieve([b"k"], False, None)]
    assert not parser.mid_request


def test_every_byte_split_gives_the_same_events() -> None:
    data = b"config get cluster\r\n" + SET + b"get k\r\n"
    expected = parse_all(data, config_parser())
    for cut in range(1, len(data)):
        parser = config_parser()
        parser.receive_data(data[:cut])
        events = drain(parser)
        parser.receive_data(data[cut:])
        assert events + drain(parser) == expected, cut
