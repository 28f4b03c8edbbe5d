"""--metrics-port: a Prometheus scrape parses with prometheus-client and agrees with stats."""

from __future__ import annotations

import re
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from memcachepy.cli import settings_from_args
from memcachepy.config import Settings
from memcachepy.dispatch.reply import Reply
from memcachepy.ops.metrics import StatsCollector
from memcachepy.protocol import events as ev
from memcachepy.protocol.wire import Outcome
from memcachepy.server.daemon import Server
from tests.e2e.wire import exchange
from tests.servers import HOST, ServerProcess, free_port, memcachepy_server

# Statistics whose value moves between reading stats and scraping (time, our own traffic).
MOVING = {"uptime", "time", "rusage_user", "rusage_system", "bytes_read", "bytes_written"}
# memcached_exporter's names for general statistics (the rest keep their own name).
EXPORTER_NAMES = {
    "curr_items": "memcached_current_items",
    "bytes": "memcached_current_bytes",
    "limit_maxbytes": "memcached_limit_bytes",
    "evictions": "memcached_items_evicted_total",
    "total_items": "memcached_items_total",
    "curr_connections": "memcached_current_connections",
    "total_connections": "memcached_connections_total",
    "max_connections": "memcached_max_connections",
    "reclaimed": "memcached_items_reclaimed_total",
    "store_too_large": "memcached_item_too_large_total",
    "store_no_memory": "memcached_item_no_memory_total",
    "rejected_connections": "memcached_connections_rejected_total",
    "conn_yields": "memcached_connections_yielded_total",
    "listen_disabled_num": "memcached_connections_listener_disabled_total",
    "accepting_conns": "memcached_accepting_connections",
    "uptime": "memcached_uptime_seconds",
    "time": "memcached_time_seconds",
    "rusage_user": "memcached_process_user_cpu_seconds_total",
    "rusage_system": "memcached_process_system_cpu_seconds_total",
    "bytes_read": "memcached_read_bytes_total",
    "bytes_written": "memcached_written_bytes_total",
    "direct_reclaims": "memcached_direct_reclaims_total",
    "lru_crawler_starts": "memcached_lru_crawler_starts_total",
    "crawler_reclaimed": "memcached_lru_crawler_reclaimed_total",
    "crawler_items_checked": "memcached_lru_crawler_items_checked_total",
    "moves_to_cold": "memcached_lru_crawler_moves_to_cold_total",
    "moves_to_warm": "memcached_lru_crawler_moves_to_warm_total",
    "moves_within_lru": "memcached_lru_crawler_moves_within_lru_total",
}
NOT_METRICS = {"pid", "pointer_size", "version", "libevent"}
# The hits and misses memcached_commands_total is made of, never exported a second time.
IN_COMMANDS = {
    f"{op}_{kind}"
    for op in ("get", "delete", "incr", "decr", "cas", "touch")
    for kind in ("hits", "misses")
} | {"cas_badval", "cmd_flush"}


@pytest.fixture(scope="module")
def node() -> Iterator[tuple[ServerProcess, int]]:
    metrics_port = free_port()
    with memcachepy_server("-m", "2", "-I", "256k", "--metrics-port", str(metrics_port)) as s:
        yield s, metrics_port


def scrape(port: int, path: str = "/metrics") -> str:
    with urllib.request.urlopen(f"http://{HOST}:{port}{path}", timeout=10) as response:
        assert response.headers["Content-Type"].startswith("text/plain; version=")
        return str(response.read().decode())


def samples(text: str) -> list[Sample]:
    return [s for family in text_string_to_metric_families(text) for s in family.samples]


def stat_pairs(sock: socket.socket, sub: bytes = b"") -> dict[str, str]:
    reply = exchange(sock, b"stats" + (b" " + sub if sub else b"") + b"\r\n", b"END\r\n")
    return {
        line.split(" ")[1]: line.split(" ", 2)[2]
        for line in reply.decode().split("\r\n")
        if line.startswith("STAT ")
    }


def find(all_samples: list[Sample], name: str, **labels: str) -> float:
    matches = [s.value for s in all_samples if s.name == name and s.labels == labels]
    assert len(matches) == 1, (name, labels, matches)
    return float(matches[0])


