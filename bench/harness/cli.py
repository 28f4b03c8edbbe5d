"""The command line of bench/run.py."""

import argparse
import shlex
import sys
from datetime import date
from pathlib import Path

from .compare import CompareOptions, run_comparison
from .crosscheck import run_crosscheck
from .install import (
    SetupError,
    build_loadgen,
    ensure_binaries,
    installed_memcachepy,
    require_module,
)
from .machine import CpuPlan, plan_cpus
from .paths import RESULTS_DIR
from .scenarios import LoadParams, Scenario, default_scenarios, select_scenarios
from .servers import ServerError, ServerSpec, parse_server_definition, resolve_servers

# Commands a server definition may start with, and the Debian package that has them.
APT_PACKAGES = {
    "memcached": "memcached",
    "memcaslap": "libmemcached-tools",
    "taskset": "util-linux",
}
MEMCACHED_ITEM_MEMORY = 48 << 20  # what fits comfortably in -m 64


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python bench/run.py",
        description="Benchmark memcachepy side by side with memcached (ratios per scenario).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument(
        "--servers",
        default="memcached,memcachepy",
        help="comma-separated servers to compare; a name given twice starts a "
        "second instance (memcached,memcached validates the bench alone)",
    )
    p.add_argument(
        "--server",
        action="append",
        default=[],
        metavar="NAME=COMMAND",
        help="define or override a server command; {port} and {python} are "
        "filled in, e.g. 'mine=memcached -t 1 -l 127.0.0.1 -p {port} -U 0 -u root'",
    )
    p.add_argument(
        "--baseline",
        default=None,
        help="server the ratios divide by (default: memcached if listed, else the first server)",
    )
    p.add_argument(
        "--scenarios",
        default=None,
        help="comma-separated scenario names (all), or 'probe': the five scenarios "
        "measured against the probe server (--servers probe,memcachepy)",
    )
    p.add_argument("--list-scenarios", action="store_true", help="list the scenarios and exit")
    p.add_argument("--repeats", type=int, default=3, help="runs per scenario and server")
    p.add_argument("--duration", type=float, default=4.0, help="measured seconds per run")
    p.add_argument("--warmup", type=float, default=0.5, help="unmeasured seconds before each run")
    p.add_argument("--keys", type=int, default=10_000, help="key space size")
    p.add_argument("--value-size", type=int, default=100, help="value bytes (small values)")
    p.add_argument("--mix-value-size", type=int, default=1024, help="value bytes in mix-1k")
    p.add_argument(
        "--large-value-size", type=int, default=100 * 1024, help="value bytes in large-100k"
    )
    p.add_argument("--large-keys", type=int, default=200, help="key space of large-100k")
    p.add_argument(
        "--max-requests",
        type=int,
        default=20_000_000,
        help="cap on requests per run (the duration normally ends it first)",
    )
    p.add_argument(
        "--quick", action="store_true", help="a fast smoke run: 1 repeat of 1 s per scenario"
    )
    p.add_argument(
        "--out",
        type=Path,
        default=None,
        help="results folder (default bench/results/<date>, -2, -3... if taken)",
    )
    p.add_argument("--no-pin", action="store_true", help="do not pin processes to cores")
    p.add_argument(
        "--no-install",
        action="store_true",
        help="fail instead of installing missing tools with apt-get (Python "
        "packages are never installed: pip install '.[bench]')",
    )
    p.add_argument("--rebuild", action="store_true", help="rebuild the loadgen even if fresh")
    p.add_argument(
        "--crosscheck",
        action="store_true",
        help="instead of the comparison: run loadgen and memcaslap against "
        "memcached with similar loads and print both figures",
    )
    return p


def pick_out_dir(marker: str) -> Path:
    """bench/results/<date>, or <date>-2, -3... when that one already holds `marker`."""
    base = RESULTS_DIR / date.today().isoformat()
    candidate, n = base, 1
    while (candidate / marker).exists():
        n += 1
        candidate = base.with_name(f"{base.name}-{n}")
    return candidate


