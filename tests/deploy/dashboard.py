"""The shipped Grafana dashboard, read as data: its panels, their PromQL, and that PromQL with the
Grafana variables replaced, so a plain Prometheus can run it."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from tests.factories import REPO

DEPLOY = REPO / "deploy"
DASHBOARD = DEPLOY / "grafana" / "dashboards" / "switchyard.json"
DATASOURCES = DEPLOY / "grafana" / "provisioning" / "datasources" / "prometheus.yaml"

# What Grafana would put in place of its built-in variables, for a test that has run for well under a minute
# with a Prometheus scraping every second. Template variables (tenant, route) become "All", i.e. `.*`.
BUILT_INS = {"__rate_interval": "30s", "__range": "5m", "__interval": "15s"}
ALL = ".*"
_VARIABLE = re.compile(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)")


@dataclass(frozen=True, slots=True)
class Query:
    where: str  # "panel 'Requests by tier' A", "annotation 'Policy reloads'"
    expr: str
    panel: str = ""  # its title

    def promql(self) -> str:
        return to_promql(self.expr)


def load(path: Path = DASHBOARD) -> dict[str, Any]:
    dashboard: dict[str, Any] = orjson.loads(path.read_bytes())
    return dashboard


def panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel that is not a row, including the panels of collapsed rows."""
    for panel in dashboard["panels"]:
        if panel.get("type") == "row":
            yield from panel.get("panels", [])
        else:
            yield panel


def queries(dashboard: dict[str, Any]) -> list[Query]:
    found = [
        Query(f"panel {panel['title']!r} {target['refId']}", target["expr"], panel["title"])
        for panel in panels(dashboard)
        for target in panel.get("targets", [])
    ]
    found += [Query(f"annotation {a['name']!r}", a["expr"]) for a in dashboard["annotations"]["list"] if "expr" in a]
    return found


def variables(dashboard: dict[str, Any]) -> dict[str, str]:
    """Template variable name -> its query (``label_values(metric, label)``)."""
    out = {}
    for variable in dashboard["templating"]["list"]:
        query = variable["query"]
        out[variable["name"]] = query["query"] if isinstance(query, dict) else query
    return out


def to_promql(expr: str) -> str:
    def substitute(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        return BUILT_INS.get(name, ALL)

    return _VARIABLE.sub(substitute, expr)
