#!/usr/bin/env python3
"""Run one fuzz target under atheris (coverage-guided, libFuzzer underneath).

    python -m fuzz TARGET [libFuzzer options] [CORPUS_DIR ...]
    python -m fuzz text -max_total_time=600 -max_len=2000 /tmp/corpus-text fuzz/corpus/text

TARGET is one of fuzz/targets.py's: text, meta, binary, ascii_auth. Only memcachepy's
protocol package is instrumented, so the coverage libFuzzer reports (``cov:``) is the
parsers'. A crash writes ``crash-<sha1>`` in the current directory; each one found
becomes a case in tests/fuzz/test_fuzz.py.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

# libFuzzer's -merge=1 runs argv[0] again as a program: this file, outside ``-m``.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

try:
    import atheris
except ImportError:  # pragma: no cover - depends on the machine
    sys.exit(
        "atheris is not installed: pip install atheris (wheels for CPython 3.8-3.11 on "
        "x86-64 Linux); no coverage-guided fuzzing without it"
    )

with atheris.instrument_imports(include=["memcachepy.protocol"]):
    from fuzz.targets import TARGETS


def main() -> None:
    # The target travels in the environment too: -merge=1 reruns argv[0] without it.
    if len(sys.argv) > 1 and sys.argv[1] in TARGETS:
        os.environ["MEMCACHEPY_FUZZ_TARGET"] = sys.argv.pop(1)
    name = os.environ.get("MEMCACHEPY_FUZZ_TARGET", "")
    if name not in TARGETS:
        sys.exit(f"usage: python -m fuzz {{{','.join(TARGETS)}}} [libFuzzer options]")
    atheris.Setup(sys.argv, TARGETS[name])
    atheris.Fuzz()


if __name__ == "__main__":
    main()
