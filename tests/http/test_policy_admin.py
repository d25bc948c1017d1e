"""``GET /admin/policies`` and ``POST /admin/policies/reload``: validated whole, swapped at once, refusals kept."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml

from gateway.http.app import create_app
from gateway.policyfiles.loader import load_policy_dir
from gateway.settings import Settings
from gateway.standin.control import Fault
from gateway.standin.server import ThreadedServer
from tests.conftest import Upstreams
from tests.factories import small_policy, tenant

HI = {"model": "auto", "messages": [{"role": "user", "content": "hi"}]}
ADMIN = {"authorization": "Bearer admin-key"}
USER = {"authorization": "Bearer open-key"}


def admin_policy(directory: Path, upstreams: Upstreams) -> Path:
    admin = {"keys": [{"name": "ops", "sha256": tenant("admin-key")["keys"][0]["sha256"]}]}
    return small_policy(directory, upstreams.v1(), admin=admin)


@pytest.fixture
def served(tmp_path: Path, upstreams: Upstreams) -> Iterator[tuple[str, Path]]:
    policy = admin_policy(tmp_path / "p", upstreams)
    with ThreadedServer(create_app(Settings(policies=policy, reload_seconds=0), env={})) as server:
        yield server.url, policy


def edit_tenants(policy: Path, **rules: object) -> str:
    """Rewrite tenants.yaml (atomically, as a deploy tool does); the revision the directory now holds."""
    tenants = {"open": tenant("open-key", **rules)}
    staged = policy / "tenants.yaml.new"
    staged.write_text(yaml.safe_dump({"tenants": tenants}))
    staged.replace(policy / "tenants.yaml")
    return load_policy_dir(policy, {}).revision


def test_the_report_names_the_revision_its_source_and_when(served: tuple[str, Path]) -> None:
    url, policy = served
    report = httpx.get(url + "/admin/policies", headers=ADMIN).json()
    assert report["revision"] == load_policy_dir(policy, {}).revision
    assert report["source"] == str(policy) and report["trigger"] == "startup"
    assert report["loaded_at"].endswith("Z") and report["last_rejected"] is None


def test_both_endpoints_need_an_admin_key(served: tuple[str, Path]) -> None:
    url, _ = served
    for answer in (httpx.get(url + "/admin/policies", headers=USER), httpx.post(url + "/admin/policies/reload")):
        assert answer.status_code == 401
        assert answer.json()["error"]["type"] == "authentication_error"


def test_a_reload_on_demand_swaps_in_the_new_revision(served: tuple[str, Path]) -> None:
    url, policy = served
    assert httpx.post(url + "/v1/chat/completions", json=HI, headers=USER).headers["x-gateway-model"] == "cn-open"
    revision = edit_tenants(policy, deny_origins=["CN"])
    answer = httpx.post(url + "/admin/policies/reload", headers=ADMIN)
    assert answer.status_code == 200
    assert answer.json()["revision"] == revision and answer.json()["changed"] is True
    assert answer.json()["trigger"] == "admin"
    routed = httpx.post(url + "/v1/chat/completions", json=HI, headers=USER)
    assert routed.headers["x-gateway-model"] == "us-open" and routed.headers["x-gateway-policy-revision"] == revision
    again = httpx.post(url + "/admin/policies/reload", headers=ADMIN).json()
    assert again["revision"] == revision and again["changed"] is False


def test_a_broken_set_is_refused_with_every_problem_and_the_old_revision_stays(served: tuple[str, Path]) -> None:
    url, policy = served
    before = httpx.get(url + "/admin/policies", headers=ADMIN).json()["revision"]
    (policy / "tenants.yaml").write_text("tenants:\n  open:\n    keys: [{sha256: nothex}]\n    deny_origin: [CN]\n")
    answer = httpx.post(url + "/admin/policies/reload", headers=ADMIN)
    assert answer.status_code == 422
    error = answer.json()["error"]
    assert error["type"] == "invalid_request_error" and error["code"] == "policy_invalid"
    assert len(error["problems"]) >= 2 and before in error["message"]
    assert any("deny_origin" in p and "unknown field" in p for p in error["problems"])
    assert any("64 lowercase hex" in p for p in error["problems"])
    assert answer.headers["x-gateway-policy-revision"] == before
    report = httpx.get(url + "/admin/policies", headers=ADMIN).json()
    assert report["revision"] == before
    assert report["last_rejected"]["trigger"] == "admin"
    assert report["last_rejected"]["problems"] == error["problems"]
    routed = httpx.post(url + "/v1/chat/completions", json=HI, headers=USER)
    assert routed.status_code == 200 and routed.headers["x-gateway-policy-revision"] == before


def test_a_request_in_flight_finishes_on_the_revision_it_started_with(
    served: tuple[str, Path], upstreams: Upstreams
) -> None:
    url, policy = served
    before = httpx.get(url + "/admin/policies", headers=ADMIN).json()["revision"]
    upstreams.controls["a"].inject(Fault(delay=2.0))
    answers: list[httpx.Response] = []
    slow = threading.Thread(
        target=lambda: answers.append(httpx.post(url + "/v1/chat/completions", json=HI, headers=USER, timeout=30))
    )
    slow.start()
    while not upstreams.controls["a"].calls():  # the slow request has been routed and is at the upstream
        slow.join(0.02)
    after = edit_tenants(policy, deny_origins=["CN"])
    assert httpx.post(url + "/admin/policies/reload", headers=ADMIN).json()["revision"] == after
    slow.join(30)
    (slow_answer,) = answers
    assert slow_answer.status_code == 200 and slow_answer.headers["x-gateway-model"] == "cn-open"
    assert slow_answer.headers["x-gateway-policy-revision"] == before
