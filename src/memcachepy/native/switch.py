"""Sends imports to the Python sources when compiled modules must not run.

Python's import system prefers an extension module to the ``.py`` beside it. Two cases
want the sources, for every memcachepy module at once (mypyc's modules call each other
natively, so they run compiled or pure together):

- ``MEMCACHEPY_PURE=1`` at run time, so that the same install can be tested pure;
- sources changed since they were compiled (an editable install, or a checkout built in
  place): the stale extension would run the old code, so tests would pass against it.

A package with nothing compiled that shadows a compiled install further down ``sys.path``
(``python -m memcachepy`` run where a ``memcachepy`` source folder sits) runs pure Python
and says so once on stderr: that is too slow to go unnoticed, and ``python -P`` or another
directory fixes it.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from collections.abc import Sequence
from functools import cache
from importlib.abc import MetaPathFinder
from importlib.machinery import (
    EXTENSION_SUFFIXES,
    SOURCE_SUFFIXES,
    FileFinder,
    ModuleSpec,
    SourceFileLoader,
)
from pathlib import Path
from types import ModuleType

from memcachepy.native.modules import HASHES_FILE, PACKAGE_DIR, pure_requested, sources


def _has_extension(source: Path) -> bool:
    return any(source.with_suffix(suffix).exists() for suffix in EXTENSION_SUFFIXES)


def stale_modules(package_dir: Path = PACKAGE_DIR) -> list[str]:
    """Compiled modules whose source no longer matches the one they were compiled from."""
    try:
        recorded = json.loads((package_dir / HASHES_FILE).read_text())
    except (OSError, ValueError):
        return []
    stale = []
    for relative, digest in sorted(recorded.items()):
        source = package_dir / relative
        if not source.exists() or not _has_extension(source):
            continue  # nothing compiled to distrust, or no source to fall back on
        if hashlib.sha256(source.read_bytes()).hexdigest() != digest:
            stale.append(relative)
    return stale


def compiled_elsewhere(
    package_dir: Path = PACKAGE_DIR, path: Sequence[str] | None = None
) -> Path | None:
    """Another ``memcachepy`` directory on ``path`` (``sys.path``) that holds a compiled
    build, when ``package_dir`` has nothing compiled (no extension beside any compiled
    source)."""
    if (package_dir / HASHES_FILE).exists() or any(map(_has_extension, sources(package_dir))):
        return None
    for entry in sys.path if path is None else path:
        candidate = Path(entry or os.getcwd()) / "memcachepy"
        try:
            if (candidate / HASHES_FILE).is_file() and not candidate.samefile(package_dir):
                return candidate
        except OSError:
            continue
    return None


class SourceFinder(MetaPathFinder):
    """Finds memcachepy's submodules as Python sources, passing over compiled twins."""

    def find_spec(
        self,
        fullname: str,
        path: Sequence[str] | None,
        target: ModuleType | None = None,
    ) -> ModuleSpec | None:
        if path is None or not fullname.startswith("memcachepy."):
            return None
        for entry in path:
            finder = FileFinder(entry, (SourceFileLoader, SOURCE_SUFFIXES))
            spec = finder.find_spec(fullname, target)
            if spec is not None and spec.loader is not None:
                return spec
        return None


def select() -> None:
    """Route imports to the sources when pure mode is asked for or the build is stale.

    Called by ``memcachepy/__init__.py``, before any compiled module can load.
    """
    if any(isinstance(finder, SourceFinder) for finder in sys.meta_path):
        return
    if not pure_requested():
        stale = stale_modules()
        if not stale:
            if not (PACKAGE_DIR / HASHES_FILE).exists():
                _warn_if_shadowing()
            return
        print(
            f"memcachepy: sources changed since they were compiled ({', '.join(stale)});"
            " running pure Python (rebuild: pip install -e .)",
            file=sys.stderr,
        )
    sys.meta_path.insert(0, SourceFinder())


def _warn_if_shadowing() -> None:
    compiled = compiled_elsewhere()
    if compiled is not None:
        print(
            f"memcachepy: the sources at {PACKAGE_DIR} shadow the compiled build at "
            f"{compiled}; running pure Python (start it from another directory, with "
            "python -P -m memcachepy, or with the memcachepy command)",
            file=sys.stderr,
        )


@cache
def running_build() -> str:
    """Which build this process runs: ``compiled`` or ``pure`` (``mixed`` for a build that
    compiled only some modules). What ``memcachepy -V`` and ``stats settings`` report."""
    if any(isinstance(finder, SourceFinder) for finder in sys.meta_path):
        return "pure"
    built = [_has_extension(source) for source in sources()]
    return "compiled" if all(built) else "mixed" if any(built) else "pure"
