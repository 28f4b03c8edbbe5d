"""``python -m memcachepy`` and the ``memcachepy`` command."""

import sys

from memcachepy.usage import exit_if_missing


def main() -> int:
    try:
        from memcachepy.cli import main as cli_main

        return cli_main()
    except ModuleNotFoundError as missing:  # some modules load only when needed
        exit_if_missing(missing)


if __name__ == "__main__":
    sys.exit(main())
