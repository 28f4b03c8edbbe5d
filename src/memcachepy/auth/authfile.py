"""memcached's authfile (``-Y``): ``user:password`` lines, checked in constant time."""

from __future__ import annotations

import hmac
from pathlib import Path

# memcached keeps at most 8 entries of at most 255 bytes each ("not a huge database").
MAX_ENTRIES = 8
MAX_ENTRY_LEN = 256


class AuthfileError(ValueError):
    """The file cannot be used; the message says why in one line."""


class Authfile:
    """Credentials loaded from an authfile; :meth:`check` compares in constant time."""

    def __init__(self, entries: list[tuple[bytes, bytes]]) -> None:
        self.entries = entries

    @classmethod
    def load(cls, path: str | Path, max_entries: int | None = MAX_ENTRIES) -> Authfile:
        """Read ``path``; ``max_entries`` None reads every line (the SASL password file)."""
        try:
            data = Path(path).read_bytes()
        except OSError as exc:
            raise AuthfileError(f"Could not open authfile {path}: {exc.strerror}") from None
        entries: list[tuple[bytes, bytes]] = []
        for number, raw in enumerate(data.splitlines(), start=1):
            line = raw[: MAX_ENTRY_LEN - 1]
            user, colon, password = line.partition(b":")
            if not colon:
                raise AuthfileError(f"authfile {path} line {number} is malformed (user:pass)")
            entries.append((user, password.rstrip(b"\r")))
            if len(entries) == max_entries:
                break
        return cls(entries)

    def check(self, user: bytes, password: bytes) -> bool:
        """True if some entry matches both; every entry is compared, in constant time."""
        found = False
        for entry_user, entry_password in self.entries:
            user_ok = hmac.compare_digest(user, entry_user)
            password_ok = hmac.compare_digest(password, entry_password)
            found |= user_ok and password_ok
        return found
