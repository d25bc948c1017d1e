"""Through the served gateway: a tenant's largest prompt (``limits.max_prompt_chars``, overridden per tenant).

Over it, the official SDKs get a 400 ``prompt_too_large`` in their API's shape naming the limit, its value,
the prompt's size and the tenant, before any upstream is called; under it the request is served; the
explain endpoint shows the prompt's size, its limit and the classifier's window."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import anthropic
import httpx
import openai
import pytest

from tests.conftest import ClientFactory, GatewayFactory, Upstreams
from tests.factories import small_policy, tenant

GLOBAL = 1_000


@pytest.fixture
def gateway(tmp_path: Path, upstreams: Upstreams, make_gateway: GatewayFactory) -> Iterator[str]:
    policy = small_policy(
        tmp_path / "p",
        upstreams.v1(),
        tenants={
            "open": tenant("open-key"),
            "big": tenant("big-key", limits={"max_prompt_chars": 5_000}),
            "tiny": tenant("tiny-key", limits={"max_prompt_chars": 100}),
        },
        routes={"auto": {"tiers": {tier: ["us-open"] for tier in ("simple", "standard", "complex")}}},
        limits={"max_body_bytes": 65536, "request_deadline_seconds": 10, "max_prompt_chars": GLOBAL},
    )
    with make_gateway(policy, {}) as url:
        yield url


def ask(client: openai.OpenAI, text: str, **extra: object) -> str | None:
    answer = client.chat.completions.create(
        model="auto", messages=[{"role": "user", "content": text}], max_tokens=5, **extra
    )  # type: ignore[call-overload]
    return answer.choices[0].message.content


def test_the_global_limit_serves_up_to_it_and_refuses_past_it_naming_the_rule(
    gateway: str, make_client: ClientFactory, upstreams: Upstreams
) -> None:
    client = make_client(gateway, "open-key")
    assert ask(client, "x" * GLOBAL)
    served = sum(c.count() for c in upstreams.controls.values())
    with pytest.raises(openai.BadRequestError) as refused:
        ask(client, "x" * (GLOBAL + 1))
    error = refused.value.body
    assert isinstance(error, dict) and error["code"] == "prompt_too_large" and error["param"] == "messages"
    message = error["message"]
    assert "1,001 characters" in message and "'open'" in message and "limits.max_prompt_chars = 1000" in message
    assert sum(c.count() for c in upstreams.controls.values()) == served, "an over-sized prompt reached an upstream"


def test_a_tenant_override_wins_both_ways(gateway: str, make_client: ClientFactory) -> None:
    assert ask(make_client(gateway, "big-key"), "x" * 3_000)  # above the global limit, within its own
    with pytest.raises(openai.BadRequestError, match=r"tenants\.tiny\.limits\.max_prompt_chars = 100"):
        ask(make_client(gateway, "tiny-key"), "x" * 101)


def test_tool_schemas_count_toward_the_prompt(gateway: str, make_client: ClientFactory) -> None:
    tool = {"type": "function", "function": {"name": "f", "description": "d" * 200, "parameters": {"type": "object"}}}
    with pytest.raises(openai.BadRequestError, match=r"may send at most 100"):
        ask(make_client(gateway, "tiny-key"), "hi", tools=[tool])


def test_the_anthropic_sdk_gets_its_own_error_shape(gateway: str) -> None:
    with (
        anthropic.Anthropic(base_url=gateway, api_key="tiny-key", max_retries=0) as client,
        pytest.raises(anthropic.BadRequestError) as refused,
    ):
        client.messages.create(
            model="auto", max_tokens=5, system="s" * 60, messages=[{"role": "user", "content": "u" * 60}]
        )
    body = refused.value.body
    assert isinstance(body, dict) and body["type"] == "error"
    assert body["error"]["type"] == "invalid_request_error"
    assert "120 characters" in body["error"]["message"] and "max_prompt_chars = 100" in body["error"]["message"]


def test_explain_shows_the_prompt_size_and_the_classifier_window(gateway: str) -> None:
    answer = httpx.post(
        gateway + "/v1/route/explain",
        json={"model": "auto", "messages": [{"role": "user", "content": "y" * 4_900}]},
        headers={"authorization": "Bearer big-key"},
    )
    assert answer.status_code == 200, answer.text
    prompt = answer.json()["decision"]["prompt"]
    assert prompt["chars"] == 4_900 and prompt["max_chars"] == 5_000
    assert prompt["limit"] == "tenants.big.limits.max_prompt_chars"
    assert prompt["classified_chars"] == 4_900 and prompt["truncated_for_classification"] is False
