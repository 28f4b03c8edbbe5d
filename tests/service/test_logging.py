"""-v, -vv, -vvv and ``verbosity``: what the daemon writes to stderr (journald's input)."""

from __future__ import annotations

import re
import time
from pathlib import Path

from memcachepy.ops.logs import describe, reply_summary
from memcachepy.protocol import events as ev
from tests.e2e.wire import exchange
from tests.servers import free_port, memcached_argv, memcachepy_argv, spawn_logged

REQUESTS = b"set k 0 0 1\r\nx\r\nget k nope\r\nset k 0 0 3\r\nabcde\r\n"


def logged(tmp_path: Path, *flags: str, requests: bytes = REQUESTS, then: bytes = b"") -> str:
    """Run requests against a daemon started with ``flags``; its stderr."""
    log = tmp_path / "daemon.log"
    port = free_port()
    server = spawn_logged(memcachepy_argv(port, *flags), port, str(log))
    try:
        with server.connect() as sock:
            exchange(sock, requests + b"version\r\n", b"VERSION 1.6.18-memcachepy-0.1.0\r\n")
            if then:
                exchange(sock, then + b"version\r\n", b"VERSION 1.6.18-memcachepy-0.1.0\r\n")
        time.sleep(0.1)  # the close is logged after the client goes
    finally:
        server.stop()
    return log.read_text()


def test_quiet_by_default(tmp_path: Path) -> None:
    assert "memcachepy" not in logged(tmp_path)


def test_v_logs_connections_and_protocol_errors_not_commands(tmp_path: Path) -> None:
    text = logged(tmp_path, "-v")
    assert re.search(r"INFO <\d+ new connection from tcp:127\.0\.0\.1:\d+", text)
    assert re.search(r"INFO <\d+ protocol error: CLIENT_ERROR bad data chunk", text)
    assert re.search(r"INFO <\d+ connection closed", text)
    assert "set k" not in text


def test_vv_logs_commands_and_replies_as_memcached(tmp_path: Path) -> None:
    text = logged(tmp_path, "-vv")
    for pattern in (
        r"DEBUG <(\d+) set k 0 0 1\n",
        r"DEBUG >\d+ STORED\n",
        r"DEBUG <\d+ get k nope\n",
        r"DEBUG >\d+ sending key k\n",
        r"DEBUG >\d+ END\n",
        r"DEBUG <\d+ version\n",
    ):
        assert re.search(pattern, text), pattern
    assert "TRACE" not in text


def test_vvv_adds_whole_replies(tmp_path: Path) -> None:
    text = logged(tmp_path, "-vvv")
    assert "TRACE >" in text and "b'VALUE k 0 1\\r\\nx\\r\\nEND\\r\\n'" in text


def test_verbosity_command_turns_command_logging_on_and_off(tmp_path: Path) -> None:
    text = logged(
        tmp_path,
        requests=b"get before\r\nverbosity 2\r\nget during\r\n",
        then=b"verbosity 0\r\nget after\r\n",
    )
    assert "get during" in text
    assert "get before" not in text and "get after" not in text


def test_describe_shows_the_command_line_without_data() -> None:
    assert describe(ev.Store(b"cas", b"k", 5, 0, b"xyz", 77, True)) == "cas k 5 0 3 77 noreply"
    assert describe(ev.Retrieve([b"a", b"b"], True, 10)) == "gats 10 a b"
    assert describe(ev.Arithmetic(False, b"n", 3, False)) == "decr n 3"
    assert reply_summary(b"VALUE a 0 5\r\nEND\r\n\r\nVALUE b 1 0\r\n\r\nEND\r\n") == [
        "sending key a",
        "sending key b",
        "END",
    ]


BAD_COMMANDS = b"bogus\r\nbogus two words\r\nincr\r\nstats bogus\r\n"


def _echoes(text: str) -> list[str]:
    """The ``<fd line`` / ``>fd reply`` pairs logged for BAD_COMMANDS, fds removed."""
    lines = [
        re.sub(r"^.*?([<>])\d+ ", r"\1 ", line)
        for line in text.splitlines()
        if re.search(r"(^|DEBUG )[<>]\d+ ", line)
    ]
    return [line for line in lines if "bogus" in line or line in ("< incr", "> ERROR")]


def test_vv_echoes_the_command_that_drew_error_as_memcached(tmp_path: Path) -> None:
    ours = _echoes(logged(tmp_path, "-vv", requests=BAD_COMMANDS))
    log = tmp_path / "memcached.log"
    port = free_port()
    real = spawn_logged(memcached_argv(port, "-vv"), port, str(log))
    try:
        with real.connect() as sock:
            exchange(sock, BAD_COMMANDS + b"version\r\n", b"VERSION 1.6.18\r\n")
    finally:
        real.stop()
    theirs = _echoes(log.read_text())
    assert theirs == [
        "< bogus",
        "> ERROR",
        "< bogus two words",
        "> ERROR",
        "< incr",
        "> ERROR",
        "< stats bogus",
        "> ERROR",
    ]
    assert ours == theirs
