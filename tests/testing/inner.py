"""Running test files through pytester with the plugin loaded.

Where memcachepy is pip-installed (scripts/test.sh, CI) the ``pytest11`` entry point loads
the plugin into every pytest run, the inner pytester runs included: those runs then test
the entry point too. A checkout that is only on PYTHONPATH loads it by name instead.
"""

from __future__ import annotations

import os
from importlib.metadata import entry_points

import pytest

from tests.servers import require_binary

PLUGIN = "memcachepy.testing.plugin"


def _entry_point_loads_plugin() -> bool:
    if os.environ.get("PYTEST_DISABLE_PLUGIN_AUTOLOAD"):
        return False
    return any(point.value == PLUGIN for point in entry_points(group="pytest11"))


AUTOLOADED = _entry_point_loads_plugin()
#: Arguments an inner pytester run needs to load the plugin.
PLUGIN_ARGS: tuple[str, ...] = () if AUTOLOADED else ("-p", PLUGIN)

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
