"""The Grafana dashboard and its provisioning, read as files (the live queries: test_prometheus.py)."""

from __future__ import annotations

import re
from typing import Any

import pytest
import yaml

from gateway.observe.metrics import REQUEST_LABELS, Metrics
from tests.deploy import dashboard
from tests.deploy.dashboard import DATASOURCES, DEPLOY

BOARD = dashboard.load()
SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_count", "_sum"), "gauge": ("",)}


def provisioned_datasource() -> dict[str, Any]:
    (source,) = yaml.safe_load(DATASOURCES.read_text())["datasources"]
    return dict(source)


def test_the_dashboard_has_a_uid_title_schema_version_and_panels() -> None:
    assert BOARD["uid"] == "switchyard"
    assert BOARD["title"]
    assert isinstance(BOARD["schemaVersion"], int) and BOARD["schemaVersion"] >= 36
    assert len(list(dashboard.panels(BOARD))) >= 30


def test_every_panel_queries_the_provisioned_datasource() -> None:
    uid = provisioned_datasource()["uid"]
    for panel in dashboard.panels(BOARD):
        assert panel["datasource"] == {"type": "prometheus", "uid": uid}, panel["title"]
        assert panel["targets"], f"{panel['title']}: no targets"
        for target in panel["targets"]:
            assert target["expr"].strip(), f"{panel['title']} {target['refId']}: empty expr"
            assert target["datasource"]["uid"] == uid, panel["title"]
    for variable in BOARD["templating"]["list"]:
        assert variable["datasource"]["uid"] == uid, variable["name"]


def test_panel_ids_are_unique_and_panels_fit_the_grid() -> None:
    ids = [panel["id"] for panel in BOARD["panels"]]
    assert len(ids) == len(set(ids))
    for panel in BOARD["panels"]:
        grid = panel["gridPos"]
        assert grid["x"] >= 0 and grid["x"] + grid["w"] <= 24, panel["title"]


@pytest.mark.parametrize("query", dashboard.queries(BOARD), ids=lambda q: q.where)
def test_queries_name_only_metrics_the_gateway_exports(query: dashboard.Query) -> None:
    exported = {family.name + suffix for family in Metrics().registry.collect() for suffix in SUFFIXES[family.type]}
    used = set(re.findall(r"\bgateway_\w+", query.expr))
    assert used and used <= exported, f"unknown metrics: {sorted(used - exported)}"


def test_matchers_on_gateway_requests_total_use_its_labels() -> None:
    """e.g. the self-hosted share needs `self_hosted` on gateway_requests_total."""
    used = set()
    for query in dashboard.queries(BOARD):
        for matchers in re.findall(r"gateway_requests_total\{([^}]*)\}", query.expr):
            used |= set(re.findall(r"(\w+)\s*[=!]~?", matchers))
    assert "self_hosted" in used
    assert used <= set(REQUEST_LABELS)


def test_template_variables_are_only_used_as_regex_matchers() -> None:
    """So that "All" (`.*`) and multi-value selections (`(a|b)`) work; the live test relies on it too."""
    names = set(dashboard.variables(BOARD))
    assert names == {"tenant", "route"}
    for query in dashboard.queries(BOARD):
        for name in re.findall(r"\$\{?(\w+)", query.expr):
            if not name.startswith("__"):
                assert f'{name}=~"${name}"' in query.expr, f"{query.where}: ${name}"
    for variable in BOARD["templating"]["list"]:
        assert variable["includeAll"] and variable["allValue"] == ".*"


def test_the_provisioning_loads_the_dashboard_from_where_compose_mounts_it() -> None:
    source = provisioned_datasource()
    assert source["type"] == "prometheus" and source["url"] == "http://prometheus:9090"
    (provider,) = yaml.safe_load((DEPLOY / "grafana/provisioning/dashboards/switchyard.yaml").read_text())["providers"]
    grafana = yaml.safe_load((DEPLOY / "compose.yaml").read_text())["services"]["grafana"]
    assert f"./grafana/dashboards:{provider['options']['path']}:ro" in grafana["volumes"]
    assert "./grafana/provisioning:/etc/grafana/provisioning:ro" in grafana["volumes"]
