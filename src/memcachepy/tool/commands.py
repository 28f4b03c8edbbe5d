"""The tool's one-shot commands: display, stats, settings, dump, cluster."""

from __future__ import annotations

import base64
import json
import re
import time
from collections.abc import Iterator
from typing import IO, Any, Final

from memcachepy.tool.client import (
    CommandRefused,
    Connection,
    DumpedKey,
    ToolError,
    format_address,
)
from memcachepy.tool.render import duration, number, percent, size, table

DUMP_BATCH: Final = 100  # keys per get while dumping
KEY_SHARE_SAMPLES: Final = 1 << 16  # ring points probed to estimate each node's key share


def _print_json(data: object, out: IO[str]) -> None:
    json.dump(data, out, indent=2)
    out.write("\n")


# -- display ------------------------------------------------------------------------------


def slab_rows(conn: Connection) -> list[dict[str, Any]]:
    """One row per slab class with pages or items, from ``stats slabs`` and ``stats items``."""
    classes: dict[int, dict[str, str]] = {}
    for name, value in conn.stats("slabs"):
        number_text, sep, field = name.partition(":")
        if sep and number_text.isdigit():
            classes.setdefault(int(number_text), {})[field] = value
    for name, value in conn.stats("items"):
        parts = name.split(":")
        if len(parts) == 3 and parts[1].isdigit():
            classes.setdefault(int(parts[1]), {})["items_" + parts[2]] = value
    rows = []
    for class_id in sorted(classes):
        f = classes[class_id]

        def get(field: str, f: dict[str, str] = f) -> int:
            return int(float(f.get(field, "0")))

        rows.append(
            {
                "class": class_id,
                "chunk_size": get("chunk_size"),
                "max_age": get("items_age"),
                "pages": get("total_pages"),
                "count": get("items_number"),
                "full": get("total_chunks") > 0
                and get("free_chunks") == 0
                and get("free_chunks_end") == 0,
                "evicted": get("items_evicted"),
                "evict_time": get("items_evicted_time"),
                "outofmemory": get("items_outofmemory"),
            }
        )
    return rows


def display(conn: Connection, as_json: bool, out: IO[str]) -> int:
    rows = slab_rows(conn)
    if as_json:
        _print_json(rows, out)
        return 0
    if not rows:
        out.write("no slab classes in use yet\n")
        return 0
    out.write(
        table(
            [
                "#",
                "Item_Size",
                "Max_age",
                "Pages",
                "Count",
                "Full?",
                "Evicted",
                "Evict_Time",
                "OOM",
            ],
            [
                [
                    r["class"],
                    size(r["chunk_size"]),
                    duration(r["max_age"]),
                    r["pages"],
                    r["count"],
                    "yes" if r["full"] else "no",
                    r["evicted"],
                    r["evict_time"],
                    r["outofmemory"],
                ]
                for r in rows
            ],
            align="rrrrrrrrr",
        )
        + "\n"
    )
    return 0


# -- stats and settings -------------------------------------------------------------------


def show_stats(conn: Connection, sub: str, as_json: bool, out: IO[str]) -> int:
    pairs = conn.stats(sub)
    if as_json:
        _print_json({name: number(value) for name, value in pairs}, out)
        return 0
    title = f"# {format_address(conn.address)}" + (f" stats {sub}" if sub else " stats")
    out.write(title + "\n" + table(["Field", "Value"], pairs) + "\n")
    return 0


# -- dump ---------------------------------------------------------------------------------


def dump_keys(conn: Connection, err: IO[str]) -> Iterator[DumpedKey]:
    """Keys by metadump; by ``stats cachedump`` if the server has no metadump."""
    try:
        yield from conn.metadump()
    except CommandRefused as refused:
        err.write(
            f"lru_crawler metadump refused ({refused}); listing keys with "
            "stats cachedump instead, which may miss some (memcached lists only the "
            "cold LRU segment and at most 2 MB per class)\n"
        )
        yield from conn.cachedump()


