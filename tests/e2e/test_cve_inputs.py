"""memcached's CVE inputs, sent to a real memcachepy: the attacker's connection is answered
or closed, the daemon lives on, and another client's data is untouched.

The inputs memcachepy answers as memcached 1.6.18 does are in the differential suites
(named ``cve-...``); these are the ones where memcachepy deliberately answers otherwise.
"""

from __future__ import annotations

import os
import struct

import pytest

from memcachepy.protocol.binary import Header, Opcode, request
from tests.e2e.wire import closed_by_peer, exchange
from tests.servers import ServerProcess, memcachepy_server

FLAGS_EXPTIME = struct.pack(">II", 5, 0)


def _frame(opcode: int, key: bytes, extras: bytes, body_length: int) -> bytes:
    return Header(0x80, opcode, len(key), len(extras), 0, 0, body_length, 1, 0).pack() + (
        extras + key
    )


@pytest.mark.parametrize(
    ("frame", "closes"),
    [
        # CVE-2016-8704: append and prepend whose value length passes 2 GiB: closed.
        (_frame(Opcode.APPEND, b"k", b"", 0xFFFFFFF0), True),
        (_frame(Opcode.PREPEND, b"k", b"", 0xFFFFFFFF), True),
        # CVE-2016-8705: a set past 2 GiB is closed; an add just under it can never be
        # stored, so its value is swallowed as it arrives (the "too large" answer waits for
        # its end, as memcached's does), holding no memory.
        (_frame(Opcode.SET, b"k", FLAGS_EXPTIME, 0xFFFFFFFF), True),
        (_frame(Opcode.ADD, b"k", FLAGS_EXPTIME, 0x80000000), False),
    ],
    ids=["append", "prepend", "set", "add-just-under-2-gib"],
)
def test_a_body_length_near_2_32_harms_no_one(frame: bytes, closes: bool) -> None:
    with memcachepy_server("-m", "16") as srv:
        with srv.connect() as other:
            assert exchange(other, b"set safe 0 0 2\r\nok\r\n") == b"STORED\r\n"
            with srv.connect() as attacker:
                attacker.sendall(frame + request(Opcode.NOOP) + b"x" * 1000)
                assert closed_by_peer(attacker, 5.0 if closes else 0.5) == closes
            assert exchange(other, b"get safe\r\n", b"END\r\n") == (
                b"VALUE safe 0 2\r\nok\r\nEND\r\n"
            )
        assert srv.proc.poll() is None


def _udp_ports_open(proc: ServerProcess) -> list[str]:
    """The local addresses of the UDP sockets the daemon holds."""
    inodes = set()
    for fd in os.listdir(f"/proc/{proc.proc.pid}/fd"):
        try:
            target = os.readlink(f"/proc/{proc.proc.pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    with open("/proc/net/udp") as udp, open("/proc/net/udp6") as udp6:
        rows = udp.readlines()[1:] + udp6.readlines()[1:]
    return [row.split()[1] for row in rows if row.split()[9] in inodes]


def test_udp_is_off_unless_asked_for() -> None:
    # CVE-2018-1000115 (amplification): memcached listens on UDP only with -U since 1.5.6.
    with memcachepy_server() as srv:
        assert _udp_ports_open(srv) == []
