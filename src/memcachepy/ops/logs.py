"""memcached's ``-v`` levels on Python logging, to stderr (journald keeps it under systemd).

=========  ==================================================================
``-v``     connection events, protocol errors, warnings (INFO)
``-vv``    also every command and the first line of its reply (DEBUG), as
           memcached prints ``<fd command`` and ``>fd reply``
``-vvv``   also internal detail: whole replies (truncated), watchdog pings,
           metrics scrapes, observer changes (TRACE)
=========  ==================================================================

The ``verbosity N`` command changes the level at run time, as in memcached. Command logging
is a :mod:`memcachepy.ops.hooks` layer, so a quiet daemon does no logging work per request.
"""

from __future__ import annotations

import logging
from typing import Any

from memcachepy.ops.current import CURRENT_CONNECTION
from memcachepy.ops.hooks import TRACE, Handler
from memcachepy.protocol import events as ev

log = logging.getLogger("memcachepy")

_LEVELS = (logging.WARNING, logging.INFO, logging.DEBUG, TRACE)
_ERROR_EVENTS = (ev.ErrorReply, ev.Close)
_MAX_SHOWN = 80  # bytes of a key or value shown in a log line
_MAX_TRACE = 512  # bytes of a reply shown at -vvv


def log_level(verbosity: int) -> int:
    """The logging level for a memcached verbosity (0 = quiet)."""
    return _LEVELS[max(0, min(verbosity, len(_LEVELS) - 1))]


def apply_verbosity(verbosity: int) -> None:
    """Set the daemon logger's level (its handler, set up by the CLI, writes to stderr)."""
    log.setLevel(log_level(verbosity))


class CommandLog:
    """The hooks layer that logs requests (``-vv``) and protocol errors (``-v``)."""

    def __init__(self, verbosity: Any) -> None:
        """``verbosity``: a callable returning the current level (it changes at run time)."""
        self._verbosity = verbosity

    def wants(self, event_type: type) -> bool:
        level = self._verbosity()
        return level >= 2 or (level >= 1 and event_type in _ERROR_EVENTS)

    def __call__(self, event: Any, out: list[Any], call: Handler) -> int:
        fd = CURRENT_CONNECTION.get()
        if isinstance(event, ev.ErrorReply):
            if event.request is not None and log.isEnabledFor(logging.DEBUG):
                log.debug("<%d %s", fd, _text(event.request))  # memcached: "<24 bogus"
            log.info("<%d protocol error: %s", fd, _text(event.line.rstrip(b"\r\n")))
        elif isinstance(event, ev.Close):
            log.info("<%d closing connection: %s", fd, event.reason)
        elif log.isEnabledFor(logging.DEBUG):
            log.debug("<%d %s", fd, describe(event))
        start = len(out)
        outcome = call(event, out)
        if log.isEnabledFor(logging.DEBUG) and len(out) > start:
            reply = b"".join(bytes(piece) for piece in out[start:])
            for line in reply_summary(reply):
                log.debug(">%d %s", fd, line)
            if log.isEnabledFor(TRACE):
                log.log(
                    TRACE,
                    ">%d %r%s",
                    fd,
                    reply[:_MAX_TRACE],
                    "..." if len(reply) > _MAX_TRACE else "",
                )
        return outcome


def describe(event: Any) -> str:
    """A request as memcached's ``-vv`` shows it: its command line, without the data."""
    if isinstance(event, ev.Retrieve):
        name = (
            ("gats" if event.with_cas else "gat")
            if event.exptime is not None
            else ("gets" if event.with_cas else "get")
        )
        ttl = f" {event.exptime}" if event.exptime is not None else ""
        return f"{name}{ttl} " + " ".join(_text(key) for key in event.keys)
    if isinstance(event, ev.Store):
        cas = f" {event.cas_unique}" if event.command == b"cas" else ""
        noreply = " noreply" if event.noreply else ""
        return (
            f"{_text(event.command)} {_text(event.key)} {event.flags} {event.exptime} "
            f"{len(event.data)}{cas}{noreply}"
        )
    if isinstance(event, ev.Delete):
        return f"delete {_text(event.key)}" + (" noreply" if event.noreply else "")
    if isinstance(event, ev.Arithmetic):
        return f"{'incr' if event.incr else 'decr'} {_text(event.key)} {event.delta}"
    if isinstance(event, ev.Touch):
        return f"touch {_text(event.key)} {event.exptime}"
    fields = []
    for name, value in event._asdict().items():
        if name == "data":
            fields.append(f"<{len(value)} bytes>")
        elif isinstance(value, bytes | bytearray):
            fields.append(_text(value))
        elif isinstance(value, list | tuple):
            fields.append(" ".join(_text(v) if isinstance(v, bytes) else str(v) for v in value))
        elif value is not None and value is not False:
            fields.append(f"{name}={value}")
    return " ".join([type(event).__name__.lower(), *filter(None, fields)])


def reply_summary(reply: bytes) -> list[str]:
    """memcached's ``-vv`` view of a reply: ``sending key K`` per value, then its last line."""
    values, rest = reply_values(reply)
    lines = [f"sending key {_text(key)}" for key, _, _ in values]
    if rest:
        lines.append(_text(rest.split(b"\r\n", 1)[0]))
    return lines


def reply_values(reply: bytes) -> tuple[list[tuple[bytes, int, int]], bytes]:
    """The (key, flags, length) of each ``VALUE`` in a retrieval reply, and what follows."""
    values: list[tuple[bytes, int, int]] = []
    pos = 0
    while reply.startswith(b"VALUE ", pos):
        end = reply.find(b"\r\n", pos)
        if end < 0:
            break
        parts = reply[pos:end].split(b" ")
        try:
            key, flags, length = parts[1], int(parts[2]), int(parts[3])
        except (IndexError, ValueError):
            break
        values.append((key, flags, length))
        pos = end + 2 + length + 2
    return values, reply[pos:]


def _text(data: bytes | bytearray) -> str:
    shown = data[:_MAX_SHOWN].decode("utf-8", "backslashreplace")
    return shown + ("..." if len(data) > _MAX_SHOWN else "")
