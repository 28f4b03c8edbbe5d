"""The daemon side of auto discovery: what a node answers to ``config get|set cluster``.

A node started with ``--cluster-config FILE`` is a configuration endpoint: it answers
``config get cluster`` with the membership listed in FILE (format in
:mod:`memcachepy.cluster.discovery`), re-reads FILE on SIGHUP, and, when it also has an
admin token, takes a new membership from ``config set cluster`` and writes it back to FILE
so that a restart keeps it.

Versions
    The version a node answers with rises on every change of its node set. So that a
    restart never answers an old version number with a different node list (a client
    that saw that number would miss the change), the file keeps the version it was written
    with in a comment, together with a digest of its nodes::

        # memcachepy cluster config: version 7, nodes 1f0c6ab2d35e4f90

    Reading the file (at start or on SIGHUP) serves its nodes with that version when the
    digest matches them; when the nodes were edited since, with one more. The version is
    never lower than the one already served, and rises by one when the nodes changed. A
    file without the comment starts at version 1. Any other comment is ignored, and
    ``config set cluster`` rewrites the whole file (comments are not kept).

Authorization
    ``config set cluster`` is an admin command. It is only accepted when the daemon has an
    :class:`AdminAuth` (today an :class:`AdminToken` read from
    ``--cluster-admin-token-file``) and the command carries a credential that it accepts:
    ``config set cluster <flags> <bytes> <token>``. A later, connection-level login (SASL,
    memcached's ASCII auth) plugs in as another :class:`AdminAuth`.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

from memcachepy.cluster.discovery import (
    ClusterConfig,
    ClusterNode,
    DiscoveryError,
    _sorted_nodes,
    format_cluster_config,
    format_membership,
    parse_cluster_body,
    parse_membership,
)

__all__ = [
    "AdminAuth",
    "AdminToken",
    "ConfigEndpoint",
    "ConfigSetRefused",
    "Stamp",
    "load_endpoint",
    "next_version",
    "nodes_digest",
    "read_membership",
    "render_membership",
    "write_membership_file",
]

_STAMP = re.compile(
    r"^# memcachepy cluster config: version ([0-9]{1,19}), nodes ([0-9a-f]{16})[ \t]*$",
    re.MULTILINE,
)
_TOKEN = re.compile(rb"[\x21-\x7e]{1,250}")  # one command-line token: printable, no space


@dataclass(frozen=True, slots=True)
class Stamp:
    """The version a membership file was written with, and a digest of its nodes then."""

    version: int
    digest: str


def nodes_digest(nodes: Iterable[ClusterNode]) -> str:
    """A short digest of a node set (independent of order and repeats)."""
    return hashlib.sha256(format_membership(nodes).encode("ascii")).hexdigest()[:16]


def read_membership(text: str) -> tuple[tuple[ClusterNode, ...], Stamp | None]:
    """The nodes of a membership file's text and its version stamp, if it has one."""
    nodes = parse_membership(text)
    match = _STAMP.search(text)
    stamp = Stamp(int(match.group(1)), match.group(2)) if match else None
    return nodes, stamp


def next_version(
    current: ClusterConfig | None, nodes: Iterable[ClusterNode], stamp: Stamp | None
) -> int:
    """The version to serve ``nodes`` with, just read with ``stamp`` from the file.

    ``current`` is what the node served until now (None at start). Rules in the module
    docstring: never lower than the stamp (plus one if the nodes differ from the stamped
    ones) nor than ``current``, and one above ``current`` when the node set changed.
    """
    node_set = set(nodes)
    floor = 0
    if stamp is not None:
        floor = stamp.version if stamp.digest == nodes_digest(node_set) else stamp.version + 1
    if current is None:
        return max(1, floor)
    changed = node_set != set(current.nodes)
    return max(current.version + changed, floor)


def render_membership(config: ClusterConfig) -> str:
    """A membership file's text for ``config``, with its version stamp."""
    return (
        f"# memcachepy cluster config: version {config.version}, "
        f"nodes {nodes_digest(config.nodes)}\n"
        "# One node a line: host|ip|port, host:port or host. After editing, send the\n"
        "# daemons SIGHUP. The line above keeps version numbers rising across restarts.\n"
        + format_membership(config.nodes)
    )


def write_membership_file(path: str | os.PathLike[str], config: ClusterConfig) -> None:
    """Replace the file at ``path`` with ``config`` atomically (a reader sees old or new).

    A symbolic link is followed (its target is replaced); the file keeps its permissions.
    """
    target = os.path.realpath(path)
    directory = os.path.dirname(target)
    fd, temporary = tempfile.mkstemp(prefix=".cluster-config-", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="ascii") as handle:
            handle.write(render_membership(config))
            handle.flush()
            os.fsync(handle.fileno())
        try:
            os.chmod(temporary, os.stat(target).st_mode & 0o7777)
        except FileNotFoundError:
            os.chmod(temporary, 0o644)
        os.replace(temporary, target)
    except BaseException:
        try:
            os.unlink(temporary)
        except FileNotFoundError:
            pass
        raise


