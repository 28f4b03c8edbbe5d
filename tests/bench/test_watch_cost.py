"""bench/watch_cost.py runs end to end: its watchers are sent lines while the load runs (a
real daemon and load generator, for half a second; no figure is asserted)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_watchers_get_lines_and_the_table_has_both_rates() -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "watch_cost.py"), "--servers", "memcachepy"]
        + ["--watchers", "2", "--duration", "0.5", "--repeats", "1"],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    row = re.search(
        r"^\| memcachepy \((compiled|pure)\) \| ([\d,]+) \| ([\d,]+) \| ([\d.]+) \| ([\d,]+) \|",
        done.stdout,
        re.MULTILINE,
    )
    assert row, done.stdout
    bare, watched, lines = (int(row.group(i).replace(",", "")) for i in (2, 3, 5))
    assert bare > 0 and watched > 0
    assert lines > 0  # each watcher was sent lines: about one per request it watched
