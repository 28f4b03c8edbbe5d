"""memcachepy: a memcached-compatible cache daemon and cluster toolkit on trio."""

__version__ = "0.1.0"
# What `version` and `stats` report: the memcached release whose protocol is matched,
# then our own version. Clients and memccapable read the leading x.y.z to pick features.
MEMCACHED_COMPAT = "1.6.18"
VERSION = f"{MEMCACHED_COMPAT}-memcachepy-{__version__}"
