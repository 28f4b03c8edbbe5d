"""Listening sockets: memcached's ``-l`` addresses bound as non-blocking TCP listeners."""

from __future__ import annotations

import socket


def parse_listen(spec: str, port: int) -> list[tuple[str, int, bool]]:
    """memcached's ``-l``: comma-separated ``[notls:]host[:port]`` -> (host, port, plain).

    ``plain`` marks a listener that stays without TLS when ``-Z`` is on. A bare IPv6
    address needs brackets to carry a port (``[::1]:11211``).
    """
    entries: list[tuple[str, int, bool]] = []
    for raw in spec.split(","):
        item = raw.strip()
        plain = item.startswith("notls:")
        if plain:
            item = item[len("notls:"):]
        host, entry_port = item, port
        if item.startswith("["):
            host, _, rest = item[1:].partition("]")
            if rest.startswith(":"):
                entry_port = int(rest[1:])
        elif item.count(":") == 1:
            host, _, port_text = item.partition(":")
            entry_port = int(port_text)
        entries.append((host, entry_port, plain))
    return entries


def open_listeners(host: str, port: int) -> list[socket.socket]:
    """Non-blocking listening sockets for each comma-separated address in ``host``."""
    sockets: list[socket.socket] = []
    try:
        for name, entry_port, _ in parse_listen(host, port):
            infos = socket.getaddrinfo(
                name or None, entry_port or port, type=socket.SOCK_STREAM,
                flags=socket.AI_PASSIVE,
            )
            family, kind, proto, _, address = infos[0]
            sock = socket.socket(family, kind, proto)
            sockets.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind(address)
            sock.listen(1024)
            sock.setblocking(False)
            port = port or sock.getsockname()[1]  # later addresses share an ephemeral port
    except BaseException:
        for sock in sockets:
            sock.close()
        raise
    return sockets
