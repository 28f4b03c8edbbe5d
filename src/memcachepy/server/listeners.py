"""Listening sockets as memcached makes them: ``-l``/``-p`` TCP, ``-s``/``-a`` UNIX, ``-b``.

Everything here runs before the event loop starts (and before ``-d`` forks and ``-u``
drops root), so a low port or a root-owned socket directory works as it does for
memcached. The connection loop accepts from whatever sockets :func:`bind_listeners`
returns, of any family.
"""

from __future__ import annotations

import errno
import os
import socket
import stat
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Protocol

from memcachepy.server.udp import open_udp_sockets


class ListenSettings(Protocol):
    """What binding needs of the daemon settings (memcachepy.config.Settings)."""

    listen: str
    port: int
    tcp_enabled: bool
    unix_socket: str | None
    unix_mask: int
    backlog: int
    udp_port: int  # 0: off; -1: a free port (memcached's -U -1)


@dataclass(slots=True)
class BoundListeners:
    """The daemon's listening sockets, and which of them stay plain under ``-Z``."""

    sockets: list[socket.socket] = field(default_factory=list)
    udp: list[socket.socket] = field(default_factory=list)
    plain: set[int] = field(default_factory=set)  # file descriptors of notls: listeners
    activated: bool = False  # passed by systemd rather than bound here
    unix_files: list[str] = field(default_factory=list)  # socket files made here (-s)

    def close(self) -> None:
        for sock in [*self.sockets, *self.udp]:
            sock.close()

    def unlink_unix(self) -> None:
        """Remove the UNIX socket files made here at exit (a later start would replace a
        stale one anyway, as :func:`open_unix_listener` does)."""
        for path in self.unix_files:
            try:
                os.unlink(path)
            except OSError:
                pass


def parse_listen(spec: str, port: int) -> list[tuple[str, int, bool]]:
    """memcached's ``-l``: comma-separated ``[notls:]host[:port]`` -> (host, port, plain).

    ``plain`` marks a listener that stays without TLS when ``-Z`` is on. A bare IPv6
    address needs brackets to carry a port (``[::1]:11211``); ``*`` means every address.
    """
    entries: list[tuple[str, int, bool]] = []
    for raw in spec.replace(";", ",").split(","):
        item = raw.strip()
        if not item:
            continue
        plain = item.startswith("notls:")
        if plain:
            item = item[len("notls:") :]
        host, entry_port = item, port
        if item.startswith("["):
            host, _, rest = item[1:].partition("]")
            if rest.startswith(":"):
                entry_port = _port(rest[1:])
        elif item.count(":") == 1:
            host, _, port_text = item.partition(":")
            entry_port = _port(port_text)
        entries.append(("" if host == "*" else host, entry_port, plain))
    return entries


