"""Auto discovery end to end: real daemons answer ``config get|set cluster``, and both
memcachepy's ClusterClient and django-elastipymemcache (through Django's cache API) follow
nodes being added to and removed from the membership file within one poll."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest

from memcachepy.cluster import ClusterClient, ClusterNode, format_cluster_config
from memcachepy.cluster.discovery import parse_cluster_config
from tests.e2e.wire import exchange
from tests.servers import HOST, ServerProcess, free_port, memcachepy_server

from .nodes import node_keys, start_node

POLL = 0.5  # seconds between two discovery polls, for both clients
# "Within one poll": django-elastipymemcache jitters its interval by up to +20 %; the
# rest is slack for a busy machine.
ONE_POLL = POLL * 1.2 + 0.6
TOKEN = "t0ken-for-tests"


def config_get(node: ServerProcess) -> bytes:
    with node.connect() as sock:
        return exchange(sock, b"config get cluster\r\n", b"END\r\n")


def write_membership(path: Path, ports: list[int]) -> None:
    path.write_text("".join(f"{HOST}:{port}\n" for port in ports))


def endpoint_node(stack: ExitStack, path: Path, port: int, *extra: str) -> ServerProcess:
    return stack.enter_context(
        memcachepy_server("-m", "16", "--cluster-config", str(path), *extra, port=port)
    )


def wait_until(
    condition: Callable[[], bool],
    timeout: float = 5.0,
    between: Callable[[], object] = lambda: None,
) -> float:
    """Seconds until ``condition()`` held (checked every 20 ms); fails after ``timeout``."""
    start = time.monotonic()
    while not condition():
        if time.monotonic() - start > timeout:
            pytest.fail(f"condition not met within {timeout} s")
        between()
        time.sleep(0.02)
    return time.monotonic() - start


def test_plain_node_answers_config_like_memcached() -> None:
    with memcachepy_server() as node, node.connect() as sock:
        # No --cluster-config: `config` is unknown, and a data block is read as commands.
        assert exchange(sock, b"config get cluster\r\n") == b"ERROR\r\n"
        reply = exchange(sock, b"config set cluster 0 3\r\n1\n\n\r\nget k\r\n", b"END\r\n")
        assert reply == b"ERROR\r\n" * 4 + b"END\r\n"  # the command, "1", two empty lines


def test_node_serves_reloads_and_takes_config_set(tmp_path: Path) -> None:
    conf, token = tmp_path / "cluster.conf", tmp_path / "admin.token"
    conf.write_text("cache-b.example|10.1.0.2|11211\ncache-a.example||11212\n")
    token.write_text(TOKEN + "\n")
    port = free_port()
    args = ("--cluster-admin-token-file", str(token))
    with ExitStack() as stack:
        node = endpoint_node(stack, conf, port, *args)
        assert config_get(node) == (
            b"CONFIG cluster 0 56\r\n1\ncache-a.example||11212 cache-b.example|10.1.0.2|11211"
            b"\n\r\nEND\r\n"
        )
        conf.write_text("cache-a.example||11212\n")
        node.kill(signal.SIGHUP)
        wait_until(lambda: parse_cluster_config(config_get(node)).version == 2)
        assert config_get(node) == format_cluster_config(
            2, [ClusterNode("cache-a.example", "", 11212)]
        )

        body = b"9\nc||1 d|10.0.0.4|2\n"
        with node.connect() as sock:
            request = b"config set cluster 0 %d %s\r\n%s\r\n" % (len(body), b"%s", body)
            assert exchange(sock, request % b"wrong") == b"CLIENT_ERROR bad admin token\r\n"
            assert exchange(sock, request % TOKEN.encode()) == b"OK\r\n"
            expected = b"CONFIG cluster 0 %d\r\n%s\r\nEND\r\n" % (len(body), body)
            assert exchange(sock, b"config get cluster\r\n", b"END\r\n") == expected
        node.stop()
        node = endpoint_node(stack, conf, port, *args)  # the new list survives a restart
        assert config_get(node) == expected


def test_config_set_without_admin_token_is_refused(tmp_path: Path) -> None:
    conf = tmp_path / "cluster.conf"
    write_membership(conf, [11211])
    with memcachepy_server("--cluster-config", str(conf)) as node, node.connect() as sock:
        assert exchange(sock, b"config set cluster 0 3 x\r\n2\n\n\r\n") == (
            b"CLIENT_ERROR config set cluster is disabled: the daemon has no "
            b"--cluster-admin-token-file\r\n"
        )
    assert conf.read_text() == f"{HOST}:11211\n"


def test_bad_cluster_config_file_stops_the_start(tmp_path: Path) -> None:
    conf = tmp_path / "cluster.conf"
    conf.write_text("a:1\nb:x\n")
    result = subprocess.run(
        [sys.executable, "-m", "memcachepy", "-p", "0", "--cluster-config", str(conf)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 64
    assert result.stderr.strip().splitlines() == [
        f"memcachepy: cluster config: {conf}: line 2: bad port in 'b:x'"
    ]


@pytest.fixture(scope="module")
def django_settings() -> Iterator[None]:
    """A minimal Django settings module, configured in this process."""
    from django.conf import settings

    if not settings.configured:
        settings.configure(
            CACHES={"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
        )
    yield


class Django:
    """django-elastipymemcache, used only through ``django.core.cache.caches``."""

    def __init__(self, stack: ExitStack, endpoint: ServerProcess) -> None:
        from django.core.cache import caches
        from django.test import override_settings

        stack.enter_context(
            override_settings(
                CACHES={
                    "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
                    "cluster": {
                        "BACKEND": "django_elastipymemcache.backend.ElastiPymemcache",
                        "LOCATION": f"{HOST}:{endpoint.port}",
                        "OPTIONS": {"discovery_interval": POLL, "connect_timeout": 2, "timeout": 2},
                    },
                }
            )
        )
        self.cache: Any = caches["cluster"]
        stack.callback(lambda: self.cache._cache.close())

    def ports(self) -> set[int]:
        """The nodes the backend's client currently spreads keys over."""
        return {int(key.rsplit(":", 1)[1]) for key in self.cache._cache.clients}

    def touch(self) -> None:
        """Any cache call: the backend polls the endpoint from inside its calls."""
        self.cache.get("discovery-probe")


