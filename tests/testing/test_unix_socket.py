"""The fixtures on UNIX sockets (memcached's ``-s PATH -a MASK``)."""

from __future__ import annotations

import pytest

from .inner import exe_args, run

# memcachepy has no -s yet (issue 17 adds it): add "memcachepy" here once it does.
UNIX_EXES = ["memcached", "memcachepy"]

UNIX = """
import os
import stat

import pytest
from helpers import connect
from pymemcache.client.hash import HashClient


@pytest.mark.memcachepy(unix_mask="770")
def test_server_on_a_unix_socket(memcachepy_server):
    server = memcachepy_server
    path = server.address
    assert isinstance(path, str) and server.port is None and server.unix_socket == path
    mode = os.stat(path).st_mode
    assert stat.S_ISSOCK(mode) and stat.S_IMODE(mode) == 0o770
    client = connect(path, connect_timeout=0.5, timeout=0.3)
    client.set("k", "v")
    server.pause()
    with pytest.raises(TimeoutError):
        client.get("k")
    server.resume()
    assert client.get("k") == b"v"
    server.restart()
    assert server.address == path and connect(path).get("k") is None
    server.kill()
    with pytest.raises(ConnectionRefusedError):
        connect(path).get("k")


def test_cluster_on_unix_sockets(memcachepy_cluster):
    paths = memcachepy_cluster.addresses
    assert len(set(paths)) == 3 and all(isinstance(path, str) for path in paths)
    client = HashClient(paths, connect_timeout=5, timeout=5, default_noreply=False)
    client.set_many({f"key-{i}": "x" for i in range(60)})
    counts = [int(node.stats()["curr_items"]) for node in memcachepy_cluster]
    assert sum(counts) == 60 and all(counts)


def test_shared_server_on_a_unix_socket(memcachepy_session_server):
    assert connect(memcachepy_session_server.address).set("k", "v")
    assert memcachepy_session_server.stats("settings")["domain_socket"] == (
        memcachepy_session_server.address)
"""


@pytest.mark.parametrize("exe", UNIX_EXES)
def test_fixtures_on_unix_sockets(pytester: pytest.Pytester, exe: str) -> None:
    run(pytester, UNIX, "--memcachepy-unix-socket", *exe_args(exe)).assert_outcomes(passed=3)
