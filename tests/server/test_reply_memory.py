"""-o read_buf_mem_limit's arithmetic: memcached's per-thread share of 16 KiB buffers."""

from __future__ import annotations

from memcachepy.config import Settings
from memcachepy.protocol import events as ev
from memcachepy.server.reply_memory import (
    RESPONSES_PER_BUFFER,
    UNLIMITED,
    conn_memory_bound,
    flushes,
    replies_per_round,
    responses,
)
from memcachepy.suboptions import apply_suboptions

MIB = 1 << 20


def test_replies_follow_memcached_s_per_thread_buffers() -> None:
    assert RESPONSES_PER_BUFFER == 13  # (16384 - 24) // sizeof(mc_resp) 1184
    assert replies_per_round(0, 4) == UNLIMITED
    assert replies_per_round(MIB, 32) == 13  # 2 buffers: the read buffer and 13 replies
    assert replies_per_round(MIB, 4) == 15 * 13
    assert replies_per_round(MIB, 128) == 0  # one buffer, taken by reading: nothing answers
    assert replies_per_round(64 * MIB, 1) == 4095 * 13


def test_a_get_takes_one_response_per_key_and_mn_flushes() -> None:
    assert responses(ev.Retrieve([b"a", b"b", b"c"], False, None)) == 3
    assert responses(ev.Delete(b"a", False)) == 1
    assert flushes(ev.MetaNoop()) and not flushes(ev.Version())


def test_what_connections_hold_is_bounded_by_m_unless_told() -> None:
    settings = Settings(memory_limit=64 * MIB)
    assert conn_memory_bound(settings) == 32 * MIB
    apply_suboptions(settings, ["conn_mem_limit=8"])
    assert conn_memory_bound(settings) == 8 * MIB
    apply_suboptions(settings, ["conn_mem_limit=0"])
    assert conn_memory_bound(settings) == 0  # no bound