def ensure_tools(
    specs: list[ServerSpec], crosscheck: bool, allow_install: bool, rebuild: bool
) -> Path:
    """Installs and builds what this run needs; returns the loadgen binary."""
    needed = {"gcc": "gcc"}
    for spec in specs:
        program = Path(spec.argv(0)[0]).name
        if program in APT_PACKAGES:
            needed[program] = APT_PACKAGES[program]
    if crosscheck:
        needed.update(memcached="memcached", memcaslap="libmemcached-tools")
    ensure_binaries(needed, allow_install)
    if not crosscheck:
        require_module("matplotlib")
    if any("memcachepy" in spec.command for spec in specs):
        build = installed_memcachepy()
        print(f"memcachepy: the {build} build installed in {sys.executable}", file=sys.stderr)
    return build_loadgen(force=rebuild)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.quick:
        args.repeats, args.duration, args.warmup = 1, 1.0, 0.2
    params = LoadParams(
        value_size=args.value_size,
        keys=args.keys,
        mix_value_size=args.mix_value_size,
        large_value_size=args.large_value_size,
        large_keys=args.large_keys,
    )
    try:
        scenarios = select_scenarios(default_scenarios(params), args.scenarios, params)
        custom = [parse_server_definition(text) for text in args.server]
        names = [n.strip() for n in args.servers.split(",") if n.strip()]
        specs = [] if args.crosscheck else resolve_servers(names, custom)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.list_scenarios:
        for s in scenarios:
            targets = ", ".join(f"{t.metric} {t.text}" for t in s.targets) or "no target"
            print(f"{s.name:12} {s.title}\n{'':12} {s.shape}; {targets}")
        return 0
    if not 0.05 <= args.duration <= 60 or not 0 <= args.warmup <= 30:
        print("error: --duration must be in [0.05, 60] and --warmup in [0, 30]", file=sys.stderr)
        return 2
    if not 1 <= args.repeats <= 20 or args.max_requests < 1:
        print("error: --repeats must be in [1, 20], --max-requests positive", file=sys.stderr)
        return 2
    if not args.crosscheck and len(specs) < 2:
        print("error: --servers needs two servers to compare", file=sys.stderr)
        return 2
    if args.large_keys * args.large_value_size > MEMCACHED_ITEM_MEMORY:
        print(
            "warning: the large-value key space does not fit in -m 64: expect misses",
            file=sys.stderr,
        )
    try:
        loadgen = ensure_tools(specs, args.crosscheck, not args.no_install, args.rebuild)
    except SetupError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    cpus = plan_cpus(not args.no_pin)
    print(f"CPUs: {cpus.note}", file=sys.stderr)
    try:
        if args.crosscheck:
            out = args.out or pick_out_dir("crosscheck.md")
            return run_crosscheck(
                loadgen, cpus, args.duration, args.repeats, args.value_size, args.keys, out
            )
        return compare(args, specs, scenarios, cpus, loadgen)
    except ServerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\ninterrupted: servers stopped, no report written", file=sys.stderr)
        return 130


def compare(
    args: argparse.Namespace,
    specs: list[ServerSpec],
    scenarios: list[Scenario],
    cpus: CpuPlan,
    loadgen: Path,
) -> int:
    """The side-by-side comparison, once the tools are in place."""
    names = [s.name for s in specs]
    baseline = args.baseline or ("memcached" if "memcached" in names else names[0])
    if baseline not in names:
        print(f"error: --baseline {baseline} is not one of {', '.join(names)}", file=sys.stderr)
        return 2
    command = " ".join(["python", "bench/run.py", *map(shlex.quote, sys.argv[1:])])
    opts = CompareOptions(
        specs=specs,
        baseline=baseline,
        scenarios=scenarios,
        repeats=args.repeats,
        duration_s=args.duration,
        warmup_s=args.warmup,
        max_requests=args.max_requests,
        out_dir=args.out or pick_out_dir("results.md"),
        cpus=cpus,
        command=command,
    )
    return run_comparison(opts, loadgen)
