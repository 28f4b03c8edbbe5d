"""``memcachepy cluster up``: a cluster of memcachepy nodes on loopback, for development.

::

    memcachepy cluster up [--nodes 3] [--base-port 11211] [--dir DIR] [-- DAEMON FLAGS]

starts N daemons on 127.0.0.1, on ports P..P+N-1 (``--base-port 0`` picks free ports).
Every node serves the same membership file (``--cluster-config``), which lists them all,
and accepts ``config set cluster`` with a generated admin token. The command prints where
to connect (the configuration endpoint is the first node) and stays in the foreground:

* Ctrl-C or SIGTERM stops every node (SIGTERM, then SIGKILL after 5 seconds) and exits;
* SIGHUP is passed on to the nodes, which re-read the membership file;
* a node that exits on its own (say, killed to watch failover) is reported and the others
  keep running;
* the nodes die with the command even if it is killed (Linux: parent-death signal).

The files (membership, token, one log per node) go to ``--dir``, kept afterwards, or to a
temporary directory removed at exit. There is no ``cluster down``: nothing outlives the
command.
"""

from __future__ import annotations

import argparse
import ctypes
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from types import FrameType

from memcachepy.cluster.discovery import ClusterConfig, ClusterNode
from memcachepy.cluster.endpoint import next_version, read_membership, write_membership_file
from memcachepy.usage import UsageParser

HOST = "127.0.0.1"
START_TIMEOUT = 15.0  # seconds for all nodes to accept connections
STOP_TIMEOUT = 5.0  # seconds the nodes get after SIGTERM before SIGKILL
# Flags the command sets itself on every node.
_OWN_FLAGS = ("-p", "--port", "-l", "--listen", "--cluster-config", "--cluster-admin-token-file")


class ClusterUpError(Exception):
    """The cluster could not be started; the message says why, in one line."""


def build_parser() -> argparse.ArgumentParser:
    parser = UsageParser(
        prog="memcachepy cluster", description="Run a local memcachepy cluster for development."
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="up")
    up = commands.add_parser(
        "up",
        help="start N nodes on 127.0.0.1 and run until Ctrl-C",
        description="Start N memcachepy nodes on 127.0.0.1 sharing one membership file, "
        "print how to connect, and stop them all on Ctrl-C or SIGTERM. Daemon "
        "flags for every node (-m 128, -vv, ...) go after '--'.",
    )
    up.add_argument("--nodes", type=int, default=3, help="how many nodes (default: 3)")
    up.add_argument(
        "--base-port",
        type=int,
        default=11211,
        help="first node's port, the others follow (default: 11211; 0 picks free ports)",
    )
    up.add_argument(
        "--dir",
        metavar="DIR",
        help="where to keep the membership file, admin token and node logs "
        "(default: a temporary directory removed at exit)",
    )
    return parser


def main(argv: list[str]) -> int:
    """``memcachepy cluster ...``; returns the exit status."""
    own, daemon_flags = argv, []
    if "--" in argv:
        split = argv.index("--")
        own, daemon_flags = argv[:split], argv[split + 1 :]
    parser = build_parser()
    args = parser.parse_args(own)
    if not 1 <= args.nodes <= 100:
        parser.error("--nodes must be between 1 and 100")
    if args.base_port != 0 and not 1 <= args.base_port <= 65536 - args.nodes:
        parser.error(f"--base-port must leave room for {args.nodes} ports below 65536")
    for flag in daemon_flags:
        if flag.split("=", 1)[0] in _OWN_FLAGS or flag[:2] in ("-p", "-l"):
            parser.error(f"{flag}: cluster up sets the ports, addresses and cluster files")
    try:
        return up(args.nodes, args.base_port, args.dir, daemon_flags)
    except ClusterUpError as error:
        print(f"memcachepy cluster: {error}", file=sys.stderr)
        return 1


def up(count: int, base_port: int, directory: str | None, daemon_flags: list[str]) -> int:
    """Start the nodes, wait for a stop signal, stop them (module docstring)."""
    stop = threading.Event()
    nodes: dict[int, subprocess.Popen[bytes]] = {}

    def on_stop(signum: int, frame: FrameType | None) -> None:
        stop.set()

    def on_hangup(signum: int, frame: FrameType | None) -> None:
        for proc in nodes.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGHUP)

    previous = {
        sig: signal.signal(sig, handler)
        for sig, handler in (
            (signal.SIGINT, on_stop),
            (signal.SIGTERM, on_stop),
            (signal.SIGHUP, on_hangup),
        )
    }
    own_dir = directory is None
    path = (
        Path(tempfile.mkdtemp(prefix="memcachepy-cluster-"))
        if directory is None
        else Path(directory)
    )
    try:
        path.mkdir(parents=True, exist_ok=True)
        ports = _pick_ports(count, base_port)
        membership, token = _write_files(path, ports)
        for port in ports:
            nodes[port] = _start_node(port, path, membership, token, daemon_flags)
        _wait_listening(nodes, path, stop)
        status = 0
        if not stop.is_set():
            _print_banner(nodes, path, membership, token)
            status = _run(nodes, path, stop)
    finally:
        if nodes:
            running = sum(proc.poll() is None for proc in nodes.values())
            exited = len(nodes) - running
            print(
                f"stopping {_nodes(running)}" + (f" ({exited} had exited)" if exited else ""),
                flush=True,
            )
        _stop_all(nodes)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if own_dir:
            shutil.rmtree(path, ignore_errors=True)
    print("cluster stopped", flush=True)
    return status


