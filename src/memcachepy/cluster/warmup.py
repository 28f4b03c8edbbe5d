"""Warm-up from peers: a node that starts empty copies its share of live items back.

With ``replicas=R`` a key lives on the first R distinct nodes of its ring walk
(:meth:`~memcachepy.cluster.ring.KetamaRing.get_nodes`, the placement
:class:`~memcachepy.cluster.client.ClusterClient` uses). A node restarted empty, or a new
node that joins the membership, holds none of its keys; every other replica still does.
:class:`Warmer` copies them, using only what every memcached 1.6 node speaks:

1. ``lru_crawler metadump all`` on each peer lists its keys with their CAS. The keys for
   which this node is one of the R replicas are kept.
2. ``mg <key> v f t c`` fetches value, client flags, remaining TTL and CAS, pipelined in
   batches. A key whose CAS differs from the one the metadump listed changed at the
   source while it was being copied: it is dropped (the newer write reached this node
   too, or will be invalidated by the client that missed it).
3. The target writes each copy with *add* semantics: a key the node already holds is
   never overwritten (any write it got is newer than the copy). The daemon's target also
   refuses keys deleted on this node since it started (a delete must never be undone).
4. ``mg <key> c`` on the source again: a copy whose source is gone or changed meanwhile is
   removed, but only while the copy is unchanged here (a compare-and-delete on the CAS the
   target gave it), so a newer write that landed on it stays.

A peer that fails (down, paused, timing out) is tried again after the others, until
``retry_for`` seconds have passed. The copy is paced by :class:`RateLimit` so that the
node keeps serving while it warms.

What remains possible is what read repair also leaves (see :mod:`memcachepy.cluster.repair`):
a delete that a client sends to this node *before* the node started and to the source
only after step 4. The daemon closes that window with its record of local deletes;
``memcachepy-tool cluster warm``, copying into a node from outside, cannot see them.

Nothing here imports trio; the daemon runs :meth:`Warmer.run` in a worker thread.
"""

from __future__ import annotations

import base64
import logging
import socket
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Final, Protocol

from memcachepy.cluster.discovery import ClusterNode
from memcachepy.cluster.members import Member, build_ring, to_server

__all__ = [
    "DEFAULT_BATCH",
    "DEFAULT_BYTE_RATE",
    "DEFAULT_ITEM_RATE",
    "CopiedItem",
    "DumpEntry",
    "PeerConnection",
    "PeerError",
    "RateLimit",
    "RemoteTarget",
    "WarmTarget",
    "Warmer",
    "WarmupProgress",
    "client_exptime",
    "find_self",
]

logger = logging.getLogger(__name__)

#: Items copied per second by default (``--warm-up-rate``).
DEFAULT_ITEM_RATE: Final = 10_000
#: Value bytes copied per second at most (fixed: 32 MiB/s, a quarter of a 1 Gbit/s link).
DEFAULT_BYTE_RATE: Final = 32 << 20
#: Keys fetched per pipelined round trip.
DEFAULT_BATCH: Final = 100
# memcached reads an exptime above 30 days as a Unix time.
RELATIVE_TTL_MAX: Final = 60 * 60 * 24 * 30
_BUSY_RETRIES: Final = 50  # metadump tries while memcached's crawler is on another job
_BUSY_WAIT: Final = 0.1
_ERRORS: Final = (b"ERROR", b"CLIENT_ERROR", b"SERVER_ERROR")
# Seconds a peer may take to start its metadump: memcachepy builds the whole dump first
# (about a second per million items), memcached streams it; a paused peer costs this much.
METADUMP_TIMEOUT: Final = 5.0


class PeerError(Exception):
    """A peer answered something the warm-up cannot use (or closed the connection)."""


@dataclass(frozen=True, slots=True)
class DumpEntry:
    """One item a peer's metadump listed: its key and its CAS then."""

    key: bytes
    cas: int


@dataclass(frozen=True, slots=True)
class CopiedItem:
    """An item fetched from a peer: what the copy needs, and the source's CAS."""

    key: bytes
    value: bytes
    flags: int
    ttl: int  # remaining seconds; -1: never expires
    cas: int

    def exptime(self, now: float | None = None) -> int:
        """The exptime to store the copy with (see :func:`client_exptime`)."""
        return client_exptime(self.ttl, now)


