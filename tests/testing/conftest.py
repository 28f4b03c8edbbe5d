"""pytester for the plugin's own tests, and the plugin itself when no entry point loads it.

Where memcachepy is pip-installed (scripts/test.sh, CI) the ``pytest11`` entry point loads
the plugin into every pytest run, the inner pytester runs included: those runs then test
the entry point too. A checkout that is only on PYTHONPATH loads it by name instead.
"""

from __future__ import annotations

import os
from importlib.metadata import entry_points

PLUGIN = "memcachepy.testing.plugin"


def _entry_point_loads_plugin() -> bool:
    if os.environ.get("PYTEST_DISABLE_PLUGIN_AUTOLOAD"):
        return False
    return any(point.value == PLUGIN for point in entry_points(group="pytest11"))


AUTOLOADED = _entry_point_loads_plugin()
#: Arguments an inner pytester run needs to load the plugin.
PLUGIN_ARGS: tuple[str, ...] = () if AUTOLOADED else ("-p", PLUGIN)

pytest_plugins = ["pytester", *([] if AUTOLOADED else [PLUGIN])]
