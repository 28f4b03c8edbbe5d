"""The profile-guided build's training run (setup.py runs it against the instrumented build)."""

from __future__ import annotations

import os
import subprocess
import sys

from memcachepy.native.modules import PACKAGE_DIR
from memcachepy.native.switch import running_build

ROOT = PACKAGE_DIR.parent


def test_the_training_load_runs_only_against_a_compiled_daemon() -> None:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    done = subprocess.run(
        [sys.executable, "-m", "memcachepy.native.training"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    if running_build() == "compiled":
        # Every reply was read and none was an error; the daemon stopped cleanly.
        assert done.returncode == 0, done.stderr
    else:
        # A pure daemon would teach the compiler nothing: the build must hear of it.
        assert done.returncode == 1
        assert "the daemon does not run compiled" in done.stderr