class ConfigSetRefused(Exception):
    """``config set cluster`` was refused; the message is the reason, one line.

    ``server_side``: the request was fine but the node failed (answer ``SERVER_ERROR``
    rather than ``CLIENT_ERROR``).
    """

    def __init__(self, reason: str, *, server_side: bool = False) -> None:
        super().__init__(reason)
        self.server_side = server_side


class AdminAuth(Protocol):
    """Decides whether an admin command may run, given the credential it came with."""

    def check(self, credential: bytes | None) -> str | None:
        """None when allowed, else why not (one line, for a ``CLIENT_ERROR``)."""


class AdminToken:
    """A shared secret: the admin credential must equal it (compared in constant time)."""

    def __init__(self, secret: bytes) -> None:
        if not _TOKEN.fullmatch(secret):
            raise ValueError("an admin token is 1 to 250 printable ASCII bytes, no spaces")
        self._secret = secret

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> AdminToken:
        """The token in ``path`` (surrounding whitespace and a final newline are ignored)."""
        with open(path, "rb") as handle:
            secret = handle.read(4096).strip()
        try:
            return cls(secret)
        except ValueError as error:
            raise ValueError(f"{os.fspath(path)}: {error}") from None

    def check(self, credential: bytes | None) -> str | None:
        if credential is None:
            return "config set cluster needs the admin token as its last argument"
        if not hmac.compare_digest(credential, self._secret):
            return "bad admin token"
        return None


def load_endpoint(
    config_path: str | os.PathLike[str], admin_token_path: str | os.PathLike[str] | None = None
) -> ConfigEndpoint:
    """The endpoint for ``--cluster-config`` and ``--cluster-admin-token-file``.

    Raises ValueError (a :class:`~memcachepy.cluster.discovery.DiscoveryError` for the
    membership file) with a one-line reason.
    """
    admin = None
    if admin_token_path is not None:
        try:
            admin = AdminToken.from_file(admin_token_path)
        except OSError as error:
            raise ValueError(f"cannot read admin token: {error}") from None
    return ConfigEndpoint(config_path, admin)


class ConfigEndpoint:
    """The membership one node serves: read from a file, changed by SIGHUP or config set.

    Raises :class:`~memcachepy.cluster.discovery.DiscoveryError` if the file cannot be
    read or parsed. Not thread-safe: the daemon calls it from its one event loop thread.
    """

    def __init__(self, path: str | os.PathLike[str], admin: AdminAuth | None = None) -> None:
        self.path = os.fspath(path)
        self.admin = admin
        nodes, stamp = self._read()
        self._set(ClusterConfig(next_version(None, nodes, stamp), _sorted_nodes(nodes)))

    @property
    def config(self) -> ClusterConfig:
        """The version and nodes being served."""
        return self._config

    def reply(self) -> bytes:
        """The answer to ``config get cluster``."""
        return self._reply

    def reload(self) -> bool:
        """Read the file again (SIGHUP); returns whether the version changed.

        On any error the membership served so far is kept and the error raised.
        """
        nodes, stamp = self._read()
        version = next_version(self._config, nodes, stamp)
        if version == self._config.version:
            return False
        self._set(ClusterConfig(version, _sorted_nodes(nodes)))
        return True

    def set_cluster(self, body: bytes, credential: bytes | None) -> None:
        """Apply a ``config set cluster`` data block (``<version>\\n<nodes>\\n``).

        The version must be above the one served. The file is written first, so the node
        never serves a membership a restart would lose. Raises :class:`ConfigSetRefused`.
        """
        if self.admin is None:
            raise ConfigSetRefused(
                "config set cluster is disabled: the daemon has no --cluster-admin-token-file"
            )
        reason = self.admin.check(credential)
        if reason is not None:
            raise ConfigSetRefused(reason)
        try:
            config = parse_cluster_body(body)
        except DiscoveryError as error:
            raise ConfigSetRefused(f"bad cluster config: {_one_line(str(error))}") from None
        if config.version <= self._config.version:
            raise ConfigSetRefused(
                f"cluster config version {config.version} is not above "
                f"the current {self._config.version}"
            )
        try:
            write_membership_file(self.path, config)
        except OSError as error:
            raise ConfigSetRefused(
                f"cannot save cluster config: {error.strerror or error}", server_side=True
            ) from None
        self._set(config)

    def _read(self) -> tuple[tuple[ClusterNode, ...], Stamp | None]:
        try:
            with open(self.path, encoding="utf-8") as handle:
                text = handle.read()
        except (OSError, UnicodeDecodeError) as error:
            raise DiscoveryError(f"cannot read {self.path}: {error}") from None
        try:
            return read_membership(text)
        except DiscoveryError as error:
            raise DiscoveryError(f"{self.path}: {error}") from None

    def _set(self, config: ClusterConfig) -> None:
        self._config = config
        self._reply = format_cluster_config(config.version, config.nodes)


def _one_line(text: str, limit: int = 200) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit] + "..."