def dump(
    address: tuple[str, int],
    as_json: bool,
    out: IO[bytes],
    err: IO[str],
    timeout: float,
    *,
    noreply: bool = False,
) -> int:
    """Every live item as ``add`` commands (or JSON lines), streamed in batches of gets.

    Keys come from one connection, values from another, so a large cache is never held in
    memory. An item that expires or is evicted meanwhile is skipped. ``noreply`` ends each
    command with ``noreply``: the server that loads the dump answers nothing.
    """
    now = int(time.time())
    count = 0
    with Connection(address, timeout) as keys_conn, Connection(address, timeout) as values:
        batch: list[DumpedKey] = []

        def flush() -> None:
            nonlocal count
            found = {v.key: v for v in values.get_many([k.key for k in batch])}
            for item in batch:
                value = found.get(item.key)
                if value is None:
                    continue
                out.write(_dump_record(value, item.exptime, as_json, noreply))
                count += 1
            out.flush()
            batch.clear()

        for item in dump_keys(keys_conn, err):
            if item.exptime and item.exptime <= now:
                continue
            batch.append(item)
            if len(batch) >= DUMP_BATCH:
                flush()
        flush()
    err.write(f"dumped {count} items\n")
    return 0


def _dump_record(value: Any, exptime: int, as_json: bool, noreply: bool) -> bytes:
    if as_json:
        try:
            text: str | None = value.key.decode("utf-8")
        except UnicodeDecodeError:
            text = None
        record = {
            "key": text,
            "key_b64": base64.b64encode(value.key).decode(),
            "flags": value.flags,
            "exptime": exptime,
            "value_b64": base64.b64encode(value.data).decode(),
        }
        return json.dumps(record).encode() + b"\n"
    # memcached-tool's format: text-protocol commands that load another server (nc HOST PORT).
    return b"add %s %d %d %d%s\r\n%s\r\n" % (
        value.key,
        value.flags,
        exptime,
        len(value.data),
        b" noreply" if noreply else b"",
        value.data,
    )


# -- cluster ------------------------------------------------------------------------------

# cluster's exit status when it printed the nodes but some node did not answer.
NODE_DOWN: Final = 2


