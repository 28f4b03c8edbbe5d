"""ElastiCache config replies, membership files, and polling a configuration endpoint."""

from __future__ import annotations

import socketserver
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from memcachepy.cluster import (
    ClusterClient,
    ClusterConfig,
    ClusterMembership,
    ClusterNode,
    ConfigPoller,
    DiscoveryError,
    format_cluster_config,
    load_membership_file,
    parse_cluster_config,
    parse_membership,
)
from memcachepy.cluster.discovery import format_membership
from tests.servers import ServerProcess

AWS_NODES = [
    ClusterNode("myCluster.pc4ldq.0002.use1.cache.amazonaws.com", "10.80.249.27", 11211),
    ClusterNode("myCluster.pc4ldq.0001.use1.cache.amazonaws.com", "10.82.235.120", 11211),
]


def test_known_reply_bytes() -> None:
    reply = format_cluster_config(12, AWS_NODES)
    body = (
        b"12\n"
        b"myCluster.pc4ldq.0001.use1.cache.amazonaws.com|10.82.235.120|11211 "
        b"myCluster.pc4ldq.0002.use1.cache.amazonaws.com|10.80.249.27|11211\n"
    )
    assert len(body) == 136
    assert reply == b"CONFIG cluster 0 136\r\n" + body + b"\r\nEND\r\n"


def test_empty_ip_keeps_both_bars_and_nodes_sort_by_host() -> None:
    reply = format_cluster_config(3, [ClusterNode("b", "", 11212), ClusterNode("a", "::1", 7)])
    assert reply == b"CONFIG cluster 0 19\r\n3\na|::1|7 b||11212\n\r\nEND\r\n"


def test_no_nodes() -> None:
    reply = format_cluster_config(1, [])
    assert reply == b"CONFIG cluster 0 3\r\n1\n\n\r\nEND\r\n"
    assert parse_cluster_config(reply) == ClusterConfig(1, ())


def test_parse_known_reply() -> None:
    config = parse_cluster_config(format_cluster_config(12, AWS_NODES))
    assert config.version == 12
    assert config.nodes == tuple(sorted(AWS_NODES, key=lambda node: node.host))
    assert config.nodes[0].address == ("10.82.235.120", 11211)


cluster_nodes = st.builds(
    ClusterNode,
    st.from_regex(r"[a-zA-Z0-9][a-zA-Z0-9.-]{0,40}", fullmatch=True),
    st.one_of(st.just(""), st.ip_addresses().map(str)),
    st.integers(min_value=1, max_value=65535),
)


@given(st.integers(min_value=0, max_value=2**40), st.lists(cluster_nodes, max_size=12))
def test_format_parse_round_trip(version: int, nodes: list[ClusterNode]) -> None:
    reply = format_cluster_config(version, nodes)
    config = parse_cluster_config(reply)
    assert config.version == version
    assert set(config.nodes) == set(nodes)
    assert [node.host for node in config.nodes] == sorted(node.host for node in config.nodes)
    assert format_cluster_config(config.version, config.nodes) == reply


@pytest.mark.parametrize(
    "reply",
    [
        b"ERROR\r\n",
        b"CONFIG cluster 0 5\r\n1\na||1\n\r\nEND\r\n",  # length too short
        b"CONFIG cluster 0 7\r\n1\na||1\n\r\n",  # no END
        b"CONFIG cluster 0 7\r\n1\na|1\n\r\nEND\r\n",  # node without ip field
        b"CONFIG cluster 0 8\r\nx\na||1\n\r\nEND\r\n",  # bad version
        b"CONFIG cluster 0 8\r\n1\na||1\nb\r\nEND\r\n",  # three lines
        b"CONFIG cluster 0 8\r\n1\na||70000\n\r\nEND\r\n",  # bad port
    ],
)
def test_malformed_replies_are_rejected(reply: bytes) -> None:
    with pytest.raises(DiscoveryError):
        parse_cluster_config(reply)


def test_bad_nodes_cannot_be_formatted() -> None:
    for host, ip, port in [
        ("", "", 1),
        ("a b", "", 1),
        ("a|b", "", 1),
        ("a", "1 2", 1),
        ("a", "", 0),
    ]:
        with pytest.raises(DiscoveryError):
            ClusterNode(host, ip, port)
    with pytest.raises(DiscoveryError):
        format_cluster_config(-1, [])


MEMBERSHIP_FILE = """\
# production cache pool
cache-1.example.com|10.0.0.5|11211
cache-2.example.com||11212     # ip unknown: connect by name
10.0.0.6:11213
[::1]:11214
cache-3.example.com

"""


def test_membership_file_forms() -> None:
    assert parse_membership(MEMBERSHIP_FILE) == (
        ClusterNode("cache-1.example.com", "10.0.0.5", 11211),
        ClusterNode("cache-2.example.com", "", 11212),
        ClusterNode("10.0.0.6", "10.0.0.6", 11213),
        ClusterNode("::1", "::1", 11214),
        ClusterNode("cache-3.example.com", "", 11211),
    )


