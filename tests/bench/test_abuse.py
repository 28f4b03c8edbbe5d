"""``python -m bench.abuse`` in its quick form: the attacks of the daemon's memory and of its
loop's fairness, against memcachepy (-m 16), with the bounds of issue 27 asserted."""

from __future__ import annotations

import pytest

from bench.abuse.attacks import ATTACKS, QUICK, Scale, attack
from bench.abuse.probes import MB
from bench.abuse.runner import Row, run, table

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
