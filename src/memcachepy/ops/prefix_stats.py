"""Per-prefix statistics: ``-D CHAR`` and ``stats detail on|off|dump`` (stats_prefix.c).

A key's prefix is what comes before the first delimiter (``:`` unless ``-D`` says
otherwise); keys without the delimiter are not counted. Text and binary gets, sets and
deletes are recorded while collection is on, as memcached records them (meta commands
are not).

memcached keeps every prefix it meets, so a client writing keys of ever new prefixes grows
the table, and ``stats detail dump`` with it, without end. memcachepy keeps at most
MAX_PREFIXES: keys of a prefix first met after that are not counted, and the dump stays
under about 600 KB.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

MAX_PREFIXES: Final = 10_000


@dataclass(slots=True)
class PrefixCounts:
    gets: int = 0
    hits: int = 0
    sets: int = 0
    deletes: int = 0


@dataclass(slots=True)
class PrefixStats:
    """Counts per key prefix; ``enabled`` is memcached's ``detail_enabled``."""

    delimiter: int = ord(":")
    enabled: bool = False
    prefixes: dict[bytes, PrefixCounts] = field(default_factory=dict)

    def _counts(self, key: bytes) -> PrefixCounts | None:
        end = key.find(self.delimiter)
        if end < 0:
            return None
        prefix = key[:end]
        counts = self.prefixes.get(prefix)
        if counts is None:
            if len(self.prefixes) >= MAX_PREFIXES:
                return None
            counts = self.prefixes[prefix] = PrefixCounts()
        return counts

    def record_get(self, key: bytes, hit: bool) -> None:
        counts = self._counts(key)
        if counts is not None:
            counts.gets += 1
            counts.hits += hit

    def record_set(self, key: bytes) -> None:
        counts = self._counts(key)
        if counts is not None:
            counts.sets += 1

    def record_delete(self, key: bytes) -> None:
        counts = self._counts(key)
        if counts is not None:
            counts.deletes += 1

    def clear(self) -> None:
        """``stats reset`` forgets every prefix."""
        self.prefixes.clear()

    def dump(self) -> bytes:
        """``stats detail dump``: one PREFIX line per prefix seen, then END."""
        lines = [
            b"PREFIX %s get %d hit %d set %d del %d\r\n"
            % (prefix, c.gets, c.hits, c.sets, c.deletes)
            for prefix, c in self.prefixes.items()
        ]
        lines.append(b"END\r\n")
        return b"".join(lines)

    def command(self, word: bytes) -> bytes:
        """The reply to ``stats detail WORD``."""
        if word == b"on":
            self.enabled = True
            return b"OK\r\n"
        if word == b"off":
            self.enabled = False
            return b"OK\r\n"
        if word == b"dump":
            return self.dump()
        return b"CLIENT_ERROR usage: stats detail on|off|dump\r\n"
