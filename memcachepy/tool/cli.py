"""``memcachepy-tool HOST:PORT <command>``: argument parsing and exit codes."""

from __future__ import annotations

import argparse
import sys

from memcachepy.tool import commands
from memcachepy.tool.client import Connection, ToolError, parse_address
from memcachepy.tool.top import top
from memcachepy.usage import UsageParser

EXAMPLES = """\
commands:
  display            slab classes: chunk size, age, pages, items, evictions
  stats              every statistic, aligned
  settings           stats settings
  dump               every key and value as 'add' commands (load elsewhere: ... | nc HOST PORT)
  top                live view, every second (q quits)
  cluster [HOST:PORT]
                     nodes of 'config get cluster' (asked of HOST:PORT, default the node
                     given first), each with its health and share of the keys
examples:
  memcachepy-tool 127.0.0.1:11211 display
  memcachepy-tool 127.0.0.1:11211 stats --json
  memcachepy-tool 10.0.0.5:11211 dump > cache.dump && nc 10.0.0.6 11211 < cache.dump
"""


def build_parser() -> argparse.ArgumentParser:
    p = UsageParser(prog="memcachepy-tool",
                description="An operator's tool for memcachepy (and memcached) nodes.",
                epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("address", metavar="HOST:PORT", help="the node to ask")
    p.add_argument("command", nargs="?", default="display",
                   choices=["display", "stats", "settings", "dump", "top", "cluster"])
    p.add_argument("argument", nargs="?", metavar="HOST:PORT",
                   help="cluster: the configuration endpoint (default: the node)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--timeout", type=float, default=5.0, help="socket timeout in seconds")
    p.add_argument("--interval", type=float, default=1.0, help="top: seconds between refreshes")
    p.add_argument("--count", type=int, help="top: stop after this many refreshes")
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        address = parse_address(args.address)
        endpoint = parse_address(args.argument) if args.argument else address
    except ValueError as exc:
        parser.error(str(exc))
    if args.argument and args.command != "cluster":
        parser.error(f"'{args.command}' takes no argument")
    if args.interval <= 0:
        parser.error("--interval must be positive")
    out = sys.stdout
    try:
        if args.command == "dump":
            return commands.dump(address, args.json, sys.stdout.buffer, sys.stderr,
                                 args.timeout)
        if args.command == "top":
            return top(address, interval=args.interval, count=args.count, as_json=args.json,
                       timeout=args.timeout)
        if args.command == "cluster":
            return commands.cluster(endpoint, args.json, out, args.timeout)
        with Connection(address, args.timeout) as conn:
            if args.command == "display":
                return commands.display(conn, args.json, out)
            return commands.show_stats(conn, "settings" if args.command == "settings" else "",
                                       args.json, out)
    except ToolError as exc:
        print(f"memcachepy-tool: {exc}", file=sys.stderr)
        return 1
    except BrokenPipeError:  # | head
        return 0
