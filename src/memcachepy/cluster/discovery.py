"""Cluster membership: ElastiCache ``config get cluster`` replies, membership files, polling.

Pure functions format and parse the two textual forms of a membership list:

* the ElastiCache Auto Discovery reply (:func:`format_cluster_config`,
  :func:`parse_cluster_config`)::

      CONFIG cluster 0 <n>\\r\\n
      <version>\\n
      <host>|<ip>|<port> <host>|<ip>|<port>...\\n
      \\r\\nEND\\r\\n

  (the reply has no line breaks but the escaped ones), where ``<n>`` counts the bytes of
  the version and node lines including their ``\\n``, nodes are sorted by host name and
  an empty ip keeps both ``|``;
* the membership file read by ``--cluster-config FILE`` (:func:`parse_membership`):
  one node per line, ``#`` starts a comment, blank lines are ignored, and a node is
  written as one of::

      cache-1.example.com|10.0.0.5|11211    host|ip|port, as in config get cluster (ip may be empty)
      10.0.0.6:11212                        host:port (ip is the host when it is an IP literal)
      [::1]:11213                           IPv6 literal in brackets
      cache-2.example.com                   host alone: port 11211

:class:`ClusterMembership` keeps the version number a server answers with (it rises by one
on every change of the node set), and :class:`ConfigPoller` is the client side: it asks a
configuration endpoint ``config get cluster`` over a plain socket at an interval and calls
back when the version changes.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import re
import socket
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass

__all__ = [
    "CONFIG_GET_CLUSTER",
    "ClusterConfig",
    "ClusterMembership",
    "ClusterNode",
    "ConfigPoller",
    "DiscoveryError",
    "format_cluster_config",
    "format_membership",
    "load_membership_file",
    "parse_cluster_body",
    "parse_cluster_config",
    "parse_membership",
]

logger = logging.getLogger(__name__)

#: The command a configuration endpoint answers.
CONFIG_GET_CLUSTER = b"config get cluster"
_HEADER = re.compile(rb"CONFIG cluster (\d+) (\d+)\r\n")
_FORBIDDEN = re.compile(r"[\s|]")
_PORT = re.compile(r"[0-9]{1,5}")
_VERSION = re.compile(r"[0-9]{1,19}")  # an int64, as ElastiCache's; int() of more is slow
_MAX_REPLY = 16 << 20  # a config reply larger than this is refused, not buffered


class DiscoveryError(ValueError):
    """A malformed configuration reply, node or membership file."""


@dataclass(frozen=True, slots=True, order=True)
class ClusterNode:
    """One cache node as ElastiCache describes it: DNS name, IP (may be empty), port."""

    host: str
    ip: str
    port: int

    def __post_init__(self) -> None:
        if not self.host or _FORBIDDEN.search(self.host) or not self.host.isascii():
            raise DiscoveryError(f"bad host name {self.host!r}")
        if _FORBIDDEN.search(self.ip) or not self.ip.isascii():
            raise DiscoveryError(f"bad ip {self.ip!r}")
        if (
            isinstance(self.port, bool)
            or not isinstance(self.port, int)
            or not (0 < self.port < 65536)
        ):
            raise DiscoveryError(f"bad port {self.port!r}")

    @property
    def address(self) -> tuple[str, int]:
        """Where to connect: the ip when known, else the host name."""
        return (self.ip or self.host, self.port)

    def __str__(self) -> str:
        return f"{self.host}|{self.ip}|{self.port}"


@dataclass(frozen=True, slots=True)
class ClusterConfig:
    """A membership version and its nodes (sorted as ElastiCache sorts them)."""

    version: int
    nodes: tuple[ClusterNode, ...]


def _sorted_nodes(nodes: Iterable[ClusterNode]) -> tuple[ClusterNode, ...]:
    unique = set(nodes)
    # Sorted by host name; ip and port only break ties so the order is total.
    return tuple(sorted(unique, key=lambda node: (node.host, node.ip, node.port)))


def format_cluster_config(version: int, nodes: Iterable[ClusterNode]) -> bytes:
    """The complete ``config get cluster`` reply, ready to write to the socket.

    Duplicate nodes are dropped and the rest sorted by host name.
    """
    if isinstance(version, bool) or not isinstance(version, int) or version < 0:
        raise DiscoveryError(f"bad config version {version!r}")
    node_line = " ".join(str(node) for node in _sorted_nodes(nodes))
    body = f"{version}\n{node_line}\n".encode("ascii")
    return b"CONFIG cluster 0 %d\r\n%s\r\nEND\r\n" % (len(body), body)


def _parse_node(text: str) -> ClusterNode:
    parts = text.split("|")
    if len(parts) != 3:
        raise DiscoveryError(f"node {text!r} is not host|ip|port")
    host, ip, port = parts
    if not _PORT.fullmatch(port):
        raise DiscoveryError(f"bad port in node {text!r}")
    return ClusterNode(host, ip, int(port))


def parse_cluster_config(reply: bytes) -> ClusterConfig:
    """Parse a whole ``config get cluster`` reply (header, two lines, ``END``)."""
    header = _HEADER.match(reply)
    if header is None:
        first = reply.split(b"\r\n", 1)[0].decode("ascii", "backslashreplace")
        if first == "ERROR":  # memcached, or memcachepy without --cluster-config
            raise DiscoveryError(
                "answered ERROR to 'config get cluster': not a configuration "
                "endpoint (memcachepy is one with --cluster-config FILE)"
            )
        if first.startswith(("CLIENT_ERROR", "SERVER_ERROR")):
            raise DiscoveryError(f"answered {first!r} to 'config get cluster'")
        raise DiscoveryError(f"not a config reply: {reply[:60]!r}")
    length = int(header.group(2))
    body = reply[header.end() : header.end() + length]
    if len(body) != length or reply[header.end() + length :] != b"\r\nEND\r\n":
        raise DiscoveryError("config reply length does not match its body")
    return parse_cluster_body(body)


def parse_cluster_body(body: bytes) -> ClusterConfig:
    """Parse the two lines ``<version>\\n<nodes>\\n`` of a config reply (or of the data
    block of ``config set cluster``)."""
    lines = body.split(b"\n")
    if len(lines) != 3 or lines[2] != b"":
        raise DiscoveryError("config body is not exactly two lines")
    version_text, node_text = (line.decode("ascii", "replace") for line in lines[:2])
    if not _VERSION.fullmatch(version_text):
        raise DiscoveryError(f"bad config version {version_text!r}")
    nodes = [_parse_node(item) for item in node_text.split(" ") if item]
    return ClusterConfig(int(version_text), _sorted_nodes(nodes))


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _parse_membership_line(line: str) -> ClusterNode:
    if "|" in line:
        return _parse_node(line)
    if line.startswith("["):
        host, bracket, rest = line[1:].partition("]")
        if not bracket or (rest and not rest.startswith(":")):
            raise DiscoveryError(f"bad bracketed address {line!r}")
        port_text = rest[1:] if rest else "11211"
    elif line.count(":") == 1:
        host, _, port_text = line.partition(":")
    elif ":" not in line:
        host, port_text = line, "11211"
    else:
        raise DiscoveryError(f"write IPv6 addresses as [addr]:port, got {line!r}")
    if not _PORT.fullmatch(port_text):
        raise DiscoveryError(f"bad port in {line!r}")
    return ClusterNode(host, host if _is_ip(host) else "", int(port_text))


def parse_membership(text: str) -> tuple[ClusterNode, ...]:
    """Parse a membership file's text (format in the module docstring).

    A repeated node is an error, reported with its line number like any other.
    """
    nodes: list[ClusterNode] = []
    seen: dict[tuple[str, int], int] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        try:
            node = _parse_membership_line(line)
        except DiscoveryError as error:
            raise DiscoveryError(f"line {number}: {error}") from None
        if (node.host, node.port) in seen:
            first = seen[(node.host, node.port)]
            raise DiscoveryError(f"line {number}: {node.host}:{node.port} repeats line {first}")
        seen[(node.host, node.port)] = number
        nodes.append(node)
    return tuple(nodes)


def format_membership(nodes: Iterable[ClusterNode]) -> str:
    """A membership file listing ``nodes``, one ``host|ip|port`` a line."""
    return "".join(f"{node}\n" for node in _sorted_nodes(nodes))


def load_membership_file(path: str | os.PathLike[str]) -> tuple[ClusterNode, ...]:
    """Read and parse a membership file (``--cluster-config FILE``)."""
    with open(path, encoding="utf-8") as handle:
        return parse_membership(handle.read())


def _address(endpoint: tuple[str, int]) -> str:
    host, port = endpoint
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class ClusterMembership:
    """The node set a configuration endpoint serves, with its ElastiCache version number.

    The version starts at ``initial_version`` and rises by one each time :meth:`update`
    is given a different node set; :meth:`reply` is the ``config get cluster`` answer.
    """

    def __init__(self, nodes: Iterable[ClusterNode] = (), initial_version: int = 1) -> None:
        self._config = ClusterConfig(initial_version, _sorted_nodes(nodes))

    @property
    def config(self) -> ClusterConfig:
        """The current version and nodes."""
        return self._config

    def update(self, nodes: Iterable[ClusterNode]) -> bool:
        """Replace the node set; returns whether it changed (and the version rose)."""
        new_nodes = _sorted_nodes(nodes)
        if new_nodes == self._config.nodes:
            return False
        self._config = ClusterConfig(self._config.version + 1, new_nodes)
        return True

    def reply(self) -> bytes:
        """The bytes to answer ``config get cluster`` with."""
        return format_cluster_config(self._config.version, self._config.nodes)


class ConfigPoller:
    """Polls a configuration endpoint with ``config get cluster`` and reports new versions.

    ``on_change`` is called with the new :class:`ClusterConfig` whenever the version differs
    from the last one seen (the first successful poll counts as a change). :meth:`check`
    polls once in the caller's thread; :meth:`start` polls every ``interval`` seconds in a
    daemon thread until :meth:`stop`. A failed poll (endpoint down or slower than ``timeout``,
    a malformed reply, ``ERROR`` from a server that is no configuration endpoint) is logged
    and the last configuration kept.
    """

    def __init__(
        self,
        endpoint: tuple[str, int],
        on_change: Callable[[ClusterConfig], None],
        *,
        interval: float = 60.0,
        timeout: float = 2.0,
    ) -> None:
        self.endpoint = endpoint
        self.interval = interval
        self._on_change = on_change
        self._timeout = timeout
        self._sock: socket.socket | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self.current: ClusterConfig | None = None

    def fetch(self) -> ClusterConfig:
        """Ask the endpoint once and parse its answer.

        Raises OSError when the endpoint cannot be reached or times out, and
        :class:`DiscoveryError`, at once, when it answers anything but a config reply:
        ``ERROR`` from a node without ``--cluster-config`` (or from memcached).
        """
        with self._lock:
            try:
                reply = self._exchange()
            except Exception:
                self._close()
                raise
        try:
            return parse_cluster_config(reply)
        except DiscoveryError as error:
            raise DiscoveryError(f"{_address(self.endpoint)} {error}") from None

    def _exchange(self) -> bytes:
        """Send ``config get cluster``; the reply, read up to its end or its error line.

        pymemcache's raw_command would wait for the reply's end marker until its timeout,
        though an error line (``ERROR``) has already arrived.
        """
        if self._sock is None:
            self._sock = socket.create_connection(self.endpoint, timeout=self._timeout)
        self._sock.sendall(CONFIG_GET_CLUSTER + b"\r\n")
        buf = b""
        while True:
            if b"\r\n" in buf:
                header = _HEADER.match(buf)
                if header is None:
                    return buf  # an error line, or not a config reply: parsed by the caller
                total = header.end() + int(header.group(2)) + len(b"\r\nEND\r\n")
                if total > _MAX_REPLY:
                    raise DiscoveryError(f"config reply of {total} bytes is too large")
                if len(buf) >= total:
                    return buf[:total]
            chunk = self._sock.recv(65536)
            if not chunk:
                raise ConnectionError(f"{_address(self.endpoint)} closed the connection")
            buf += chunk

    def _close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def check(self) -> bool:
        """Poll once; call ``on_change`` and return True if the version changed."""
        config = self.fetch()
        if self.current is not None and config.version == self.current.version:
            return False
        self.current = config
        self._on_change(config)
        return True

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.check()
            except Exception as error:  # keep polling whatever one poll did
                logger.warning("config poll of %s:%s failed: %s", *self.endpoint, error)
            self._stop.wait(self.interval)

    def start(self) -> None:
        """Poll in a background thread, first right away, then every ``interval`` seconds."""
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(
            target=self._run, name="memcachepy-config-poller", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        """Stop the background thread and close the connection."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        with self._lock:
            self._close()

    def __enter__(self) -> ConfigPoller:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
