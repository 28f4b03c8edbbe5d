"""Installs and builds what the benchmark needs: Debian packages, pip packages, the loadgen."""

import importlib.util
import os
import shutil
import subprocess
import sys
import tomllib
from importlib import metadata
from pathlib import Path

from .paths import BUILD_DIR, LOADGEN_BINARY, LOADGEN_SOURCE, REPO_DIR

CFLAGS = ("-O2", "-Wall", "-Wextra", "-std=c11")


class SetupError(RuntimeError):
    """Something the benchmark needs is missing and could not be installed."""


def _say(message: str) -> None:
    print(f"setup: {message}", file=sys.stderr, flush=True)


def _run(argv: list[str], what: str) -> None:
    _say(f"{what}: {' '.join(argv)}")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    done = subprocess.run(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True, check=False, timeout=900)
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


def pip_install(requirements: list[str], allow_install: bool) -> None:
    """Installs Python packages into this interpreter with pip."""
    if not requirements:
        return
    if not allow_install:
        raise SetupError(f"missing Python packages: pip install {' '.join(requirements)}")
    _run([sys.executable, "-m", "pip", "install", "--quiet", *requirements],
         "installing " + ", ".join(requirements))
    importlib.invalidate_caches()


def ensure_module(module: str, requirement: str, allow_install: bool) -> None:
    """Makes `module` importable, installing `requirement` with pip if it is not."""
    if importlib.util.find_spec(module) is None:
        pip_install([requirement], allow_install)


def _distribution_name(requirement: str) -> str:
    for i, ch in enumerate(requirement):
        if not (ch.isalnum() or ch in "-_."):
            return requirement[:i]
    return requirement


def ensure_project_dependencies(allow_install: bool) -> None:
    """Installs memcachepy's runtime dependencies (from pyproject.toml) that are missing."""
    pyproject = REPO_DIR / "pyproject.toml"
    if not pyproject.exists():
        return
    with pyproject.open("rb") as f:
        deps: list[str] = tomllib.load(f).get("project", {}).get("dependencies", [])
    missing = []
    for requirement in deps:
        try:
            metadata.version(_distribution_name(requirement))
        except metadata.PackageNotFoundError:
            missing.append(requirement)
    pip_install(missing, allow_install)


def build_loadgen(force: bool = False) -> Path:
    """Compiles bench/loadgen.c into bench/build/loadgen when it is missing or stale."""
    binary = LOADGEN_BINARY
    if (
        not force
        and binary.exists()
        and binary.stat().st_mtime >= LOADGEN_SOURCE.stat().st_mtime
    ):
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
