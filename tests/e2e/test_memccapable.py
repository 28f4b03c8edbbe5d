"""libmemcached's conformance checker, memccapable, must pass every test: ASCII and binary.

It is also run against real memcached, which shows what a full pass looks like and keeps the
output parser honest. memccapable reads the ``VERSION`` reply: below 1.6 it expects errors for
``version foo bar``, ``version noreply`` and ``quit noreply``, which 1.6 accepts, so a server
that behaves like 1.6 must also report a version >= 1.6 for most of its tests to pass.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager

import pytest

from tests.servers import ServerProcess, memcached_server, memcachepy_server, require_binary

# The ASCII tests of memccapable (libmemcached-tools 1.1), in the order it runs them.
ASCII_TESTS = (
    "version",
    "quit",
    "verbosity",
    "set",
    "set noreply",
    "get",
    "gets",
    "mget",
    "flush",
    "flush noreply",
    "add",
    "add noreply",
    "replace",
    "replace noreply",
    "cas",
    "cas noreply",
    "delete",
    "delete noreply",
    "incr",
    "incr noreply",
    "decr",
    "decr noreply",
    "append",
    "append noreply",
    "prepend",
    "prepend noreply",
    "stat",
)
# Its binary tests, run after the ASCII ones when no mode flag (-a/-b) is given.
BINARY_TESTS = (
    "noop",
    "quit",
    "quitq",
    "set",
    "setq",
    "flush",
    "flushq",
    "add",
    "addq",
    "replace",
    "replaceq",
    "delete",
    "deleteq",
    "get",
    "getq",
    "getk",
    "getkq",
    "incr",
    "incrq",
    "decr",
    "decrq",
    "version",
    "append",
    "appendq",
    "prepend",
    "prependq",
    "stat",
)
ALL_TESTS = (
    *(f"ascii {name}" for name in ASCII_TESTS),
    *(f"binary {name}" for name in BINARY_TESTS),
)
# "ascii <name>" padded with spaces, then "[pass]" (or "[skip]"); a failing test prints no
# verdict on stdout (its "[FAIL]" goes to stderr), so the next name follows directly.
RESULT = re.compile(r"((?:ascii|binary) [a-z]+(?: noreply)?)\s*(\[(?:pass|skip|FAIL)\])?")

SERVERS: dict[str, Callable[[], AbstractContextManager[ServerProcess]]] = {
    "memcached": memcached_server,
    "memcachepy": memcachepy_server,
}


def verdicts(stdout: str) -> dict[str, str]:
    """Test name -> "[pass]"/"[skip]"/"[FAIL]", or "" when the line carries no verdict."""
    return {match.group(1): match.group(2) or "" for match in RESULT.finditer(stdout)}


@pytest.fixture(params=sorted(SERVERS))
def server(request: pytest.FixtureRequest) -> Iterator[ServerProcess]:
    with SERVERS[request.param]() as started:
        yield started


def test_parser_reads_a_failure() -> None:
    stdout = (
        "ascii version                           [pass]\n"
        "ascii flush                             ascii flush noreply"
        "                     ascii add                               [pass]\n"
        "binary getkq                            [pass]\n"
    )
    assert verdicts(stdout) == {
        "ascii version": "[pass]",
        "ascii flush": "",
        "ascii flush noreply": "",
        "ascii add": "[pass]",
        "binary getkq": "[pass]",
    }


def test_every_ascii_and_binary_test_passes(server: ServerProcess) -> None:
    binary = require_binary("memccapable")
    # No mode flag: the ASCII tests, then the binary ones.
    argv = [binary, "-t", "5", "-h", server.host, "-p", str(server.port)]
    done = subprocess.run(
        argv, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL, check=False
    )
    report = f"$ {' '.join(argv)}\n{done.stdout}\n{done.stderr}"
    found = verdicts(done.stdout)
    assert list(found) == list(ALL_TESTS), report
    failing = [name for name, verdict in found.items() if verdict != "[pass]"]
    assert not failing, f"failing: {failing}\n{report}"
    assert "All tests passed" in done.stdout, report
    assert done.returncode == 0, report
