"""The chaos run's cluster: three data nodes, their configuration endpoint, and spares."""

from __future__ import annotations

from pathlib import Path

from bench.chaos.netns import Capabilities, Namespaces
from bench.chaos.nodes import ConfigEndpoint, DataNode


class Cluster:
    """The nodes, the endpoint, and the namespaces when network faults are possible."""

    def __init__(self, host: str, workdir: Path, netns: Namespaces | None,
                 caps: Capabilities) -> None:
        self.host = host
        self.workdir = workdir
        self.netns = netns
        self.caps = caps
        self.nodes = [DataNode(host, workdir) for _ in range(3)]
        for node in self.nodes:
            node.start()
        self.endpoint = ConfigEndpoint(host, workdir, [n.cluster_node for n in self.nodes])
        self.extra: list[DataNode] = []

    def spare(self) -> DataNode:
        node = DataNode(self.host, self.workdir)
        node.start()
        self.extra.append(node)
        return node

    def network_skip(self, kind: str) -> str | None:
        if self.netns is None:
            return f"no network namespaces: {self.caps.netns}"
        if kind == "delay" and self.caps.netem:
            return self.caps.netem
        if kind == "loss" and self.caps.netem and self.caps.nft:
            return f"{self.caps.netem}; {self.caps.nft}"
        if kind == "partition" and self.caps.nft:
            return self.caps.nft
        return None

    def stop(self) -> None:
        for node in [*self.nodes, *self.extra]:
            node.stop()
        self.endpoint.stop()
