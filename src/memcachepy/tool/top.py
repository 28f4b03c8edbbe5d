"""``top``: a live view of one node, refreshed every second; ``q`` quits.

Each refresh reads ``stats`` once and shows the rates since the previous one: operations
per second by command, the get hit ratio (now and since start), evictions, connections,
memory and network. In a terminal the screen is redrawn in place and keys are read without
waiting for Enter; otherwise (or with ``--json``) each refresh is appended to the output.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import sys
import termios
import time
import tty
from collections.abc import Iterator
from typing import IO, Any, Final

from memcachepy.tool.client import Connection, format_address
from memcachepy.tool.render import duration, percent, size, table

CLEAR: Final = "\x1b[H\x1b[2J"
WIDTH: Final = 80  # columns of the smallest terminal the view is laid out for
# ops/s columns: command -> the stats whose sum counts it.
COMMANDS: Final = {
    "get": ("cmd_get",),
    "set": ("cmd_set",),
    "delete": ("delete_hits", "delete_misses"),
    "incr": ("incr_hits", "incr_misses"),
    "decr": ("decr_hits", "decr_misses"),
    "touch": ("cmd_touch",),
    "cas": ("cas_hits", "cas_misses", "cas_badval"),
    "flush": ("cmd_flush",),
}


def _numbers(pairs: list[tuple[str, str]]) -> dict[str, float]:
    values: dict[str, float] = {}
    for name, text in pairs:
        try:
            values[name] = float(text)
        except ValueError:
            continue
    return values


def snapshot(
    previous: dict[str, float] | None, current: dict[str, float], elapsed: float
) -> dict[str, Any]:
    """What one refresh shows, computed from two ``stats`` readings ``elapsed`` apart."""

    def rate(*names: str) -> float:
        if previous is None or elapsed <= 0:
            return 0.0
        delta = sum(current.get(n, 0) - previous.get(n, 0) for n in names)
        return max(delta, 0) / elapsed

    ops = {command: round(rate(*names), 1) for command, names in COMMANDS.items()}
    gets_now = rate("cmd_get")
    return {
        "time": current.get("time", time.time()),
        "uptime": current.get("uptime", 0),
        "ops_per_second": ops,
        "total_ops_per_second": round(sum(ops.values()), 1),
        "hit_ratio": rate("get_hits") / gets_now if gets_now else None,
        "hit_ratio_total": (
            current.get("get_hits", 0) / current["cmd_get"] if current.get("cmd_get") else None
        ),
        "evictions_per_second": round(rate("evictions"), 1),
        "evictions": int(current.get("evictions", 0)),
        "reclaimed_per_second": round(rate("reclaimed"), 1),
        "connections": int(current.get("curr_connections", 0)),
        "new_connections_per_second": round(rate("total_connections"), 1),
        "max_connections": int(current.get("max_connections", 0)),
        "items": int(current.get("curr_items", 0)),
        "bytes": int(current.get("bytes", 0)),
        "limit_bytes": int(current.get("limit_maxbytes", 0)),
        "read_bytes_per_second": round(rate("bytes_read")),
        "written_bytes_per_second": round(rate("bytes_written")),
    }


def render(view: dict[str, Any], address: str, version: str, refresh: int) -> str:
    ops = view["ops_per_second"]
    lines = [
        _fit(f"top {address}  up {duration(view['uptime'])}  refresh {refresh}"),
        _fit(f"(q quits)  version {version}"),
        "",
        table(
            ["ops/s", *ops, "total"],
            [["", *(_rate(v) for v in ops.values()), _rate(view["total_ops_per_second"])]],
        ),
        "",
        f"hit ratio    {_ratio(view['hit_ratio'])} now    "
        f"{_ratio(view['hit_ratio_total'])} since start",
        f"evictions    {view['evictions_per_second']:g}/s    total {view['evictions']}    "
        f"reclaimed {view['reclaimed_per_second']:g}/s",
        f"connections  {view['connections']} open    {view['new_connections_per_second']:g} "
        f"new/s    max {view['max_connections']}",
        f"memory       {size(view['bytes'])} of {size(view['limit_bytes'])} "
        f"({percent(view['bytes'], view['limit_bytes'])})    items {view['items']}",
        f"network      in {size(view['read_bytes_per_second'])}/s    "
        f"out {size(view['written_bytes_per_second'])}/s",
    ]
    return "\n".join(lines) + "\n"


def _fit(line: str) -> str:
    """A line cut to an 80-column terminal (a long IPv6 address or version)."""
    return line if len(line) <= WIDTH else line[: WIDTH - 3] + "..."


def _rate(value: float) -> str:
    """An ops/s figure in at most 6 characters, so the row stays within 80 columns."""
    if value >= 1_000_000:
        return f"{value / 1_000_000:.1f}M"
    if value >= 10_000:
        return f"{value / 1000:.1f}k"
    return f"{value:g}"


def _ratio(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


@contextlib.contextmanager
def _keys(stream: IO[str]) -> Iterator[int | None]:
    """The terminal's fd in cbreak mode (keys without Enter, no echo), restored after."""
    try:
        fd = stream.fileno()
    except (AttributeError, OSError, ValueError):
        yield None
        return
    if not os.isatty(fd):
        yield None
        return
    saved = termios.tcgetattr(fd)
    try:
        tty.setcbreak(fd)
        yield fd
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)


def _wait_for_quit(fd: int | None, seconds: float) -> bool:
    """Wait ``seconds``; True if ``q`` was pressed (or input ended) meanwhile."""
    deadline = time.monotonic() + seconds
    while (remaining := deadline - time.monotonic()) > 0:
        if fd is None:
            time.sleep(remaining)
            return False
        ready, _, _ = select.select([fd], [], [], remaining)
        if ready:
            key = os.read(fd, 32)
            if not key or b"q" in key.lower():
                return True
    return False


def top(
    address: tuple[str, int],
    *,
    interval: float = 1.0,
    count: int | None = None,
    as_json: bool = False,
    out: IO[str] | None = None,
    keys: IO[str] | None = None,
    timeout: float = 5.0,
) -> int:
    """Refresh every ``interval`` seconds until ``q``, Ctrl-C or ``count`` refreshes."""
    out = out or sys.stdout
    screen = not as_json and out.isatty()
    with Connection(address, timeout) as conn, _keys(keys or sys.stdin) as fd:
        version = conn.version()
        previous: dict[str, float] | None = None
        last = time.monotonic()
        refresh = 0
        try:
            while count is None or refresh < count:
                current = _numbers(conn.stats())
                now = time.monotonic()
                view = snapshot(previous, current, now - last)
                previous, last = current, now
                refresh += 1
                if as_json:
                    out.write(json.dumps(view) + "\n")
                else:
                    page = render(view, format_address(address), version, refresh)
                    out.write(CLEAR + page if screen else page + "\n")
                out.flush()
                if (count is None or refresh < count) and _wait_for_quit(fd, interval):
                    break
        except KeyboardInterrupt:
            pass
    return 0
