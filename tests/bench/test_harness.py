"""bench/run.py's harness: it starts the installed memcachepy, says which build it measured,
and installs no Python package (a real daemon; no benchmark is run)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from bench.harness.install import SetupError, installed_memcachepy, require_module
from bench.harness.report import ServerInfo
from bench.harness.servers import RunningServer, resolve_servers


def _version_build() -> str:
    version = subprocess.run(
        [sys.executable, "-P", "-m", "memcachepy", "-V"],
        check=True,
        capture_output=True,
        text=True,
        timeout=30,
    ).stdout
    return version.strip().rsplit("(", 1)[1].rstrip(")")


def test_memcachepy_runs_installed_and_reports_its_build(tmp_path: Path) -> None:
    (spec,) = resolve_servers(["memcachepy"], [])
    assert spec.argv(5)[:4] == [sys.executable, "-P", "-m", "memcachepy"]
    assert installed_memcachepy() == _version_build()
    with RunningServer(spec, [], tmp_path, tmp_path / "server.log") as server:
        assert server.version.startswith("VERSION 1.6.18-memcachepy-")
        assert server.build == _version_build() in ("compiled", "pure")


def test_a_missing_python_package_is_named_not_installed() -> None:
    with pytest.raises(
        SetupError,
        match=r"no_such_module_here is missing .*pip install "
        r"'\.\[bench\]'",
    ):
        require_module("no_such_module_here")


def test_the_report_and_results_carry_the_build() -> None:
    from dataclasses import asdict

    info = ServerInfo("memcachepy", "python -P -m memcachepy", "VERSION x", "compiled")
    assert asdict(info)["build"] == "compiled"  # results.json holds asdict(BenchInfo)
    assert ServerInfo("memcached", "memcached", "VERSION 1.6.18").build == ""


def test_the_bench_extra_is_declared() -> None:
    import tomllib

    root = Path(__file__).resolve().parents[2]
    extras = tomllib.loads((root / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]
    assert any(req.startswith("matplotlib") for req in extras["bench"])
    assert "pip" not in (root / "bench" / "harness" / "install.py").read_text().replace(
        "pip install '.[bench]'", ""
    )


def _exchange(port: int, request: bytes, expect_end: bytes) -> bytes:
    import socket

    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(request)
        got = b""
        while not got.endswith(expect_end):
            chunk = sock.recv(65536)
            assert chunk, got
            got += chunk
        return got


def test_the_probe_server_answers_as_a_cache(tmp_path: Path) -> None:
    (spec,) = resolve_servers(["probe"], [])
    with RunningServer(spec, [], tmp_path, tmp_path / "probe.log") as server:
        port = server.port
        assert _exchange(
            port, b"set a 5 0 2\r\nhi\r\nset b 0 0 3 noreply\r\nbye\r\nget a b c\r\n", b"END\r\n"
        ) == (b"STORED\r\nVALUE a 5 2\r\nhi\r\nVALUE b 0 3\r\nbye\r\nEND\r\n")
        assert _exchange(port, b"set t 0 1 1\r\nx\r\n", b"STORED\r\n") == b"STORED\r\n"
        assert _exchange(port, b"get t\r\n", b"END\r\n") == b"VALUE t 0 1\r\nx\r\nEND\r\n"
        import time

        time.sleep(1.1)
        assert _exchange(port, b"get t\r\nversion\r\n", b"ERROR\r\n") == b"END\r\nERROR\r\n"


def test_the_probe_set_holds_the_five_goal_scenarios() -> None:
    from bench.harness.scenarios import LoadParams, default_scenarios, select_scenarios

    chosen = select_scenarios(default_scenarios(LoadParams()), "probe", LoadParams())
    assert [s.name for s in chosen] == ["A4", "A50", "P16", "M100", "X1K"]
    assert {t.metric for s in chosen for t in s.targets} == {"rps", "keys_per_s", "p99_us"}