def cluster(endpoint: tuple[str, int], as_json: bool, out: IO[str], timeout: float) -> int:
    """The nodes ``config get cluster`` lists, each with its health and share of keys.

    Returns 0 when every node answers, :data:`NODE_DOWN` when some node does not (so that
    scripts and health checks can use it), after printing the nodes either way."""
    from memcachepy.cluster.discovery import DiscoveryError, parse_cluster_config
    from memcachepy.cluster.members import Member, build_ring

    with Connection(endpoint, timeout) as conn:
        reply = conn.config_get_cluster()
    try:
        config = parse_cluster_config(reply)
    except DiscoveryError as exc:
        raise ToolError(f"{format_address(endpoint)} {exc}") from None
    ring = build_ring(config.nodes)
    shares = dict.fromkeys(ring.nodes, 0)
    for i in range(KEY_SHARE_SAMPLES):
        owner = ring.get_node_for_point(i * (1 << 32) // KEY_SHARE_SAMPLES)
        if owner is not None:
            shares[owner] += 1
    nodes = []
    for node in config.nodes:
        health = node_health(node.address, timeout)
        server = Member(node.host, node.port, ip=node.ip)
        health.update(
            host=node.host,
            ip=node.ip,
            port=node.port,
            key_share=shares.get(server, 0) / KEY_SHARE_SAMPLES,
        )
        nodes.append(health)
    total_items = sum(n.get("items", 0) for n in nodes)
    for n in nodes:
        n["item_share"] = n.get("items", 0) / total_items if total_items else 0.0
    status = 0 if all(n["up"] for n in nodes) else NODE_DOWN
    if as_json:
        _print_json(
            {"endpoint": format_address(endpoint), "version": config.version, "nodes": nodes}, out
        )
        return status
    out.write(
        f"cluster config version {config.version} from {format_address(endpoint)}: "
        f"{len(nodes)} nodes, {sum(n['up'] for n in nodes)} up\n"
    )
    rows = [
        [
            f"{n['host']}|{n['ip']}|{n['port']}",
            "up" if n["up"] else "DOWN",
            f"{n['latency_ms']:.1f} ms" if n["up"] else n["error"],
            n.get("items", "-"),
            size(n["bytes"]) if n["up"] else "-",
            n.get("connections", "-"),
            percent(n["get_hits"], n["cmd_get"]) if n["up"] else "-",
            f"{100 * n['key_share']:.1f}%",
            f"{100 * n['item_share']:.1f}%",
        ]
        for n in nodes
    ]
    out.write(
        table(
            [
                "node",
                "health",
                "latency",
                "items",
                "memory",
                "conns",
                "hits",
                "key share",
                "item share",
            ],
            rows,
            align="lllrrrrrr",
        )
        + "\n"
    )
    return status


def cluster_warm(
    endpoint: tuple[str, int],
    node: tuple[str, int],
    replicas: int,
    rate: int,
    as_json: bool,
    out: IO[str],
    timeout: float,
) -> int:
    """Copy into ``node`` the items for which it is a replica, from the other members
    (:mod:`memcachepy.cluster.warmup`, written with ``ms`` in add mode, so nothing ``node``
    holds is overwritten). Returns 0 when every peer was copied from, else NODE_DOWN."""
    from memcachepy.cluster.discovery import DiscoveryError, parse_cluster_config
    from memcachepy.cluster.members import Member
    from memcachepy.cluster.warmup import RemoteTarget, Warmer

    with Connection(endpoint, timeout) as conn:
        reply = conn.config_get_cluster()
    try:
        config = parse_cluster_config(reply)
    except DiscoveryError as exc:
        raise ToolError(f"{format_address(endpoint)} {exc}") from None
    members = [Member(n.host, n.port, ip=n.ip) for n in config.nodes]
    me = next((m for m in members if m.address == node or (m.host, m.port) == node), None)
    if me is None:
        raise ToolError(
            f"{format_address(node)} is not among the {len(members)} nodes of "
            f"cluster config version {config.version}"
        )
    try:
        target = RemoteTarget(me.address, timeout)
    except OSError as exc:
        raise ToolError(f"cannot connect to {format_address(node)}: {exc}") from None
    try:
        warmer = Warmer(me, members, replicas, target, item_rate=rate, timeout=timeout)
        progress = warmer.run()
    finally:
        target.close()
    peers = len(warmer.peers())
    status = 0 if progress.peers == peers else NODE_DOWN
    if as_json:
        _print_json(
            {
                "node": format_address(node),
                "version": config.version,
                "replicas": replicas,
                **dict(progress.stats()),
            },
            out,
        )
        return status
    out.write(
        f"{format_address(node)}: {progress.items} items ({size(progress.bytes)}) "
        f"copied from {progress.peers} of {peers} peers in {progress.seconds:.1f} s, "
        f"{progress.dropped} not copied (present, or changed meanwhile)\n"
    )
    return status


def node_health(address: tuple[str, int], timeout: float) -> dict[str, Any]:
    """Whether a node answers, how fast, and its main figures."""
    start = time.perf_counter()
    try:
        with Connection(address, timeout) as conn:
            version = conn.version()
            latency = (time.perf_counter() - start) * 1000
            stats = dict(conn.stats())
    except ToolError as exc:
        reason = str(exc).split(": ", 1)[-1]
        return {"up": False, "error": re.sub(r"^\[Errno \d+\] ", "", reason)}

    def get(name: str) -> int:
        return int(float(stats.get(name, "0")))

    return {
        "up": True,
        "latency_ms": round(latency, 3),
        "version": version,
        "items": get("curr_items"),
        "bytes": get("bytes"),
        "limit_bytes": get("limit_maxbytes"),
        "connections": get("curr_connections"),
        "cmd_get": get("cmd_get"),
        "get_hits": get("get_hits"),
        "uptime": get("uptime"),
    }
