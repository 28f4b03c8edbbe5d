"""``-o read_buf_mem_limit``: memcached's bound on connection buffer memory, as replies.

memcached takes each connection's read buffer and its response objects from 16 KiB
buffers, ``read_buf_mem_limit / -t`` bytes of them per worker thread (at least one). A
response object takes one request, or one key of a multi-get, until its reply is sent; 13
fit in a buffer. When none is left, a get answers ``SERVER_ERROR out of memory writing get
response`` (the replies stacked before it are dropped) and any other request closes the
connection; ``response_obj_oom`` counts both.

memcachepy keeps that arithmetic, so that a limit sized for memcached trips at the same
request sizes: a connection may stack (buffers per thread - 1 for its read buffer) x 13
replies between two sends. One loop serves one connection at a time here, so a
connection's round has its thread's whole share to itself.
"""

from __future__ import annotations

from typing import Final

from memcachepy.config import Settings
from memcachepy.protocol import events as ev

READ_BUFFER_SIZE: Final = 16384  # memcached's READ_BUFFER_SIZE
RESPONSE_SIZE: Final = 1184  # sizeof(mc_resp) on 64-bit Linux: 1 KiB of wbuf and pointers
BUNDLE_HEADER: Final = 24  # sizeof(mc_resp_bundle) before its responses
RESPONSES_PER_BUFFER: Final = (READ_BUFFER_SIZE - BUNDLE_HEADER) // RESPONSE_SIZE  # 13
UNLIMITED: Final = -1


def replies_per_round(limit: int, threads: int) -> int:
    """Replies a connection may stack between two sends (:data:`UNLIMITED` without a limit).

    0 is possible, as in memcached: one buffer per thread is taken by the read buffer.
    """
    if limit <= 0:
        return UNLIMITED
    share = limit // max(threads, 1)
    buffers = 1 if share < READ_BUFFER_SIZE else share // READ_BUFFER_SIZE
    return (buffers - 1) * RESPONSES_PER_BUFFER


def conn_memory_bound(settings: Settings) -> int:
    """-o conn_mem_limit in bytes (0: no bound): what partial requests and unsent replies
    may hold across connections. By default half of -m: memcached reads a value into its
    item, allocated under -m, so slow uploads cost it nothing past -m; here they may hold
    half as much again, and the daemon's memory stays within 1.5 times -m plus each
    connection's first read and first unsent reply bytes."""
    limit = settings.conn_mem_limit
    return settings.memory_limit // 2 if limit is None else limit


def responses(event: object) -> int:
    """Response objects memcached takes for a request: one per key of a get, else one."""
    if type(event) is ev.Retrieve:
        return max(len(event.keys), 1)
    return 1


def flushes(event: object) -> bool:
    """Whether memcached sends (and so frees) every stacked reply after this request:
    ``mn`` forces its immediate writeback."""
    return type(event) is ev.MetaNoop
