"""Suite-wide plugins. pytest takes ``pytest_plugins`` only from a top-level conftest.

- pytester: tests/testing runs test files through it to test memcachepy's pytest plugin.
- memcachepy's plugin itself. Where memcachepy is pip-installed its ``pytest11`` entry
  point (named after the module, so that both ways register one plugin) already loads it;
  a checkout on PYTHONPATH needs it named here.
"""

from tests.testing.inner import PLUGIN

pytest_plugins = ["pytester", PLUGIN]
