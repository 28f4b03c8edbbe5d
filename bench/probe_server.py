"""A yardstick, not a product: about the least a CPython server on trio must do per request.

It answers ``get`` (one or many keys) and ``set`` (with ``noreply``) from an
``OrderedDict`` with a cache's semantics: a hit moves the key to the LRU's head, an
expired item misses, every set takes a CAS number, a byte cap evicts from the LRU's tail,
and hits, misses and sets are counted. One trio task owns a level-triggered epoll set of
every connection, as memcachepy's connection loop does, and it runs interpreted.

It keeps each item as Python objects (the reply bytes, an expiry time, a CAS number), so
it spends about twice memcached's memory per small item: it bounds what a request may
cost in time, not in memory. bench/run.py starts it as the ``probe`` server:

    python bench/run.py --servers probe,memcachepy --baseline probe --scenarios probe
"""

from __future__ import annotations

import select
import socket
import sys
import time
from collections import OrderedDict

import trio

CAP = 256 << 20  # item bytes kept (memcachepy's -m 256 in the probe scenarios)
ITEM_OVERHEAD = 64  # bytes charged per item beyond its reply bytes
ERROR = b"ERROR\r\n"
STORED = b"STORED\r\n"
END = b"END\r\n"


class Cache:
    """The items, as reply bytes in LRU order, under a byte cap."""

    def __init__(self) -> None:
        self.items: OrderedDict[bytes, tuple[bytes, float, int]] = OrderedDict()
        self.used = self.cas = self.hits = self.misses = self.sets = 0

    def get(self, keys: list[bytes], now: float, out: list[bytes]) -> None:
        items = self.items
        for key in keys:
            item = items.get(key)
            if item is None or (item[1] and item[1] <= now):
                self.misses += 1
                continue
            items.move_to_end(key)
            out.append(item[0])
            self.hits += 1
        out.append(END)

    def set(self, key: bytes, flags: bytes, ttl: int, data: bytes, now: float) -> None:
        reply = b"VALUE " + key + b" " + flags + b" %d\r\n" % (len(data) - 2) + data
        old = self.items.pop(key, None)
        if old is not None:
            self.used -= len(old[0]) + ITEM_OVERHEAD
        self.cas += 1
        self.items[key] = (reply, now + ttl if ttl else 0.0, self.cas)
        self.used += len(reply) + ITEM_OVERHEAD
        while self.used > CAP:
            _, evicted = self.items.popitem(last=False)
            self.used -= len(evicted[0]) + ITEM_OVERHEAD
        self.sets += 1


def answer(cache: Cache, buf: bytes, now: float, out: list[bytes]) -> int:
    """Answer every whole request in ``buf``; return how many bytes were used."""
    pos = 0
    size = len(buf)
    while True:
        eol = buf.find(b"\r\n", pos)
        if eol < 0:
            return pos
        line = buf[pos:eol]
        if line.startswith(b"get "):
            cache.get(line[4:].split(), now, out)
            pos = eol + 2
        elif line.startswith(b"set "):
            words = line.split()
            end = eol + 2 + int(words[4]) + 2
            if end > size:
                return pos
            cache.set(words[1], words[2], int(words[3]), buf[eol + 2 : end], now)
            if words[-1] != b"noreply":
                out.append(STORED)
            pos = end
        else:
            out.append(ERROR)
            pos = eol + 2


def serve_connection(
    poller: select.epoll,
    sockets: dict[int, socket.socket],
    held: dict[int, bytes],
    cache: Cache,
    fd: int,
    now: float,
) -> None:
    """One ready connection: one read, every whole request in it answered, one send."""
    sock = sockets[fd]
    try:
        data = sock.recv(65536)
    except (BlockingIOError, ConnectionResetError):
        data = b""
    if not data:
        poller.unregister(fd)
        sock.close()
        del sockets[fd], held[fd]
        return
    buf = held[fd] + data if held[fd] else data
    out: list[bytes] = []
    used = answer(cache, buf, now, out)
    held[fd] = buf[used:]
    if out:
        sock.send(b"".join(out))


async def serve(port: int) -> None:
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", port))
    listener.listen(1024)
    listener.setblocking(False)
    poller = select.epoll()
    poller.register(listener.fileno(), select.EPOLLIN)
    sockets: dict[int, socket.socket] = {}
    held: dict[int, bytes] = {}  # the unanswered start of each connection's input
    cache = Cache()
    while True:
        ready = poller.poll(0)
        if not ready:
            await trio.lowlevel.wait_readable(poller.fileno())
            continue
        now = time.monotonic()
        for fd, _ in ready:
            if fd == listener.fileno():
                while True:
                    try:
                        sock, _ = listener.accept()
                    except BlockingIOError:
                        break
                    sock.setblocking(False)
                    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                    sockets[sock.fileno()] = sock
                    held[sock.fileno()] = b""
                    poller.register(sock.fileno(), select.EPOLLIN)
                continue
            serve_connection(poller, sockets, held, cache, fd, now)


if __name__ == "__main__":
    # memcached's flags are accepted and ignored, but for -p.
    trio.run(serve, int(sys.argv[sys.argv.index("-p") + 1]))
