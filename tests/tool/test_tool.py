"""memcachepy-tool against running daemons: display, stats, settings, dump, top, cluster."""

from __future__ import annotations

import base64
import json
import re
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pexpect
import pytest

from memcachepy.tool.client import parse_address
from memcachepy.tool.top import render, snapshot
from tests.e2e.wire import exchange
from tests.servers import (
    HOST,
    ServerProcess,
    free_port,
    memcached_server,
    memcachepy_argv,
    memcachepy_server,
    require_binary,
    spawn,
)

ROOT = Path(__file__).resolve().parents[2]
ITEMS = {  # key -> (flags, value): odd keys and values included
    b"plain": (0, b"hello"),
    b"flagged": (42, b"x" * 3000),
    b"per%cent": (1, b"line\r\nbreak\r\n"),
    b"binary": (7, bytes(range(256))),
    b"empty": (0, b""),
    **{b"bulk%d" % i: (i, b"v" * (i * 13)) for i in range(250)},
}
EXPIRING = b"expiring"


def tool(address: str, *args: str, timeout: float = 30) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "memcachepy.tool", address, *args],
        cwd=ROOT,
        capture_output=True,
        timeout=timeout,
    )


def text(result: subprocess.CompletedProcess[bytes], status: int = 0) -> str:
    assert result.returncode == status, result.stderr
    return result.stdout.decode()


def fill(server: ServerProcess) -> None:
    batch = b"".join(
        b"set %s %d 0 %d noreply\r\n%s\r\n" % (k, f, len(v), v) for k, (f, v) in ITEMS.items()
    )
    batch += b"set %s 3 1000 4 noreply\r\nsoon\r\nget plain missing\r\n" % EXPIRING
    with server.connect() as sock:
        exchange(sock, batch, b"END\r\n")


@pytest.fixture(scope="module")
def node() -> Iterator[ServerProcess]:
    with memcachepy_server() as server:
        fill(server)
        yield server


def address(server: ServerProcess) -> str:
    return f"{server.host}:{server.port}"


def all_items(server: ServerProcess) -> dict[bytes, tuple[int, bytes]]:
    keys = [*ITEMS, EXPIRING]
    with server.connect() as sock:
        reply = exchange(sock, b"get " + b" ".join(keys) + b"\r\n", b"\r\nEND\r\n")
    found: dict[bytes, tuple[int, bytes]] = {}
    pos = 0
    while reply.startswith(b"VALUE ", pos):
        end = reply.index(b"\r\n", pos)
        _, key, flags, length = reply[pos:end].split(b" ")
        found[key] = (int(flags), reply[end + 2 : end + 2 + int(length)])
        pos = end + 2 + int(length) + 2
    return found


# -- display, stats, settings --------------------------------------------------------------


def test_display_shows_a_row_per_slab_class(node: ServerProcess) -> None:
    output = text(tool(address(node), "display"))
    header, *rows = output.splitlines()
    assert header.split() == [
        "#",
        "Item_Size",
        "Max_age",
        "Pages",
        "Count",
        "Full?",
        "Evicted",
        "Evict_Time",
        "OOM",
    ]
    assert len(rows) > 3 and all(len(row.split()) == 9 for row in rows)
    data = json.loads(text(tool(address(node), "display", "--json")))
    assert sum(row["count"] for row in data) == len(ITEMS) + 1
    assert all(row["pages"] >= 1 and not row["full"] for row in data)


def test_stats_are_aligned_and_json_has_numbers(node: ServerProcess) -> None:
    lines = text(tool(address(node), "stats")).splitlines()
    assert lines[0] == f"# {address(node)} stats"
    widths = {len(line) for line in lines[1:]}
    assert len(widths) == 1  # values are right-aligned in one column
    assert any(re.fullmatch(r"curr_items +\d+", line) for line in lines)
    data = json.loads(text(tool(address(node), "stats", "--json")))
    assert data["curr_items"] == len(ITEMS) + 1 and data["version"].startswith("1.6.18")
    assert isinstance(data["rusage_user"], float)


