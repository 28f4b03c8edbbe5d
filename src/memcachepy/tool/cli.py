"""``memcachepy-tool HOST:PORT <command>``: argument parsing and exit codes."""

from __future__ import annotations

import argparse
import sys
from typing import Final

from memcachepy.tool import commands
from memcachepy.tool.client import Connection, ToolError, parse_address
from memcachepy.tool.top import top
from memcachepy.usage import UsageParser

COMMANDS: Final = ("display", "stats", "settings", "dump", "top", "cluster")
DEFAULT_ADDRESS: Final = "127.0.0.1:11211"  # where the daemon listens by default
EXAMPLES = """\
HOST:PORT may be left out: 127.0.0.1:11211, the daemon's default (write a host that is
also a command's name as HOST:PORT).
commands:
  display            slab classes: chunk size, age, pages, items, evictions
  stats              every statistic, aligned
  settings           stats settings
  dump               every key and value as 'add' commands (load elsewhere with
                     nc -N HOST PORT < FILE; --noreply silences the per-item STORED)
  top                live view, every second (q quits)
  cluster [HOST:PORT]
                     nodes of 'config get cluster' (asked of HOST:PORT, default the node
                     given first), each with its health and share of the keys; exits 2
                     when some node is DOWN
  cluster warm NODE  copy into NODE the items for which it is one of --replicas replicas,
                     from the other nodes of 'config get cluster' (asked of the node
                     given first, default NODE); never overwrites a key NODE holds
exit status: 0 done; 1 the node could not be asked (unreachable, or not a configuration
endpoint for cluster); 2 cluster: the nodes are listed but some node is DOWN; 64 bad usage
examples:
  memcachepy-tool 127.0.0.1:11211 display
  memcachepy-tool 127.0.0.1:11211 stats --json
  memcachepy-tool stats                     (the node on 127.0.0.1:11211)
  memcachepy-tool 10.0.0.5:11211 dump --noreply > cache.dump
  memcachepy-tool cluster warm 10.0.0.7:11211 --replicas 2
  nc -N 10.0.0.6 11211 < cache.dump         (Debian's netcat: -N ends at end of file)
"""


def build_parser() -> argparse.ArgumentParser:
    p = UsageParser(
        prog="memcachepy-tool",
        description="An operator's tool for memcachepy (and memcached) nodes.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "address",
        nargs="?",
        metavar="HOST:PORT",
        help=f"the node to ask (default: {DEFAULT_ADDRESS})",
    )
    p.add_argument("command", nargs="?", help=f"one of {', '.join(COMMANDS)} (default: display)")
    p.add_argument(
        "argument",
        nargs="?",
        metavar="HOST:PORT",
        help="cluster: the configuration endpoint (default: the node), or 'warm'",
    )
    p.add_argument("node", nargs="?", metavar="NODE", help="cluster warm: the node to fill")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--timeout", type=float, default=5.0, help="socket timeout in seconds")
    p.add_argument("--interval", type=float, default=1.0, help="top: seconds between refreshes")
    p.add_argument("--count", type=int, help="top: stop after this many refreshes")
    p.add_argument(
        "--noreply",
        action="store_true",
        help="dump: end each add with noreply, so loading the dump prints nothing",
    )
    p.add_argument(
        "--replicas",
        type=int,
        default=2,
        help="cluster warm: copies the clients keep of each key (default: 2)",
    )
    p.add_argument(
        "--rate",
        type=int,
        default=10_000,
        help="cluster warm: items copied per second at most (default: 10000)",
    )
    return p


def _resolve(args: argparse.Namespace, parser: argparse.ArgumentParser) -> None:
    """Positional words to address, command and argument; the address may be left out."""
    args.explicit = args.address not in COMMANDS
    if args.address in COMMANDS:  # `memcachepy-tool stats`: the local daemon's default
        args.address, args.command, args.argument, args.node = (
            DEFAULT_ADDRESS,
            args.address,
            args.command,
            args.argument,
        )
    args.address = args.address or DEFAULT_ADDRESS
    args.command = args.command or "display"
    if args.command not in COMMANDS:
        parser.error(f"unknown command {args.command!r} (choose from {', '.join(COMMANDS)})")


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    _resolve(args, parser)
    warm = args.command == "cluster" and args.argument == "warm"
    if warm and not args.node:
        parser.error("cluster warm needs the NODE to fill")
    if args.node and not warm:
        parser.error(f"unexpected argument {args.node!r}")
    if args.replicas < 1 or args.rate < 1:
        parser.error("--replicas and --rate must be at least 1")
    try:
        address = parse_address(args.address)
        if warm:
            node = parse_address(args.node)
            endpoint = address if args.explicit else node
        else:
            endpoint = parse_address(args.argument) if args.argument else address
    except ValueError as exc:
        parser.error(str(exc))
    if args.argument and args.command != "cluster":
        parser.error(f"'{args.command}' takes no argument")
    if args.noreply and args.command != "dump":
        parser.error("--noreply is for dump")
    if args.interval <= 0:
        parser.error("--interval must be positive")
    out = sys.stdout
    try:
        if args.command == "dump":
            return commands.dump(
                address,
                args.json,
                sys.stdout.buffer,
                sys.stderr,
                args.timeout,
                noreply=args.noreply,
            )
        if args.command == "top":
            return top(
                address,
                interval=args.interval,
                count=args.count,
                as_json=args.json,
                timeout=args.timeout,
            )
        if warm:
            return commands.cluster_warm(
                endpoint, node, args.replicas, args.rate, args.json, out, args.timeout
            )
        if args.command == "cluster":
            return commands.cluster(endpoint, args.json, out, args.timeout)
        with Connection(address, args.timeout) as conn:
            if args.command == "display":
                return commands.display(conn, args.json, out)
            return commands.show_stats(
                conn, "settings" if args.command == "settings" else "", args.json, out
            )
    except ToolError as exc:
        print(f"memcachepy-tool: {exc}", file=sys.stderr)
        return 1
    except BrokenPipeError:  # | head
        return 0
