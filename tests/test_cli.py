"""The command line: memcached's flags, one-line errors, a working default start."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from memcachepy.cli import settings_from_args
from memcachepy.config import MIB
from tests.servers import require_binary

ROOT = Path(__file__).resolve().parents[1]


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "memcachepy", *args], capture_output=True, text=True, timeout=30
    )


def test_defaults_match_memcached_except_listen_address() -> None:
    s = settings_from_args([])
    assert (s.port, s.listen, s.memory_limit, s.max_connections) == (
        11211,
        "127.0.0.1",
        64 * MIB,
        1024,
    )
    assert (s.item_size_max, s.growth_factor, s.min_chunk) == (MIB, 1.25, 48)
    assert s.evict and s.use_cas and s.flush_enabled and not s.enable_shutdown


def test_flags() -> None:
    s = settings_from_args(
        [
            "-p",
            "1234",
            "-m",
            "128",
            "-M",
            "-c",
            "10",
            "-I",
            "2m",
            "-f",
            "1.5",
            "-n",
            "64",
            "-vv",
            "-A",
            "-F",
            "-C",
            "-o",
            "idle_timeout=30",
        ]
    )
    assert (s.port, s.memory_limit, s.evict, s.max_connections) == (1234, 128 * MIB, False, 10)
    assert (s.item_size_max, s.growth_factor, s.min_chunk, s.verbosity) == (2 * MIB, 1.5, 64, 2)
    assert s.enable_shutdown and not s.flush_enabled and not s.use_cas
    assert s.idle_timeout == 30
    assert settings_from_args(["-I", "512k"]).item_size_max == 512 * 1024


@pytest.mark.parametrize(
    "args",
    [
        ["-p", "abc"],
        ["-m", "x"],
        ["-I", "10"],
        ["-I", "64m"],
        ["-f", "1.0"],
        ["-c", "0"],
        ["-o", "no_such_option=1"],
        ["--bogus"],
        ["-o", "idle_timeout=x"],
    ],
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
    s = settings_from_args(
        ["--cluster-config", str(conf), "--cluster-admin-token-file", str(token)]
    )
    assert (s.cluster_config, s.cluster_admin_token_file) == (str(conf), str(token))
    assert settings_from_args([]).cluster_config is None


@pytest.mark.parametrize(
    "args",
    [
        ["--cluster-admin-token-file", "/nonexistent"],  # needs --cluster-config
        ["--cluster-config", "/nonexistent/cluster.conf"],
        ["cluster"],
        ["cluster", "down"],
        ["cluster", "up", "--nodes", "0"],
        ["cluster", "up", "--", "-p", "5"],
        ["cluster", "up", "--", "--cluster-config=x"],
    ],
)
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


@pytest.mark.parametrize(
    "args",
    [
        ["-B", "bogus"],
        ["-U", "70000"],
        ["-U", "x"],
        ["-Y", "/dev/null", "-B", "binary"],
        ["-Y", "/dev/null", "-U", "11311"],
    ],
)
def test_bad_protocol_and_udp_flags_exit_64_with_one_line(args: list[str]) -> None:
    result = run(*args)
    assert result.returncode == 64
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_store_flags() -> None:
    s = settings_from_args(
        [
            "-e",
            "/tmp/memory",
            "-o",
            "hot_lru_pct=30,warm_lru_pct=30,hot_max_factor=0.5",
            "-o",
            "warm_max_factor=3,temporary_ttl=20,lru_crawler_sleep=50,lru_crawler_tocrawl=7",
            "-o",
            "slab_automove=2,slab_automove_window=10,slab_automove_ratio=0.5,track_sizes",
        ]
    )
    t = s.store
    assert s.memory_file == "/tmp/memory"
    assert (t.hot_lru_pct, t.warm_lru_pct, t.hot_max_factor, t.warm_max_factor) == (
        30,
        30,
        0.5,
        3.0,
    )
    assert t.temp_lru and t.temporary_ttl == 20
    assert (t.lru_crawler_sleep, t.lru_crawler_tocrawl) == (50, 7)
    assert (t.slab_automove, t.slab_automove_window, t.slab_automove_ratio) == (2, 10, 0.5)
    assert t.track_sizes
    off = settings_from_args(["-o", "no_lru_maintainer,no_lru_crawler,no_slab_reassign"]).store
    assert not (off.lru_maintainer or off.lru_segmented or off.lru_crawler or off.slab_reassign)
    assert settings_from_args(["-o", "slab_automove"]).store.slab_automove == 1


def test_running_without_the_dependencies_says_how_to_install() -> None:
    # -S: no site-packages, as `python3 -m memcachepy` from a bare checkout on Debian.
    result = subprocess.run(
        [sys.executable, "-S", "-m", "memcachepy"],
        cwd=ROOT / "src",
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 1
    assert result.stderr.startswith("memcachepy: the trio package is missing.")
    assert "python3 -m venv .venv && .venv/bin/pip install ." in result.stderr
    assert "./scripts/start.sh" in result.stderr


# Runs a command's entry point (``python -m`` or the console script's function) in a Python
# where one module cannot be imported, as if that package were not installed.
WITHOUT = """
import sys
from importlib.abc import MetaPathFinder

