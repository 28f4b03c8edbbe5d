"""Running test files through pytester with the plugin loaded.

``-p memcachepy.testing.plugin`` loads the plugin through its ``pytest11`` entry point
where memcachepy is pip-installed (scripts/test.sh, CI), and by module name otherwise.
"""

from __future__ import annotations

from importlib.metadata import entry_points

import pytest

from tests.servers import require_binary

PLUGIN = "memcachepy.testing.plugin"
PLUGIN_ARGS = ("-p", PLUGIN)


def entry_point_installed() -> bool:
    """Whether the installed memcachepy declares the plugin's pytest11 entry point."""
    return any(point.value == PLUGIN for point in entry_points(group="pytest11"))


EXES = {"memcachepy": [], "memcached": ["--memcachepy-exe", "memcached"]}


def exe_args(name: str) -> list[str]:
    """The inner run's options to use ``name`` (memcached must be installed; CI has it)."""
    if name == "memcached":
        require_binary("memcached")
    return list(EXES[name])


# Beside every inner test file, for ``from helpers import connect``.
HELPERS = """
from pymemcache.client.base import Client


def connect(address, **options):
    # Acknowledged writes: with noreply, a read on another connection (another memcached
    # worker thread) could overtake a write.
    return Client(address, default_noreply=False, **options)
"""


def run(pytester: pytest.Pytester, source: str, *args: str) -> pytest.RunResult:
    """Write ``source`` as a test file and run it in this process with the plugin."""
    pytester.makepyfile(source, helpers=HELPERS)
    return pytester.runpytest_inprocess(*PLUGIN_ARGS, "-p", "no:cacheprovider", *args)
