"""The README's two commands, in a fresh clone, under Debian's own Python.

A new user on Debian 12 clones the repository and runs ``./scripts/start.sh`` and then
``./scripts/test.sh``, with ``/usr/bin/python3`` (externally managed, PEP 668) first on
PATH. Both must work without installing into that Python: start.sh makes the clone's
.venv, installs the clone into it compiled, and starts the daemon; test.sh reuses that
.venv. One clone serves both commands, so the package is compiled once.

It clones the committed tree (HEAD), not the working files, and takes minutes: it is
marked ``slow`` (``-m "not slow"`` leaves it out of a quick run).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest

from tests.servers import HOST, free_port

ROOT = Path(__file__).resolve().parents[1]
SYSTEM_PYTHON = Path("/usr/bin/python3")
START_TIMEOUT = 900.0  # seconds for start.sh to make .venv, compile, install and listen


def _system_python_problem() -> str | None:
    if not SYSTEM_PYTHON.exists():
        return f"{SYSTEM_PYTHON} is missing"
    old = subprocess.run(
        [str(SYSTEM_PYTHON), "-c", "import sys; sys.exit(sys.version_info < (3, 11))"], check=False
    )
    if old.returncode != 0:
        return f"{SYSTEM_PYTHON} is older than 3.11"
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        return "not a git checkout"
    return None


def _fresh_shell() -> dict[str, str]:
    """This environment as a new login would have it: /usr/bin first, no venv or
    memcachepy settings (pip's settings, which name the package mirror, stay)."""
    dropped = ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME", "CONDA_PREFIX", "PYENV_VERSION")
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in dropped and not key.startswith("MEMCACHEPY_")
    }
    env["PATH"] = "/usr/bin:/bin"
    return env


def _version(port: int) -> bytes:
    with socket.create_connection((HOST, port), timeout=5) as sock:
        sock.sendall(b"version\r\n")
        reply = b""
        while not reply.endswith(b"\r\n"):
            chunk = sock.recv(4096)
            if not chunk:
                break
            reply += chunk
        return reply


@pytest.mark.slow
@pytest.mark.timeout(2400)
@pytest.mark.skipif(_system_python_problem() is not None, reason=_system_python_problem() or "")
def test_readme_commands_in_a_fresh_clone_with_the_system_python(tmp_path: Path) -> None:
    clone = tmp_path / "memcachepy"
    subprocess.run(["git", "clone", "--quiet", str(ROOT), str(clone)], check=True, timeout=120)
    env = _fresh_shell()

    # The first command: ./scripts/start.sh (flags go to the daemon) answers `version`.
    port = free_port()
    log_path = tmp_path / "start.log"
    with log_path.open("wb") as log:
        daemon = subprocess.Popen(
            ["./scripts/start.sh", "-p", str(port)],
            cwd=clone,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            try:
                reply = _version(port)
                break
            except OSError:
                assert daemon.poll() is None, log_path.read_text(errors="replace")
                assert time.monotonic() < deadline, log_path.read_text(errors="replace")
                time.sleep(0.5)
        assert reply.startswith(b"VERSION 1.6.18-memcachepy-"), reply
    finally:
        daemon.terminate()  # start.sh execs the daemon: this is its SIGTERM
        daemon.wait(30)
    venv_python = clone / ".venv" / "bin" / "python"
    base = subprocess.run(
        [str(venv_python), "-c", "import sys; print(sys.base_prefix)"],
        capture_output=True,
        text=True,
        check=True,
        env=env,
    ).stdout.strip()
    assert base == "/usr", base  # the venv was made from Debian's Python, never installed in
    build = subprocess.run(
        [str(venv_python), "-P", "-m", "memcachepy", "-V"],
        cwd=clone,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert build.endswith(("(compiled)\n", "(pure)\n")), build

    # The second command, on a narrow selection, reusing that .venv.
    tests = subprocess.run(
        ["./scripts/test.sh", "tests/test_cli.py"],
        cwd=clone,
        env=env,
        capture_output=True,
        text=True,
        timeout=1200,
    )
    output = tests.stdout + tests.stderr
    assert tests.returncode == 0, output[-4000:]
    assert " passed" in output and "installing memcachepy" not in output, output[-4000:]
