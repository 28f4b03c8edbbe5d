"""Cache nodes for the cluster tests.

The nodes are memcachepy daemons (``python -m memcachepy``). While the daemon is being
written, ``MEMCACHEPY_CLUSTER_NODES=memcached`` runs the same tests against Debian's
memcached instead; nothing else switches the node kind.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from contextlib import AbstractContextManager

from pymemcache.client.base import Client

from tests.servers import HOST, ServerProcess, memcached_server, memcachepy_server

NODE_KIND = os.environ.get("MEMCACHEPY_CLUSTER_NODES", "memcachepy")
if NODE_KIND not in ("memcachepy", "memcached"):
    raise RuntimeError(f"MEMCACHEPY_CLUSTER_NODES must be memcachepy or memcached, not {NODE_KIND}")

# Small memory: every node holds a few thousand small keys at most.
NODE_ARGS = ("-m", "16")

StartNode = Callable[..., ServerProcess]


def start_node(host: str = HOST, port: int | None = None) -> AbstractContextManager[ServerProcess]:
    """A cache node of the configured kind on ``host`` (a free port unless given)."""
    if NODE_KIND == "memcached":
        return memcached_server(*NODE_ARGS, host=host, port=port)
    return memcachepy_server(*NODE_ARGS, host=host, port=port)


def spec(node: ServerProcess) -> str:
    """The node as ClusterClient's ``host:port``."""
    return f"{node.host}:{node.port}"


def bindable(host: str, port: int) -> bool:
    """Whether ``host:port`` can be listened on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def node_keys(node: ServerProcess, keys: list[str]) -> set[str]:
    """Which of ``keys`` the node holds, asked directly (str keys go as latin-1 bytes)."""
    client = Client(node.address, connect_timeout=2, timeout=5)
    by_bytes = {key.encode("latin-1"): key for key in keys}
    wire = list(by_bytes)
    try:
        found: set[str] = set()
        for start in range(0, len(wire), 200):
            found.update(by_bytes[key] for key in client.get_many(wire[start : start + 200]))
        return found
    finally:
        client.close()


def flush(nodes: list[ServerProcess]) -> None:
    """Empty every node."""
    for node in nodes:
        client = Client(node.address, connect_timeout=2, timeout=5)
        try:
            client.flush_all(noreply=False)
        finally:
            client.close()