def _port(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise ValueError(f'Invalid port number: "{text}"') from None


def add_listen_address(current: str | None, address: str) -> str:
    """A repeated ``-l`` accumulates, as memcached's does (an address already in the
    list, by substring as memcached checks it, is not added twice)."""
    if not current:
        return address
    if address in current:
        return current
    return f"{current},{address}"


def open_listeners(host: str, port: int, backlog: int = 1024) -> list[socket.socket]:
    """Non-blocking TCP listening sockets for each comma-separated address in ``host``.

    Like memcached, every address a name resolves to is bound (``localhost`` gives
    127.0.0.1 and ::1); one already in use is skipped if another address of the same
    name binds. Port 0 picks a free port, shared by the later addresses.
    """
    sockets: list[socket.socket] = []
    try:
        for name, entry_port, _ in parse_listen(host, port):
            bound = _bind_name(name, entry_port or port, backlog)
            sockets.extend(bound)
            if not port:
                port = bound[0].getsockname()[1]  # later addresses share an ephemeral port
    except BaseException:
        for sock in sockets:
            sock.close()
        raise
    return sockets


def _bind_name(name: str, port: int, backlog: int) -> list[socket.socket]:
    infos = socket.getaddrinfo(name or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    sockets: list[socket.socket] = []
    seen: set[object] = set()
    in_use: OSError | None = None
    for family, kind, proto, _, address in infos:
        if address in seen:
            continue
        seen.add(address)
        if sockets and not port:
            address = (address[0], sockets[0].getsockname()[1], *address[2:])
        sock = socket.socket(family, kind, proto)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind(address)
            sock.listen(backlog)
        except OSError as exc:
            sock.close()
            if exc.errno == errno.EADDRINUSE:
                in_use = exc
                continue
            if exc.errno == errno.EADDRNOTAVAIL and len(infos) > 1:
                continue  # e.g. ::1 on a host without IPv6, when 127.0.0.1 binds
            for opened in sockets:
                opened.close()
            raise
        sock.setblocking(False)
        sockets.append(sock)
    if not sockets:
        raise in_use or OSError(errno.EADDRNOTAVAIL, f"no address to bind for {name!r}")
    return sockets


def open_unix_listener(path: str, mask: int, backlog: int = 1024) -> socket.socket:
    """memcached's ``-s PATH -a MASK``: a listening UNIX socket whose mode is ``MASK``.

    A stale socket file (nobody listening) is replaced, as memcached does; any other
    file in the way is an error.
    """
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        pass
    else:
        if not stat.S_ISSOCK(info.st_mode):
            raise OSError(errno.EEXIST, f"{path} exists and is not a socket")
        if _answers(path):
            raise OSError(errno.EADDRINUSE, f"{path}: another server is listening")
        os.unlink(path)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    # memcached sets umask(~mask) around bind so the file is never more open than asked.
    old = os.umask(~mask & 0o777)
    try:
        sock.bind(path)
    except OSError:
        sock.close()
        raise
    finally:
        os.umask(old)
    try:
        sock.listen(backlog)
    except OSError:
        sock.close()
        raise
    sock.setblocking(False)
    return sock


def _answers(path: str) -> bool:
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(path)
    except OSError:
        return False
    finally:
        probe.close()
    return True


def bind_listeners(
    settings: ListenSettings, activated: Iterable[socket.socket] = ()
) -> BoundListeners:
    """All of the daemon's stream listeners, bound and listening (not yet accepting).

    Sockets passed by systemd (``activated``) replace ``-l``/``-p``/``-s``. Otherwise
    ``-s`` gives one UNIX socket and turns TCP off, as in memcached; else TCP on each
    ``-l`` address unless ``-p 0`` turned TCP off.
    """
    passed = list(activated)
    if passed:
        return BoundListeners(passed, activated=True)
    if settings.unix_socket:
        path = settings.unix_socket
        return BoundListeners(
            [open_unix_listener(path, settings.unix_mask, settings.backlog)], unix_files=[path]
        )
    bound = BoundListeners()
    try:
        if settings.tcp_enabled:
            bound.sockets = open_listeners(settings.listen, settings.port, settings.backlog)
            plain_hosts = {
                (host, port)
                for host, port, plain in parse_listen(settings.listen, settings.port)
                if plain
            }
            bound.plain = {sock.fileno() for sock in bound.sockets if _matches(sock, plain_hosts)}
        if settings.udp_port:
            hosts = [host for host, _, _ in parse_listen(settings.listen, 0)]
            bound.udp = open_udp_sockets(hosts, max(settings.udp_port, 0))
    except BaseException:
        bound.close()
        raise
    return bound


def _matches(sock: socket.socket, entries: set[tuple[str, int]]) -> bool:
    if not entries:
        return False
    host, port = sock.getsockname()[:2]
    for name, entry_port in entries:
        if entry_port and entry_port != port:
            continue
        try:
            addresses = {
                info[4][0]
                for info in socket.getaddrinfo(
                    name or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
                )
            }
        except OSError:
            continue
        if host in addresses:
            return True
    return False


def socket_text(family: int, address: object, udp: bool = False) -> str:
    """An address as memcached's ``stats conns`` writes it: ``tcp:127.0.0.1:11211``,
    ``tcp6:[::1]:11211``, ``udp:...``, ``unix:/path`` (``unix:<AF 1>`` for an unnamed
    UNIX client)."""
    if family == socket.AF_UNIX:
        path = address.decode() if isinstance(address, bytes) else str(address or "")
        return f"unix:{path}" if len(path) >= 2 else f"unix:<AF {int(family)}>"
    if isinstance(address, tuple) and len(address) >= 2:
        host, port = address[0], address[1]
        if family == socket.AF_INET6:
            return f"{'udp6' if udp else 'tcp6'}:[{host}]:{port}"
        return f"{'udp' if udp else 'tcp'}:{host}:{port}"
    return f"<AF {int(family)}>"


def listener_text(sock: socket.socket) -> str:
    """Where a listening (or UDP) socket is bound, in ``stats conns`` form."""
    return socket_text(sock.family, sock.getsockname(), sock.type == socket.SOCK_DGRAM)


def tcp_ports(sockets: Iterable[socket.socket]) -> list[int]:
    """The ports of the TCP listeners among ``sockets`` (UNIX sockets have none)."""
    return [
        sock.getsockname()[1]
        for sock in sockets
        if sock.family in (socket.AF_INET, socket.AF_INET6)
    ]


def write_port_file(path: str, tcp: Iterable[socket.socket], udp: Iterable[socket.socket]) -> None:
    """``$MEMCACHED_PORT_FILENAME``: ``TCP INET: 11211`` lines, as memcached writes them
    (through a ``.lck`` file renamed into place, so a reader never sees half of it)."""
    lines = []
    for kind, sockets in (("TCP", tcp), ("UDP", udp)):
        for sock in sockets:
            if sock.family == socket.AF_INET:
                lines.append(f"{kind} INET: {sock.getsockname()[1]}\n")
            elif sock.family == socket.AF_INET6:
                lines.append(f"{kind} INET6: {sock.getsockname()[1]}\n")
    temporary = path + ".lck"
    with open(temporary, "a") as out:
        out.writelines(lines)
    os.rename(temporary, path)
