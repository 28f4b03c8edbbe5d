"""Replay corpus directories through the targets, for line coverage with coverage.py.

    python -m coverage run --source=memcachepy.protocol -m fuzz.replay [CORPUS_ROOT]
    python -m coverage report

CORPUS_ROOT (default fuzz/corpus) holds one directory per target (text, meta, ...).
"""

from __future__ import annotations

import sys
from pathlib import Path

from fuzz.targets import TARGETS


def main() -> None:
    root = Path(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).parent / "corpus")
    for name, target in TARGETS.items():
        files = sorted((root / name).glob("*"))
        for path in files:
            target(path.read_bytes())
        print(f"{name}: {len(files)} inputs replayed")


if __name__ == "__main__":
    main()