def traffic(sock: socket.socket) -> None:
    big = b"x" * 200_000
    batch = b"".join(
        b"set big%d 0 0 %d noreply\r\n%s\r\n" % (i, len(big), big) for i in range(20)
    )  # -m 2: evictions
    batch += b"set a 0 0 1\r\n1\r\nget a nope\r\ngets a\r\nincr a 5\r\ndecr nope 1\r\n"
    batch += b"touch a 100\r\ndelete a\r\ndelete a\r\ncas nope 0 0 1 1\r\nx\r\n"
    batch += b"set c 0 0 1\r\nc\r\ncas c 0 0 1 999\r\ny\r\nflush_all 1000\r\n"
    exchange(sock, batch + b"version\r\n", b"VERSION 1.6.18-memcachepy-0.1.0\r\n")


def test_scrape_parses_and_agrees_with_stats(node: tuple[ServerProcess, int]) -> None:
    server, metrics_port = node
    with server.connect() as sock:
        traffic(sock)
        general = stat_pairs(sock)
        items = stat_pairs(sock, b"items")
        slabs = stat_pairs(sock, b"slabs")
        scraped = samples(scrape(metrics_port))
        after = stat_pairs(sock)
    assert int(general["evictions"]) > 0
    names = {s.name for s in scraped}
    for stat, text in general.items():
        if stat in NOT_METRICS:
            continue
        if stat in IN_COMMANDS:  # only in memcached_commands_total, checked below
            assert f"memcached_{stat}_total" not in names, stat
            continue
        name = EXPORTER_NAMES.get(stat)
        if name is None:
            name = (
                f"memcached_{stat}" if f"memcached_{stat}" in names else (f"memcached_{stat}_total")
            )
        value = find(scraped, name)
        if stat in MOVING or after[stat] != text:  # time, our traffic, background work
            assert float(text) <= value <= float(after[stat]) + 1, stat
        else:
            assert value == float(text), stat
    commands = {
        (op, status): find(scraped, "memcached_commands_total", command=op, status=status)
        for op in ("get", "delete", "incr", "decr", "cas", "touch")
        for status in ("hit", "miss")
    }
    for (op, status), value in commands.items():
        assert value == float(general[f"{op}_{'hits' if status == 'hit' else 'misses'}"])
    assert find(scraped, "memcached_commands_total", command="cas", status="badval") == 1
    assert find(scraped, "memcached_commands_total", command="flush", status="hit") == 1
    assert find(scraped, "memcached_version", version=general["version"]) == 1
    assert find(scraped, "memcached_up") == 1
    # Per slab class, with a slab label.
    for name, text in items.items():
        _, slab, field = name.split(":")
        expected = {
            "number": "memcached_slab_current_items",
            "evicted": "memcached_slab_items_evicted_total",
            "mem_requested": "memcached_slab_mem_requested_bytes",
            "outofmemory": "memcached_slab_items_outofmemory_total",
        }.get(field)
        if expected:
            assert find(scraped, expected, slab=slab) == float(text), name
    for name, text in slabs.items():
        slab, _, field = name.partition(":")
        if field == "chunk_size":
            assert find(scraped, "memcached_slab_chunk_size_bytes", slab=slab) == float(text)
        elif field == "total_pages":
            assert find(scraped, "memcached_slab_current_pages", slab=slab) == float(text)
        elif field == "get_hits":
            assert find(
                scraped, "memcached_slab_commands_total", slab=slab, command="get", status="hit"
            ) == float(text)
        elif name == "total_malloced":
            assert find(scraped, "memcached_malloced_bytes") == float(text)


def test_latency_histogram_samples_command_service_time(node: tuple[ServerProcess, int]) -> None:
    server, metrics_port = node
    with server.connect() as sock:
        deadline = time.monotonic() + 5
        while True:  # the sampler times the first 64 requests of each second
            exchange(sock, b"get h1 h2\r\n", b"END\r\n")
            scraped = samples(scrape(metrics_port))
            counts = [
                s
                for s in scraped
                if s.name == "memcachepy_command_duration_seconds_count"
                and s.labels == {"command": "get"}
            ]
            if counts and counts[0].value >= 2 or time.monotonic() > deadline:
                break
            time.sleep(0.3)
    assert counts and counts[0].value >= 2
    buckets = [
        s
        for s in scraped
        if s.name == "memcachepy_command_duration_seconds_bucket" and s.labels["command"] == "get"
    ]
    values = [b.value for b in buckets]
    assert values == sorted(values) and values[-1] == counts[0].value
    assert buckets[-1].labels["le"] == "+Inf"


