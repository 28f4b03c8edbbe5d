"""The fuzz harnesses (fuzz/): the committed corpus replays clean, and a short atheris pass.

The corpus holds the inputs atheris found that reach new code (minimized with -merge=1),
plus the hand-written seeds; any crash found becomes a file here and so a regression case.
"""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from fuzz.targets import TARGETS, check
from tests.servers import IN_CI

ROOT = Path(__file__).resolve().parents[2]
CORPUS = ROOT / "fuzz" / "corpus"
SEEDS = ROOT / "fuzz" / "seeds"


def inputs(target: str) -> list[Path]:
    return sorted([*(CORPUS / target).glob("*"), *(SEEDS / target).glob("*")])


@pytest.mark.parametrize("target", sorted(TARGETS))
def test_the_corpus_replays_without_an_error_whole_or_split(target: str) -> None:
    files = inputs(target)
    assert len(files) >= 5, f"no corpus for {target}"
    for path in files:
        TARGETS[target](path.read_bytes())


class _CountsReceives:
    """A parser whose events depend on how the bytes arrive (what check() must catch)."""

    def __init__(self) -> None:
        self.pending: list[Any] = []

    def receive_data(self, data: bytes) -> None:
        self.pending.append(len(data))

    def next_event(self) -> Any:
        from memcachepy.protocol.events import NEED_DATA

        return self.pending.pop() if self.pending else NEED_DATA


def test_the_harness_catches_a_parser_that_depends_on_the_split() -> None:
    with pytest.raises(AssertionError, match="events differ when split"):
        check(_CountsReceives, b"get a b c\r\n" * 3)


def _atheris_available() -> bool:
    return importlib.util.find_spec("atheris") is not None


@pytest.mark.parametrize("target", sorted(TARGETS))
def test_a_short_coverage_guided_pass_finds_nothing(target: str, tmp_path: Path) -> None:
    if not _atheris_available():
        message = "atheris is not installed (scripts/test.sh installs it with .[test])"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    corpus = tmp_path / "corpus"
    shutil.copytree(CORPUS / target, corpus)
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "fuzz",
            target,
            "-runs=3000",
            "-max_len=2000",
            "-seed=1",
            f"-artifact_prefix={tmp_path}/",
            str(corpus),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Done 3000 runs" in result.stderr, result.stderr[-2000:]
    assert not list(tmp_path.glob("crash-*"))
