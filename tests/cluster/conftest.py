"""Fixtures for the cluster tests (node helpers are in nodes.py)."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import ExitStack

import pytest

from tests.servers import ServerProcess

from .nodes import start_node


def _continue_all(nodes: list[ServerProcess]) -> None:
    for node in nodes:
        node.kill(signal.SIGCONT)


@pytest.fixture
def node_stack() -> Iterator[ExitStack]:
    """An ExitStack to start nodes on; they all stop when the test ends."""
    with ExitStack() as stack:
        yield stack


@pytest.fixture(scope="module")
def three_nodes() -> Iterator[list[ServerProcess]]:
    """Three nodes on 127.0.0.1, shared by a module's tests (flush them before use)."""
    with ExitStack() as stack:
        yield [stack.enter_context(start_node()) for _ in range(3)]


@pytest.fixture
def nodes() -> Iterator[list[ServerProcess]]:
    """Three fresh nodes; a test may kill, stop or respawn them (respawns stop too)."""
    with ExitStack() as stack:
        started = [stack.enter_context(start_node()) for _ in range(3)]
        stack.callback(_continue_all, started)
        yield started
