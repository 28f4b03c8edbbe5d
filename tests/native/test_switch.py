"""The compiled/pure switch: what an import gets, with and without MEMCACHEPY_PURE."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from importlib.machinery import EXTENSION_SUFFIXES
from pathlib import Path

import pytest

from memcachepy.native.modules import PACKAGE_DIR, pure_requested, source_hashes, sources
from memcachepy.native.switch import stale_modules

ROOT = PACKAGE_DIR.parent
REPO = Path(__file__).resolve().parents[2]
# Imports a compiled-or-pure module, uses it, and says which file it came from.
PROBE = (
    "import memcachepy.store.cache as c\n"
    "cache = c.Cache(8 << 20)\n"
    "assert cache.store(c.StoreMode.SET, b'k', 5, 0, b'v') == c.StoreResult.STORED\n"
    "print(c.__file__)\n"
)


def _run(code: str, pure: bool) -> str:
    env = {k: v for k, v in os.environ.items() if k != "MEMCACHEPY_PURE"}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    if pure:
        env["MEMCACHEPY_PURE"] = "1"
    result = subprocess.run(
        [sys.executable, "-c", code],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return result.stdout.strip()


def _built() -> bool:
    return all(any(p.with_suffix(s).exists() for s in EXTENSION_SUFFIXES) for p in sources())


def test_pure_mode_imports_the_sources() -> None:
    assert _run(PROBE, pure=True).endswith("cache.py")


def test_without_the_variable_a_build_runs_compiled() -> None:
    origin = _run(PROBE, pure=False)
    if _built() and not stale_modules():
        assert origin.endswith(tuple(EXTENSION_SUFFIXES)), origin
    else:
        assert origin.endswith("cache.py"), origin
    mode = _run(
        "import runpy; runpy.run_module('memcachepy.native', run_name='__main__')", pure=False
    )
    assert mode == ("compiled" if _built() and not stale_modules() else "pure")


def _tree(tmp_path: Path, *, compiled: bool) -> Path:
    source = tmp_path / "store" / "cache.py"
    source.parent.mkdir()
    source.write_text("X = 1\n")
    if compiled:
        source.with_suffix(EXTENSION_SUFFIXES[0]).write_bytes(b"")
    hashes = source_hashes([source], tmp_path)
    (tmp_path / "compiled_sources.json").write_text(json.dumps(hashes))
    return source


def test_a_source_edited_after_compiling_is_stale(tmp_path: Path) -> None:
    source = _tree(tmp_path, compiled=True)
    assert stale_modules(tmp_path) == []
    source.write_text("X = 2\n")
    assert stale_modules(tmp_path) == ["store/cache.py"]


def test_a_source_never_compiled_is_not_stale(tmp_path: Path) -> None:
    source = _tree(tmp_path, compiled=False)
    source.write_text("X = 2\n")
    assert stale_modules(tmp_path) == []


def test_a_stale_build_runs_pure_and_says_so(tmp_path: Path) -> None:
    # A copy of the package with a recorded hash that its cache.py does not match.
    copy = tmp_path / "memcachepy"
    subprocess.run(["cp", "-r", str(PACKAGE_DIR), str(copy)], check=True)
    cache = copy / "store" / "cache.py"
    cache.with_suffix(EXTENSION_SUFFIXES[0]).write_bytes(b"not an extension")
    (copy / "compiled_sources.json").write_text(json.dumps({"store/cache.py": "0" * 64}))
    env = {k: v for k, v in os.environ.items() if k != "MEMCACHEPY_PURE"}
    env["PYTHONPATH"] = str(tmp_path)
    result = subprocess.run(
        [sys.executable, "-c", PROBE],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        cwd=tmp_path,
    )
    assert result.stdout.strip() == str(cache)
    assert "sources changed since they were compiled (store/cache.py)" in result.stderr


def _installed_build() -> str:
    """What the installed package runs, asked from a directory where nothing shadows it."""
    if pure_requested():
        return "pure"
    return _run(
        "import runpy; runpy.run_module('memcachepy.native', run_name='__main__')", pure=False
    )


def _version(*python_flags: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return subprocess.run(
        [sys.executable, *python_flags, "-m", "memcachepy", "-V"],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )


@pytest.mark.parametrize("python_flags", [(), ("-P",)], ids=["plain", "safe-path"])
def test_the_checkout_runs_and_reports_the_installed_build(python_flags: tuple[str, ...]) -> None:
    # From the repository's root (src/ layout: no memcachepy folder there to shadow it).
    result = _version(*python_flags, cwd=REPO)
    assert result.stdout.endswith(f" ({_installed_build()})\n"), result.stdout
    assert result.stderr == ""


def test_sources_that_shadow_a_compiled_build_say_so_once() -> None:
    if _installed_build() != "compiled":
        pytest.skip(
            "pure Python runs here (MEMCACHEPY_PURE, or nothing compiled): no "
            "compiled build to shadow"
        )
    # python -m from src/ imports the sources there (the current directory comes first).
    shadowed = _version(cwd=REPO / "src")
    assert shadowed.stdout.endswith(" (pure)\n")
    assert shadowed.stderr.count("\n") == 1, shadowed.stderr
    assert shadowed.stderr == (
        f"memcachepy: the sources at {REPO / 'src' / 'memcachepy'} shadow the compiled build "
        f"at {PACKAGE_DIR}; running pure Python (start it from another directory, with "
        "python -P -m memcachepy, or with the memcachepy command)\n"
    )
    # -P leaves the current directory off sys.path: the installed build runs.
    safe = _version("-P", cwd=REPO / "src")
    assert (safe.stdout.endswith(" (compiled)\n"), safe.stderr) == (True, "")


def test_pure_mode_is_not_a_shadow() -> None:
    env = {**os.environ, "MEMCACHEPY_PURE": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "memcachepy", "-V"],
        cwd=REPO / "src",
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert result.stdout.endswith(" (pure)\n") and result.stderr == ""


def test_compiled_elsewhere_finds_only_a_compiled_build(tmp_path: Path) -> None:
    from memcachepy.native.switch import compiled_elsewhere

    sources_only, built = tmp_path / "a" / "memcachepy", tmp_path / "b" / "memcachepy"
    for package in (sources_only, built):
        (package / "store").mkdir(parents=True)
        (package / "store" / "cache.py").write_text("X = 1\n")
    (built / "compiled_sources.json").write_text("{}")
    path = [str(sources_only.parent), str(built.parent)]
    assert compiled_elsewhere(sources_only, path) == built
    assert compiled_elsewhere(built, path) is None  # compiled itself
    assert compiled_elsewhere(sources_only, path[:1]) is None  # nothing compiled further down
