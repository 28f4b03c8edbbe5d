"""The documentation: the site builds cleanly, the README stays a front door, links resolve,
and the figures the docs share with the code (MemoryMax=, the licence) agree with it.

``mkdocs build --strict`` fails on a link to a missing page or anchor and on a page left
out of ``mkdocs.yml``'s nav (the validation settings there), so a renamed page or heading
breaks this test, not the site.
"""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
README_MAX_LINES = 250
# The pages a reader of the checkout follows links in (docs/ is checked by mkdocs).
FRONT_PAGES = [README, ROOT / "bench" / "README.md", ROOT / "CHANGELOG.md"]
# [text](target) and <a href="target">, without images' sizes or titles.
_LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)|href=\"([^\"]+)\"")
_FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.MULTILINE | re.DOTALL)


def _relative_links(page: Path) -> list[str]:
    text = _FENCE.sub("", page.read_text(encoding="utf-8"))  # code is not links
    links = [a or b for a, b in _LINK.findall(text)]
    return [
        link
        for link in links
        if not re.match(r"[a-z][a-z0-9+.-]*:", link) and not link.startswith("#")
    ]


def test_readme_is_a_front_door() -> None:
    lines = README.read_text(encoding="utf-8").count("\n")
    assert lines <= README_MAX_LINES, (
        f"README.md has {lines} lines (at most {README_MAX_LINES}): move detail to docs/"
    )


@pytest.mark.parametrize("page", FRONT_PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_resolve(page: Path) -> None:
    missing = [
        link for link in _relative_links(page) if not (page.parent / link.split("#", 1)[0]).exists()
    ]
    assert not missing, f"{page.relative_to(ROOT)} links to missing files: {missing}"


# A relative path that climbs out of the checkout: what a page may not point at.
_CLIMB = re.compile(r"(?<![\w.])(?:\.\./)+[\w-]+/")


def test_nothing_points_outside_the_repository() -> None:
    pages = [*FRONT_PAGES, *sorted((ROOT / "docs").rglob("*.md"))]
    offenders = {
        str(page.relative_to(ROOT)): found
        for page in pages
        if (found := [m for m in _CLIMB.findall(page.read_text("utf-8")) if _leaves(page, m)])
    }
    assert not offenders, f"these pages point outside the repository: {offenders}"


def _leaves(page: Path, relative: str) -> bool:
    return not (page.parent / relative).resolve().is_relative_to(ROOT)


def test_python_examples_compile() -> None:
    """Every ```python block in the README and docs/ is valid Python (a cheap guard; the
    examples that need a server are exercised by the tests of what they show)."""
    broken = []
    for page in [README, *sorted((ROOT / "docs").rglob("*.md"))]:
        for number, (language, code) in enumerate(_FENCE.findall(page.read_text("utf-8"))):
            if language != "python":
                continue
            try:
                compile(code, f"{page.relative_to(ROOT)}, block {number}", "exec")
            except SyntaxError as error:
                broken.append(f"{error.filename}: {error.msg} (line {error.lineno})")
    assert not broken, "\n".join(broken)


@pytest.mark.skipif(
    importlib.util.find_spec("mkdocs") is None,
    reason="mkdocs is not installed (the [test] extra has it)",
)
def test_site_builds_strict(tmp_path: Path) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "mkdocs",
            "build",
            "--strict",
            "--config-file",
            str(ROOT / "mkdocs.yml"),
            "--site-dir",
            str(tmp_path / "site"),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert (tmp_path / "site" / "index.html").exists()


def test_the_memory_max_in_the_systemd_guide_is_the_units_and_the_daemons() -> None:
    """The guide's rule and figure, the units' MemoryMax= and the daemon's warning agree."""
    from memcachepy.ops.systemd import recommended_memory_max

    guide = (ROOT / "docs" / "how-to" / "systemd-service.md").read_text(encoding="utf-8")
    default = recommended_memory_max(64 << 20) >> 20  # the units' CACHESIZE=64
    assert "1.25 x `CACHESIZE` + 96M" in guide and f"`{default}M`" in guide
    assert f"`MemoryMax={recommended_memory_max(1024 << 20) >> 20}M`" in guide
    for unit in ("memcachepy.service", "memcachepy@.service"):
        text = (ROOT / "systemd" / unit).read_text(encoding="utf-8")
        assert f"\nMemoryMax={default}M\n" in text, unit


def test_the_license_is_named_where_it_is_shown() -> None:
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert (project["license"], project["license-files"]) == ("BSD-3-Clause", ["LICENSE"])
    assert (ROOT / "LICENSE").read_text(encoding="utf-8").startswith("BSD 3-Clause License\n")
    assert "BSD-3-Clause" in README.read_text(encoding="utf-8")


# The pages whose examples run here against a real daemon, its port put in place of 11211.
RUNNABLE = [README, ROOT / "docs" / "tutorials" / "first-steps.md"]
_PRINTED = re.compile(r"^\s*print\(.*\)\s+#\s*(.+)$")


@pytest.mark.parametrize("page", RUNNABLE, ids=lambda p: str(p.relative_to(ROOT)))
def test_examples_run_and_print_what_they_say(page: Path) -> None:
    """Each ```python block of these pages runs against a real memcachepy; a ``print(...)``
    with a comment after it must print that comment's text (as a doctest would)."""
    import contextlib
    import io

    from tests.servers import memcachepy_server

    blocks = [
        code for language, code in _FENCE.findall(page.read_text("utf-8")) if language == "python"
    ]
    assert blocks
    with memcachepy_server() as server:
        port = str(server.port)
        for number, code in enumerate(blocks):
            expected = [m.group(1).strip() for m in map(_PRINTED.match, code.splitlines()) if m]
            output = io.StringIO()
            with contextlib.redirect_stdout(output):
                exec(
                    compile(code.replace("11211", port), f"{page.name}, block {number}", "exec"), {}
                )
            printed = output.getvalue().splitlines()
            assert printed[: len(expected)] == expected, (page.name, number, printed)
