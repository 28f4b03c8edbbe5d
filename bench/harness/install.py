"""Installs and builds what the benchmark needs: Debian packages and the loadgen. Python
packages are the user's to install (pip install '.[bench]'): they say which are missing."""

import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

from .paths import BUILD_DIR, LOADGEN_BINARY, LOADGEN_SOURCE, REPO_DIR

# What installs memcachepy and the benchmark's Python packages into the Python that runs it.
BENCH_INSTALL = "pip install '.[bench]'"

CFLAGS = ("-O2", "-Wall", "-Wextra", "-std=c11")


class SetupError(RuntimeError):
    """Something the benchmark needs is missing and could not be installed."""


def _say(message: str) -> None:
    print(f"setup: {message}", file=sys.stderr, flush=True)


def _run(argv: list[str], what: str) -> None:
    _say(f"{what}: {' '.join(argv)}")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    done = subprocess.run(
        argv,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        check=False,
        timeout=900,
    )
    if done.returncode != 0:
        tail = "\n".join(done.stdout.splitlines()[-15:])
        raise SetupError(f"{what} failed (exit {done.returncode}):\n{tail}")


def ensure_binaries(binaries: dict[str, str], allow_install: bool) -> None:
    """Makes every binary (name -> Debian package) available, with apt-get if needed."""
    missing = {name: pkg for name, pkg in binaries.items() if shutil.which(name) is None}
    if not missing:
        return
    packages = sorted(set(missing.values()))
    if not allow_install:
        raise SetupError(f"missing {', '.join(missing)}: apt-get install -y {' '.join(packages)}")
    if shutil.which("apt-get") is None:
        raise SetupError(f"missing {', '.join(missing)} and there is no apt-get to install them")
    _run(["apt-get", "update"], "refreshing the package lists")
    _run(["apt-get", "install", "-y", *packages], "installing " + ", ".join(packages))
    still = [name for name in missing if shutil.which(name) is None]
    if still:
        raise SetupError(f"{', '.join(still)} still missing after installing {packages}")


def require_module(module: str) -> None:
    """Fails, saying how to install it, when `module` cannot be imported here."""
    if importlib.util.find_spec(module) is None:
        raise SetupError(
            f"{module} is missing from {sys.executable}: {BENCH_INSTALL} "
            "(from the repository's root) installs what the benchmark needs"
        )


def installed_memcachepy() -> str:
    """The build (compiled or pure) of the memcachepy installed in this Python, as its
    `-V` says; fails when there is none. -P: the current directory cannot shadow it."""
    argv = [sys.executable, "-P", "-m", "memcachepy", "-V"]
    try:
        done = subprocess.run(
            argv, cwd=REPO_DIR, capture_output=True, text=True, timeout=30, check=False
        )
    except subprocess.TimeoutExpired:
        raise SetupError("`python -P -m memcachepy -V` did not answer within 30 s") from None
    if done.returncode != 0:
        tail = " / ".join((done.stderr or done.stdout).strip().splitlines()[-3:])
        raise SetupError(
            f"memcachepy is not installed in {sys.executable} ({tail}): {BENCH_INSTALL} "
            "(from the repository's root; or run the benchmark with .venv/bin/python after "
            "./scripts/start.sh); to validate the bench alone use --servers memcached,memcached"
        )
    version = done.stdout.strip()
    return version.rsplit("(", 1)[-1].rstrip(")") if version.endswith(")") else "unknown"


def build_loadgen(force: bool = False) -> Path:
    """Compiles bench/loadgen.c into bench/build/loadgen when it is missing or stale."""
    binary = LOADGEN_BINARY
    if not force and binary.exists() and binary.stat().st_mtime >= LOADGEN_SOURCE.stat().st_mtime:
        return binary
    compiler = os.environ.get("CC", "gcc")
    if shutil.which(compiler) is None:
        raise SetupError(f"no C compiler '{compiler}' (apt-get install -y gcc)")
    BUILD_DIR.mkdir(parents=True, exist_ok=True)
    argv = [compiler, *CFLAGS, "-o", str(binary), str(LOADGEN_SOURCE)]
    done = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=120)
    if done.returncode != 0:
        raise SetupError(f"building the loadgen failed:\n{done.stderr}")
    if done.stderr.strip():
        _say(f"compiler warnings:\n{done.stderr}")
    _say(f"built {binary.relative_to(REPO_DIR)}")
    return binary
