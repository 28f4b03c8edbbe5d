"""Real memcached-compatible servers for tests: :class:`Server`, :class:`Cluster`, and a
pytest plugin (:mod:`memcachepy.testing.plugin`, loaded through the ``pytest11`` entry
point) whose fixtures hand them to tests.

Nothing here imports pytest or trio, so ``from memcachepy.testing import Server`` works
in any program.
"""

from memcachepy.testing.cluster import Cluster
from memcachepy.testing.server import Address, Server, ServerError

__all__ = ["Address", "Cluster", "Server", "ServerError"]
