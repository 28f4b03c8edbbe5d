"""Command-line parsing that fails the way memcached does: one line, exit status 64."""

from __future__ import annotations

import argparse
from typing import NoReturn

EX_USAGE = 64  # memcached exits with EX_USAGE on a bad option


class UsageParser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are a single line and EX_USAGE, not usage text."""

    def error(self, message: str) -> NoReturn:
        self.exit(EX_USAGE, f"{self.prog}: {message}\n")
