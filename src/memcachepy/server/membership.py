"""Following a membership that lives outside the node: ``--cluster-dns`` polling."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import trio

from memcachepy.config import Settings

if TYPE_CHECKING:
    from memcachepy.cluster.discovery import ClusterNode
    from memcachepy.cluster.dns import DnsEndpoint
    from memcachepy.cluster.endpoint import ConfigEndpoint

log = logging.getLogger("memcachepy")


def dns_endpoint(settings: Settings) -> DnsEndpoint:
    """The ``config get cluster`` answer of a node started with ``--cluster-dns``, looked up
    once now so that the first clients get the membership (a failure is logged: the poll
    task tries again)."""
    from memcachepy.cluster.discovery import DiscoveryError
    from memcachepy.cluster.dns import DnsEndpoint, parse_nameserver

    assert settings.cluster_dns is not None
    servers = (
        [parse_nameserver(settings.cluster_dns_server)] if settings.cluster_dns_server else None
    )
    endpoint = DnsEndpoint(settings.cluster_dns, settings.port, servers)
    try:
        _apply(endpoint, endpoint.resolve())
    except DiscoveryError as error:
        log.warning("cluster DNS: %s; serving no nodes until a lookup succeeds", error)
    return endpoint


def _apply(endpoint: DnsEndpoint, nodes: tuple[ClusterNode, ...]) -> None:
    if endpoint.update(nodes):
        config = endpoint.config
        log.info(
            "cluster DNS %s: version %d, %d nodes: %s",
            endpoint.name,
            config.version,
            len(config.nodes),
            " ".join(str(node) for node in config.nodes),
        )


async def follow_dns(endpoint: ConfigEndpoint, interval: float) -> None:
    """Look the name up every ``interval`` seconds; a failed lookup keeps the nodes."""
    from memcachepy.cluster.discovery import DiscoveryError
    from memcachepy.cluster.dns import DnsEndpoint

    assert isinstance(endpoint, DnsEndpoint)
    while True:
        await trio.sleep(interval)
        try:
            nodes = await trio.to_thread.run_sync(endpoint.resolve, abandon_on_cancel=True)
        except DiscoveryError as error:
            log.warning(
                "cluster DNS poll failed, keeping %d nodes: %s", len(endpoint.config.nodes), error
            )
            continue
        _apply(endpoint, nodes)
