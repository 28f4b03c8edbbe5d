"""The systemd units: systemd-analyze verify and security, and what the daemon makes of them."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from memcachepy.cli import settings_from_args
from memcachepy.config import MIB
from memcachepy.ops.systemd import recommended_memory_max
from tests.servers import require_binary

ROOT = Path(__file__).resolve().parents[2]
UNITS = ROOT / "systemd"
INSTALLED_BINARY = "/opt/memcachepy/bin/memcachepy"  # where the README installs it
SERVICES = ("memcachepy.service", "memcachepy@.service")


def unit_settings(name: str) -> dict[str, list[str]]:
    """Every ``Key=value`` of a unit file (keys may repeat)."""
    settings: dict[str, list[str]] = {}
    for line in (UNITS / name).read_text().splitlines():
        if "=" in line and not line.startswith(("#", "[")):
            key, _, value = line.partition("=")
            settings.setdefault(key.strip(), []).append(value.strip())
    return settings


@pytest.fixture(scope="module")
def unit_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The units as shipped, but starting this checkout's daemon.

    systemd-analyze verify insists that ExecStart's program exists; on a test machine the
    package is not installed at /opt/memcachepy, so a wrapper stands in for it there.
    Nothing else in the files changes.
    """
    require_binary("systemd-analyze")
    directory = tmp_path_factory.mktemp("units")
    wrapper = directory / "memcachepy"
    wrapper.write_text(f'#!/bin/sh\nexec {shlex.quote(sys.executable)} -m memcachepy "$@"\n')
    wrapper.chmod(0o755)
    for unit in UNITS.iterdir():
        text = unit.read_text()
        (directory / unit.name).write_text(text.replace(INSTALLED_BINARY, str(wrapper)))
    return directory


def analyze(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["systemd-analyze", *args], capture_output=True, text=True, timeout=60, cwd=cwd
    )


def test_units_pass_systemd_analyze_verify(unit_dir: Path) -> None:
    result = analyze(
        "verify",
        "./memcachepy.service",
        "./memcachepy.socket",
        "./memcachepy@11211.service",
        "./memcachepy@11212.service",
        cwd=unit_dir,
    )
    # verify exits 0 even for settings it ignores: any message is a finding.
    assert result.returncode == 0 and result.stderr == "" and result.stdout == "", result


def test_the_units_only_differ_from_the_shipped_files_in_the_program_path(unit_dir: Path) -> None:
    for unit in ("memcachepy.service", "memcachepy@.service"):
        shipped = (UNITS / unit).read_text()
        assert f"ExecStart={INSTALLED_BINARY} " in shipped
        assert (unit_dir / unit).read_text() == shipped.replace(
            INSTALLED_BINARY, str(unit_dir / "memcachepy")
        )


def security_score(unit_dir: Path, unit: str) -> tuple[float, str]:
    result = analyze("security", "--offline=true", f"./{unit}", cwd=unit_dir)
    assert result.returncode == 0, result.stderr
    match = re.search(r"Overall exposure level for \S+: ([0-9.]+) (\w+)", result.stdout)
    assert match, result.stdout
    return float(match.group(1)), match.group(2)


@pytest.mark.parametrize("unit", ["memcachepy.service", "memcachepy@11211.service"])
def test_security_exposure_is_ok_and_the_docs_say_so(unit_dir: Path, unit: str) -> None:
    score, word = security_score(unit_dir, unit)
    assert word in ("OK", "SAFE") and score <= 2.0, (score, word)
    guide = " ".join((ROOT / "docs" / "how-to" / "systemd-service.md").read_text().split())
    assert f"exposure level {score} {word}" in guide


@pytest.mark.parametrize("unit", SERVICES)
def test_service_is_notify_with_watchdog_reload_and_environment_file(unit: str) -> None:
    s = unit_settings(unit)
    assert s["Type"] == ["notify"] and s["NotifyAccess"] == ["main"]
    assert s["WatchdogSec"] and s["Restart"] == ["on-failure"]
    assert s["ExecReload"] == ["/bin/kill -HUP $MAINPID"]
    assert "-/etc/default/memcachepy" in s["EnvironmentFile"]
    assert s["DynamicUser"] == ["yes"] and s["StateDirectory"]
    for key in ("NoNewPrivileges", "ProtectHome", "PrivateTmp", "PrivateDevices"):
        assert s[key] == ["yes"], key
    assert s["ProtectSystem"] == ["strict"]
    assert s["RestrictAddressFamilies"] == ["AF_INET AF_INET6 AF_UNIX"]
    assert s["CapabilityBoundingSet"] == [""]


@pytest.mark.parametrize("unit", SERVICES)
def test_memory_max_fits_the_default_cache_size(unit: str) -> None:
    s = unit_settings(unit)
    env = dict(item.split("=", 1) for item in s["Environment"][0].split())
    cachesize = int(env["CACHESIZE"])
    memory_max = int(s["MemoryMax"][0].rstrip("M")) * MIB
    assert memory_max == recommended_memory_max(cachesize * MIB)


def test_exec_start_with_the_default_environment_is_a_valid_command_line() -> None:
    s = unit_settings("memcachepy.service")
    env = dict(item.split("=", 1) for item in s["Environment"][0].split())
    command = s["ExecStart"][0]
    for name, value in env.items():
        command = command.replace("${" + name + "}", value).replace("$" + name, value)
    argv = shlex.split(command)[1:]
    settings = settings_from_args(argv)
    assert (settings.port, settings.listen, settings.memory_limit, settings.max_connections) == (
        11211,
        "127.0.0.1",
        64 * MIB,
        1024,
    )


def test_the_template_runs_one_node_per_port() -> None:
    s = unit_settings("memcachepy@.service")
    assert " -p %i " in s["ExecStart"][0]
    assert "-/etc/default/memcachepy@%i" in s["EnvironmentFile"]
    assert s["StateDirectory"] == ["memcachepy/%i"]


def test_socket_unit_listens_on_loopback_11211() -> None:
    text = (UNITS / "memcachepy.socket").read_text()
    assert "ListenStream=127.0.0.1:11211" in text
