"""Client-side cluster toolkit: ketama placement, a failover client, membership discovery.

Nothing here imports the server or trio; it runs in any Python program next to pymemcache.

* :class:`KetamaRing` places keys as libmemcached (``ketama_weighted``) and twemproxy
  (``distribution: ketama``) do, and is a pymemcache ``HashClient`` hasher.
* :class:`ClusterClient` spreads keys over nodes with optional replication, skips and
  ejects failing nodes and re-admits them without serving stale values.
* :mod:`memcachepy.cluster.discovery` formats and parses ElastiCache ``config get cluster``
  replies and membership files, and polls a configuration endpoint.
"""

from memcachepy.cluster.client import ClusterClient, ClusterError, NoAvailableNodesError
from memcachepy.cluster.discovery import (
    ClusterConfig,
    ClusterMembership,
    ClusterNode,
    ConfigPoller,
    DiscoveryError,
    format_cluster_config,
    load_membership_file,
    parse_cluster_config,
    parse_membership,
)
from memcachepy.cluster.hashing import HASH_FUNCTIONS, hash_function
from memcachepy.cluster.health import NodeStatus
from memcachepy.cluster.members import Member, build_ring
from memcachepy.cluster.ring import KetamaRing, ketama_label

# The name a cluster member had before 0.2 (memcachepy.testing.Server is a daemon, this a
# member's address): kept so that code written against it still imports.
Server = Member

__all__ = [
    "HASH_FUNCTIONS",
    "ClusterClient",
    "ClusterConfig",
    "ClusterError",
    "ClusterMembership",
    "ClusterNode",
    "ConfigPoller",
    "DiscoveryError",
    "KetamaRing",
    "NoAvailableNodesError",
    "Member",
    "NodeStatus",
    "Server",
    "build_ring",
    "format_cluster_config",
    "hash_function",
    "ketama_label",
    "load_membership_file",
    "parse_cluster_config",
    "parse_membership",
]
