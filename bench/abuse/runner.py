"""Runs attacks against each daemon in turn and gathers one row per (attack, daemon)."""

from __future__ import annotations

import resource
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from bench.abuse import servers
from bench.abuse.attacks import ATTACKS, AUTH_FILE, Attack, Scale
from bench.abuse.probes import MB, Checker, PeakRss, rss

SETTLE = 1.0  # seconds after an attack before RSS "after" is read


@dataclass
class Row:
    attack: str
    daemon: str
    rss_before: int
    rss_peak: int
    rss_after: int
    errors: int
    pairs: int
    slowest: float  # seconds
    p99: float  # seconds
    survived: bool
    note: str


def raise_fd_limit() -> None:
    """Thousands of attack sockets: the soft limit up to the hard one."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def run_one(attack: Attack, daemon_name: str, scale: Scale) -> Row:
    flags = list(attack.flags)
    with tempfile.TemporaryDirectory(prefix="abuse-") as scratch:
        if attack.login:
            auth_file = Path(scratch) / "auth"
            # -Y's format is user:password; the login carries them space-separated.
            auth_file.write_bytes(attack.login.replace(b" ", b":", 1) + b"\n")
            flags = [flag.replace(AUTH_FILE, str(auth_file)) for flag in flags]
        return _run_with_flags(attack, daemon_name, scale, flags)


def _run_with_flags(attack: Attack, daemon_name: str, scale: Scale, flags: list[str]) -> Row:
    flags = ["-m", str(scale.memory_mb), "-c", "4096", *flags]
    daemon = servers.start(daemon_name, flags, attack.login)
    try:
        pid = daemon.proc.pid
        if attack.prepare is not None:
            attack.prepare(daemon.address, scale)
        with Checker(daemon.address, login=attack.login) as checker:
            time.sleep(0.5)  # the checker's keys stored: part of "before"
            before = rss(pid)
            with PeakRss(pid) as peak:
                try:
                    note = attack.run(daemon.address, scale)
                except Exception as exc:  # an attack's own failure is a row, not a crash
                    note = f"attack failed: {exc!r}"
                time.sleep(SETTLE)
            after = rss(pid)
        result = checker.result
        return Row(
            attack.name,
            daemon_name,
            before,
            peak.peak,
            after,
            result.errors,
            result.pairs,
            result.slowest,
            result.p99,
            daemon.alive(),
            note,
        )
    finally:
        daemon.stop()


def run(names: list[str], daemons: list[str], scale: Scale) -> list[Row]:
    raise_fd_limit()
    rows = []
    for name in names:
        for daemon in daemons:
            if servers.available(daemon):
                rows.append(run_one(ATTACKS[name], daemon, scale))
    return rows


def table(rows: list[Row]) -> str:
    """The rows as one Markdown table."""
    lines = [
        "| attack | daemon | RSS before | peak | after | checker errors | slowest reply "
        "| p99 | survived | the daemon's answers |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- | --- |",
    ]
    for row in rows:
        lines.append(
            f"| {row.attack} | {row.daemon} | {row.rss_before / MB:.0f} MB "
            f"| {row.rss_peak / MB:.0f} MB | {row.rss_after / MB:.0f} MB "
            f"| {row.errors} of {row.pairs + row.errors} | {row.slowest * 1000:.1f} ms "
            f"| {row.p99 * 1000:.1f} ms "
            f"| {'yes' if row.survived else '**no**'} | {row.note} |"
        )
    return "\n".join(lines)
