"""Fixtures that start a real memcachepy daemon on a free loopback port."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.servers import ServerProcess, memcachepy_server


@pytest.fixture(scope="module")
def server() -> Iterator[ServerProcess]:
    """One daemon shared by a module's tests (each test uses its own keys)."""
    with memcachepy_server("-m", "64") as proc:
        yield proc
