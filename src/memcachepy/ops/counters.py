"""Server-wide counters and the one place that formats ``STAT`` lines."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, fields
from typing import Final

# Counters ``stats reset`` leaves alone: they describe the present, not history.
GAUGES: Final = frozenset({"curr_connections", "ssl_cert_loaded_at"})


@dataclass(slots=True)
class ServerCounters:
    """Counters kept by the protocol side, named as in memcached's ``stats``.

    Compiled with mypyc (native/modules.py): every request updates a few of these from
    compiled code, where a native class's attribute is a C field and an interpreted
    dataclass's a generic attribute lookup and store (about 300 instructions each).
    """

    cmd_get: int = 0
    cmd_set: int = 0
    cmd_flush: int = 0
    cmd_touch: int = 0
    cmd_meta: int = 0  # me commands (memcached counts nothing else as meta)
    get_misses: int = 0
    delete_misses: int = 0
    incr_misses: int = 0
    decr_misses: int = 0
    cas_misses: int = 0
    touch_misses: int = 0
    store_too_large: int = 0
    store_no_memory: int = 0
    bytes_read: int = 0
    bytes_written: int = 0
    curr_connections: int = 0
    total_connections: int = 0
    rejected_connections: int = 0
    conn_yields: int = 0
    idle_kicks: int = 0
    internal_errors: int = 0  # connections closed because handling a request raised
    ssl_handshake_errors: int = 0
    ssl_cert_loaded_at: float = 0.0  # when the TLS certificates were last (re)loaded
    auth_cmds: int = 0
    auth_errors: int = 0
    output_flushes: int = 0  # sends forced mid-batch by the output bound (backpressure)
    input_overflows: int = 0  # connections closed for an over-long line
    log_watchers: int = 0  # watch connections now
    log_watcher_sent: int = 0  # lines queued for watchers
    log_watcher_skipped: int = 0  # lines a slow watcher lost
    response_obj_oom: int = 0  # requests refused for want of reply memory (read_buf_mem_limit)
    read_buf_oom: int = 0  # partial requests let go, backlogs closed (conn_mem_limit)

    def reset(self) -> None:
        for f in fields(self):
            if f.name not in GAUGES:
                setattr(self, f.name, 0)


def format_stats(pairs: Iterable[tuple[str, object]]) -> bytes:
    """``STAT name value`` lines followed by ``END``."""
    lines = [b"STAT %s %s\r\n" % (name.encode(), _text(value)) for name, value in pairs]
    lines.append(b"END\r\n")
    return b"".join(lines)


def _text(value: object) -> bytes:
    if isinstance(value, bool):
        return b"yes" if value else b"no"
    if isinstance(value, float):
        return b"%.6f" % value
    if isinstance(value, bytes):
        return value
    return str(value).encode()


def stat_text(value: object) -> bytes:
    """One stat value as every protocol writes it (``yes``/``no``, floats to 6 places)."""
    return _text(value)