def client_exptime(ttl: int, now: float | None = None) -> int:
    """A remaining TTL (``mg t``: -1 for none) as a client's exptime: 0 for none, the
    seconds when within 30 days, else the absolute Unix time memcached expects."""
    if ttl < 0:
        return 0
    if ttl > RELATIVE_TTL_MAX:
        return ttl + int(time.time() if now is None else now)
    return ttl


def _key_token(key: bytes) -> tuple[bytes, bytes]:
    """The key as a meta command token, and the ``b`` flag when it had to be base64."""
    if key and all(0x21 <= byte <= 0x7E for byte in key):
        return key, b""
    return base64.b64encode(key), b" b"


class PeerConnection:
    """A blocking text-protocol connection to one node: metadump and meta commands."""

    def __init__(self, address: tuple[str, int], timeout: float = 2.0) -> None:
        self.address = address
        self._sock = socket.create_connection(address, timeout=timeout)
        self._sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._buf = bytearray()
        self._pos = 0

    def close(self) -> None:
        self._sock.close()

    def __enter__(self) -> PeerConnection:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- bytes ----------------------------------------------------------------------------

    def _fill(self) -> None:
        if self._pos:
            del self._buf[: self._pos]
            self._pos = 0
        chunk = self._sock.recv(262144)
        if not chunk:
            raise PeerError(f"{self.address[0]}:{self.address[1]} closed the connection")
        self._buf += chunk

    def _line(self) -> bytes:
        while (end := self._buf.find(b"\n", self._pos)) < 0:
            self._fill()
        line = bytes(self._buf[self._pos : end])
        self._pos = end + 1
        return line[:-1] if line.endswith(b"\r") else line

    def _exact(self, count: int) -> bytes:
        while len(self._buf) - self._pos < count:
            self._fill()
        data = bytes(self._buf[self._pos : self._pos + count])
        self._pos += count
        return data

    # -- commands -------------------------------------------------------------------------

    def metadump(self, timeout: float | None = None) -> list[DumpEntry]:
        """Every item of ``lru_crawler metadump all`` (BUSY is retried a while).

        ``timeout`` replaces the connection's for this command: a large peer may take
        seconds to build its dump before the first byte comes."""
        previous = self._sock.gettimeout()
        if timeout is not None:
            self._sock.settimeout(timeout)
        try:
            return self._metadump()
        finally:
            self._sock.settimeout(previous)

    def _metadump(self) -> list[DumpEntry]:
        for _ in range(_BUSY_RETRIES):
            self._sock.sendall(b"lru_crawler metadump all\r\n")
            line = self._line()
            if not line.startswith(b"BUSY"):
                break
            time.sleep(_BUSY_WAIT)
        else:
            raise PeerError("the peer's LRU crawler stayed busy")
        entries: list[DumpEntry] = []
        while line != b"END":
            if line.startswith(_ERRORS) or line.startswith(b"BUSY"):
                raise PeerError(f"metadump refused: {line[:80]!r}")
            fields = dict(part.split(b"=", 1) for part in line.split(b" ") if b"=" in part)
            if b"key" in fields and b"cas" in fields:
                entries.append(
                    DumpEntry(urllib.parse.unquote_to_bytes(fields[b"key"]), int(fields[b"cas"]))
                )
            line = self._line()
        return entries

    def _meta_replies(self, requests: list[bytes]) -> list[tuple[list[bytes], bytes | None]]:
        """Send pipelined meta requests; each reply's words and, for ``VA``, its data."""
        if not requests:
            return []
        self._sock.sendall(b"".join(requests))
        replies: list[tuple[list[bytes], bytes | None]] = []
        for _ in requests:
            words = self._line().split()
            if not words:
                raise PeerError("empty meta reply")
            if words[0] == b"VA":
                data = self._exact(int(words[1]) + 2)[:-2]
                replies.append((words, data))
            elif words[0] in (b"HD", b"EN", b"NS", b"EX", b"NF"):
                replies.append((words, None))
            else:
                raise PeerError(f"unexpected meta reply {b' '.join(words)[:80]!r}")
        return replies

    @staticmethod
    def _returned(words: list[bytes]) -> dict[bytes, bytes]:
        return {word[:1]: word[1:] for word in words if word}

    def fetch(self, keys: Sequence[bytes]) -> list[CopiedItem | None]:
        """``mg <key> v f t c`` for each key, pipelined; None where the peer missed."""
        requests = []
        for key in keys:
            token, b_flag = _key_token(key)
            requests.append(b"mg " + token + b" v f t c" + b_flag + b"\r\n")
        found: list[CopiedItem | None] = []
        for key, (words, data) in zip(keys, self._meta_replies(requests), strict=True):
            if data is None:
                found.append(None)
                continue
            got = self._returned(words[2:])
            found.append(CopiedItem(key, data, int(got[b"f"]), int(got[b"t"]), int(got[b"c"])))
        return found

    def cas_of(self, keys: Sequence[bytes]) -> list[int | None]:
        """``mg <key> c`` for each key, pipelined: the CAS now, None where missing."""
        requests = []
        for key in keys:
            token, b_flag = _key_token(key)
            requests.append(b"mg " + token + b" c" + b_flag + b"\r\n")
        result: list[int | None] = []
        for words, _ in self._meta_replies(requests):
            got = self._returned(words[1:]) if words[0] == b"HD" else {}
            result.append(int(got[b"c"]) if b"c" in got else None)
        return result

    def add(self, items: Sequence[CopiedItem]) -> list[int | None]:
        """``ms <key> <len> T<ttl> F<flags> ME c`` for each item, pipelined: mode E stores
        only if the key is absent. The CAS each stored copy got, None where not stored."""
        requests = []
        now = time.time()
        for item in items:
            token, b_flag = _key_token(item.key)
            requests.append(
                b"ms %s %d T%d F%d ME c%s\r\n%s\r\n"
                % (token, len(item.value), item.exptime(now), item.flags, b_flag, item.value)
            )
        result: list[int | None] = []
        for words, _ in self._meta_replies(requests):
            got = self._returned(words[1:]) if words[0] == b"HD" else {}
            result.append(int(got[b"c"]) if b"c" in got else None)
        return result

    def delete_if(self, pairs: Sequence[tuple[bytes, int]]) -> int:
        """``md <key> C<cas>`` for each pair: delete only the unchanged ones; how many went."""
        requests = []
        for key, cas in pairs:
            token, b_flag = _key_token(key)
            requests.append(b"md %s C%d%s\r\n" % (token, cas, b_flag))
        return sum(words[0] == b"HD" for words, _ in self._meta_replies(requests))


