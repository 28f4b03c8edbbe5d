"""What the commands say when a dependency is missing, instead of a traceback.

A Python without memcachepy's dependencies (a checkout run with the system Python, a venv
filled with ``pip install --no-deps``) reaches the commands' entry points: they import the
command inside ``try`` and hand a :class:`ModuleNotFoundError` to :func:`exit_if_missing`.
"""

from __future__ import annotations

import sys
from typing import NoReturn

INSTALL_HINT = (
    "Install memcachepy and its dependencies in a virtual environment (Python 3.11 or "
    "later). From a checkout, ./scripts/start.sh makes .venv, installs into it and starts "
    "the daemon; or by hand:\n"
    "  python3 -m venv .venv && .venv/bin/pip install . && .venv/bin/memcachepy"
)


def exit_if_missing(missing: ModuleNotFoundError) -> NoReturn:
    """Exit with the install hint when the missing module is a third-party package (any
    of pyproject's dependencies, or theirs); re-raise for memcachepy's or the stdlib's."""
    top = (missing.name or "").partition(".")[0]
    if not top or top == "memcachepy" or top in sys.stdlib_module_names:
        raise missing
    sys.exit(f"memcachepy: the {top} package is missing. {INSTALL_HINT}")
