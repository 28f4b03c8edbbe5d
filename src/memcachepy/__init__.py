"""memcachepy: a memcached-compatible cache daemon and cluster toolkit on trio."""

__version__ = "0.1.0"
# What `version` and `stats` report: the memcached release whose protocol is matched,
# then our own version. Clients and memccapable read the leading x.y.z to pick features.
MEMCACHED_COMPAT = "1.6.18"
VERSION = f"{MEMCACHED_COMPAT}-memcachepy-{__version__}"

# Before any compiled module loads: MEMCACHEPY_PURE=1, or a stale build, selects the sources.
from memcachepy.native import switch as _switch  # noqa: E402

_switch.select()
