"""The auth attack: wrong -Y passwords pipelined on one connection, as fast as answered."""

from __future__ import annotations

import selectors
import time

from bench.abuse.attacks import AUTH_FILE, Address, Scale, attack, connect, sockets
from bench.abuse.probes import auth_request

FAILURE = b"CLIENT_ERROR authentication failure\r\n"


@attack(
    "auth-guesses",
    "10,000 wrong -Y passwords pipelined on one connection, for 6 s",
    flags=("-Y", AUTH_FILE),
)
def auth_guesses(address: Address, scale: Scale) -> str:
    guesses = scale.count(10_000)
    seconds = 2 * scale.hold
    pending = b"".join(auth_request(b"checker wrong%05d" % n) for n in range(guesses))
    replies = b""
    closed = False
    with sockets() as opened, selectors.DefaultSelector() as selector:
        sock = connect(address)
        if sock is None:
            return "refused"
        opened.append(sock)
        sock.setblocking(False)
        # Sent as the daemon reads, answers read as they come: a daemon that stops reading
        # a guesser must not stop this attack.
        selector.register(sock, selectors.EVENT_READ | selectors.EVENT_WRITE)
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and not closed:
            for _, events in selector.select(timeout=0.05):
                if events & selectors.EVENT_WRITE and pending:
                    try:
                        pending = pending[sock.send(pending[:65536]) :]
                    except BlockingIOError:
                        pass
                    except OSError:
                        closed = True
                    if not pending:
                        selector.modify(sock, selectors.EVENT_READ)
                if events & selectors.EVENT_READ:
                    try:
                        chunk = sock.recv(65536)
                    except BlockingIOError:
                        continue
                    except OSError:
                        chunk = b""
                    closed = not chunk
                    replies += chunk
    failures = replies.count(FAILURE)
    others = replies.count(b"\r\n") - failures
    return (
        f"{failures:,} of {guesses:,} answered authentication failure in {seconds:.0f} s"
        + (f", {others:,} other replies" if others else "")
        + (", then closed" if closed else "")
    )
