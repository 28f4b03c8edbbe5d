"""DNS discovery (memcachepy.cluster.dns) against a real dnsmasq on loopback.

Each test starts Debian's dnsmasq on 127.0.0.1 and a free port, answering from a hosts
file (A records, re-read on SIGHUP) and a config file (SRV records, read at start: the
test restarts dnsmasq to change them). Nodes listen on 127.0.0.2, .3 and .4 with one
port, as the pods behind a Kubernetes headless Service do.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest
from pymemcache.client.base import Client

from memcachepy.cluster import ClusterClient
from memcachepy.cluster.discovery import ClusterNode, parse_cluster_config
from memcachepy.cluster.dns import resolve_members
from tests.servers import IN_CI, ServerProcess, free_port, memcachepy_server

from .test_warmup import items_on, stats, value_of, wait_warm

INTERVAL = 1.0  # the poll interval of the clients and nodes here
POLICY: dict[str, Any] = {
    "connect_timeout": 1.0,
    "timeout": 2.0,
    "retry_timeout": 0.05,
    "dead_timeout": 0.1,
}


def dnsmasq_binary() -> str:
    path = shutil.which("dnsmasq") or (
        "/usr/sbin/dnsmasq" if os.access("/usr/sbin/dnsmasq", os.X_OK) else None
    )
    if path is None:
        message = "dnsmasq is not installed (apt-get install dnsmasq-base; scripts/test.sh does)"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    return path


def free_dns_port() -> int:
    """A port free for both UDP and TCP on 127.0.0.1 (dnsmasq binds both)."""
    for _ in range(100):
        port = free_port()
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            try:
                udp.bind(("127.0.0.1", port))
            except OSError:
                continue
        return port
    raise RuntimeError("no free DNS port")


class Dnsmasq:
    """dnsmasq answering for ``*.test`` from files this test rewrites."""

    def __init__(self, workdir: Path) -> None:
        self.binary = dnsmasq_binary()
        self.hosts = workdir / "hosts"
        self.conf = workdir / "dnsmasq.conf"
        self.log = workdir / "dnsmasq.log"
        self.port = free_dns_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.hosts.write_text("")
        self.conf.write_text("")

    @property
    def server(self) -> tuple[str, int]:
        return ("127.0.0.1", self.port)

    def start(self) -> None:
        user = ["--user=root"] if os.geteuid() == 0 else []
        argv = [
            self.binary,
            "--keep-in-foreground",
            f"--port={self.port}",
            "--listen-address=127.0.0.1",
            "--bind-interfaces",
            "--no-resolv",
            "--no-hosts",
            f"--addn-hosts={self.hosts}",
            f"--conf-file={self.conf}",
            "--local=/test/",
            "--local-ttl=0",
            "--pid-file=",
            "--log-facility=-",
            *user,
        ]
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=log
            )
        deadline = time.monotonic() + 10
        while True:  # answering: a lookup of a name it has no record for says so
            try:
                resolve_members("ready.test", nameservers=[self.server], timeout=0.2)
            except Exception as error:
                if "no address" in str(error):
                    return
                assert self.proc.poll() is None, self.log.read_text()
                assert time.monotonic() < deadline, f"dnsmasq did not answer: {error}"
                time.sleep(0.05)

    def set_hosts(self, lines: list[str]) -> None:
        """New A records, read again at once (SIGHUP)."""
        self.hosts.write_text("".join(line + "\n" for line in lines))
        assert self.proc is not None
        self.proc.send_signal(signal.SIGHUP)

    def set_srv(self, lines: list[str]) -> None:
        """New SRV records: dnsmasq reads them at start only, so it restarts."""
        self.conf.write_text("".join(line + "\n" for line in lines))
        self.stop()
        self.start()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)


@pytest.fixture
def dnsmasq(tmp_path: Path) -> Iterator[Dnsmasq]:
    server = Dnsmasq(tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def wait_for(condition: Callable[[], bool], limit: float) -> float:
    """Seconds until ``condition()`` holds (polled every 20 ms); fails after ``limit``."""
    return wait_all([condition], limit)[0]


def wait_all(conditions: list[Callable[[], bool]], limit: float) -> list[float]:
    """Seconds from now until each condition first holds, polled together every 20 ms."""
    started = time.monotonic()
    seen: dict[int, float] = {}
    while len(seen) < len(conditions):
        for index, condition in enumerate(conditions):
            if index not in seen and condition():
                seen[index] = time.monotonic() - started
        assert time.monotonic() - started < limit, f"not within the limit: {seen}"
        time.sleep(0.02)
    return [seen[index] for index in range(len(conditions))]


def test_names_resolve_as_srv_or_a_records(dnsmasq: Dnsmasq) -> None:
    dnsmasq.set_hosts(["127.0.0.3 cache.test", "127.0.0.2 cache.test", "127.0.0.1 n1.test"])
    dnsmasq.set_srv(
        [
            "srv-host=_memcache._tcp.cache.test,n1.test,11311,0,10",
            "srv-host=_memcache._tcp.cache.test,n1.test,11312,0,10",
        ]
    )
    servers = [dnsmasq.server]
    assert resolve_members("cache.test", port=11400, nameservers=servers) == (
        ClusterNode("127.0.0.2", "127.0.0.2", 11400),
        ClusterNode("127.0.0.3", "127.0.0.3", 11400),
    )
    assert resolve_members("_memcache._tcp.cache.test", nameservers=servers) == (
        ClusterNode("n1.test", "127.0.0.1", 11311),
        ClusterNode("n1.test", "127.0.0.1", 11312),
    )
    with pytest.raises(ValueError, match="no address"):
        resolve_members("nothing.test", nameservers=servers)


def config_nodes(node: ServerProcess) -> set[str]:
    client = Client(node.address, connect_timeout=2, timeout=5)
    try:
        reply = client.raw_command(b"config get cluster", b"END\r\n")
    finally:
        client.close()
    return {n.ip for n in parse_cluster_config(reply + b"END\r\n").nodes}


def test_a_client_and_a_node_follow_a_record_set_within_one_poll_interval(
    dnsmasq: Dnsmasq, tmp_path: Path
) -> None:
    """cache.test gains 127.0.0.4 (a node started empty, waiting to be a member: it warms
    up), then loses 127.0.0.2; a client and a node see each change within INTERVAL."""
    hosts = ["127.0.0.2", "127.0.0.3", "127.0.0.4"]
    port = free_port()
    dnsmasq.set_hosts([f"{hosts[0]} cache.test", f"{hosts[1]} cache.test"])
    flags = (
        "-m",
        "32",
        "--cluster-dns",
        "cache.test",
        "--cluster-dns-server",
        f"127.0.0.1:{dnsmasq.port}",
        "--cluster-dns-interval",
        str(INTERVAL),
        "--cluster-replicas",
        "2",
    )
    with ExitStack() as stack:
        nodes = [stack.enter_context(memcachepy_server(*flags, host=h, port=port)) for h in hosts]
        assert config_nodes(nodes[0]) == set(hosts[:2])
        assert stats(nodes[2])["warmup_state"] == "waiting"  # not a member yet
        client = stack.enter_context(
            ClusterClient.from_dns(
                "cache.test",
                port=port,
                nameservers=[dnsmasq.server],
                poll_interval=INTERVAL,
                replicas=2,
                **POLICY,
            )
        )
        assert {s.host for s in client.servers} == set(hosts[:2])
        keys = [f"dns:{i}" for i in range(3000)]
        assert client.set_many({k: value_of(i) for i, k in enumerate(keys)}) == []

        dnsmasq.set_hosts([f"{h} cache.test" for h in hosts])
        gained_client, gained_node = wait_all(
            [lambda: len(client.servers) == 3, lambda: config_nodes(nodes[0]) == set(hosts)],
            3 * INTERVAL,
        )
        warm = wait_warm(nodes[2], 15)
        mine = [k.encode() for k in keys if hosts[2] in [s.host for s in client.replica_servers(k)]]
        held = items_on(nodes[2], mine)
        assert warm["warmup_state"] == "done" and len(held) >= 0.99 * len(mine)

        dnsmasq.set_hosts([f"{h} cache.test" for h in hosts[1:]])
        lost_client, lost_node = wait_all(
            [lambda: len(client.servers) == 2, lambda: config_nodes(nodes[1]) == set(hosts[1:])],
            3 * INTERVAL,
        )
        print(
            f"DNS follow (poll interval {INTERVAL} s): gained in {gained_client:.2f} s "
            f"(client) / {gained_node:.2f} s (node), lost in {lost_client:.2f} s / "
            f"{lost_node:.2f} s; the new node warmed up {len(held)} of {len(mine)} keys "
            f"in {warm['warmup_seconds']} s"
        )
        for seconds in (gained_client, gained_node, lost_client, lost_node):
            assert seconds <= INTERVAL + 0.5  # one poll interval, plus a lookup
        assert {s.host for s in client.servers} == set(hosts[1:])
        found = client.get_many(keys[:500])
        assert len(found) >= 495  # the keys live on: .3 and .4 hold every one of them


def test_a_client_follows_srv_records(dnsmasq: Dnsmasq) -> None:
    ports = [free_port(), free_port()]
    dnsmasq.set_hosts(["127.0.0.1 n1.test"])
    name = "_memcache._tcp.cache.test"
    dnsmasq.set_srv([f"srv-host={name},n1.test,{ports[0]},0,10"])
    with ExitStack() as stack:
        for port in ports:
            stack.enter_context(memcachepy_server(port=port))
        client = stack.enter_context(
            ClusterClient.from_dns(
                name, nameservers=[dnsmasq.server], poll_interval=0.2, replicas=2, **POLICY
            )
        )
        assert [s.port for s in client.servers] == ports[:1]
        assert client.set("k", b"v")
        dnsmasq.set_srv([f"srv-host={name},n1.test,{p},0,10" for p in ports])
        wait_for(lambda: len(client.servers) == 2, 5)
        assert sorted(s.port for s in client.servers) == sorted(ports)
        assert {s.host for s in client.servers} == {"n1.test"}


def test_nameserver_specs_and_a_dns_node_refuses_config_set() -> None:
    from memcachepy.cluster.dns import DnsEndpoint, parse_nameserver
    from memcachepy.cluster.endpoint import ConfigSetRefused

    assert parse_nameserver("127.0.0.1:5353") == ("127.0.0.1", 5353)
    assert parse_nameserver("[::1]:53") == ("::1", 53)
    assert parse_nameserver("::1") == ("::1", 53)
    assert parse_nameserver("ns.example") == ("ns.example", 53)
    with pytest.raises(ValueError):
        parse_nameserver("ns.example:dns")
    endpoint = DnsEndpoint("cache.test", 11211, [("127.0.0.1", 9)])
    version = endpoint.config.version
    assert endpoint.config.nodes == ()
    assert endpoint.update([ClusterNode("127.0.0.2", "127.0.0.2", 11211)])
    assert endpoint.config.version > version
    assert not endpoint.update([ClusterNode("127.0.0.2", "127.0.0.2", 11211)])
    with pytest.raises(ConfigSetRefused, match="DNS"):
        endpoint.set_cluster(b"99\n\n", b"token")
