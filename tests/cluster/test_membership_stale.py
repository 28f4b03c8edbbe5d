"""A node added and removed again never brings back values overwritten or deleted meanwhile.

While a fourth node is a member, some keys have it as a replica instead of one of the
three: the node it displaced keeps its old copy. Once the fourth node leaves, that node
is a replica again; writes made meanwhile must reach it before it serves the key.
"""

from __future__ import annotations

from contextlib import ExitStack
from typing import Any

import pytest

from memcachepy.cluster import ClusterClient

from .nodes import node_keys, spec, start_node

KEYS = [f"mb:{i}" for i in range(300)]


def displaced(client: ClusterClient, before: dict[str, list[Any]]) -> list[str]:
    """Keys whose replica list changed with the membership."""
    return [k for k in KEYS if client.replica_servers(k) != before[k]]


@pytest.mark.parametrize("horizon", [600.0, 0.0])
def test_writes_during_a_membership_reach_the_replicas_of_the_one_before(
    node_stack: ExitStack, horizon: float
) -> None:
    nodes = [node_stack.enter_context(start_node()) for _ in range(4)]
    three = [spec(n) for n in nodes[:3]]
    with ClusterClient(three, replicas=2, membership_horizon=horizon) as client:
        assert client.set_many(dict.fromkeys(KEYS, b"old")) == []
        before = {k: client.replica_servers(k) for k in KEYS}
        client.update_servers([*three, spec(nodes[3])])
        moved = displaced(client, before)
        assert len(moved) > 20
        deleted, overwritten = moved[::2], moved[1::2]
        for key in deleted:
            client.delete(key)
        assert client.set_many(dict.fromkeys(overwritten, b"new")) == []
        client.update_servers(three)
        reads = {key: client.get(key) for key in moved}
        if not horizon:  # without the record, the displaced copies come back
            assert b"old" in reads.values()
            return
        assert reads == {k: None if k in deleted else b"new" for k in moved}
        direct: dict[str, set[int]] = {}
        for node in nodes[:3]:
            for key in node_keys(node, moved):
                direct.setdefault(key, set()).add(node.port)
        for key in deleted:
            assert key not in direct