def test_clients_follow_membership_changes_within_one_poll(
    tmp_path: Path, django_settings: None
) -> None:
    conf = tmp_path / "cluster.conf"
    with ExitStack() as stack:
        others = [stack.enter_context(start_node()) for _ in range(2)]
        port = free_port()
        write_membership(conf, [port, others[0].port])
        endpoint = endpoint_node(stack, conf, port)
        nodes = [endpoint, *others]
        ours = ClusterClient.from_config_endpoint(endpoint.address, poll_interval=POLL, timeout=2)
        stack.callback(ours.close)
        django = Django(stack, endpoint)

        def our_ports() -> set[int]:
            return {server.port for server in ours.servers}

        def change_to(members: list[ServerProcess], version: int) -> None:
            write_membership(conf, [node.port for node in members])
            endpoint.kill(signal.SIGHUP)
            wait_until(lambda: parse_cluster_config(config_get(endpoint)).version == version)
            # Measured from the moment the endpoint answers the new version.
            start = time.monotonic()
            wanted = {node.port for node in members}
            followed: dict[str, float] = {}

            def both_followed() -> bool:
                django.touch()
                for name, ports in (("memcachepy", our_ports), ("django", django.ports)):
                    if name not in followed and ports() == wanted:
                        followed[name] = time.monotonic() - start
                return len(followed) == 2

            wait_until(both_followed)
            assert max(followed.values()) < ONE_POLL, followed

        initial = {port, others[0].port}
        assert our_ports() == initial
        assert django.ports() == initial
        django.cache.set("greeting", "hello")
        assert django.cache.get("greeting") == "hello"

        change_to(nodes, 2)  # add a node
        keys = [f"added-{i}" for i in range(60)]
        django.cache.set_many({key: "d" for key in keys})
        assert ours.set_many({f"ours-{key}": b"o" for key in keys}) == []
        # Both clients now really use the new node.
        assert node_keys(others[1], [django.cache.make_key(key) for key in keys])
        assert node_keys(others[1], [f"ours-{key}" for key in keys])

        change_to([endpoint, others[1]], 3)  # remove a node
        keys = [f"removed-{i}" for i in range(60)]
        django.cache.set_many({key: "d" for key in keys})
        assert ours.set_many({f"ours-{key}": b"o" for key in keys}) == []
        assert not node_keys(others[0], [django.cache.make_key(key) for key in keys])
        assert not node_keys(others[0], [f"ours-{key}" for key in keys])
        assert django.cache.get_many(keys) == {key: "d" for key in keys}
