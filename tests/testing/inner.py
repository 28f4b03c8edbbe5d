"""Running test files through pytester with the plugin loaded."""

from __future__ import annotations

import pytest

from tests.servers import require_binary

from .conftest import PLUGIN_ARGS

EXES = {"memcachepy": [], "memcached": ["--memcachepy-exe", "memcached"]}


def exe_args(name: str) -> list[str]:
    """The inner run's options to use ``name`` (memcached must be installed; CI has it)."""
    if name == "memcached":
        require_binary("memcached")
    return list(EXES[name])


def run(pytester: pytest.Pytester, source: str, *args: str) -> pytest.RunResult:
    """Write ``source`` as a test file and run it in this process with the plugin."""
    pytester.makepyfile(source)
    return pytester.runpytest_inprocess(*PLUGIN_ARGS, "-p", "no:cacheprovider", *args)
