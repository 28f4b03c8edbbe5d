"""Which connection's requests are being handled: read by watch, logs and ``stats conns``."""

from __future__ import annotations


class CurrentConnection:
    """The file descriptor of the connection whose requests are being handled; -1 for none
    (a UDP datagram, or no request yet).

    One global rather than a ``ContextVar``: every path that handles requests (the
    multiplexing loop, a TLS connection's task, the UDP listener) sets it before each
    request or batch and handles them without awaiting, so no task can see another's value.
    Compiled with mypyc (native/modules.py), setting it from the compiled loop is a native
    attribute store; ``ContextVar.set`` costs about 700 instructions and a Token a batch.
    """

    def __init__(self) -> None:
        self.fd = -1

    def get(self) -> int:
        return self.fd

    def set(self, fd: int) -> int:
        """Set it; returns the value it had, for :meth:`reset`."""
        previous = self.fd
        self.fd = fd
        return previous

    def reset(self, previous: int) -> None:
        self.fd = previous


CURRENT_CONNECTION = CurrentConnection()
