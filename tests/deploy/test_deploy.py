"""deploy/: the Grafana dashboard and the Prometheus alert rules query what a real daemon
exports, and the rules load and fire as intended (promtool, from Debian's prometheus)."""

from __future__ import annotations

import json
import re
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from memcachepy import VERSION
from tests.e2e.wire import exchange
from tests.servers import HOST, free_port, memcachepy_server, require_binary

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "deploy" / "grafana" / "memcachepy.json"
ALERTS = ROOT / "deploy" / "prometheus" / "alerts.yml"
# Series Prometheus makes itself, not the daemon; labels it adds to every scraped series.
PROMETHEUS_OWN = {"up"}
TARGET_LABELS = {"instance", "job"}
_KEYWORDS = {
    "and",
    "or",
    "unless",
    "bool",
    "offset",
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "inf",
    "nan",
}


def selectors(expr: str) -> list[tuple[str, dict[str, str]]]:
    """The metric names a PromQL expression reads, each with its ``=`` label matchers."""
    text = re.sub(r"\$\{?\w+\}?", "", expr)  # Grafana variables
    text = re.sub(r"\[[^\]]*\]", "", text)  # range and subquery durations
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    found: list[tuple[int, str, dict[str, str]]] = []
    for match in re.finditer(r"([a-zA-Z_:][\w:]*)\s*\{([^}]*)\}", text):
        matchers = dict(re.findall(r'(\w+)\s*=\s*"([^"]*)"', match.group(2)))
        found.append((match.start(), match.group(1), matchers))
    bare = re.sub(r"([a-zA-Z_:][\w:]*)\s*\{[^}]*\}", lambda m: " " * len(m.group(0)), text)
    bare = re.sub(r'"[^"]*"', "", bare)
    for match in re.finditer(r"(?<![\w.])([a-zA-Z_:][\w:]*)\b(?!\s*\()", bare):
        if match.group(1).lower() not in _KEYWORDS:
            found.append((match.start(), match.group(1), {}))
    return [(name, matchers) for _, name, matchers in sorted(found)]


def test_selectors_finds_names_and_matchers() -> None:
    expr = (
        'sum by (le, command) (rate(a_bucket{command="get",instance=~"$instance"}'
        "[$__rate_interval])) / on (instance) b > 0.5 and c offset 5m"
    )
    assert selectors(expr) == [("a_bucket", {"command": "get"}), ("b", {}), ("c", {})]


@pytest.fixture(scope="module")
def exported() -> Iterator[list[Sample]]:
    """Every sample a daemon's /metrics shows after some traffic."""
    metrics_port = free_port()
    with memcachepy_server("-m", "2", "--metrics-port", str(metrics_port)) as server:
        with server.connect() as sock:
            value = b"x" * 100_000
            fill = b"".join(
                b"set k%d 0 0 %d noreply\r\n%s\r\n" % (i, len(value), value) for i in range(40)
            )  # -m 2: evictions
            deadline = time.monotonic() + 5
            while True:  # until the sampled histogram has a get in it
                exchange(
                    sock,
                    fill + b"get k39 nope\r\nversion\r\n",
                    b"VERSION %s\r\n" % VERSION.encode(),
                )
                url = f"http://{HOST}:{metrics_port}/metrics"
                with urllib.request.urlopen(url, timeout=10) as response:
                    text = response.read().decode()
                if 'memcachepy_command_duration_seconds_count{command="get"}' in text:
                    break
                assert time.monotonic() < deadline, "no sampled get within 5 s"
                time.sleep(0.3)
        yield [s for family in text_string_to_metric_families(text) for s in family.samples]


def check_exported(exprs: list[str], exported: list[Sample]) -> int:
    """Every name an expression reads is exported, with the label values it selects."""
    checked = 0
    for expr in exprs:
        for name, matchers in selectors(expr):
            if name in PROMETHEUS_OWN:
                continue
            wanted = {k: v for k, v in matchers.items() if k not in TARGET_LABELS}
            assert any(s.name == name and wanted.items() <= s.labels.items() for s in exported), (
                name,
                wanted,
                expr,
            )
            checked += 1
    return checked


def dashboard_exprs() -> list[str]:
    dashboard = json.loads(DASHBOARD.read_text())
    exprs = [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            exprs.append(re.sub(r"label_values\((\w+),.*\)", r"\1", variable["query"]["query"]))
    return exprs


def test_dashboard_has_the_panels_and_queries_only_exported_metrics(exported: list[Sample]) -> None:
    titles = {panel["title"] for panel in json.loads(DASHBOARD.read_text())["panels"]}
    assert {
        "Get hit ratio",
        "Requests by command",
        "Evictions and reclaims",
        "Memory used against the limit",
        "Connections",
        "Command service time (sampled)",
    } <= titles
    assert check_exported(dashboard_exprs(), exported) >= 20


def alert_rules() -> list[dict[str, str]]:
    return [
        rule for group in yaml.safe_load(ALERTS.read_text())["groups"] for rule in group["rules"]
    ]


def test_alerts_query_only_exported_metrics(exported: list[Sample]) -> None:
    names = {rule["alert"] for rule in alert_rules()}
    assert {
        "MemcachepyNodeDown",
        "MemcachepyEvictionsSurging",
        "MemcachepyHitRatioLow",
        "MemcachepyConnectionsNearLimit",
    } <= names
    assert check_exported([rule["expr"] for rule in alert_rules()], exported) >= 8


def test_promtool_loads_the_rules_and_each_alert_fires_as_intended() -> None:
    promtool = require_binary("promtool")
    check = subprocess.run(
        [promtool, "check", "rules", str(ALERTS)], capture_output=True, text=True, timeout=60
    )
    assert check.returncode == 0 and f"SUCCESS: {len(alert_rules())} rules found" in (
        check.stdout
    ), check.stdout + check.stderr
    unit = subprocess.run(
        [promtool, "test", "rules", "alerts_test.yml"],
        cwd=Path(__file__).parent,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert unit.returncode == 0, unit.stdout + unit.stderr
