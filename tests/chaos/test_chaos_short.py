"""The chaos harness's short run (~17 s): issue 26's faults every 3 s (SIGKILL and an
empty restart, SIGSTOP, another empty restart), then a warm restart.

Real nodes that warm up from their peers, four client processes on
ClusterClient(replicas=2), every read checked against the writer's own history
(bench/chaos). The figures for the README come from the long runs; this checks what must
hold in any run: no stale read, no error, every phase served, the empty nodes warmed up.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_short_chaos_run_has_no_stale_read_and_no_error(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "bench.chaos", "--scenario", "short", "--out", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=110,
    )
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    summary = json.loads((tmp_path / "results.json").read_text())["summary"]
    total = summary["total"]
    assert total["stale"] == 0 and total["errors"] == 0
    assert all(phase["requests"] > 100 for phase in summary["phases"])
    # The empty restarts are refilled: each node warms up from its peers (3 first starts,
    # 2 empty restarts), and the clients copy back what the node missed while it was down.
    warmups = summary["warmups"]
    assert warmups["count"] >= 5 and warmups["aborted"] == 0 and warmups["items"] > 0
    assert summary["client_stats"]["read_repairs"] > 0
    assert (tmp_path / "chaos.png").stat().st_size > 0
