"""The pytest plugin: real memcached-compatible servers as fixtures, with faults on demand.

Loaded through the ``pytest11`` entry point wherever memcachepy is installed; no conftest
needed. Fixtures:

``memcachepy_server``
    A fresh :class:`~memcachepy.testing.Server` for each test.
``memcachepy_session_server``
    One server shared by the whole session, handed to each test running and empty (it is
    resumed, restarted or flushed as needed). Faster; takes no marker.
``memcachepy_cluster``
    A fresh :class:`~memcachepy.testing.cluster.Cluster` (3 nodes unless the marker says
    ``nodes=N``).

Marker: ``@pytest.mark.memcachepy(args=["-m", "8"], nodes=3, unix_socket=False,
unix_mask=None, warm_restarts=False, start_timeout=10.0)``, on a test, class or module.

Options (also ini keys ``memcachepy_exe`` and ``memcachepy_args``):
``--memcachepy-exe PROGRAM`` runs another program, for example Debian's ``memcached``;
``--memcachepy-args "FLAGS"`` adds flags to every server; ``--memcachepy-unix-socket``
makes the fixtures listen on UNIX sockets.
"""

from __future__ import annotations

import shlex
from collections.abc import Iterator
from typing import Any

import pytest

from memcachepy.testing.cluster import Cluster
from memcachepy.testing.server import Server

MARKER = "memcachepy"
_MARKER_KEYS = frozenset(
    {"args", "nodes", "unix_socket", "unix_mask", "warm_restarts", "start_timeout"}
)


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("memcachepy", "memcachepy test servers")
    group.addoption(
        "--memcachepy-exe",
        metavar="PROGRAM",
        default=None,
        help="program the memcachepy fixtures run instead of 'python -m "
        "memcachepy', e.g. memcached",
    )
    group.addoption(
        "--memcachepy-args",
        metavar="FLAGS",
        default=None,
        help="extra memcached-style flags for every fixture server, one string",
    )
    group.addoption(
        "--memcachepy-unix-socket",
        action="store_true",
        default=False,
        help="fixture servers listen on a UNIX socket instead of TCP",
    )
    parser.addini("memcachepy_exe", "default for --memcachepy-exe", default="")
    parser.addini("memcachepy_args", "default for --memcachepy-args", default="")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f"{MARKER}(args=[...], nodes=3, unix_socket=False, unix_mask=None, "
        "warm_restarts=False, start_timeout=10.0): how the memcachepy_server and "
        "memcachepy_cluster fixtures start their servers",
    )


def pytest_report_header(config: pytest.Config) -> str:
    exe = _exe(config) or "python -P -m memcachepy"
    return f"memcachepy fixtures run: {exe}"


def _exe(config: pytest.Config) -> str | None:
    value = config.getoption("memcachepy_exe") or config.getini("memcachepy_exe")
    return str(value) if value else None


def _config_options(config: pytest.Config) -> dict[str, Any]:
    """Server keyword arguments from the command line and ini file."""
    flags = config.getoption("memcachepy_args") or config.getini("memcachepy_args")
    return {
        "exe": _exe(config),
        "args": shlex.split(str(flags)) if flags else [],
        "unix_socket": bool(config.getoption("memcachepy_unix_socket")),
    }


def _marker_options(node: pytest.Item) -> dict[str, Any]:
    """The marker's keywords, the closest marker winning; ``args`` add up, outermost first."""
    merged: dict[str, Any] = {}
    args: list[str] = []
    for marker in reversed(list(node.iter_markers(MARKER))):
        unknown = set(marker.kwargs) - _MARKER_KEYS
        if marker.args or unknown:
            raise pytest.UsageError(
                f"{node.nodeid}: @pytest.mark.{MARKER} takes only the keywords "
                f"{', '.join(sorted(_MARKER_KEYS))} (got {marker.args or sorted(unknown)})"
            )
        args += [str(arg) for arg in marker.kwargs.get("args", ())]
        merged.update(marker.kwargs)
    merged["args"] = args
    return merged


def _options(request: pytest.FixtureRequest) -> dict[str, Any]:
    options = _config_options(request.config)
    marked = _marker_options(request.node) if isinstance(request.node, pytest.Item) else {}
    options.update({key: value for key, value in marked.items() if key != "args"})
    options["args"] = [*options["args"], *marked.get("args", [])]
    return options


@pytest.fixture
def memcachepy_server(request: pytest.FixtureRequest) -> Iterator[Server]:
    """A fresh server for this test, killed and reaped afterwards (also on failure)."""
    options = _options(request)
    options.pop("nodes", None)
    with Server(**options) as server:
        yield server


@pytest.fixture(scope="session")
def _memcachepy_session(request: pytest.FixtureRequest) -> Iterator[Server]:
    with Server(**_config_options(request.config)) as server:
        yield server


@pytest.fixture
def memcachepy_session_server(
    request: pytest.FixtureRequest, _memcachepy_session: Server
) -> Server:
    """The session's shared server, running and empty at the start of each test."""
    node = request.node
    if isinstance(node, pytest.Item) and node.get_closest_marker(MARKER) is not None:
        raise pytest.UsageError(
            f"{node.nodeid}: @pytest.mark.{MARKER} does not apply to the shared "
            "memcachepy_session_server (use memcachepy_server, or --memcachepy-args)"
        )
    _memcachepy_session.reset()
    return _memcachepy_session


@pytest.fixture
def memcachepy_cluster(request: pytest.FixtureRequest) -> Iterator[Cluster]:
    """A fresh cluster of ``nodes`` servers (3 by default) for this test."""
    options = _options(request)
    nodes = int(options.pop("nodes", 3))
    args = options.pop("args")
    with Cluster(nodes, args, **options) as cluster:
        yield cluster
