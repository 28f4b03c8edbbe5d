"""The chaos run's phases: each injects one fault, and says when the fault ended.

A phase runs for ``seconds``; its fault starts at the phase's start and, for faults that
end (a restart, SIGCONT, healing the network), the phase records ``back_at``, the moment
the node could serve again, from which the time to re-admission is measured.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bench.chaos.cluster import Cluster


@dataclass
class Phase:
    name: str
    seconds: float
    fault: Callable[[Cluster, Phase], None] | None = None
    node: str = ""  # the node the fault hits (host:port), for re-admission
    back_at: float | None = None
    skipped: str | None = None  # why the fault was not injected
    notes: list[str] = field(default_factory=list)


def _sleep_until(deadline: float) -> None:
    time.sleep(max(0.0, deadline - time.monotonic()))


def kill_restart_empty(index: int, down: float = 1.0) -> Callable[[Cluster, Phase], None]:
    def fault(cluster: Cluster, phase: Phase) -> None:
        node = cluster.nodes[index]
        phase.node = node.spec
        node.kill()
        time.sleep(down)
        node.start(warm=False)
        phase.back_at = time.monotonic()

    return fault


def stop_cont(index: int, paused: float = 2.0) -> Callable[[Cluster, Phase], None]:
    def fault(cluster: Cluster, phase: Phase) -> None:
        node = cluster.nodes[index]
        phase.node = node.spec
        node.signal(signal.SIGSTOP)
        time.sleep(paused)
        node.signal(signal.SIGCONT)
        phase.back_at = time.monotonic()

    return fault


def restart_warm(index: int) -> Callable[[Cluster, Phase], None]:
    def fault(cluster: Cluster, phase: Phase) -> None:
        node = cluster.nodes[index]
        phase.node = node.spec
        started = time.monotonic()
        node.graceful_stop()
        node.start(warm=True)
        phase.back_at = time.monotonic()
        phase.notes.append(f"stop+save+start {phase.back_at - started:.2f} s")

    return fault


def membership_change(cluster: Cluster, phase: Phase) -> None:
    """Add a fourth node through ``config set cluster``, then take it out again."""
    extra = cluster.spare()
    phase.node = extra.spec
    members = [n.cluster_node for n in cluster.nodes]
    cluster.endpoint.set_members([*members, extra.cluster_node])
    phase.back_at = time.monotonic()
    _sleep_until(phase.back_at + phase.seconds / 2)
    cluster.endpoint.set_members(members)
    phase.notes.append("4th node added, then removed half way")


def network(kind: str, arg: str = "") -> Callable[[Cluster, Phase], None]:
    def fault(cluster: Cluster, phase: Phase) -> None:
        ns = cluster.netns
        why = cluster.network_skip(kind)
        if ns is None or why:
            phase.skipped = why or "no network namespaces"
            return
        if kind == "delay":
            ns.netem("delay", arg)
        elif kind == "loss":
            if cluster.caps.netem is None:
                ns.netem("loss", f"{arg}%")
            else:
                ns.nft_loss(int(arg))
                phase.notes.append(f"nftables numgen drop ({cluster.caps.netem})")
        else:
            node = cluster.nodes[int(arg)]
            phase.node = node.spec
            ns.partition(node.port)
            time.sleep(3.0)
            ns.heal()
            phase.back_at = time.monotonic()
            return
        _sleep_until(time.monotonic() + phase.seconds - 1.0)
        ns.heal()

    return fault


def classic(seconds: float = 60.0) -> list[Phase]:
    """The issue's run: one node at a time SIGKILLed and restarted empty, or paused 2 s."""
    phases = [Phase("baseline", 5.0)]
    i = 0
    while sum(p.seconds for p in phases) < seconds:
        if i % 2 == 0:
            phases.append(Phase(f"kill n{i % 3}, restart empty", 7.0, kill_restart_empty(i % 3)))
        else:
            phases.append(Phase(f"SIGSTOP n{i % 3} 2 s", 6.0, stop_cont(i % 3)))
        i += 1
    return phases


def every_3s(seconds: float = 60.0) -> list[Phase]:
    """Issue 26's schedule: for 60 s, every 3 s, a node SIGKILLed and restarted empty at
    once, or SIGSTOPped for 2 s, in turn (n0 killed, n1 stopped, n2 killed, n0 stopped...)."""
    phases = [Phase("baseline", 3.0)]
    for i in range(int(seconds // 3)):
        if i % 2 == 0:
            phases.append(
                Phase(f"kill n{i % 3}, restart empty", 3.0, kill_restart_empty(i % 3, down=0.0))
            )
        else:
            phases.append(Phase(f"SIGSTOP n{i % 3} 2 s", 3.0, stop_cont(i % 3)))
    return phases


def full() -> list[Phase]:
    """Every fault once; the membership change last (its moved keys stay moved)."""
    return [
        Phase("baseline", 5.0),
        Phase("kill n0, restart empty", 8.0, kill_restart_empty(0)),
        Phase("SIGSTOP n1 2 s", 6.0, stop_cont(1)),
        Phase("restart n2 warm (-e)", 8.0, restart_warm(2)),
        Phase("50 ms delay", 8.0, network("delay", "50ms")),
        Phase("5% loss", 8.0, network("loss", "5")),
        Phase("partition n0 3 s", 8.0, network("partition", "0")),
        Phase("membership +n3 -n3", 12.0, membership_change),
    ]


def short() -> list[Phase]:
    """About 17 s, for CI: the every-3-s faults three times, then a warm restart."""
    return [
        Phase("baseline", 3.0),
        Phase("kill n0, restart empty", 3.0, kill_restart_empty(0, down=0.0)),
        Phase("SIGSTOP n1 2 s", 3.0, stop_cont(1)),
        Phase("kill n2, restart empty", 3.0, kill_restart_empty(2, down=0.0)),
        Phase("restart n0 warm (-e)", 5.0, restart_warm(0)),
    ]


SCENARIOS: dict[str, Callable[[], list[Phase]]] = {
    "classic": classic,
    "full": full,
    "short": short,
    "every3s": every_3s,
}
#: The workload each scenario runs unless told otherwise: (keys per worker, writes share).
WORKLOADS: dict[str, tuple[int, float]] = {"every3s": (500, 0.3), "short": (500, 0.3)}