def test_settings(node: ServerProcess) -> None:
    assert re.search(r"^maxbytes +67108864$", text(tool(address(node), "settings")), re.M)
    assert json.loads(text(tool(address(node), "settings", "--json")))["tcpport"] == node.port


def test_unreachable_node_is_one_line_and_exit_1() -> None:
    result = tool(f"{HOST}:{free_port()}", "stats")
    assert result.returncode == 1
    assert result.stderr.decode().startswith("memcachepy-tool: cannot connect to")


def test_the_address_may_be_left_out_for_the_default_one() -> None:
    # 127.0.0.1:11211, whether or not a daemon listens there on this machine.
    result = tool("stats", "--timeout", "2")
    if result.returncode == 0:
        assert result.stdout.decode().startswith("# 127.0.0.1:11211 stats\n")
    else:
        assert result.stderr.decode().startswith(
            "memcachepy-tool: cannot connect to 127.0.0.1:11211: "
        )
    assert tool("stats", "bogus").returncode == 64  # stats takes no argument


def test_bad_usage_exits_64() -> None:
    assert tool("nohost:x", "stats").returncode == 64
    assert tool("127.0.0.1:11211", "bogus").returncode == 64
    assert parse_address("[::1]:5") == ("::1", 5) and parse_address("h") == ("h", 11211)


def test_console_script_is_declared() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["scripts"]["memcachepy-tool"] == "memcachepy.tool.__main__:main"
    assert any(dep.startswith("prometheus-client") for dep in project["dependencies"])


# -- dump ----------------------------------------------------------------------------------


def load(dump: bytes) -> dict[bytes, tuple[int, bytes]]:
    """Feed a dump to a fresh memcachepy (as `nc HOST PORT < dump` would) and read it back."""
    with memcachepy_server() as target:
        with target.connect() as sock:
            reply = exchange(sock, dump + b"version\r\n", b"VERSION 1.6.18-memcachepy-0.1.0\r\n")
        assert set(reply.split(b"\r\n")[:-2]) <= {b"STORED"}, reply[:200]
        return all_items(target)


def check_dump(result: subprocess.CompletedProcess[bytes], complete: bool = True) -> None:
    assert result.returncode == 0, result.stderr
    count = result.stdout.count(b"add ")
    assert result.stderr.endswith(b"dumped %d items\n" % count)
    expected = {**ITEMS, EXPIRING: (3, b"soon")}
    if not complete:  # stats cachedump: some keys, each with the right value
        copied = load(result.stdout)
        assert len(copied) == count > len(expected) // 2
        assert all(expected[key] == value for key, value in copied.items())
        return
    assert count == len(expected)
    assert re.search(rb"add expiring 3 (\d+) 4\r\nsoon\r\n", result.stdout)
    exptime = int(re.search(rb"add expiring 3 (\d+) 4", result.stdout).group(1))  # type: ignore[union-attr]
    assert exptime > 1_000_000_000  # absolute, so the copy expires when the original does
    assert load(result.stdout) == expected


def test_dump_by_metadump_loads_into_another_node(node: ServerProcess) -> None:
    result = tool(address(node), "dump")
    assert b"stats cachedump" not in result.stderr
    check_dump(result)


def test_dump_of_real_memcached() -> None:
    with memcached_server() as memcached:
        fill(memcached)
        result = tool(address(memcached), "dump")
    assert b"stats cachedump" not in result.stderr
    check_dump(result)


def test_dump_falls_back_to_cachedump_without_metadump() -> None:
    with memcachepy_server("-o", "no_lru_crawler") as server:
        fill(server)
        result = tool(address(server), "dump")
    assert b"listing keys with stats cachedump" in result.stderr
    check_dump(result, complete=False)


