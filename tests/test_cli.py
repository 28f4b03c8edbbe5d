"""The command line: memcached's flags, one-line errors, a working default start."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from memcachepy.cli import settings_from_args
from memcachepy.config import MIB

ROOT = Path(__file__).resolve().parents[1]


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "memcachepy", *args], capture_output=True,
                          text=True, timeout=30)


def test_defaults_match_memcached_except_listen_address() -> None:
    s = settings_from_args([])
    assert (s.port, s.listen, s.memory_limit, s.max_connections) == (11211, "127.0.0.1", 64 * MIB,
                                                                     1024)
    assert (s.item_size_max, s.growth_factor, s.min_chunk) == (MIB, 1.25, 48)
    assert s.evict and s.use_cas and s.flush_enabled and not s.enable_shutdown


def test_flags() -> None:
    s = settings_from_args(["-p", "1234", "-m", "128", "-M", "-c", "10", "-I", "2m", "-f", "1.5",
                            "-n", "64", "-vv", "-A", "-F", "-C", "-o", "idle_timeout=30"])
    assert (s.port, s.memory_limit, s.evict, s.max_connections) == (1234, 128 * MIB, False, 10)
    assert (s.item_size_max, s.growth_factor, s.min_chunk, s.verbosity) == (2 * MIB, 1.5, 64, 2)
    assert s.enable_shutdown and not s.flush_enabled and not s.use_cas
    assert s.idle_timeout == 30
    assert settings_from_args(["-I", "512k"]).item_size_max == 512 * 1024


@pytest.mark.parametrize(
    "args",
    [["-p", "abc"], ["-m", "x"], ["-I", "10"], ["-I", "64m"], ["-f", "1.0"], ["-c", "0"],
     ["-o", "no_such_option=1"], ["--bogus"], ["-o", "idle_timeout=x"]],
)
def test_bad_values_exit_nonzero_with_one_line(args: list[str]) -> None:
    result = run(*args)
    assert result.returncode != 0
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_help_explains_each_flag() -> None:
    result = run("--help")
    assert result.returncode == 0
    for flag in ("-p", "-l", "-m", "-M", "-c", "-I", "-f", "-n", "-v", "-A", "-F", "-C", "-o"):
        assert f"{flag}" in result.stdout


def test_cluster_flags(tmp_path: Path) -> None:
    conf, token = tmp_path / "cluster.conf", tmp_path / "token"
    conf.write_text("127.0.0.1:11211\n")
    token.write_text("secret\n")
    s = settings_from_args(["--cluster-config", str(conf), "--cluster-admin-token-file",
                            str(token)])
    assert (s.cluster_config, s.cluster_admin_token_file) == (str(conf), str(token))
    assert settings_from_args([]).cluster_config is None


@pytest.mark.parametrize("args", [
    ["--cluster-admin-token-file", "/nonexistent"],  # needs --cluster-config
    ["--cluster-config", "/nonexistent/cluster.conf"],
    ["cluster"], ["cluster", "down"], ["cluster", "up", "--nodes", "0"],
    ["cluster", "up", "--", "-p", "5"], ["cluster", "up", "--", "--cluster-config=x"],
])
def test_bad_cluster_arguments_exit_64_with_one_line(args: list[str]) -> None:
    result = run(*args)
    assert result.returncode == 64
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_cluster_is_a_first_word_only() -> None:
    result = run("cluster", "up", "--help")
    assert result.returncode == 0 and "--base-port" in result.stdout
    assert "cluster up" in run("--help").stdout


def test_protocol_and_udp_flags(tmp_path: Path) -> None:
    s = settings_from_args([])
    assert (s.protocol, s.udp_port) == ("auto", 0)  # memcached: auto-negotiate, UDP off
    s = settings_from_args(["-B", "binary", "-U", "11311"])
    assert (s.protocol, s.udp_port) == ("binary", 11311)
    assert settings_from_args(["--protocol", "ascii"]).protocol == "ascii"
    auth = tmp_path / "auth"
    auth.write_text("user:pass\n")
    assert settings_from_args(["-Y", str(auth)]).protocol == "ascii"  # -Y: text only


@pytest.mark.parametrize("args", [
    ["-B", "bogus"], ["-U", "70000"], ["-U", "x"], ["-Y", "/dev/null", "-B", "binary"],
    ["-Y", "/dev/null", "-U", "11311"],
])
def test_bad_protocol_and_udp_flags_exit_64_with_one_line(args: list[str]) -> None:
    result = run(*args)
    assert result.returncode == 64
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_store_flags() -> None:
    s = settings_from_args([
        "-e", "/tmp/memory", "-o", "hot_lru_pct=30,warm_lru_pct=30,hot_max_factor=0.5",
        "-o", "warm_max_factor=3,temporary_ttl=20,lru_crawler_sleep=50,lru_crawler_tocrawl=7",
        "-o", "slab_automove=2,slab_automove_window=10,slab_automove_ratio=0.5,track_sizes",
    ])
    t = s.store
    assert s.memory_file == "/tmp/memory"
    assert (t.hot_lru_pct, t.warm_lru_pct, t.hot_max_factor, t.warm_max_factor) == (
        30, 30, 0.5, 3.0)
    assert t.temp_lru and t.temporary_ttl == 20
    assert (t.lru_crawler_sleep, t.lru_crawler_tocrawl) == (50, 7)
    assert (t.slab_automove, t.slab_automove_window, t.slab_automove_ratio) == (2, 10, 0.5)
    assert t.track_sizes
    off = settings_from_args(["-o", "no_lru_maintainer,no_lru_crawler,no_slab_reassign"]).store
    assert not (off.lru_maintainer or off.lru_segmented or off.lru_crawler or off.slab_reassign)
    assert settings_from_args(["-o", "slab_automove"]).store.slab_automove == 1


@pytest.mark.parametrize("option", [
    "hot_lru_pct=90", "warm_lru_pct=0", "hot_lru_pct=50,warm_lru_pct=40", "hot_max_factor=0",
    "slab_automove=3", "slab_automove_window=2", "slab_automove_ratio=2",
    "lru_crawler_sleep=2000000", "lru_crawler_tocrawl=x", "no_lru_maintainer,temporary_ttl=5",
])
def test_bad_store_options_exit_64_with_one_line(option: str) -> None:
    result = run("-o", option)
    assert result.returncode == 64
    assert len(result.stderr.strip().splitlines()) == 1


def test_running_without_the_dependencies_says_how_to_install() -> None:
    # -S: no site-packages, as `python3 -m memcachepy` from a bare checkout on Debian.
    result = subprocess.run([sys.executable, "-S", "-m", "memcachepy"], cwd=ROOT,
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 1
    assert result.stderr.startswith("memcachepy: the trio package is missing.")
    assert "python3 -m venv .venv && .venv/bin/pip install ." in result.stderr
