"""The plugin's fixtures, run through pytester against memcachepy and real memcached."""

from __future__ import annotations

import os

import pytest

from tests.servers import IN_CI

from .inner import EXES, entry_point_installed, exe_args, run

FAULTS = """
import os

import pytest
from helpers import connect

SEEN = {}


def test_first_gets_a_fresh_server(memcachepy_server):
    server = memcachepy_server
    connect(server.address).set("left", "behind")
    SEEN["pid"] = server.pid
    SEEN["address"] = server.address


def test_second_gets_another_one(memcachepy_server):
    server = memcachepy_server
    assert server.pid != SEEN["pid"]
    assert server.address != SEEN["address"]
    with pytest.raises(ProcessLookupError):
        os.kill(SEEN["pid"], 0)  # the first server is gone, and reaped
    assert connect(server.address).get("left") is None


def test_pause_makes_clients_time_out_and_resume_recovers(memcachepy_server):
    server = memcachepy_server
    client = CLIENT
    client.set("k", "v")
    server.pause()
    assert server.paused
    with pytest.raises(TimeoutError):
        client.get("k")
    with pytest.raises(TimeoutError):
        server.stats(timeout=0.2)
    server.resume()
    assert client.get("k") == b"v"


def test_restart_gives_a_cold_cache_on_the_same_port(memcachepy_server):
    server = memcachepy_server
    address, pid = server.address, server.pid
    connect(address).set("k", "v")
    server.restart()
    assert server.address == address and server.pid != pid
    assert connect(address).get("k") is None


@pytest.mark.memcachepy(warm_restarts=True)
def test_warm_restart_keeps_the_items(memcachepy_server):
    server = memcachepy_server
    address, pid = server.address, server.pid
    client = connect(address)
    client.set("k", "v", expire=3600)
    client.set("n", "41")
    client.incr("n", 1)
    server.pause()  # a warm restart of a paused server resumes it to save
    server.restart(warm=True)
    assert server.address == address and server.pid != pid
    again = connect(address)
    assert again.get_many(["k", "n"]) == {"k": b"v", "n": b"42"}
    assert server.stats()["curr_items"] == "2"


def test_kill_makes_connections_refused(memcachepy_server):
    server = memcachepy_server
    server.kill()
    assert not server.running and server.pid is None
    with pytest.raises(ConnectionRefusedError):
        CLIENT.get("k")
    server.restart()  # a killed server starts again, empty
    assert CLIENT.get("k") is None


def test_stats_and_flush(memcachepy_server):
    server = memcachepy_server
    client = connect(server.address)
    client.set_many({"a": "1", "b": "2"})
    stats = server.stats()
    assert stats["curr_items"] == "2" and stats["pid"] == str(server.pid)
    server.flush()
    assert client.get_many(["a", "b"]) == {}


@pytest.mark.memcachepy(args=["-m", "8", "-c", "100"])
def test_marker_passes_flags(memcachepy_server):
    server = memcachepy_server
    assert server.stats()["limit_maxbytes"] == str(8 * 1024 * 1024)
    settings = server.stats("settings")
    assert settings["maxbytes"] == str(8 * 1024 * 1024) and settings["maxconns"] == "100"
""".replace("CLIENT", "connect(server.address, connect_timeout=0.5, timeout=0.3)")


@pytest.mark.parametrize("exe", list(EXES))
def test_server_fixture_faults(pytester: pytest.Pytester, exe: str) -> None:
    result = run(pytester, FAULTS, *exe_args(exe))
    result.assert_outcomes(passed=8)
    expected = "memcached" if exe == "memcached" else "python -P -m memcachepy"
    result.stdout.fnmatch_lines([f"memcachepy fixtures run: *{expected}*"])


SESSION = """
import pytest
from helpers import connect

SEEN = {}


def test_shared_server_takes_the_option_flags(memcachepy_session_server):
    server = memcachepy_session_server
    assert server.stats()["limit_maxbytes"] == str(16 * 1024 * 1024)
    connect(server.address).set("left", "behind")
    SEEN["pid"] = server.pid
    server.pause()  # left paused: the next test must still get a working server


def test_next_test_gets_it_resumed_and_empty(memcachepy_session_server):
    server = memcachepy_session_server
    assert server.pid == SEEN["pid"]
    assert connect(server.address, timeout=1).get("left") is None
    server.kill()  # left dead: the next test must get it started again


def test_a_killed_shared_server_comes_back(memcachepy_session_server):
    server = memcachepy_session_server
    assert server.running and server.pid != SEEN["pid"]
    assert connect(server.address).set("k", "v")


def test_fresh_and_shared_servers_are_distinct(memcachepy_session_server, memcachepy_server):
    assert memcachepy_server.address != memcachepy_session_server.address
    assert memcachepy_server.stats()["limit_maxbytes"] == str(16 * 1024 * 1024)


@pytest.mark.memcachepy(args=["-m", "8"])
def test_marker_on_the_shared_server_is_an_error(memcachepy_session_server):
    pass
"""


def test_session_server_is_shared_and_reset(pytester: pytest.Pytester) -> None:
    result = run(pytester, SESSION, "--memcachepy-args=-m 16")
    result.assert_outcomes(passed=4, errors=1)
    result.stdout.fnmatch_lines(["*does not apply to the shared memcachepy_session_server*"])


CLEANUP = """
import pytest


@pytest.mark.memcachepy(nodes=2)
def test_fails_with_a_paused_server(memcachepy_server, memcachepy_cluster):
    pids = [memcachepy_server.pid, *(node.pid for node in memcachepy_cluster)]
    dirs = [memcachepy_server.directory]
    memcachepy_server.pause()
    memcachepy_cluster[1].pause()
    with open(os.environ["RECORD"], "w") as record:
        record.write(repr((pids, dirs)))
    assert False, "this test fails on purpose"


@pytest.mark.memcachepy(bogus=1)
def test_unknown_marker_keyword(memcachepy_server):
    pass
"""


def test_servers_are_reaped_when_a_test_fails(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    record = pytester.path / "record.txt"
    monkeypatch.setenv("RECORD", str(record))
    result = run(pytester, "import os\n" + CLEANUP)
    result.assert_outcomes(failed=1, errors=1)
    result.stdout.fnmatch_lines(["*takes only the keywords*bogus*"])
    pids, dirs = eval(record.read_text())  # written by the inner test: a tuple of lists
    assert len(pids) == 3
    for pid in pids:
        with pytest.raises(ProcessLookupError):  # a zombie would still answer kill(pid, 0)
            os.kill(pid, 0)
    assert not any(os.path.exists(path) for path in dirs)


def test_the_entry_point_loads_the_plugin_without_a_conftest(pytester: pytest.Pytester) -> None:
    if not entry_point_installed():
        message = "memcachepy is not pip-installed with its pytest11 entry point (scripts/test.sh)"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    pytester.makepyfile(
        "def test_x(memcachepy_server):\n"
        "    server = memcachepy_server\n"
        "    assert server.stats()['pid'] == str(server.pid)\n"
    )
    pytester.runpytest_inprocess("-p", "no:cacheprovider").assert_outcomes(passed=1)