def test_other_paths_and_methods(node: tuple[ServerProcess, int]) -> None:
    _, port = node
    with pytest.raises(urllib.error.HTTPError) as missing:
        urllib.request.urlopen(f"http://{HOST}:{port}/nope", timeout=10)
    assert missing.value.code == 404
    request = urllib.request.Request(f"http://{HOST}:{port}/metrics", method="POST", data=b"")
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=10)
    assert refused.value.code == 405
    head = urllib.request.Request(f"http://{HOST}:{port}/metrics", method="HEAD")
    with urllib.request.urlopen(head, timeout=10) as response:
        assert response.status == 200 and response.read() == b""
    with socket.create_connection((HOST, port), timeout=10) as sock:
        sock.sendall(b"GET /metrics HTTP/1.0\r\n" + b"X: y\r\n" * 2000)
        assert sock.recv(100).startswith(b"HTTP/1.1 431")


def test_metrics_are_off_by_default_and_loopback_when_on() -> None:
    settings = settings_from_args([])
    assert settings.metrics_port is None
    on = settings_from_args(["--metrics-port", "9150"])
    assert (on.metrics_port, on.metrics_listen) == (9150, "127.0.0.1")


def test_a_busy_metrics_port_stops_the_daemon_with_one_line() -> None:
    import subprocess
    import sys

    with socket.socket() as taken:
        taken.bind((HOST, 0))
        taken.listen(1)
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "memcachepy",
                "-p",
                str(free_port()),
                "--metrics-port",
                str(taken.getsockname()[1]),
            ],
            capture_output=True,
            text=True,
            timeout=30,
        )
        busy = taken.getsockname()[1]
    assert result.returncode == 71
    assert result.stderr == (
        f"memcachepy: failed to listen on 127.0.0.1:{busy} "
        "(--metrics-port): Address already in use\n"
    )


def test_sampling_leaves_the_request_path_unwrapped_between_windows() -> None:
    server = Server(Settings(port=0, metrics_port=0))
    service = server.service
    table = server.dispatcher._handlers
    hooks = service.hooks
    assert service.sampler is not None
    assert all(table[t] is hooks.base(t) for t in (ev.Retrieve, ev.Store, ev.Delete))
    assert server.dispatcher.plain()
    service.sampler.open_window()
    assert table[ev.Retrieve] is not hooks.base(ev.Retrieve)
    assert not server.dispatcher.plain()
    out: list[Reply] = []
    for _ in range(service.sampler.samples):
        assert server.dispatcher.handle(ev.Retrieve([b"k"], False, None), out) == (Outcome.CONTINUE)
    assert all(table[t] is hooks.base(t) for t in (ev.Retrieve, ev.Store, ev.Delete))


def test_every_family_says_what_it_means_once(node: tuple[ServerProcess, int]) -> None:
    server, metrics_port = node
    with server.connect() as sock:
        traffic(sock)
        exchange(sock, b"get a\r\n", b"END\r\n")
    text = scrape(metrics_port)
    helps = re.findall(r"^# HELP (\S+) (.*)$", text, re.M)
    assert len(helps) > 80
    generic = [
        name
        for name, help_text in helps
        if "memcached stats" in help_text or "see memcached's protocol.txt" in help_text
    ]
    assert generic == []  # every exported statistic has its own description
    types = dict(re.findall(r"^# TYPE (\S+) (\S+)$", text, re.M))
    assert not [name for name in types if name.endswith("_created")]
    for field in ("moves_to_cold", "moves_to_warm", "moves_within_lru"):
        assert types[f"memcached_slab_items_{field}_total"] == "counter"
    series = [line.rsplit(" ", 1)[0] for line in text.splitlines() if not line.startswith("#")]
    assert len(series) == len(set(series))  # no series twice


def test_up_is_0_when_the_statistics_cannot_be_read() -> None:
    def broken(sub: bytes) -> list[tuple[str, str]]:
        raise RuntimeError("store gone")

    registry = CollectorRegistry(auto_describe=False)
    registry.register(StatsCollector(broken))
    families = list(text_string_to_metric_families(generate_latest(registry).decode()))
    assert [(f.name, [s.value for s in f.samples]) for f in families] == [("memcached_up", [0.0])]
    registry = CollectorRegistry(auto_describe=False)
    registry.register(StatsCollector(lambda sub: [("curr_items", "3")] if not sub else []))
    scraped = samples(generate_latest(registry).decode())
    assert find(scraped, "memcached_up") == 1 and find(scraped, "memcached_current_items") == 3
