"""``python -m bench.abuse`` in its quick form, with its bounds asserted: the attacks of the
daemon's memory and of its loop's fairness against memcachepy (-m 16); those of the dump
commands, watch, UDP and -Y against memcachepy and, where installed, memcached, whose rows
show the attack itself works (memcached answers what memcachepy bounds)."""

from __future__ import annotations

import re

import pytest

from bench.abuse.attacks import ATTACKS, QUICK, Scale, attack
from bench.abuse.probes import MB
from bench.abuse.runner import Row, run, table
from memcachepy.server.udp import MAX_DATAGRAM, REPLY_FLOOR

# -m 16: the bound on what connections hold is as much again; the rest is the daemon's
# own memory, the held replies' and reads' first 16 KiB each, and the allocator's slack.
GROWTH_MAX = 48 * MB


def run_quick(name: str) -> Row:
    (row,) = run([name], ["memcachepy"], QUICK)
    print("\n" + table([row]))
    return row


@pytest.mark.parametrize("name", ["partial-values", "partial-get-lines", "never-read"])
def test_memory_attacks_stay_within_the_bound(name: str) -> None:
    row = run_quick(name)
    assert row.survived
    assert row.rss_peak - row.rss_before <= GROWTH_MAX
    assert row.errors == 0 and row.pairs > 0


def test_a_huge_get_line_is_answered_in_slices() -> None:
    row = run_quick("huge-get-line")
    assert row.survived and row.errors == 0
    assert row.note.startswith("5 lines")  # every line answered END
    assert row.rss_peak - row.rss_before <= GROWTH_MAX


def test_an_attack_is_a_plain_function_in_the_registry() -> None:
    @attack("test-noop", "does nothing")
    def noop(address: tuple[str, int], scale: Scale) -> str:
        return f"nothing against port {address[1]}"

    try:
        (row,) = run(["test-noop"], ["memcachepy"], QUICK)
        assert row.survived and row.note.startswith("nothing against port")
        assert "| test-noop | memcachepy |" in table([row])
    finally:
        del ATTACKS["test-noop"]


def run_both(name: str) -> dict[str, Row]:
    """One row per daemon; memcached's only where it is installed."""
    rows = run([name], ["memcachepy", "memcached"], QUICK)
    print("\n" + table(rows))
    assert all(row.survived for row in rows)
    mine = rows[0]
    assert mine.daemon == "memcachepy" and mine.errors == 0 and mine.pairs > 0
    return {row.daemon: row for row in rows}


def figures(pattern: str, note: str) -> list[float]:
    """The numbers a note gives, in the order ``pattern``'s groups take them."""
    match = re.fullmatch(pattern, note)
    assert match, note
    return [float(group.replace(",", "")) for group in match.groups()]


def test_metadumps_beside_a_dump_are_answered_busy() -> None:
    rows = run_both("metadump")
    pattern = r"(\d+) dumped ([\d,]+) lines, (\d+) of 10 answered BUSY"
    for row in rows.values():
        dumped, _, busy = figures(pattern, row.note)
        assert dumped + busy == 10
    dumped, lines, busy = figures(pattern, rows["memcachepy"].note)
    assert (dumped, busy) == (1, 9)
    assert lines > 10_000  # -m 16 of 1 KB values: the dump was a real one


def test_a_slow_metadump_reader_holds_a_slice_not_the_dump() -> None:
    rows = run_both("slow-metadump")
    pattern = (
        r"([\d,]+) lines of ([\d,]+) items read in 2 s \(the dump not over\); "
        r"RSS \+([\d.]+) MB meanwhile"
    )
    for row in rows.values():
        figures(pattern, row.note)
    lines, items, growth = figures(pattern, rows["memcachepy"].note)
    # Left unread: 50,000 lines of some 80 bytes, which the daemon would hold (and more,
    # as Python objects) were it to take the dump ahead of its reader.
    assert items - lines > 50_000
    assert growth <= 2.0


def test_cachedump_replies_stay_within_2_mb() -> None:
    for row in run_both("cachedump").values():
        (size, _) = figures(r"5 replies of at most ([\d,]+) bytes from class (\d+)", row.note)
        assert 2 * MB - 64 < size <= 2 * MB  # memcached's cap, reached: 100,000 items in COLD


def test_watchers_see_every_get_and_the_load_goes_on() -> None:
    rows = run_both("watch")
    pattern = (
        r"([\d.]+) = ([\d,]+) requests/s with 5 watchers / ([\d,]+) without; "
        r"each watcher read at least ([\d,]+) lines"
    )
    for row in rows.values():
        ratio, watched, _, least = figures(pattern, row.note)
        assert least > 0.5 * watched * QUICK.hold  # drained as they came, few skipped
    ratio, *_ = figures(pattern, rows["memcachepy"].note)
    assert ratio > 0.2


def test_a_udp_datagram_gets_a_bounded_reply() -> None:
    rows = run_both("udp-multiget")
    pattern = (
        r"reply ([\d,.]+) MB of 100 MB asked, to a 313-byte datagram "
        r"\(([\d,.]+) MB arrived; 4 values\)"
    )
    bound = REPLY_FLOOR * MAX_DATAGRAM / (MAX_DATAGRAM - 8) / MB  # with the frame headers
    sent, _ = figures(pattern, rows["memcachepy"].note)
    assert 0.5 < sent <= bound
    if "memcached" in rows:  # the reflection the bound stops
        sent, _ = figures(pattern, rows["memcached"].note)
        assert sent > 10 * bound


def test_password_guesses_are_slowed_on_their_connection_only() -> None:
    rows = run_both("auth-guesses")
    pattern = r"([\d,]+) of 1,000 answered authentication failure in 2 s"
    # The checker logged in with -Y's file and was served throughout.
    assert all(row.errors == 0 and row.pairs > 0 for row in rows.values())
    (failures,) = figures(pattern, rows["memcachepy"].note)
    # Delays doubling from 10 ms after the second failure: 9 answers in 1.3 s, the 10th
    # at 2.3 s.
    assert 5 <= failures <= 10
    if "memcached" in rows:
        (failures,) = figures(pattern, rows["memcached"].note)
        assert failures >= 1
