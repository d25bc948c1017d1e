"""Through the served gateway: personal data in a request raises its class, so a card number goes to the
self-hosted deployment; the audit line and the explain endpoint name the detector, never the text."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import anthropic
import httpx
import pytest

from gateway.http.app import create_app
from gateway.settings import Settings
from gateway.standin.server import ThreadedServer
from tests.audit_file import audit_entries
from tests.conftest import ANTHROPIC_KEY, OPENAI_KEY, ClientFactory, Upstreams
from tests.factories import deployment, small_policy, tenant

CARD = "4111 1111 1111 1111"
SSN = "123-45-6789"


@pytest.fixture
def gateway(tmp_path: Path, upstreams: Upstreams) -> Iterator[tuple[str, Path]]:
    urls = upstreams.v1()
    policy = small_policy(
        tmp_path / "p",
        urls,
        deployments={
            "us-open-a": deployment("us-open", urls["a"]),
            "frontier-api": deployment(
                "frontier", urls["c"], self_hosted=False, operator="Frontier Inc", api_key_env="OPENAI_API_KEY"
            ),
        },
        data_classes={
            "public": {},
            "confidential": {"detect": ["card", "us_ssn", "customer_id"], "require_self_hosted": True},
        },
        detectors={"customer_id": "CUST-[0-9]{8}"},
        tenants={"open": tenant("open-key")},
        routes={"auto": {"rank": "order", "tiers": {t: ["frontier", "us-open"] for t in TIERS}}},
    )
    audit = tmp_path / "audit.jsonl"
    settings = Settings(policies=policy, audit_log=str(audit), audit_flush_seconds=0, reload_seconds=0)
    env = {"OPENAI_API_KEY": OPENAI_KEY, "ANTHROPIC_API_KEY": ANTHROPIC_KEY}
    with ThreadedServer(create_app(settings, env=env)) as server:
        yield server.url, audit


TIERS = ("simple", "standard", "complex")


def test_a_card_number_goes_to_the_self_hosted_deployment(
    gateway: tuple[str, Path], make_client: ClientFactory
) -> None:
    url, audit = gateway
    client = make_client(url, "open-key")
    clean = client.chat.completions.with_raw_response.create(
        model="auto", messages=[{"role": "user", "content": "What is the capital of France?"}]
    )
    assert clean.headers["x-gateway-deployment"] == "frontier-api", "clean text: the route's first choice"
    card = client.chat.completions.with_raw_response.create(
        model="auto", messages=[{"role": "user", "content": f"Please refund card {CARD}, thanks."}]
    )
    assert card.headers["x-gateway-deployment"] == "us-open-a"
    first, second = audit_entries(audit)
    assert (first["data_class"], first["detected"]) == ("public", None)
    assert second["data_class"] == "confidential" and second["deployment"] == "us-open-a"
    assert second["detected"] == {"data_class": "confidential", "raised_from": "public", "detectors": ["card"]}
    text = audit.read_text()
    assert "4111" not in text and "refund" not in text, "the audit never holds the matched text"


def test_a_custom_detector_through_the_anthropic_messages_endpoint(gateway: tuple[str, Path]) -> None:
    url, audit = gateway
    with anthropic.Anthropic(base_url=url, api_key="open-key", max_retries=0) as client:
        reply = client.messages.with_raw_response.create(
            model="auto", max_tokens=50, messages=[{"role": "user", "content": "Status of CUST-00471100?"}]
        )
    assert reply.headers["x-gateway-deployment"] == "us-open-a"
    (line,) = audit_entries(audit)
    assert line["detected"]["detectors"] == ["customer_id"]
    assert "CUST-" not in audit.read_text()


def test_the_explain_endpoint_names_the_detector(gateway: tuple[str, Path]) -> None:
    url, _ = gateway
    body = {"model": "auto", "messages": [{"role": "user", "content": f"my ssn is {SSN}"}]}
    answer = httpx.post(url + "/v1/route/explain", json=body, headers={"authorization": "Bearer open-key"}, timeout=60)
    assert answer.status_code == 200
    explained = answer.json()
    assert explained["decision"]["detected"]["detectors"] == ["us_ssn"]
    assert explained["would_call"] == "us-open-a"
    assert SSN not in answer.text


def test_the_responses_endpoint_is_scanned_too(gateway: tuple[str, Path], make_client: ClientFactory) -> None:
    url, audit = gateway
    client = make_client(url, "open-key")
    reply = client.responses.with_raw_response.create(model="auto", input=f"Please refund card {CARD}, thanks.")
    assert reply.headers["x-gateway-deployment"] == "us-open-a"
    (line,) = audit_entries(audit)
    assert line["detected"] == {"data_class": "confidential", "raised_from": "public", "detectors": ["card"]}
    assert "4111" not in audit.read_text()
