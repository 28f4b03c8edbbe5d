"""The machine the benchmark runs on, and which core each process gets."""

import os
import platform
import shutil
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class CpuPlan:
    """Where the load generator and the servers run; None means not pinned."""

    loadgen_cpu: int | None
    server_cpu: int | None

    @property
    def pinned(self) -> bool:
        return self.loadgen_cpu is not None

    @property
    def note(self) -> str:
        if self.loadgen_cpu is None or self.server_cpu is None:
            return "not pinned: the load generator and the servers share every core"
        return (
            f"pinned with taskset: load generator on CPU {self.loadgen_cpu}, "
            f"each server on CPU {self.server_cpu} (one server under load at a time)"
        )

    def prefix(self, cpu: int | None) -> list[str]:
        """The taskset words that pin a command to `cpu` (none when not pinned)."""
        return [] if cpu is None else ["taskset", "-c", str(cpu)]


def plan_cpus(want_pinning: bool) -> CpuPlan:
    """Load generator on the first usable core, servers on the second, when there are two."""
    cpus = sorted(os.sched_getaffinity(0))
    if not want_pinning or len(cpus) < 2 or shutil.which("taskset") is None:
        return CpuPlan(None, None)
    return CpuPlan(cpus[0], cpus[1])


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def load_average() -> str:
    """The 1, 5 and 15 minute load averages: other work on the machine shows up here."""
    return ", ".join(f"{x:.2f}" for x in os.getloadavg())


def describe() -> str:
    """One line about the machine: CPU, cores, kernel, Python."""
    return (
        f"{cpu_model()}, {os.cpu_count()} CPUs, Linux {platform.release()}, "
        f"Python {platform.python_version()}"
    )


def process_cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds a process (all its threads) has used, from /proc."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    ticks = int(fields[11]) + int(fields[12])  # utime, stime
    return ticks / os.sysconf("SC_CLK_TCK")
