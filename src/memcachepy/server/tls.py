"""TLS for client connections, with memcached's ``-Z`` / ``-o ssl_*`` settings.

Builds server-side :class:`ssl.SSLContext` objects from the settings; the server swaps
in a fresh one on SIGHUP so renewed certificates apply to new connections while
established ones keep theirs. No trio here.
"""

from __future__ import annotations

import ssl

from memcachepy.config import (
    TLS_VERSIONS,
    VERIFY_ONCE,
    VERIFY_REQUEST,
    VERIFY_REQUIRE,
    TlsError,
    TlsSettings,
)

__all__ = ["TlsError", "build_server_context"]  # TlsError: raised by both modules' checks


def build_server_context(tls: TlsSettings) -> ssl.SSLContext:
    """A server context for these settings; raises TlsError with memcached-like reasons."""
    if not tls.chain_cert or not tls.key:
        raise TlsError("TLS needs -o ssl_chain_cert=FILE,ssl_key=FILE")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = TLS_VERSIONS[tls.min_version]
    files = {"ssl_chain_cert": tls.chain_cert, "ssl_key": tls.key, "ssl_ca_cert": tls.ca_cert}
    for option, path in files.items():
        if not path:
            continue
        try:  # ssl's own errors name no file ("[Errno 2] No such file or directory")
            with open(path, "rb"):
                pass
        except OSError as exc:
            raise TlsError(f"cannot read {option} {path}: {exc.strerror}") from None
    try:
        context.load_cert_chain(tls.chain_cert, tls.key)
    except (OSError, ssl.SSLError) as exc:
        raise TlsError(
            f"failed to load ssl_chain_cert {tls.chain_cert} with ssl_key {tls.key}: {exc}"
        ) from None
    try:
        if tls.ca_cert:
            context.load_verify_locations(cafile=tls.ca_cert)
        if tls.ciphers:
            context.set_ciphers(tls.ciphers)
    except (OSError, ssl.SSLError) as exc:
        what = f"ssl_ca_cert {tls.ca_cert}" if tls.ca_cert else f"ssl_ciphers {tls.ciphers}"
        raise TlsError(f"failed to load {what}: {exc}") from None
    if tls.verify_mode == VERIFY_REQUEST:
        context.verify_mode = ssl.CERT_OPTIONAL
    elif tls.verify_mode in (VERIFY_REQUIRE, VERIFY_ONCE):
        if not tls.ca_cert:
            raise TlsError("ssl_verify_mode 2 or 3 needs ssl_ca_cert to check clients against")
        context.verify_mode = ssl.CERT_REQUIRED
    # A cache has no use for resumption tickets across restarts; keep sessions simple.
    context.options |= ssl.OP_NO_TICKET
    return context
