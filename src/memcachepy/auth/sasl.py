"""SASL for the binary protocol (``-S``): mechanism PLAIN against a password file.

memcached delegates to Cyrus SASL; built without Cyrus it reads ``user:password`` lines
from the file named by ``MEMCACHED_SASL_PWDB``. memcachepy does the latter itself, with
PLAIN only (RFC 4616: ``authzid NUL authcid NUL password``), comparing in constant time.
"""

from __future__ import annotations

from typing import Final

from memcachepy.auth.authfile import Authfile

MECHANISMS: Final = b"PLAIN"
# memcached refuses a mechanism name longer than this with EINVAL.
MAX_MECHANISM_LENGTH: Final = 32


def plain_credentials(data: bytes) -> tuple[bytes, bytes] | None:
    """(user, password) from a PLAIN message, or None if it is malformed.

    An authorization identity, if given, must name the same user: memcachepy has no
    notion of acting on behalf of another user.
    """
    parts = data.split(b"\0")
    if len(parts) != 3:
        return None
    authzid, user, password = parts
    if not user or (authzid and authzid != user):
        return None
    return user, password


def check_plain(passwords: Authfile, mechanism: bytes, data: bytes) -> bool:
    """Whether a SASL_AUTH with ``mechanism`` and ``data`` authenticates."""
    # Cyrus SASL, which memcached uses, looks mechanism names up without regard to case.
    if mechanism.upper() != MECHANISMS:
        return False
    credentials = plain_credentials(data)
    return credentials is not None and passwords.check(*credentials)
