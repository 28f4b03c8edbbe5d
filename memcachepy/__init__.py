"""memcachepy: a memcached-compatible cache daemon and cluster toolkit on trio."""

__version__ = "0.1.0"
# The version string clients see in `version` and `stats`: memcached-style x.y.z.
VERSION = __version__
