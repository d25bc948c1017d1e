"""Policy reload: a changed policy takes effect without a restart; a broken one is refused, the last good one stays."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
import yaml

from gateway.http.app import create_app
from gateway.settings import Settings
from gateway.standin.server import ThreadedServer
from tests.conftest import Upstreams
from tests.factories import small_policy, tenant

HI = {"model": "auto", "messages": [{"role": "user", "content": "hi"}]}


@pytest.fixture
def reloading(tmp_path: Path, upstreams: Upstreams) -> Iterator[tuple[str, Path]]:
    policy = small_policy(tmp_path / "p", upstreams.v1())
    with ThreadedServer(create_app(Settings(policies=policy, reload_seconds=0.1), env={})) as server:
        yield server.url, policy


def call(url: str) -> httpx.Response:
    return httpx.post(url + "/v1/chat/completions", json=HI, headers={"authorization": "Bearer open-key"})


def eventually(check: Callable[[], bool], seconds: float = 5.0) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.05)


def test_a_changed_policy_takes_effect_and_is_stamped(reloading: tuple[str, Path]) -> None:
    url, policy = reloading
    before = call(url)
    assert before.headers["x-gateway-model"] == "cn-open"
    tenants = {"open": tenant("open-key", deny_origins=["CN"])}
    (policy / "tenants.yaml").write_text(yaml.safe_dump({"tenants": tenants}))
    eventually(lambda: call(url).headers["x-gateway-model"] == "us-open")
    after = call(url)
    assert after.headers["x-gateway-policy-revision"] != before.headers["x-gateway-policy-revision"]
    metrics = httpx.get(url + "/metrics").text
    assert 'gateway_policy_reloads_total{outcome="success"} 1.0' in metrics
    assert f'gateway_policy_info{{revision="{after.headers["x-gateway-policy-revision"]}"}} 1.0' in metrics
    assert before.headers["x-gateway-policy-revision"] not in metrics


def test_a_broken_policy_keeps_the_last_good_one(reloading: tuple[str, Path]) -> None:
    url, policy = reloading
    revision = call(url).headers["x-gateway-policy-revision"]
    (policy / "tenants.yaml").write_text("tenants:\n  open:\n    keys: [{sha256: nothex}]\n")
    eventually(lambda: 'gateway_policy_reloads_total{outcome="failure"} 1.0' in httpx.get(url + "/metrics").text)
    response = call(url)
    assert response.status_code == 200 and response.headers["x-gateway-policy-revision"] == revision
    assert httpx.get(url + "/readyz").json()["policy_revision"] == revision