def test_dump_noreply_loads_with_debian_netcat_silently(node: ServerProcess) -> None:
    # The README's example: `nc -N` ends at the end of the file, noreply silences STORED.
    nc = require_binary("nc")
    dump = tool(address(node), "dump", "--noreply")
    assert dump.returncode == 0 and dump.stdout.count(b" noreply\r\n") == len(ITEMS) + 1
    with memcachepy_server() as target:
        loaded = subprocess.run(
            [nc, "-N", target.host, str(target.port)],
            input=dump.stdout,
            capture_output=True,
            timeout=20,
        )
        assert loaded.returncode == 0 and loaded.stdout == b""
        assert all_items(target) == {**ITEMS, EXPIRING: (3, b"soon")}


def test_dump_json_lines(node: ServerProcess) -> None:
    records = [
        json.loads(line) for line in text(tool(address(node), "dump", "--json")).splitlines()
    ]
    by_key = {base64.b64decode(r["key_b64"]): r for r in records}
    assert base64.b64decode(by_key[b"binary"]["value_b64"]) == bytes(range(256))
    assert by_key[b"flagged"]["flags"] == 42 and by_key[b"plain"]["key"] == "plain"


# -- top -----------------------------------------------------------------------------------


def test_top_in_a_terminal_refreshes_and_quits_on_q(node: ServerProcess) -> None:
    child = pexpect.spawn(
        sys.executable,
        ["-m", "memcachepy.tool", address(node), "top", "--interval", "0.4"],
        cwd=str(ROOT),
        timeout=10,
        dimensions=(40, 120),
    )
    try:
        child.expect(r"refresh 1\s")
        with node.connect() as sock:  # traffic between refreshes shows as ops/s
            exchange(
                sock,
                b"get plain\r\nget missing\r\n" * 20 + b"version\r\n",
                b"VERSION 1.6.18-memcachepy-0.1.0\r\n",
            )
        child.expect(r"refresh 3\s")
        screen = child.before.decode() + child.after.decode()
        assert "\x1b[H\x1b[2J" in screen  # redrawn in place
        child.expect(r"hit ratio +([0-9.]+%|-) now")
        child.expect(r"connections +\d+ open")
        child.expect(r"memory +\S+ of 64\.0M")
        child.send("q")
        child.expect(pexpect.EOF)
    finally:
        child.close()
    assert child.exitstatus == 0


def test_top_fits_80_columns() -> None:
    view = snapshot(
        {"cmd_get": 0.0},
        {
            "cmd_get": 987_654_321.0,
            "uptime": 9e6,
            "evictions": 1e9,
            "bytes": 2**40,
            "limit_maxbytes": 2**41,
        },
        elapsed=1.0,
    )
    view["ops_per_second"] = dict.fromkeys(view["ops_per_second"], 123_456_789.0)
    page = render(
        view,
        "[2001:db8:ffff:ffff:ffff:ffff:ffff:ffff]:65535",
        "1.6.18-memcachepy-0.1.0-with-a-long-build-suffix",
        123_456,
    )
    assert max(len(line) for line in page.splitlines()) <= 80, page
    assert page.startswith(
        "top [2001:db8:ffff:ffff:ffff:ffff:ffff:ffff]:65535  up 104d04h  refresh 123456"
    )


def test_top_json_for_programs(node: ServerProcess) -> None:
    lines = text(tool(address(node), "top", "--json", "--count", "2", "--interval", "0.2"))
    first, second = (json.loads(line) for line in lines.splitlines())
    assert set(first["ops_per_second"]) == {
        "get",
        "set",
        "delete",
        "incr",
        "decr",
        "touch",
        "cas",
        "flush",
    }
    assert second["items"] == len(ITEMS) + 1 and second["limit_bytes"] == 64 * 1024 * 1024