class WarmTarget(Protocol):
    """Where the copies go: the daemon's own cache, or a node over the wire."""

    def add(self, items: Sequence[CopiedItem]) -> list[int | None]:
        """Store each item unless its key is present (or must not come back); the CAS of
        each copy stored, None where not stored."""

    def undo(self, copies: Sequence[tuple[bytes, int]]) -> int:
        """Remove these (key, CAS) copies where still unchanged; how many were removed."""

    def aborted(self) -> str | None:
        """Why the warm-up must stop now (a ``flush_all`` on the node), or None."""


class RemoteTarget:
    """A node over the text protocol (``memcachepy-tool cluster warm``): ``ms`` in add
    mode (``ME``) and ``md`` with a CAS, so it also warms a real memcached node."""

    def __init__(self, address: tuple[str, int], timeout: float = 2.0) -> None:
        self.connection = PeerConnection(address, timeout)

    def add(self, items: Sequence[CopiedItem]) -> list[int | None]:
        return self.connection.add(items)

    def undo(self, copies: Sequence[tuple[bytes, int]]) -> int:
        return self.connection.delete_if(copies)

    def aborted(self) -> str | None:
        return None

    def close(self) -> None:
        self.connection.close()


class RateLimit:
    """Paces a copy to ``items`` per second and ``nbytes`` value bytes per second.

    :meth:`charge` counts what was just copied and sleeps until the totals are within
    both rates since the start (so a short stall is made up, never exceeded by more than
    one batch). A rate of 0 or less is no limit.
    """

    def __init__(
        self,
        items: float,
        nbytes: float,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], object] = time.sleep,
    ) -> None:
        self.items = items
        self.nbytes = nbytes
        self._clock = clock
        self._sleep = sleep
        self._start = clock()
        self._count = 0
        self._bytes = 0

    def charge(self, items: int, nbytes: int, stop: threading.Event | None = None) -> None:
        self._count += items
        self._bytes += nbytes
        due = max(
            self._count / self.items if self.items > 0 else 0.0,
            self._bytes / self.nbytes if self.nbytes > 0 else 0.0,
        )
        wait = self._start + due - self._clock()
        if wait > 0:
            if stop is not None:
                stop.wait(wait)
            else:
                self._sleep(wait)


