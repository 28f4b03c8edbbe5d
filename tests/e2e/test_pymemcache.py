"""pymemcache, unchanged, against a running memcachepy."""

from __future__ import annotations

import pytest
from pymemcache.client.base import Client
from pymemcache.exceptions import MemcacheClientError, MemcacheServerError

from tests.servers import ServerProcess


@pytest.fixture
def client(server: ServerProcess) -> Client:
    c = Client(server.address, connect_timeout=5, timeout=5)
    yield c
    c.close()


def test_set_get_delete(client: Client) -> None:
    assert client.set("pm:a", b"hello", expire=0) is True
    assert client.get("pm:a") == b"hello"
    assert client.delete("pm:a", noreply=False) is True
    assert client.get("pm:a") is None
    assert client.delete("pm:a", noreply=False) is False


def test_set_many_get_many(client: Client) -> None:
    values = {f"pm:many:{i}": f"value-{i}".encode() * (i % 7 + 1) for i in range(200)}
    assert client.set_many(values) == []
    got = client.get_many(list(values) + ["pm:many:absent"])
    assert got == values


def test_noreply_default_still_stores(client: Client) -> None:
    client.set("pm:nr", b"1", noreply=True)
    client.add("pm:nr", b"2", noreply=True)
    assert client.get("pm:nr") == b"1"


def test_add_replace_append_prepend(client: Client) -> None:
    assert client.add("pm:arp", b"b", noreply=False) is True
    assert client.add("pm:arp", b"x", noreply=False) is False
    assert client.replace("pm:arp", b"m", noreply=False) is True
    assert client.append("pm:arp", b"z", noreply=False) is True
    assert client.prepend("pm:arp", b"a", noreply=False) is True
    assert client.get("pm:arp") == b"amz"
    assert client.replace("pm:arp-missing", b"x", noreply=False) is False


def test_gets_and_cas(client: Client) -> None:
    client.set("pm:cas", b"1", noreply=False)
    value, token = client.gets("pm:cas")
    assert value == b"1"
    assert client.cas("pm:cas", b"2", token, noreply=False) is True
    assert client.cas("pm:cas", b"3", token, noreply=False) is False
    assert client.get("pm:cas") == b"2"
    assert client.cas("pm:cas-missing", b"3", token, noreply=False) is None


def test_incr_decr(client: Client) -> None:
    client.set("pm:n", b"10", noreply=False)
    assert client.incr("pm:n", 5) == 15
    assert client.decr("pm:n", 20) == 0
    assert client.incr("pm:missing", 1) is None
    client.set("pm:s", b"abc", noreply=False)
    with pytest.raises(MemcacheClientError):
        client.incr("pm:s", 1)


def test_touch_gat_and_flags(client: Client) -> None:
    client.set("pm:t", b"v", expire=100, noreply=False)
    assert client.touch("pm:t", expire=200, noreply=False) is True
    assert client.touch("pm:t-missing", expire=200, noreply=False) is False
    raw = client.raw_command(b"gat 300 pm:t", b"END\r\n")
    assert raw == b"VALUE pm:t 0 1\r\nv\r\n"  # raw_command strips the END
    client.set("pm:flags", b"v", noreply=False, flags=123)
    assert client.raw_command(b"get pm:flags", b"END\r\n").startswith(b"VALUE pm:flags 123 1")


def test_large_value_and_too_large(client: Client) -> None:
    big = bytes(range(256)) * 3000  # 768,000 bytes: a chunked item
    assert client.set("pm:big", big, noreply=False) is True
    assert client.get("pm:big") == big
    with pytest.raises(MemcacheServerError, match="object too large"):
        client.set("pm:big", b"x" * (1 << 20), noreply=False)
    assert client.get("pm:big") is None  # a failed set drops the old value, as memcached


def test_stats_and_version(client: Client) -> None:
    client.set("pm:st", b"v", noreply=False)
    client.get("pm:st")
    stats = client.stats()
    for name in (b"pid", b"uptime", b"curr_items", b"get_hits", b"cmd_set", b"limit_maxbytes"):
        assert name in stats
    assert stats[b"limit_maxbytes"] == 64 * 1024 * 1024
    assert stats[b"get_hits"] >= 1
    assert client.version()
    settings = client.stats("settings")
    assert settings[b"maxbytes"] == 64 * 1024 * 1024
    slabs = client.stats("slabs")
    assert slabs[b"total_malloced"] >= 1 << 20
