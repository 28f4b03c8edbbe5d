"""Network faults between the clients and the nodes, inside network namespaces.

Two namespaces the run creates and removes: ``<prefix>-srv`` holds the nodes, listening
on 10.213.0.1, and ``<prefix>-cli`` holds the client processes, at 10.213.0.2; a veth pair
joins them. Faults act on the client side of that link:

* delay: ``tc qdisc ... netem delay 50ms`` (needs the kernel's sch_netem);
* loss: netem ``loss 5%``, or where netem is missing an nftables rule
  ``numgen random mod 100 < 5 drop`` on the packets the clients send;
* partition: an nftables rule dropping every packet to one node's port.

:func:`capabilities` finds out what this machine allows; a fault it does not allow is
skipped with the reason printed, never faked.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass

SERVER_IP = "10.213.0.1"
CLIENT_IP = "10.213.0.2"


def _run(*argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=20, check=check)


@dataclass
class Capabilities:
    netns: str | None  # None when usable, else why not
    netem: str | None
    nft: str | None


class Namespaces:
    """The two namespaces and their link; a context manager that removes them."""

    def __init__(self, prefix: str = "chaos") -> None:
        self.srv = f"{prefix}-srv"
        self.cli = f"{prefix}-cli"
        self.dev = f"{prefix[:8]}-c"  # the client end of the veth (names max 15 bytes)
        self._nft_table = False

    def __enter__(self) -> Namespaces:
        self.remove()
        peer = self.dev[:-1] + "s"
        for ns in (self.srv, self.cli):
            _run("ip", "netns", "add", ns)
            _run("ip", "-n", ns, "link", "set", "lo", "up")
        _run(
            "ip",
            "link",
            "add",
            self.dev,
            "netns",
            self.cli,
            "type",
            "veth",
            "peer",
            "name",
            peer,
            "netns",
            self.srv,
        )
        _run("ip", "-n", self.srv, "addr", "add", f"{SERVER_IP}/24", "dev", peer)
        _run("ip", "-n", self.cli, "addr", "add", f"{CLIENT_IP}/24", "dev", self.dev)
        _run("ip", "-n", self.srv, "link", "set", peer, "up")
        _run("ip", "-n", self.cli, "link", "set", self.dev, "up")
        return self

    def __exit__(self, *exc: object) -> None:
        self.remove()

    def remove(self) -> None:
        for ns in (self.srv, self.cli):
            _run("ip", "netns", "del", ns, check=False)

    # -- faults -----------------------------------------------------------------------

    def _tc(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return _run("ip", "netns", "exec", self.cli, "tc", *args, check=check)

    def _nft(self, *args: str) -> None:
        if not self._nft_table:
            _run("ip", "netns", "exec", self.cli, "nft", "add", "table", "inet", "chaos")
            _run(
                "ip",
                "netns",
                "exec",
                self.cli,
                "nft",
                "add",
                "chain",
                "inet",
                "chaos",
                "out",
                "{ type filter hook output priority 0; }",
            )
            self._nft_table = True
        _run("ip", "netns", "exec", self.cli, "nft", *args)

    def netem(self, *spec: str) -> None:
        self._tc("qdisc", "replace", "dev", self.dev, "root", "netem", *spec)

    def nft_loss(self, percent: int) -> None:
        self._nft(
            "add",
            "rule",
            "inet",
            "chaos",
            "out",
            "ip",
            "daddr",
            SERVER_IP,
            "numgen",
            "random",
            "mod",
            "100",
            "<",
            str(percent),
            "drop",
        )

    def partition(self, port: int) -> None:
        self._nft(
            "add",
            "rule",
            "inet",
            "chaos",
            "out",
            "ip",
            "daddr",
            SERVER_IP,
            "tcp",
            "dport",
            str(port),
            "drop",
        )

    def heal(self) -> None:
        self._tc("qdisc", "del", "dev", self.dev, "root", check=False)
        if self._nft_table:
            _run("ip", "netns", "exec", self.cli, "nft", "flush", "chain", "inet", "chaos", "out")


def capabilities() -> Capabilities:
    """What this machine allows, each with the reason when it does not."""
    if os.geteuid() != 0:
        return Capabilities("not root", "not root", "not root")
    if shutil.which("ip") is None:
        return Capabilities("ip (iproute2) is not installed", "no ip", "no ip")
    try:
        with Namespaces("chaosprobe") as ns:
            netem = ns._tc(
                "qdisc", "add", "dev", ns.dev, "root", "netem", "delay", "1ms", check=False
            )
            netem_why = (
                None
                if netem.returncode == 0
                else (f"tc netem failed ({netem.stderr.strip()}): this kernel has no sch_netem")
            )
            if shutil.which("nft") is None:
                nft_why: str | None = "nft (nftables) is not installed"
            else:
                try:
                    ns.partition(1)
                    nft_why = None
                except subprocess.CalledProcessError as error:
                    nft_why = f"nft failed: {error.stderr.strip()}"
    except (subprocess.CalledProcessError, OSError) as error:
        why = getattr(error, "stderr", "") or str(error)
        return Capabilities(f"ip netns failed: {why.strip()}", "no netns", "no netns")
    return Capabilities(None, netem_why, nft_why)
