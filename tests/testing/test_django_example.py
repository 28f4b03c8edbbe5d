"""An example: testing a Django app's cache-aside code against a real server.

The app reads profiles through Django's cache (PyMemcacheCache) and falls back to its
database on a miss or when memcached is unreachable. The ``memcachepy_server`` fixture
gives each test its own server, and its faults show what the app does in an outage.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from memcachepy.testing import Server


@dataclass
class ProfileDatabase:
    """The app's slow source of truth; counts how often it is asked."""

    loads: list[int] = field(default_factory=list)

    def load(self, user_id: int) -> dict[str, Any]:
        self.loads.append(user_id)
        return {"id": user_id, "name": f"user {user_id}"}


def get_profile(cache: Any, db: ProfileDatabase, user_id: int) -> dict[str, Any]:
    """The code under test: cache-aside with a five-minute expiry."""
    key = f"profile:{user_id}"
    profile = cache.get(key)
    if profile is None:
        profile = db.load(user_id)
        cache.set(key, profile, 300)
    return dict(profile)


@pytest.fixture
def cache(memcachepy_server: Server) -> Iterator[Any]:
    """Django's default cache, pointing at this test's server."""
    from django.conf import settings
    from django.core.cache import caches
    from django.test import override_settings

    if not settings.configured:
        settings.configure()
    address = memcachepy_server.address
    assert isinstance(address, tuple)
    host, port = address
    with override_settings(
        CACHES={
            "default": {
                "BACKEND": "django.core.cache.backends.memcached.PyMemcacheCache",
                "LOCATION": f"{host}:{port}",
                # What production settings should say too: fail fast and treat errors as misses.
                "OPTIONS": {"connect_timeout": 0.3, "timeout": 0.3, "ignore_exc": True},
            }
        }
    ):
        yield caches["default"]
        caches["default"].close()


def test_second_read_is_served_from_the_cache(cache: Any, memcachepy_server: Server) -> None:
    db = ProfileDatabase()
    assert get_profile(cache, db, 7) == get_profile(cache, db, 7) == {"id": 7, "name": "user 7"}
    assert db.loads == [7]
    stats = memcachepy_server.stats()
    assert (stats["get_hits"], stats["get_misses"], stats["curr_items"]) == ("1", "1", "1")


def test_a_hung_server_falls_back_to_the_database(cache: Any, memcachepy_server: Server) -> None:
    db = ProfileDatabase()
    get_profile(cache, db, 1)
    memcachepy_server.pause()
    started = time.monotonic()
    assert get_profile(cache, db, 1)["name"] == "user 1"
    assert db.loads == [1, 1]
    assert time.monotonic() - started < 5  # bounded by the client timeouts, not hanging
    memcachepy_server.resume()


def test_a_dead_server_falls_back_to_the_database(cache: Any, memcachepy_server: Server) -> None:
    db = ProfileDatabase()
    memcachepy_server.kill()
    assert get_profile(cache, db, 2) == get_profile(cache, db, 2)
    assert db.loads == [2, 2]


def test_a_restarted_server_is_refilled(cache: Any, memcachepy_server: Server) -> None:
    db = ProfileDatabase()
    get_profile(cache, db, 3)
    memcachepy_server.restart()
    cache.close()  # drop the connection the restart cut
    get_profile(cache, db, 3)
    get_profile(cache, db, 3)
    assert db.loads == [3, 3]
