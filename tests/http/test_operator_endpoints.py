"""What the operator endpoints tell whom, and the request headers a proxy adds (issue #18, items 9 and 10)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from gateway.policyfiles.loader import load_policy_dir
from gateway.routing.auth import hash_key
from tests.conftest import GatewayFactory, Upstreams
from tests.factories import deployment, small_policy, tenant

HI = {"model": "auto", "messages": [{"role": "user", "content": "What is the capital of France?"}]}
DATA_CLASSES = {
    "public": {"description": "anything"},
    "confidential": {"description": "stays home", "require_self_hosted": True},
}


def operator_policy(directory: Path, upstreams: Upstreams, **admin: object) -> Path:
    v1 = upstreams.v1()
    deployments = {
        "cn-open-a": deployment("cn-open", v1["a"]),
        "us-open-a": deployment("us-open", v1["a"]),
        "frontier-api": deployment("frontier", v1["c"], self_hosted=False, operator="F", api_key_env="NOT_SET_KEY"),
    }
    admin_section = {"keys": [{"name": "ops", "sha256": hash_key("admin-key")}], **admin}
    tenants = {"open": tenant("open-key")}
    return small_policy(
        directory, v1, deployments=deployments, tenants=tenants, admin=admin_section, data_classes=DATA_CLASSES
    )


@pytest.fixture
def gateway(tmp_path: Path, upstreams: Upstreams, make_gateway: GatewayFactory) -> Iterator[str]:
    metrics_keys = [{"name": "prometheus", "sha256": hash_key("scrape-key")}]
    with make_gateway(operator_policy(tmp_path / "p", upstreams, metrics_keys=metrics_keys), {}) as url:
        yield url


def test_readiness_counts_deployments_and_names_credentials_only_to_an_admin(gateway: str) -> None:
    anonymous = httpx.get(gateway + "/readyz")
    assert anonymous.status_code == 200
    assert anonymous.json()["deployment_counts"] == {"ok": 2, "unavailable": 1}
    assert "deployments" not in anonymous.json() and "NOT_SET_KEY" not in anonymous.text
    admin = httpx.get(gateway + "/readyz", headers={"authorization": "Bearer admin-key"}).json()
    assert admin["deployments"]["cn-open-a"] == "ok" and "NOT_SET_KEY" in admin["deployments"]["frontier-api"]


def test_metrics_need_a_metrics_or_admin_key_when_the_policy_names_metrics_keys(gateway: str) -> None:
    refused = httpx.get(gateway + "/metrics")
    assert refused.status_code == 401 and refused.json()["error"]["code"] == "invalid_api_key"
    assert httpx.get(gateway + "/metrics", headers={"authorization": "Bearer open-key"}).status_code == 401
    for key in ("scrape-key", "admin-key"):
        answer = httpx.get(gateway + "/metrics", headers={"authorization": f"Bearer {key}"})
        assert answer.status_code == 200 and "gateway_policy_info" in answer.text


def test_metrics_stay_open_without_metrics_keys(
    tmp_path: Path, upstreams: Upstreams, make_gateway: GatewayFactory
) -> None:
    with make_gateway(operator_policy(tmp_path / "p", upstreams), {}) as url:
        assert httpx.get(url + "/metrics").status_code == 200


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/route/explain"])
def test_a_repeated_data_class_header_takes_the_most_sensitive_value(gateway: str, path: str) -> None:
    """A proxy appends ``confidential``; the client's own ``public`` before it must not win."""
    assert data_class_of(gateway, path, ["public", "confidential"]) == "confidential"
    assert data_class_of(gateway, path, ["confidential", "public"]) == "confidential"
    assert data_class_of(gateway, path, ["public, confidential"]) == "confidential"
    assert data_class_of(gateway, path, ["public"]) == "public"
    unknown = post(gateway, path, ["public", "secret"])
    assert unknown.status_code == 400 and "'secret'" in unknown.json()["error"]["message"]


def post(gateway: str, path: str, data_classes: list[str]) -> httpx.Response:
    headers = [("authorization", "Bearer open-key"), ("x-gateway-explain", "1")]
    headers += [("x-gateway-data-class", value) for value in data_classes]
    return httpx.post(gateway + path, json=HI, headers=headers)


def data_class_of(gateway: str, path: str, data_classes: list[str]) -> str:
    answer = post(gateway, path, data_classes)
    assert answer.status_code == 200, answer.text
    if path.endswith("explain"):
        return str(answer.json()["decision"]["data_class"])
    return str(json.loads(answer.headers["x-gateway-decision"])["data_class"])


def test_policy_check_warns_when_a_deployment_timeout_leaves_no_room_for_a_fallback(
    tmp_path: Path, upstreams: Upstreams
) -> None:
    v1 = upstreams.v1()
    deployments = {
        "cn-open-a": deployment("cn-open", v1["a"], timeout_seconds=10),
        "us-open-a": deployment("us-open", v1["a"], timeout_seconds=5),
        "frontier-api": deployment("frontier", v1["c"], self_hosted=False, operator="F", timeout_seconds=5),
    }
    loaded = load_policy_dir(small_policy(tmp_path / "p", v1, deployments=deployments), {})
    warned = [w for w in loaded.warnings if "timeout_seconds" in w]
    assert len(warned) == 1 and warned[0].startswith("deployments.cn-open-a.timeout_seconds: 10 is not below")
