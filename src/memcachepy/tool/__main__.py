"""``python -m memcachepy.tool`` and the ``memcachepy-tool`` command."""

import sys

from memcachepy.usage import exit_if_missing


def main() -> int:
    try:
        from memcachepy.tool.cli import main as cli_main

        return cli_main()
    except ModuleNotFoundError as missing:
        exit_if_missing(missing)


if __name__ == "__main__":
    sys.exit(main())