def test_membership_file_round_trip(tmp_path: Path) -> None:
    nodes = parse_membership(MEMBERSHIP_FILE)
    path = tmp_path / "cluster.conf"
    path.write_text(format_membership(nodes))
    assert set(load_membership_file(path)) == set(nodes)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("a:1\nb:x\n", "line 2: bad port"),
        ("a:1\n::1:5\n", "line 2: write IPv6 addresses as"),
        ("a:1\n\na:1\n", "line 3: a:1 repeats line 1"),
        ("a|b\n", "line 1: node 'a|b' is not host|ip|port"),
        ("[::1\n", "line 1: bad bracketed address"),
    ],
)
def test_membership_file_errors_name_the_line(text: str, message: str) -> None:
    with pytest.raises(DiscoveryError, match=message.replace("|", r"\|")):
        parse_membership(text)


def test_membership_version_rises_on_change_only() -> None:
    membership = ClusterMembership([ClusterNode("a", "", 1)])
    assert membership.config.version == 1
    assert not membership.update([ClusterNode("a", "", 1)])
    assert membership.update([ClusterNode("a", "", 1), ClusterNode("b", "", 2)])
    assert membership.config.version == 2
    assert parse_cluster_config(membership.reply()) == membership.config


class _ConfigEndpoint(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    membership: ClusterMembership
    requests: int = 0


class _ConfigHandler(socketserver.StreamRequestHandler):
    server: _ConfigEndpoint

    def handle(self) -> None:
        for _ in range(1000):
            line = self.rfile.readline()
            if not line:
                return
            self.server.requests += 1
            if line == b"config get cluster\r\n":
                self.wfile.write(self.server.membership.reply())
            else:
                self.wfile.write(b"ERROR\r\n")


def _address(endpoint: _ConfigEndpoint) -> tuple[str, int]:
    host, port = endpoint.server_address[:2]
    return str(host), int(port)


@contextmanager
def config_endpoint(membership: ClusterMembership) -> Iterator[_ConfigEndpoint]:
    """A stand-in configuration endpoint that answers only ``config get cluster``."""
    server = _ConfigEndpoint(("127.0.0.1", 0), _ConfigHandler)
    server.membership = membership
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def test_poller_reports_version_changes() -> None:
    membership = ClusterMembership([ClusterNode("a", "127.0.0.1", 11300)])
    seen: list[ClusterConfig] = []
    with config_endpoint(membership) as endpoint:
        poller = ConfigPoller(_address(endpoint), seen.append, timeout=2)
        try:
            assert poller.check()
            assert not poller.check()
            membership.update(
                [ClusterNode("a", "127.0.0.1", 11300), ClusterNode("b", "127.0.0.1", 11301)]
            )
            assert poller.check()
        finally:
            poller.stop()
    assert [config.version for config in seen] == [1, 2]
    assert len(seen[1].nodes) == 2


def test_poller_thread_keeps_polling_and_survives_errors() -> None:
    membership = ClusterMembership([ClusterNode("a", "", 1)])
    seen: list[int] = []
    with config_endpoint(membership) as endpoint:
        with ConfigPoller(
            _address(endpoint), lambda c: seen.append(c.version), interval=0.02, timeout=2
        ):
            deadline = time.monotonic() + 5
            while not seen and time.monotonic() < deadline:
                time.sleep(0.01)
            membership.update([])
            while seen[-1] != 2 and time.monotonic() < deadline:
                time.sleep(0.01)
        assert seen == [1, 2]
    # The endpoint is gone now: a poll fails, and check() says so.
    failed: list[ClusterConfig] = []
    poller = ConfigPoller(_address(endpoint), failed.append, timeout=0.5)
    with pytest.raises(OSError):
        poller.check()
    poller.stop()


def test_client_follows_the_configuration_endpoint(three_nodes: list[ServerProcess]) -> None:
    nodes = [ClusterNode(f"node{i}", "127.0.0.1", n.port) for i, n in enumerate(three_nodes)]
    membership = ClusterMembership(nodes[:2])
    with config_endpoint(membership) as endpoint:
        client = ClusterClient.from_config_endpoint(
            _address(endpoint), poll_interval=0.02, timeout=2
        )
        try:
            assert {server.port for server in client.servers} == {n.port for n in nodes[:2]}
            assert client.set("k", b"v") and client.get("k") == b"v"
            membership.update(nodes)
            deadline = time.monotonic() + 5
            while len(client.servers) < 3 and time.monotonic() < deadline:
                time.sleep(0.01)
            assert {server.host for server in client.servers} == {"node0", "node1", "node2"}
            # The ring hashes the host names, the connections go to the ips.
            assert client.ring.label(client.servers[0]).startswith("node")
        finally:
            client.close()


def test_a_plain_node_is_refused_at_once_naming_its_error(three_nodes: list[ServerProcess]) -> None:
    # A node without --cluster-config answers ERROR, as memcached does: no 2 s wait.
    plain = three_nodes[0]
    start = time.monotonic()
    with pytest.raises(DiscoveryError) as refused:
        ClusterClient.from_config_endpoint(plain.address, poll_timeout=5)
    assert time.monotonic() - start < 1.0
    message = str(refused.value)
    assert message.startswith(f"127.0.0.1:{plain.port} answered ERROR to 'config get cluster'")
    assert "--cluster-config" in message
    # The same connection still serves the next poll.
    poller = ConfigPoller(plain.address, lambda config: None, timeout=5)
    try:
        for _ in range(2):
            with pytest.raises(DiscoveryError, match="answered ERROR"):
                poller.check()
    finally:
        poller.stop()