@dataclass(slots=True)
class WarmupProgress:
    """What a warm-up did so far (``stats``: warmup_*)."""

    state: str = "idle"  # idle, waiting (not in the membership yet), running, done, aborted
    items: int = 0  # copies stored and kept
    bytes: int = 0  # value bytes of those copies
    dropped: int = 0  # keys not copied: changed at the source, present here, or deleted
    peers: int = 0  # peers copied from completely
    peer_failures: int = 0  # failed attempts at a peer (each is retried until retry_for)
    started: float = 0.0  # time.time() of the start, 0 before
    seconds: float = 0.0  # duration of the finished warm-up

    def stats(self) -> list[tuple[str, object]]:
        """The ``STAT`` lines, in this order."""
        return [
            ("warmup_state", self.state),
            ("warmup_items", self.items),
            ("warmup_bytes", self.bytes),
            ("warmup_dropped", self.dropped),
            ("warmup_peers", self.peers),
            ("warmup_peer_failures", self.peer_failures),
            ("warmup_seconds", round(self.seconds, 3)),
        ]


def find_self(
    nodes: Iterable[ClusterNode | Member], ports: Iterable[int], listen: Iterable[str] = ()
) -> Member | None:
    """Which member is this node: its port is one of ``ports`` and its address is one of
    the ``listen`` addresses or, failing that, an address of this machine.

    A host name is resolved; an address is this machine's when a socket can be bound to
    it. None when no member, or more than one, qualifies.
    """
    port_set = set(ports)
    members = [to_server(node) for node in nodes]
    candidates = [m for m in members if m.port in port_set]
    listening = set(listen)
    exact = [m for m in candidates if (m.ip or m.host) in listening]
    if len(exact) == 1:
        return exact[0]
    local = [m for m in candidates if any(_is_local(a) for a in _addresses(m.ip or m.host))]
    return local[0] if len(local) == 1 else None


def _addresses(host: str) -> list[str]:
    try:
        infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except OSError:
        return []
    return sorted({str(info[4][0]) for info in infos})


def _is_local(address: str) -> bool:
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as probe:
        try:
            probe.bind((address, 0))
        except OSError:
            return False
    return True


