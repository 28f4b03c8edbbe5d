"""systemd's service protocols in the few lines they need: no libsystemd at run time.

* **sd_notify** (:class:`Notifier`): state changes are datagrams of ``KEY=VALUE`` lines sent
  to the ``AF_UNIX`` socket named by ``NOTIFY_SOCKET`` (a path, or ``@name`` in the abstract
  namespace). memcachepy sends ``READY=1`` once it accepts connections, ``STATUS=`` with a
  one-line summary, ``WATCHDOG=1`` pings, ``RELOADING=1`` around a SIGHUP reload and
  ``STOPPING=1`` when it begins to stop.
* **Watchdog** (:func:`watchdog_interval`): with ``WatchdogSec=`` systemd sets
  ``WATCHDOG_USEC`` (and ``WATCHDOG_PID``); a ping at least every half of it keeps the
  service alive, and a missed one gets it killed and restarted.
* **Socket activation** (:func:`listen_fds`, :func:`activated_listeners`): the listening
  sockets arrive as file descriptors 3, 4, ... with ``LISTEN_FDS`` saying how many and
  ``LISTEN_PID`` naming the process they are meant for.

Nothing here imports trio; the server runs the watchdog loop (memcachepy.server.service).
"""

from __future__ import annotations

import fcntl
import logging
import os
import socket
import time
from collections.abc import MutableMapping

log = logging.getLogger("memcachepy")

#: The first passed file descriptor (SD_LISTEN_FDS_START).
LISTEN_FDS_START = 3
_LISTEN_VARIABLES = ("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES")


class ActivationError(ValueError):
    """A passed file descriptor is not something memcachepy can serve."""


class Notifier:
    """Sends sd_notify messages; does nothing when not started by systemd (no socket)."""

    def __init__(self, address: str | None) -> None:
        self.address: str | bytes | None = None
        self._sock: socket.socket | None = None
        if not address:
            return
        if address.startswith("@"):  # abstract namespace
            self.address = b"\0" + address[1:].encode()
        elif address.startswith("/"):
            self.address = address
        else:  # vsock and friends: not for a local cache daemon
            log.warning("NOTIFY_SOCKET=%s is not a unix socket; not notifying", address)
            return
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)

    @classmethod
    def from_environment(cls, env: MutableMapping[str, str] | None = None) -> Notifier:
        """The notifier for ``NOTIFY_SOCKET``; the variable is left for sd_notify's reuse."""
        return cls((os.environ if env is None else env).get("NOTIFY_SOCKET"))

    @property
    def enabled(self) -> bool:
        return self._sock is not None

    def notify(self, *fields: str) -> bool:
        """Send one datagram of ``KEY=VALUE`` fields; False if not sent (logged, not raised)."""
        if self._sock is None or self.address is None:
            return False
        message = "\n".join(fields).encode("utf-8", "replace")
        try:
            self._sock.sendto(message, self.address)
        except OSError as exc:
            log.warning("sd_notify %s failed: %s", fields[0] if fields else "", exc)
            return False
        return True

    def ready(self, status: str) -> bool:
        return self.notify("READY=1", f"STATUS={one_line(status)}")

    def status(self, status: str) -> bool:
        return self.notify(f"STATUS={one_line(status)}")

    def reloading(self) -> bool:
        # MONOTONIC_USEC lets systemd (253+, Type=notify-reload) tell this reload from others.
        usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        return self.notify("RELOADING=1", f"MONOTONIC_USEC={usec}")

    def watchdog(self) -> bool:
        return self.notify("WATCHDOG=1")

    def stopping(self, status: str) -> bool:
        return self.notify("STOPPING=1", f"STATUS={one_line(status)}")

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None


def one_line(text: str) -> str:
    """``STATUS=`` is a single line."""
    return " ".join(text.split())