missing, entry = sys.argv[1], sys.argv[2]
sys.argv[1:] = sys.argv[3:]
hidden = {"dnspython": "dns"}.get(missing, missing)  # a package and its import name

class Missing(MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] == hidden:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None

sys.meta_path.insert(0, Missing())
if entry.startswith("-m"):
    import runpy
    runpy.run_module(entry.split()[-1] if " " in entry else "memcachepy", run_name="__main__",
                     alter_sys=True)
else:
    module, function = entry.split(":")
    sys.exit(getattr(__import__(module, fromlist=[function]), function)())
"""


# Each runtime dependency, with a command that first needs it ("tool": memcachepy-tool).
MISSING = [
    ("librt", ["-V"]),
    ("mypy_extensions", ["-V"]),
    ("trio", ["-V"]),
    ("prometheus_client", ["-V"]),
    ("pymemcache", ["cluster", "up", "--help"]),
    ("pymemcache", ["tool", "cluster"]),
    ("dnspython", ["--cluster-dns", "cache.test"]),
]


def test_every_runtime_dependency_is_tried_missing() -> None:
    import re
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    names = {re.split(r"[<>=!~;\s\[]", dep)[0].replace("-", "_") for dep in project["dependencies"]}
    assert names == {name for name, _ in MISSING}


@pytest.mark.parametrize(("missing", "command"), MISSING)
@pytest.mark.parametrize("entry", ["-m", "console script"])
def test_any_missing_dependency_says_how_to_install(
    missing: str, command: list[str], entry: str
) -> None:
    """Every runtime dependency (pyproject.toml's), where a command first needs it."""
    if command[0] == "tool":
        command = command[1:]
        entry = "-m memcachepy.tool" if entry == "-m" else "memcachepy.tool.__main__:main"
    elif entry != "-m":
        entry = "memcachepy.__main__:main"
    result = subprocess.run(
        [sys.executable, "-c", WITHOUT, missing, entry, *command],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 1, result.stderr
    assert result.stderr.startswith(f"memcachepy: the {missing} package is missing.")
    assert "./scripts/start.sh" in result.stderr and "Traceback" not in result.stderr


def test_console_scripts_go_through_the_entry_points() -> None:
    import tomllib

    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts == {
        "memcachepy": "memcachepy.__main__:main",
        "memcachepy-tool": "memcachepy.tool.__main__:main",
    }


# Values memcached 1.6.18 refuses: memcachepy must refuse each with memcached's message
# (one line: memcached's two-line messages are joined) and memcached's exit status.
REFUSED = [
    ["-c", "0"],
    ["-c", "-1"],
    ["-t", "0"],
    ["-R", "0"],
    ["-f", "1.0"],
    ["-n", "0"],
    ["-B", "http"],
    ["-I", "1000"],
    ["-I", "64m"],
    ["-m", "1", "-I", "1m"],
    ["-p", "70000"],
    ["-N", "0"],
    ["-o", "hashpower=5"],
    ["-o", "hashpower=40"],
    ["-o", "hashpower"],
    ["-o", "tail_repair_time=5"],
    ["-o", "hash_algorithm=md5"],
    ["-o", "slab_chunk_max=3000"],
    ["-o", "slab_chunk_max=2097152"],
    ["-o", "read_buf_mem_limit=x"],
    ["-o", "slab_sizes=100-50"],
    ["-o", "slab_sizes=100-104"],
    ["-o", "bogus"],
    ["-o", "relaxed_privileges"],
    ["-o", "proxy_config=x"],
    ["-o", "ext_bogus=1"],
    ["-o", "watcher_logbuf_size=x"],
    ["-o", "idle_timeout"],
    ["-o", "temporary_ttl"],
    ["-o", "ssl_keyformat=x"],
    ["-Z"],
    ["-o", "hot_lru_pct=90"],
    ["-o", "warm_lru_pct=0"],
    ["-o", "hot_lru_pct=50,warm_lru_pct=40"],
    ["-o", "hot_max_factor=0"],
    ["-o", "slab_automove=3"],
    ["-o", "slab_automove_window=2"],
    ["-o", "slab_automove_ratio=2"],
    ["-o", "lru_crawler_sleep=2000000"],
    ["-o", "lru_crawler_sleep=-1"],
    ["-o", "no_lru_maintainer,temporary_ttl=5"],
    ["-u", "nosuchuser"],
]


@pytest.mark.parametrize("args", REFUSED, ids=" ".join)
def test_refused_values_match_memcached(args: list[str]) -> None:
    binary = require_binary("memcached")
    # -p 0 -U 0: nothing to bind, so only the flag decides; -u root gets memcached past its
    # root check (memcachepy warns instead) when the flag under test is not -u.
    user = [] if "-u" in args else ["-u", "root"]
    real = subprocess.run(
        [binary, "-p", "0", "-U", "0", *user, *args],
        capture_output=True,
        text=True,
        timeout=30,
        stdin=subprocess.DEVNULL,
    )
    ours = run("-p", "0", "-U", "0", *args)
    expected = " ".join((real.stdout + real.stderr).split())
    assert real.returncode != 0 and expected
    assert ours.returncode == real.returncode, ours.stderr
    assert ours.stderr.splitlines() == [f"memcachepy: {expected}"]


def test_every_memcached_flag_and_suboption_is_accepted() -> None:
    """memcached -h's whole list, each with a valid value, parses (no exit)."""
    s = settings_from_args(
        [
            "-p",
            "11300",
            "-U",
            "0",
            "-s",
            "/tmp/x.sock",
            "-a",
            "0700",
            "-A",
            "-l",
            "127.0.0.1",
            "-d",
            "-r",
            "-u",
            "nobody",
            "-m",
            "128",
            "-M",
            "-c",
            "2048",
            "-k",
            "-vv",
            "-P",
            "/tmp/x.pid",
            "-f",
            "1.5",
            "-n",
            "64",
            "-L",
            "-D",
            "#",
            "-t",
            "8",
            "-R",
            "10",
            "-C",
            "-b",
            "512",
            "-B",
            "ascii",
            "-I",
            "2m",
            "-F",
            "-X",
            "-W",
            "-N",
            "2",
            "-o",
            "maxconns_fast,hashpower=20,tail_repair_time=30,hash_algorithm=xxh3",
            "-o",
            "no_lru_crawler,lru_crawler_sleep=50,lru_crawler_tocrawl=5,no_lru_maintainer",
            "-o",
            "idle_timeout=30,slab_chunk_max=524288,watcher_logbuf_size=8",
            "-o",
            "worker_logbuf_size=8,track_sizes,no_hashexpand,modern,no_inline_ascii_resp",
            "-o",
            "read_buf_mem_limit=1,drop_privileges,resp_obj_mem_limit,sock_cookie_id=3",
            "-o",
            "ext_page_size=8,ext_path=/tmp/e:64m,ext_threads=1,slab_automove_freeratio=0.1",
        ]
    )
    assert (s.unix_socket, s.unix_mask, s.user, s.daemonize, s.pid_file) == (
        "/tmp/x.sock",
        0o700,
        "nobody",
        True,
        "/tmp/x.pid",
    )
    assert (s.backlog, s.reqs_per_event, s.threads, s.napi_ids) == (512, 10, 8, 2)
    assert (s.hashpower_init, s.hash_algorithm, s.tail_repair_time) == (20, "xxh3", 30)
    assert (s.watcher_logbuf_size, s.read_buf_mem_limit) == (8 * 1024, MIB)
    assert not (s.dump_enabled or s.watch_enabled or s.hash_expand)
    assert s.detail_enabled and s.prefix_delimiter == "#" and s.lock_memory and s.coredumps
    assert s.store.slab_chunk_max == 512 * 1024 and not s.store.lru_crawler
    # Every flag without effect here has its one note for -v.
    notes = " | ".join(s.notes)
    assert (
        s.extstore.enabled
        and s.extstore.page_size == 8 * MIB
        and s.extstore.files[0].page_count == 8
    )
    assert s.extstore.automove_freeratio == 0.1
    for word in (
        "-t 8",
        "-L",
        "-N",
        "tail_repair_time",
        "ext_threads",
        "drop_privileges",
        "sock_cookie_id",
        "resp_obj_mem_limit",
    ):
        assert word in notes


def test_listen_accumulates_and_port_rules() -> None:
    assert settings_from_args(["-l", "127.0.0.1", "-l", "::1"]).listen == "127.0.0.1,::1"
    assert settings_from_args(["-l", "127.0.0.1", "-l", "127.0.0.1"]).listen == "127.0.0.1"
    off = settings_from_args(["-p", "0"])
    assert not off.tcp_enabled
    free = settings_from_args(["-p", "-1"])
    assert free.tcp_enabled and free.port == 0
    assert settings_from_args(["-U", "11400"]).port == 11400  # memcached: -U moves -p along
    assert settings_from_args(["-U", "-1"]).udp_port == -1


def test_no_modern_is_memcached_14() -> None:
    s = settings_from_args(["-o", "no_modern"])
    t = s.store
    assert t.slab_chunk_max == MIB and not (t.slab_reassign or t.lru_crawler or t.lru_maintainer)
    assert not s.maxconns_fast and s.hash_algorithm == "jenkins"
    chunked = settings_from_args(["-o", "no_modern,slab_chunk_max=4096"]).store
    assert chunked.slab_chunk_max == 4096
    assert (
        settings_from_args(["-o", "slab_chunk_max=16384,no_modern"]).store.slab_chunk_max == 16384
    )


def test_debian_conf_file(tmp_path: Path) -> None:
    conf = tmp_path / "memcached.conf"
    conf.write_text(
        "# memcached default config file\n-d\nlogfile /var/log/memcached.log\n"
        "-m 128   # comment\n-p 11311\n-u memcache\n-l 127.0.0.1\n-c 2048\n"
        "-P /var/run/memcached/memcached.pid\n-o modern\n"
    )
    s = settings_from_args(["--config-file", str(conf), "-c", "4096"])
    assert (s.memory_limit, s.port, s.user, s.listen) == (128 * MIB, 11311, "memcache", "127.0.0.1")
    assert s.max_connections == 4096  # the command line comes after the file
    assert not s.daemonize  # -d lines are for Debian's init script; systemd supervises
    result = run("--config-file", str(tmp_path / "missing.conf"))
    assert result.returncode == 1 and "missing.conf" in result.stderr


def test_help_lists_every_suboption_and_what_the_harness_looks_for() -> None:
    text = run("-h").stdout
    for name in (
        "maxconns_fast",
        "hashpower",
        "tail_repair_time",
        "hash_algorithm",
        "slab_chunk_max",
        "read_buf_mem_limit",
        "no_modern",
        "idle_timeout",
        "--unix-socket",
        "--enable-ssl",
        "sasl",
        "--unix-mask",
        "--user",
        "--pidfile",
        "--threads",
        "--listen-backlog",
        "--max-reqs-per-event",
        "--disable-watch",
    ):
        assert name in text, name
    # memcached's t/lib reads -h: extstore is here (it runs those tests), seccomp is not.
    assert "ext_path" in text and "no_drop_privileges" not in text


def test_version_names_the_build() -> None:
    from memcachepy import VERSION
    from memcachepy.native.switch import running_build

    result = run("-V")
    assert result.returncode == 0
    assert result.stdout == f"memcachepy {VERSION} ({running_build()})\n"
    assert running_build() in ("compiled", "pure")


def _memcached_words(result: subprocess.CompletedProcess[str]) -> str:
    """memcached's complaint as memcachepy words it: one line, our name for getopt's."""
    text = " ".join((result.stdout + result.stderr).split())
    return "memcachepy: " + text.split("memcached: ", 1)[-1]  # getopt names argv[0]


@pytest.mark.parametrize(
    "args",
    [
        ["-Q"],
        ["-vQ"],
        ["--bogus"],
        ["--bogus=1"],
        ["-p"],
        ["--port"],
        ["-m", "8", "--conn"],
        ["-o"],
    ],
    ids=" ".join,
)
def test_an_illegal_flag_fails_as_memcached_does(args: list[str]) -> None:
    binary = require_binary("memcached")
    real = subprocess.run(
        [binary, "-p", "0", "-U", "0", "-u", "root", *args],
        capture_output=True,
        text=True,
        timeout=30,
        stdin=subprocess.DEVNULL,
    )
    ours = run("-p", "0", "-U", "0", *args)
    assert real.returncode == ours.returncode == 1
    assert ours.stderr.splitlines() == [_memcached_words(real)]
    assert ours.stderr.rstrip().endswith('Illegal argument "?"')


def test_a_stray_word_is_refused_with_the_illegal_flags() -> None:
    # memcached's getopt skips it silently; memcachepy refuses it, a typo being likelier.
    result = run("-p", "0", "11311")
    assert result.returncode == 1
    assert result.stderr == "memcachepy: unexpected argument '11311' Illegal argument \"?\"\n"


def test_help_checks_the_config_file_as_a_start_does(tmp_path: Path) -> None:
    good, bad = tmp_path / "good.conf", tmp_path / "bad.conf"
    good.write_text("-m 128\n-p 11311\n")
    bad.write_text("-m 128\n-Q\n")
    missing = tmp_path / "missing.conf"
    helped = run("--config-file", str(good), "-h")
    assert helped.returncode == 0 and "--config-file" in helped.stdout
    for conf in (bad, missing):
        start = run("--config-file", str(conf), "-p", "0", "-U", "0")
        check = run("--config-file", str(conf), "-p", "0", "-U", "0", "-h")
        assert start.returncode != 0 and start.stderr.count("\n") == 1, start.stderr
        assert (check.returncode, check.stderr, check.stdout) == (
            start.returncode,
            start.stderr,
            "",
        )
    # A bad value given with -h (or --help) is refused too, before any help.
    refused = run("-c", "0", "--help")
    assert refused.returncode == 1 and refused.stdout == ""
    if os.geteuid() == 0:  # as root, a start looks up the -u user first
        nouser = run("-u", "nosuchuser", "-h")
        assert (nouser.returncode, nouser.stderr) == (
            67,
            "memcachepy: can't find the user nosuchuser to switch to\n",
        )


def test_threads_are_noted_whenever_given() -> None:
    assert not any(note.startswith("-t") for note in settings_from_args([]).notes)
    for threads in ("4", "8", "1"):
        notes = settings_from_args(["-t", threads]).notes
        assert any(note.startswith(f"-t {threads}: ") for note in notes), notes
    assert settings_from_args([]).threads == 4


def test_license_prints_the_repositorys_license_file() -> None:
    # As memcached -i: the version, a blank line, the licence. The text is embedded in
    # cli.py (a wheel has no LICENSE beside the package); this keeps the two the same.
    from memcachepy import VERSION

    result = run("-i")
    assert (result.returncode, result.stderr) == (0, "")
    license_text = (ROOT / "LICENSE").read_text(encoding="utf-8")
    assert result.stdout == f"memcachepy {VERSION}\n\n{license_text}"
    assert "BSD 3-Clause License" in license_text
