"""Which modules mypyc compiles: the sans-I/O layers, from the same typed sources.

Read by setup.py by path (importing the package there would run :mod:`.switch`), so this
file imports nothing of memcachepy.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Final

# Packages compiled, relative to the memcachepy package directory: the sans-I/O layers and
# dispatch, which joins them (it imports no trio; ops/ and auth/ stay interpreted).
COMPILED_PACKAGES: Final = ("protocol", "store", "dispatch")
# Single modules compiled besides: the connection loop's synchronous steps (no trio), the
# watch lines it sends (written per request while someone watches), and what the loop
# updates per request: the server's counters, the current connection, and the per-prefix
# stats that every get, set and delete checks.
COMPILED_MODULES: Final = (
    "server/multiplexer.py",
    "server/watch.py",
    "ops/counters.py",
    "ops/current.py",
    "ops/prefix_stats.py",
)
# Modules of those packages kept pure (relative paths, e.g. "protocol/text.py"): none today.
KEPT_PURE: Final[frozenset[str]] = frozenset()
# Written by the build beside the package: {relative source path: sha256 of what it compiled}.
HASHES_FILE: Final = "compiled_sources.json"
# Set (to anything but empty or 0) at build time, it skips compiling; at run time, it makes
# every import take the Python sources.
PURE_VARIABLE: Final = "MEMCACHEPY_PURE"
PACKAGE_DIR: Final = Path(__file__).resolve().parent.parent


def pure_requested() -> bool:
    return os.environ.get(PURE_VARIABLE, "") not in ("", "0")


def sources(package_dir: Path = PACKAGE_DIR) -> list[Path]:
    """The sources mypyc compiles (package ``__init__`` files stay pure)."""
    found: list[Path] = []
    for package in COMPILED_PACKAGES:
        for path in sorted((package_dir / package).glob("*.py")):
            relative = path.relative_to(package_dir).as_posix()
            if path.name != "__init__.py" and relative not in KEPT_PURE:
                found.append(path)
    found.extend(package_dir / relative for relative in COMPILED_MODULES)
    return found


def module_names(package_dir: Path = PACKAGE_DIR) -> list[str]:
    return [
        "memcachepy." + path.relative_to(package_dir).with_suffix("").as_posix().replace("/", ".")
        for path in sources(package_dir)
    ]


def source_hashes(paths: Sequence[Path], package_dir: Path = PACKAGE_DIR) -> dict[str, str]:
    return {
        path.relative_to(package_dir).as_posix(): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in paths
    }