def watchdog_interval(env: MutableMapping[str, str] | None = None) -> float | None:
    """Seconds between watchdog pings (half of ``WatchdogSec=``), or None when off."""
    env = os.environ if env is None else env
    pid = env.get("WATCHDOG_PID")
    try:
        if pid and int(pid) != os.getpid():
            return None  # meant for another process (we were started by a wrapper)
        usec = int(env.get("WATCHDOG_USEC", "0"))
    except ValueError:
        return None
    return usec / 2_000_000 if usec > 0 else None


def listen_fds(env: MutableMapping[str, str] | None = None, unset: bool = True) -> list[int]:
    """The file descriptors systemd passed this process (sd_listen_fds).

    Empty unless ``LISTEN_PID`` is this process. The variables are removed (``unset``) so a
    child process never takes them for its own, and the descriptors made close-on-exec.
    """
    env = os.environ if env is None else env
    try:
        pid, count = env.get("LISTEN_PID"), env.get("LISTEN_FDS")
        if not pid or not count or int(pid) != os.getpid():
            return []
        number = int(count)
    except ValueError:
        return []
    finally:
        if unset:
            for name in _LISTEN_VARIABLES:
                env.pop(name, None)
    fds = list(range(LISTEN_FDS_START, LISTEN_FDS_START + max(number, 0)))
    for fd in fds:
        flags = fcntl.fcntl(fd, fcntl.F_GETFD)
        fcntl.fcntl(fd, fcntl.F_SETFD, flags | fcntl.FD_CLOEXEC)
    return fds


def activated_listeners(env: MutableMapping[str, str] | None = None) -> list[socket.socket]:
    """Non-blocking listening sockets passed by systemd, or ``[]`` when not socket-activated.

    Raises :class:`ActivationError` for a descriptor that is not a listening stream socket
    (a ``ListenDatagram=`` or a FIFO): memcachepy serves TCP and unix stream sockets.
    """
    sockets: list[socket.socket] = []
    for fd in listen_fds(env):
        try:
            sock = socket.socket(fileno=fd)
        except OSError as exc:
            raise ActivationError(f"passed fd {fd} is not a socket: {exc}") from None
        sockets.append(sock)
        if sock.type != socket.SOCK_STREAM or not sock.getsockopt(
            socket.SOL_SOCKET, socket.SO_ACCEPTCONN
        ):
            for opened in sockets:
                opened.close()
            raise ActivationError(f"passed fd {fd} is not a listening stream socket")
        sock.setblocking(False)
    return sockets


def cgroup_memory_max() -> int | None:
    """This process's cgroup v2 ``memory.max`` in bytes (systemd's MemoryMax=), if limited."""
    try:
        with open("/proc/self/cgroup", encoding="ascii") as handle:
            lines = handle.read().splitlines()
        path = next(line[3:] for line in lines if line.startswith("0::"))
        with open(f"/sys/fs/cgroup{path}/memory.max", encoding="ascii") as handle:
            value = handle.read().strip()
    except (OSError, StopIteration, ValueError):
        return None
    return int(value) if value.isdigit() else None


def recommended_memory_max(memory_limit: int) -> int:
    """MemoryMax= for ``-m``: 1.25 x the cache + 96 MiB.

    From the resident size of daemons of several ``-m`` filled, until they evicted, with the
    smallest items (where the key index is largest for the memory): it grows a little faster
    than ``-m`` above the interpreter's fixed share. The rule rounds both up, leaving room
    for connections and values in flight.
    """
    return memory_limit * 5 // 4 + 96 * 1024 * 1024


def check_memory_max(memory_limit: int) -> None:
    """Warn when the service's memory limit is too small for ``-m``: the kernel would kill it."""
    limit = cgroup_memory_max()
    wanted = recommended_memory_max(memory_limit)
    if limit is not None and limit < wanted:
        log.warning(
            "the cgroup memory limit (MemoryMax=%dM) is below the %dM that -m %d may need "
            "(1.25 x -m + 96M): raise MemoryMax or the daemon may be killed when the cache "
            "fills",
            limit // 2**20,
            wanted // 2**20,
            memory_limit // 2**20,
        )
