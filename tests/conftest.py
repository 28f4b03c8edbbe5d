"""Suite-wide plugins. pytest takes ``pytest_plugins`` only from a top-level conftest.

- pytester: tests/testing runs test files through it to test memcachepy's pytest plugin.
- memcachepy's plugin itself, when no ``pytest11`` entry point loads it (a checkout on
  PYTHONPATH rather than pip-installed); installed, the entry point loads it everywhere.
"""

from tests.testing.inner import AUTOLOADED, PLUGIN

pytest_plugins = ["pytester", *([] if AUTOLOADED else [PLUGIN])]
