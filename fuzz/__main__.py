"""Run one fuzz target under atheris (coverage-guided, libFuzzer underneath).

    python -m fuzz TARGET [libFuzzer options] [CORPUS_DIR ...]
    python -m fuzz text -max_total_time=600 -max_len=2000 /tmp/corpus-text fuzz/corpus/text

TARGET is one of fuzz/targets.py's: text, meta, binary, ascii_auth. Only memcachepy's
protocol package is instrumented, so the coverage libFuzzer reports (``cov:``) is the
parsers'. A crash writes ``crash-<sha1>`` in the current directory; each one found
becomes a case in tests/fuzz/test_fuzz.py.
"""

from __future__ import annotations

import sys

try:
    import atheris
except ImportError:  # pragma: no cover - depends on the machine
    sys.exit("atheris is not installed: pip install atheris (wheels for CPython 3.8-3.11 on "
             "x86-64 Linux); no coverage-guided fuzzing without it")

with atheris.instrument_imports(include=["memcachepy.protocol"]):
    from fuzz.targets import TARGETS


def main() -> None:
    if len(sys.argv) < 2 or sys.argv[1] not in TARGETS:
        sys.exit(f"usage: python -m fuzz {{{','.join(TARGETS)}}} [libFuzzer options]")
    target = TARGETS[sys.argv[1]]
    atheris.Setup([sys.argv[0], *sys.argv[2:]], target)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
