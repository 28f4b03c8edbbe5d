"""The daemon side of discovery: membership file, versions, reload, config set, admin token."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from memcachepy.cluster import ClusterConfig, ClusterNode, DiscoveryError, parse_cluster_config
from memcachepy.cluster.endpoint import (
    AdminToken,
    ConfigEndpoint,
    ConfigSetRefused,
    Stamp,
    load_endpoint,
    next_version,
    nodes_digest,
    read_membership,
    render_membership,
    write_membership_file,
)

A = ClusterNode("a", "10.0.0.1", 11211)
B = ClusterNode("b", "", 11212)
C = ClusterNode("c", "10.0.0.3", 11213)
TOKEN = b"s3cret-token"


def body(version: int, *nodes: ClusterNode) -> bytes:
    return b"%d\n%s\n" % (version, " ".join(str(node) for node in nodes).encode())


@pytest.fixture
def conf(tmp_path: Path) -> Path:
    path = tmp_path / "cluster.conf"
    path.write_text("# two nodes\na|10.0.0.1|11211\nb||11212\n")
    return path


def endpoint(path: Path, token: bytes | None = TOKEN) -> ConfigEndpoint:
    return ConfigEndpoint(path, AdminToken(token) if token else None)


def test_digest_ignores_order_and_repeats() -> None:
    assert nodes_digest([A, B]) == nodes_digest([B, A, B]) != nodes_digest([A])


@pytest.mark.parametrize(
    ("current", "nodes", "stamp", "expected"),
    [
        (None, [A], None, 1),  # a file without stamp starts at 1
        (None, [A], Stamp(7, nodes_digest([A])), 7),  # stamped nodes: their version
        (None, [A, B], Stamp(7, nodes_digest([A])), 8),  # edited since the stamp: one more
        (ClusterConfig(3, (A,)), [A], None, 3),  # unchanged
        (ClusterConfig(3, (A,)), [A, B], None, 4),  # changed: one more
        (ClusterConfig(3, (A,)), [A], Stamp(9, nodes_digest([A])), 9),  # stamp above: adopt it
        (ClusterConfig(9, (A,)), [A, B], Stamp(2, nodes_digest([A, B])), 10),  # never down
    ],
)
def test_next_version(
    current: ClusterConfig | None, nodes: list[ClusterNode], stamp: Stamp | None, expected: int
) -> None:
    assert next_version(current, nodes, stamp) == expected


def test_rendered_file_reads_back_with_its_stamp(tmp_path: Path) -> None:
    config = ClusterConfig(12, (A, B))
    nodes, stamp = read_membership(render_membership(config))
    assert set(nodes) == {A, B}
    assert stamp == Stamp(12, nodes_digest([A, B]))


def test_write_is_atomic_and_keeps_the_mode(conf: Path) -> None:
    os.chmod(conf, 0o640)
    write_membership_file(conf, ClusterConfig(5, (C,)))
    assert stat.S_IMODE(conf.stat().st_mode) == 0o640
    assert read_membership(conf.read_text()) == ((C,), Stamp(5, nodes_digest([C])))
    assert [p.name for p in conf.parent.iterdir()] == ["cluster.conf"]  # no temporary left


def test_endpoint_serves_the_file(conf: Path) -> None:
    served = endpoint(conf)
    assert served.reply() == b"CONFIG cluster 0 28\r\n1\na|10.0.0.1|11211 b||11212\n\r\nEND\r\n"
    assert parse_cluster_config(served.reply()) == served.config == ClusterConfig(1, (A, B))


def test_reload_raises_the_version_only_on_a_change(conf: Path) -> None:
    served = endpoint(conf)
    assert not served.reload()
    conf.write_text("a|10.0.0.1|11211\nb||11212\nc|10.0.0.3|11213\n")
    assert served.reload()
    assert served.config == ClusterConfig(2, (A, B, C))
    conf.write_text("a|10.0.0.1|11211\n")
    assert served.reload() and served.config == ClusterConfig(3, (A,))


def test_bad_file_on_reload_keeps_what_is_served(conf: Path) -> None:
    served = endpoint(conf)
    conf.write_text("a:notaport\n")
    with pytest.raises(DiscoveryError, match="line 1: bad port"):
        served.reload()
    conf.unlink()
    with pytest.raises(DiscoveryError, match="cannot read"):
        served.reload()
    assert served.config == ClusterConfig(1, (A, B))


def test_config_set_persists_and_a_restart_keeps_it(conf: Path) -> None:
    served = endpoint(conf)
    served.set_cluster(body(5, C, A), TOKEN)
    assert served.config == ClusterConfig(5, (A, C))
    restarted = endpoint(conf)
    assert restarted.config == ClusterConfig(5, (A, C))
    assert restarted.reply() == served.reply()


def test_file_edited_while_down_comes_back_with_a_higher_version(conf: Path) -> None:
    endpoint(conf).set_cluster(body(5, A), TOKEN)
    conf.write_text(conf.read_text() + "b||11212\n")  # the stamp still says version 5
    assert endpoint(conf).config == ClusterConfig(6, (A, B))


@pytest.mark.parametrize(
    ("token", "credential", "message"),
    [
        (
            None,
            TOKEN,
            "config set cluster is disabled: the daemon has no --cluster-admin-token-file",
        ),
        (TOKEN, None, "config set cluster needs the admin token as its last argument"),
        (TOKEN, b"wrong", "bad admin token"),
    ],
)
def test_config_set_needs_the_admin_token(
    conf: Path, token: bytes | None, credential: bytes | None, message: str
) -> None:
    served = endpoint(conf, token)
    with pytest.raises(ConfigSetRefused) as refused:
        served.set_cluster(body(5, C), credential)
    assert str(refused.value) == message and not refused.value.server_side
    assert served.config.version == 1


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"5\nc|1.2.3.4|70000\n", "bad cluster config: bad port"),
        (b"5\nc||1\nextra\n", "bad cluster config: config body is not exactly two lines"),
        (b"x\nc||1\n", "bad cluster config: bad config version"),
        (body(1, C), "cluster config version 1 is not above the current 1"),
    ],
)
def test_config_set_refuses_bad_bodies(conf: Path, data: bytes, message: str) -> None:
    served = endpoint(conf)
    with pytest.raises(ConfigSetRefused, match=message):
        served.set_cluster(data, TOKEN)
    assert served.config == ClusterConfig(1, (A, B))


def test_write_failure_is_a_server_error(conf: Path) -> None:
    served = endpoint(conf)
    served.path = str(conf.parent / "missing-dir" / "cluster.conf")
    with pytest.raises(ConfigSetRefused, match="cannot save cluster config") as refused:
        served.set_cluster(body(2, C), TOKEN)
    assert refused.value.server_side and served.config.version == 1


def test_admin_token_file(tmp_path: Path) -> None:
    path = tmp_path / "token"
    path.write_bytes(b"  abc-123\n")
    assert AdminToken.from_file(path).check(b"abc-123") is None
    for bad in (b"", b"two words", b"\xff"):
        path.write_bytes(bad)
        with pytest.raises(ValueError, match="printable ASCII"):
            AdminToken.from_file(path)


def test_load_endpoint_errors_are_one_line_value_errors(tmp_path: Path, conf: Path) -> None:
    with pytest.raises(ValueError, match="cannot read admin token"):
        load_endpoint(conf, tmp_path / "nope")
    with pytest.raises(ValueError, match="cannot read"):
        load_endpoint(tmp_path / "nope")
    assert load_endpoint(conf).admin is None
