"""Several test servers side by side, for clients that spread keys over nodes."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from types import TracebackType
from typing import Any

from memcachepy.testing.server import Address, Server

__all__ = ["Cluster"]


class Cluster:
    """``nodes`` :class:`Server` processes with the same flags, each on its own address.

    Faults are per node: ``cluster[1].pause()``, ``cluster[0].kill()``,
    ``cluster[2].restart()``. :attr:`addresses` is what pymemcache's ``HashClient`` and
    memcachepy's ``ClusterClient`` take. Keyword arguments go to every :class:`Server`.
    """

    def __init__(self, nodes: int = 3, args: Iterable[str] = (), **server_options: Any) -> None:
        if nodes < 1:
            raise ValueError("a cluster needs at least one node")
        flags = list(args)
        self.servers = [Server(flags, **server_options) for _ in range(nodes)]

    @property
    def addresses(self) -> list[Address]:
        """Every node's address, in node order."""
        return [server.address for server in self.servers]

    def start(self) -> Cluster:
        """Start every node at once, then wait for each; returns ``self``."""
        try:
            for server in self.servers:
                server.start(wait=False)
            for server in self.servers:
                server.wait_ready()
        except BaseException:
            self.close()
            raise
        return self

    def close(self) -> None:
        """Kill and reap every node."""
        for server in self.servers:
            server.close()

    def flush(self) -> None:
        """Empty every running, unpaused node."""
        for server in self.servers:
            if server.running and not server.paused:
                server.flush()

    def __getitem__(self, index: int) -> Server:
        return self.servers[index]

    def __len__(self) -> int:
        return len(self.servers)

    def __iter__(self) -> Iterator[Server]:
        return iter(self.servers)

    def __enter__(self) -> Cluster:
        return self.start()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<Cluster of {len(self.servers)}: {self.servers!r}>"