class Warmer:
    """Copies the items for which ``me`` is one of ``replicas`` replicas from the other
    ``members`` into ``target`` (module docstring: steps and guarantees).

    ``ring_options`` go to :func:`~memcachepy.cluster.members.build_ring` (``key_hash``,
    ``hash_tag``, ``variant``): they must be the clients'. :meth:`run` blocks until every
    peer was copied from, ``retry_for`` seconds passed, ``stop`` was set, or the target
    aborted; ``progress`` is updated as it goes (read it from any thread).
    """

    def __init__(
        self,
        me: Member,
        members: Iterable[ClusterNode | Member | str],
        replicas: int,
        target: WarmTarget,
        *,
        item_rate: float = DEFAULT_ITEM_RATE,
        byte_rate: float = DEFAULT_BYTE_RATE,
        timeout: float = 1.0,
        retry_for: float = 30.0,
        batch: int = DEFAULT_BATCH,
        progress: WarmupProgress | None = None,
        stop: threading.Event | None = None,
        ring_options: dict[str, object] | None = None,
    ) -> None:
        if replicas < 1:
            raise ValueError("replicas must be at least 1")
        self.ring = build_ring(members, **(ring_options or {}))  # type: ignore[arg-type]
        if me not in self.ring:
            raise ValueError(f"{me} is not a member")
        self.me = me
        self.replicas = replicas
        self.target = target
        self.timeout = timeout
        self.retry_for = retry_for
        self.batch = batch
        self.limit = RateLimit(item_rate, byte_rate)
        self.progress = progress if progress is not None else WarmupProgress()
        self.stop = stop if stop is not None else threading.Event()
        self._decided: set[bytes] = set()  # copied, or refused by the target

    def peers(self) -> list[Member]:
        """The members that may hold keys of this node."""
        return [server for server in self.ring.nodes if server != self.me]

    def owned(self, key: bytes) -> bool:
        """Whether this node is one of the key's replicas."""
        return self.me in self.ring.get_nodes(key, self.replicas)

    def run(self) -> WarmupProgress:
        progress = self.progress
        progress.state = "running"
        progress.started = time.time()
        began = time.monotonic()
        pending = self.peers()
        deadline = began + self.retry_for
        reported: set[Member] = set()
        try:
            while pending and not self._stopping():
                failed = []
                for peer in pending:
                    if self._stopping():
                        break
                    try:
                        self._copy_from(peer)
                        progress.peers += 1
                    except (OSError, PeerError, ValueError) as error:
                        progress.peer_failures += 1
                        level = logging.DEBUG if peer in reported else logging.INFO
                        reported.add(peer)
                        logger.log(
                            level, "warm-up: %s failed (%s); trying it again later", peer, error
                        )
                        failed.append(peer)
                pending = failed
                if pending and time.monotonic() >= deadline:
                    logger.warning(
                        "warm-up: gave up on %s after %.0f s",
                        ", ".join(map(str, pending)),
                        self.retry_for,
                    )
                    break
                if pending:
                    self.stop.wait(0.2)
        finally:
            progress.seconds = time.monotonic() - began
            why = self.target.aborted()
            progress.state = "aborted" if why or self.stop.is_set() else "done"
        return progress

    def _stopping(self) -> bool:
        return self.stop.is_set() or self.target.aborted() is not None

    def _copy_from(self, peer: Member) -> None:
        with PeerConnection(peer.address, self.timeout) as conn:
            wanted = [
                e
                for e in conn.metadump(max(self.timeout, METADUMP_TIMEOUT))
                if e.key not in self._decided and self.owned(e.key)
            ]
            for start in range(0, len(wanted), self.batch):
                if self._stopping():
                    return
                self._copy_batch(conn, wanted[start : start + self.batch])

    def _copy_batch(self, conn: PeerConnection, entries: list[DumpEntry]) -> None:
        progress = self.progress
        fresh: list[CopiedItem] = []
        for entry, item in zip(entries, conn.fetch([e.key for e in entries]), strict=True):
            if item is None or item.cas != entry.cas or item.ttl == 0 or item.ttl < -1:
                # Gone or changed since the metadump (or expiring this second): another
                # peer may still offer it, so it is not decided.
                progress.dropped += 1
                continue
            fresh.append(item)
        stored = self.target.add(fresh)
        added = [(item, cas) for item, cas in zip(fresh, stored, strict=True) if cas is not None]
        progress.dropped += len(fresh) - len(added)
        self._decided.update(item.key for item in fresh)
        now = conn.cas_of([item.key for item, _ in added])
        changed = [
            (item.key, cas)
            for (item, cas), source in zip(added, now, strict=True)
            if source != item.cas
        ]
        if changed:
            self.target.undo(changed)
        kept_bytes = sum(len(item.value) for item, _ in added)
        changed_keys = {key for key, _ in changed}
        kept_bytes -= sum(len(item.value) for item, _ in added if item.key in changed_keys)
        progress.items += len(added) - len(changed)
        progress.bytes += kept_bytes
        progress.dropped += len(changed)
        self.limit.charge(len(entries), sum(len(item.value) for item in fresh), self.stop)
