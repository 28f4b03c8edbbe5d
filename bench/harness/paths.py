"""Where the benchmark's files live."""

from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent.parent
REPO_DIR = BENCH_DIR.parent
BUILD_DIR = BENCH_DIR / "build"
RESULTS_DIR = BENCH_DIR / "results"
LOADGEN_SOURCE = BENCH_DIR / "loadgen.c"
LOADGEN_BINARY = BUILD_DIR / "loadgen"
