"""``python -m bench.abuse [--quick] [--only NAME ...] [--daemon memcachepy|memcached]``"""

from __future__ import annotations

import argparse
import sys

from bench.abuse.attacks import ATTACKS, FULL, QUICK
from bench.abuse.runner import run, table


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.abuse",
        description="Attacks against memcachepy and memcached on 127.0.0.1, side by side.",
    )
    parser.add_argument("--quick", action="store_true", help="a tenth of each attack, -m 16")
    parser.add_argument("--only", nargs="+", choices=list(ATTACKS), help="these attacks only")
    parser.add_argument(
        "--daemon",
        action="append",
        choices=["memcachepy", "memcached"],
        help="the daemons to attack (default: both; memcached when installed)",
    )
    parser.add_argument("--list", action="store_true", help="list the attacks and exit")
    args = parser.parse_args(argv)
    if args.list:
        for attack in ATTACKS.values():
            print(f"{attack.name:20} {attack.about}")
        return 0
    scale = QUICK if args.quick else FULL
    names = args.only or list(ATTACKS)
    rows = run(names, args.daemon or ["memcachepy", "memcached"], scale)
    print(f"Scale: {scale.name}, -m {scale.memory_mb}\n")
    print(table(rows))
    return 0 if all(row.survived for row in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
