"""The chaos run's cluster: three data nodes, their configuration endpoint, and spares."""

from __future__ import annotations

import re
from pathlib import Path

from bench.chaos.netns import Capabilities, Namespaces
from bench.chaos.nodes import ConfigEndpoint, DataNode

WARMUP_LINE = re.compile(r"warm-up (done|aborted) after ([0-9.]+) s: ([0-9]+) items")


class Cluster:
    """The nodes, the endpoint, and the namespaces when network faults are possible."""

    def __init__(
        self,
        host: str,
        workdir: Path,
        netns: Namespaces | None,
        caps: Capabilities,
        warm_up: bool = True,
    ) -> None:
        self.host = host
        self.workdir = workdir
        self.netns = netns
        self.caps = caps
        self.nodes = [DataNode(host, workdir) for _ in range(3)]
        members = workdir / "members.conf"  # the data nodes' own copy of the membership
        members.write_text("".join(f"{n.cluster_node}\n" for n in self.nodes))
        for node in self.nodes:
            node.cluster_args = [
                "--cluster-config",
                str(members),
                "--cluster-replicas",
                "2",
                *([] if warm_up else ["--no-warm-up"]),
            ]
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

    def warmups(self) -> list[dict[str, float]]:
        """Each warm-up the data nodes logged: seconds and items copied."""
        found = []
        for node in self.nodes:
            text = node.log.read_text(errors="replace") if node.log.exists() else ""
            for match in WARMUP_LINE.finditer(text):
                found.append(
                    {
                        "seconds": float(match.group(2)),
                        "items": int(match.group(3)),
                        "aborted": match.group(1) == "aborted",
                    }
                )
        return found

    def stop(self) -> None:
        for node in [*self.nodes, *self.extra]:
            node.stop()
        self.endpoint.stop()
