"""TLS for client connections, with memcached's ``-Z`` / ``-o ssl_*`` settings.

Builds server-side :class:`ssl.SSLContext` objects from the settings; the server swaps
in a fresh one on SIGHUP so renewed certificates apply to new connections while
established ones keep theirs. No trio here.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass

# memcached's ssl_verify_mode values.
VERIFY_NONE = 0
VERIFY_REQUEST = 1  # ask for a client certificate, accept without one
VERIFY_REQUIRE = 2  # refuse clients without a valid certificate
VERIFY_ONCE = 3  # memcached: require on the first handshake (no renegotiation here: = 2)

_VERSIONS = {
    "tlsv1": ssl.TLSVersion.TLSv1,
    "tlsv1.1": ssl.TLSVersion.TLSv1_1,
    "tlsv1.2": ssl.TLSVersion.TLSv1_2,
    "tlsv1.3": ssl.TLSVersion.TLSv1_3,
}


class TlsError(ValueError):
    """TLS cannot be set up from these settings; the message is one line."""


@dataclass(slots=True)
class TlsSettings:
    """memcached's ``-o ssl_*`` options."""

    chain_cert: str | None = None
    key: str | None = None
    ca_cert: str | None = None
    verify_mode: int = VERIFY_NONE
    min_version: str = "tlsv1.2"
    ciphers: str | None = None

    def set_option(self, name: str, value: str) -> bool:
        """Apply ``ssl_<name>=value``; False if ``name`` is not a TLS option."""
        if name == "ssl_chain_cert":
            self.chain_cert = value
        elif name == "ssl_key":
            self.key = value
        elif name == "ssl_ca_cert":
            self.ca_cert = value
        elif name == "ssl_verify_mode":
            if value not in ("0", "1", "2", "3"):
                raise TlsError(f"ssl_verify_mode must be 0..3, not {value!r}")
            self.verify_mode = int(value)
        elif name == "ssl_min_version":
            if value.lower() not in _VERSIONS:
                raise TlsError(f"ssl_min_version must be one of {', '.join(_VERSIONS)}")
            self.min_version = value.lower()
        elif name == "ssl_ciphers":
            self.ciphers = value
        else:
            return False
        return True


def build_server_context(tls: TlsSettings) -> ssl.SSLContext:
    """A server context for these settings; raises TlsError with memcached-like reasons."""
    if not tls.chain_cert or not tls.key:
        raise TlsError("TLS needs -o ssl_chain_cert=FILE,ssl_key=FILE")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = _VERSIONS[tls.min_version]
    try:
        context.load_cert_chain(tls.chain_cert, tls.key)
        if tls.ca_cert:
            context.load_verify_locations(cafile=tls.ca_cert)
        if tls.ciphers:
            context.set_ciphers(tls.ciphers)
    except (OSError, ssl.SSLError) as exc:
        raise TlsError(f"failed to load TLS certificates: {exc}") from None
    if tls.verify_mode == VERIFY_REQUEST:
        context.verify_mode = ssl.CERT_OPTIONAL
    elif tls.verify_mode in (VERIFY_REQUIRE, VERIFY_ONCE):
        if not tls.ca_cert:
            raise TlsError("ssl_verify_mode 2 or 3 needs ssl_ca_cert to check clients against")
        context.verify_mode = ssl.CERT_REQUIRED
    # A cache has no use for resumption tickets across restarts; keep sessions simple.
    context.options |= ssl.OP_NO_TICKET
    return context