def _bindable(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((HOST, port))
        except OSError:
            return False
    return True


def _pick_ports(count: int, base_port: int) -> list[int]:
    if base_port == 0:
        # Hold every socket until all are chosen, so that no port is picked twice.
        holders: list[socket.socket] = []
        try:
            for _ in range(count):
                holder = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                holders.append(holder)
                holder.bind((HOST, 0))
            return [int(holder.getsockname()[1]) for holder in holders]
        finally:
            for holder in holders:
                holder.close()
    ports = list(range(base_port, base_port + count))
    for port in ports:
        if not _bindable(port):
            raise ClusterUpError(
                f"port {port} on {HOST} is in use; choose another "
                "--base-port, or --base-port 0 for free ports"
            )
    return ports


def _write_files(path: Path, ports: list[int]) -> tuple[Path, Path]:
    """The membership file listing every node, and a fresh admin token (mode 0600)."""
    membership = path / "cluster.conf"
    nodes = [ClusterNode(HOST, HOST, port) for port in ports]
    stamp = None
    try:
        stamp = read_membership(membership.read_text(encoding="utf-8"))[1]
    except (OSError, ValueError):
        pass  # no earlier file in --dir (or a broken one): start at version 1
    write_membership_file(membership, ClusterConfig(next_version(None, nodes, stamp), tuple(nodes)))
    token = path / "admin.token"
    fd = os.open(token, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as handle:
        handle.write(secrets.token_urlsafe(24) + "\n")
    return membership, token


def _die_with_parent() -> None:  # runs in the child between fork and exec
    PR_SET_PDEATHSIG = 1
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def _start_node(
    port: int, path: Path, membership: Path, token: Path, daemon_flags: list[str]
) -> subprocess.Popen[bytes]:
    # The installed memcachepy of this Python: -P keeps the current directory off sys.path,
    # where a folder named memcachepy (a checkout, from its parent) would shadow it.
    argv = [
        sys.executable,
        "-P",
        "-m",
        "memcachepy",
        "-l",
        HOST,
        "-p",
        str(port),
        "--cluster-config",
        str(membership),
        "--cluster-admin-token-file",
        str(token),
        *daemon_flags,
    ]
    with open(path / f"node-{port}.log", "ab") as log:
        # Own process group: Ctrl-C reaches this command only, which then stops the nodes.
        return subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            process_group=0,
            preexec_fn=_die_with_parent if sys.platform == "linux" else None,
        )


def _log_tail(path: Path, port: int) -> str:
    try:
        text = (path / f"node-{port}.log").read_text(errors="replace").strip()
    except OSError:
        return ""
    return text.splitlines()[-1] if text else ""


def _wait_listening(
    nodes: dict[int, subprocess.Popen[bytes]], path: Path, stop: threading.Event
) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    for port, proc in nodes.items():
        while not stop.is_set():
            if proc.poll() is not None:
                raise ClusterUpError(
                    f"node {port} exited with status {proc.returncode}: {_log_tail(path, port)}"
                )
            try:
                socket.create_connection((HOST, port), timeout=0.5).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise ClusterUpError(
                        f"node {port} did not listen within {START_TIMEOUT:.0f} s"
                    ) from None
                stop.wait(0.05)


def _print_banner(
    nodes: dict[int, subprocess.Popen[bytes]], path: Path, membership: Path, token: Path
) -> None:
    ports = list(nodes)
    servers = ", ".join(f'("{HOST}", {port})' for port in ports)
    lines = [f"memcachepy cluster: {len(ports)} nodes on {HOST}"]
    lines += [f"  node {HOST}:{port}  pid {proc.pid}" for port, proc in nodes.items()]
    lines += [
        f"configuration endpoint: {HOST}:{ports[0]}  (every node answers 'config get cluster')",
        f"membership file: {membership}  (after editing it: kill -HUP {os.getpid()})",
        f"admin token file: {token}  (for 'config set cluster')",
        f"node logs: {path}/node-<port>.log",
        "",
        "  from pymemcache.client.hash import HashClient",
        "  from memcachepy.cluster import KetamaRing",
        f"  client = HashClient([{servers}], hasher=KetamaRing)",
        "or, following membership changes:",
        "  from memcachepy.cluster import ClusterClient",
        f'  client = ClusterClient.from_config_endpoint(("{HOST}", {ports[0]}))',
        "",
        "Ctrl-C stops the cluster.",
    ]
    print("\n".join(lines), flush=True)


def _run(nodes: dict[int, subprocess.Popen[bytes]], path: Path, stop: threading.Event) -> int:
    """Wait for a stop signal; report nodes that exit meanwhile. The exit status."""
    gone: set[int] = set()
    while not stop.wait(0.2):
        for port, proc in nodes.items():
            if port not in gone and proc.poll() is not None:
                gone.add(port)
                print(
                    f"node {HOST}:{port} exited with status {proc.returncode} "
                    f"(log: {path}/node-{port}.log); {len(nodes) - len(gone)} of "
                    f"{_nodes(len(nodes))} running",
                    flush=True,
                )
        if len(gone) == len(nodes):
            print("every node has exited", flush=True)
            return 1
    return 0


def _nodes(count: int) -> str:
    return f"{count} node" if count == 1 else f"{count} nodes"


def _stop_all(nodes: dict[int, subprocess.Popen[bytes]]) -> None:
    for proc in nodes.values():
        if proc.poll() is None:
            proc.terminate()
    deadline = time.monotonic() + STOP_TIMEOUT
    for proc in nodes.values():
        try:
            proc.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