# -- cluster -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, list[int], int]]:
    """Three nodes, the first also the configuration endpoint listing them and a dead one."""
    ports = [free_port() for _ in range(3)]
    dead = free_port()
    config = tmp_path_factory.mktemp("cluster") / "nodes"
    config.write_text(
        "".join(f"node{i}|127.0.0.1|{port}\n" for i, port in enumerate([*ports, dead]))
    )
    servers = [spawn(memcachepy_argv(ports[0], "--cluster-config", str(config)), ports[0])]
    servers += [spawn(memcachepy_argv(port), port) for port in ports[1:]]
    try:
        for server in servers:
            with server.connect() as sock:
                exchange(
                    sock,
                    b"".join(
                        b"set c%d 0 0 1 noreply\r\nx\r\n" % i
                        for i in range(10 * server.port % 7 + 5)
                    )
                    + b"version\r\n",
                    b"\r\n",
                )
        yield f"{HOST}:{ports[0]}", ports, dead
    finally:
        for server in servers:
            server.stop()


def test_cluster_lists_nodes_with_health_and_key_share(cluster: tuple[str, list[int], int]) -> None:
    endpoint, ports, dead = cluster
    # Exit status 2: listed, but a node is DOWN (for scripts and health checks).
    data = json.loads(text(tool(endpoint, "cluster", "--json", "--timeout", "2"), status=2))
    assert data["version"] >= 1 and data["endpoint"] == endpoint
    nodes = {node["port"]: node for node in data["nodes"]}
    assert set(nodes) == {*ports, dead}
    assert all(nodes[p]["up"] and nodes[p]["latency_ms"] > 0 for p in ports)
    assert nodes[dead]["up"] is False and "refused" in nodes[dead]["error"].lower()
    shares = [node["key_share"] for node in data["nodes"]]
    assert abs(sum(shares) - 1) < 1e-9 and all(0.1 < share < 0.45 for share in shares)
    assert abs(sum(node["item_share"] for node in data["nodes"]) - 1) < 1e-9

    table = text(tool(endpoint, "cluster", "--timeout", "2"), status=2)
    assert table.startswith(
        f"cluster config version {data['version']} from {endpoint}: 4 nodes, 3 up\n"
    )
    assert re.search(rf"node3\|127\.0\.0\.1\|{dead} +DOWN", table)
    assert len(re.findall(r" up +[0-9.]+ ms", table)) == 3


def test_cluster_asks_another_endpoint(cluster: tuple[str, list[int], int]) -> None:
    endpoint, ports, _ = cluster
    data = json.loads(text(tool(f"{HOST}:{ports[1]}", "cluster", endpoint, "--json"), status=2))
    assert data["endpoint"] == endpoint and len(data["nodes"]) == 4
    refused = tool(f"{HOST}:{ports[1]}", "cluster")  # no --cluster-config there: ERROR
    assert refused.returncode == 1
    assert refused.stderr.decode() == (
        f"memcachepy-tool: {HOST}:{ports[1]} answered ERROR to 'config get cluster': not a "
        "configuration endpoint (memcachepy is one with --cluster-config FILE)\n"
    )


def test_cluster_exits_0_when_every_node_is_up(tmp_path: Path) -> None:
    port = free_port()
    config = tmp_path / "nodes"
    config.write_text(f"node0|127.0.0.1|{port}\n")
    server = spawn(memcachepy_argv(port, "--cluster-config", str(config)), port)
    try:
        table = text(tool(f"{HOST}:{port}", "cluster", "--timeout", "2"))
        assert table.startswith("cluster config version ") and "1 nodes, 1 up" in table
        assert json.loads(text(tool(f"{HOST}:{port}", "cluster", "--json")))["nodes"][0]["up"]
    finally:
        server.stop()


def test_help_gives_the_exit_statuses() -> None:
    help_text = text(tool("--help"))
    assert "2 cluster: the nodes are listed but some node is DOWN" in " ".join(help_text.split())
