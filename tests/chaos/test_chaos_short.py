"""The chaos harness's short run (~20 s): SIGKILL + empty restart, SIGSTOP, warm restart.

Real nodes, four client processes on ClusterClient(replicas=2), every read checked against
the writer's own history (bench/chaos). The figures for the README come from the long runs;
this checks what must hold in any run: no stale read, no error, every phase served.
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
        cwd=ROOT, capture_output=True, text=True, timeout=110)
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    summary = json.loads((tmp_path / "results.json").read_text())["summary"]
    total = summary["total"]
    assert total["stale"] == 0 and total["errors"] == 0
    assert all(phase["requests"] > 100 for phase in summary["phases"])
    # The empty restart is repaired: reads copy keys back to the restarted node.
    assert summary["client_stats"]["read_repairs"] > 0
    assert (tmp_path / "chaos.png").stat().st_size > 0
