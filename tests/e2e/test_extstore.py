"""The flash tier end to end: a real memcachepy daemon with a small ext file, and the wire
compared with Debian's memcached 1.6.18 started with the same options."""

from __future__ import annotations

import socket
import subprocess
import time
from pathlib import Path

import pytest

from tests.servers import free_port, memcached_server, memcachepy_argv, memcachepy_server

OPTIONS = (
    "ext_page_size=2,ext_wbuf_size=2,ext_item_size=512,ext_item_age=0,"
    "ext_max_sleep=10000,ext_recache_rate=0"
)


def ask(sock: socket.socket, line: bytes, until: bytes = b"\r\n") -> bytes:
    sock.sendall(line)
    data = b""
    deadline = time.monotonic() + 10
    while not data.endswith(until):
        assert time.monotonic() < deadline, data[-200:]
        chunk = sock.recv(1 << 20)
        assert chunk, data
        data += chunk
    return data


def stats(sock: socket.socket, sub: bytes = b"") -> dict[str, str]:
    reply = ask(sock, b"stats" + (b" " + sub if sub else b"") + b"\r\n", b"END\r\n")
    return {
        parts[1]: parts[2] if len(parts) > 2 else ""
        for parts in (line.split(" ", 2) for line in reply.decode().splitlines()[:-1])
    }


def extstore_args(path: Path) -> tuple[str, ...]:
    return ("-m", "16", "-o", f"{OPTIONS},ext_path={path}:8m")


def test_values_go_to_flash_and_read_back(tmp_path: Path) -> None:
    value = b"v" * 20_000
    with memcachepy_server(*extstore_args(tmp_path / "ext")) as server:
        sock = server.connect()
        for i in range(100):
            assert ask(sock, b"set k%d 0 0 %d\r\n%s\r\n" % (i, len(value), value)) == b"STORED\r\n"
        deadline = time.monotonic() + 20
        while int(stats(sock)["extstore_objects_written"]) < 100:
            assert time.monotonic() < deadline, stats(sock)
            time.sleep(0.1)
        assert ask(sock, b"get k7\r\n", b"END\r\n") == (
            b"VALUE k7 0 20000\r\n" + value + b"\r\nEND\r\n"
        )
        assert ask(sock, b"incr k7 1\r\n") == (
            b"CLIENT_ERROR cannot increment or decrement non-numeric value\r\n"
        )
        assert ask(sock, b"append k7 0 0 2\r\nhi\r\n") == b"NOT_STORED\r\n"
        found = stats(sock)
        assert int(found["get_extstore"]) == 1 and int(found["extstore_bytes_read"]) > 20_000
        long_key = b"f" * 300
        assert ask(sock, b"get k1 k2 " + long_key + b"\r\n") == (
            b"CLIENT_ERROR bad command line format\r\n"
        )
        assert int(stats(sock)["get_aborted_extstore"]) == 2
        page_stats = stats(sock, b"extstore")
        assert "1:version" in page_stats and "3:free_bucket" in page_stats


def test_a_second_daemon_on_the_same_file_does_not_start(tmp_path: Path) -> None:
    with memcachepy_server(*extstore_args(tmp_path / "ext")):
        port = free_port()
        result = subprocess.run(
            memcachepy_argv(port, *extstore_args(tmp_path / "ext")), capture_output=True, timeout=30
        )
        assert result.returncode == 1
        assert b"Failed to initialize external storage" in result.stderr


@pytest.mark.parametrize(
    "flags, message",
    [
        (
            ("-I", "4m", "-o", "ext_wbuf_size=2,ext_path=/tmp/x:8m"),
            "-I (item_size_max: 4194304) cannot be larger than ext_wbuf_size: 2097152",
        ),
        (("-o", "ext_path=/tmp/x"), "must supply size to ext_path"),
        (
            ("-o", "ext_path=/tmp/x:8m,ext_page_size=2"),
            "Must specify ext_page_size before any ext_path arguments",
        ),
        (("-o", "ext_item_size=abc"), "could not parse argument to ext_item_size"),
    ],
)
def test_bad_options_are_refused_with_memcacheds_words(
    flags: tuple[str, ...], message: str
) -> None:
    result = subprocess.run(memcachepy_argv(free_port(), *flags), capture_output=True, timeout=30)
    assert result.returncode != 0
    assert message in result.stderr.decode()


def _replies(server_sock: socket.socket) -> list[bytes]:
    lines = [
        b"extstore\r\n",
        b"extstore foo\r\n",
        b"extstore max_frag\r\n",
        b"extstore recache_rate 1\r\n",
        b"extstore max_frag 0.5\r\n",
        b"extstore recache_rate x\r\n",
        b"extstore drop_unread 1\r\n",
        b"extstore item_age 3 noreply\r\nextstore item_size 10\r\n",
        b"extstore junk 1\r\n",
        b"extstore free_memchunks 1 2\r\n",
    ]
    return [ask(server_sock, line) for line in lines]


def test_the_extstore_command_and_stat_names_match_memcached(tmp_path: Path) -> None:
    with (
        memcached_server(*extstore_args(tmp_path / "ref")) as ref,
        memcachepy_server(*extstore_args(tmp_path / "cand")) as cand,
    ):
        ref_sock, cand_sock = ref.connect(), cand.connect()
        assert _replies(cand_sock) == _replies(ref_sock)
        ref_stats, cand_stats = stats(ref_sock), stats(cand_sock)
        ref_names = [n for n in ref_stats if "extstore" in n]
        assert [n for n in cand_stats if "extstore" in n] == ref_names
        for name in (
            "extstore_pages_free",
            "extstore_pages_used",
            "extstore_bytes_used",
            "extstore_bytes_fragmented",
            "extstore_limit_maxbytes",
            "slab_global_page_pool",
        ):
            assert cand_stats[name] == ref_stats[name], name
        ref_settings, cand_settings = stats(ref_sock, b"settings"), stats(cand_sock, b"settings")
        for name in [n for n in ref_settings if n.startswith("ext_")] + ["slab_automove_freeratio"]:
            assert cand_settings[name] == ref_settings[name], name
        assert list(stats(cand_sock, b"extstore")) == list(stats(ref_sock, b"extstore"))


def test_a_memory_file_with_extstore_is_refused_and_the_daemon_starts(tmp_path: Path) -> None:
    port = free_port()
    argv = memcachepy_argv(port, "-e", str(tmp_path / "mem"), *extstore_args(tmp_path / "ext"))
    proc = subprocess.Popen(argv, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 20
        while True:
            assert proc.poll() is None and time.monotonic() < deadline
            try:
                sock = socket.create_connection(("127.0.0.1", port), timeout=1)
                break
            except OSError:
                time.sleep(0.05)
        with sock:
            assert ask(sock, b"set a 0 0 1\r\nx\r\n") == b"STORED\r\n"
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=20)
    assert b"[restart] memory restart with extstore not presently supported." in err
    assert not (tmp_path / "mem").exists()
