"""Anthropic Messages in, Anthropic deployment out: the stand-in gets the client's body as it was sent
(thinking, cache_control, documents, beta headers), and the client gets the deployment's answer."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import httpx
import orjson
import pytest
import yaml

from gateway.standin.control import Fault
from tests.conftest import ANTHROPIC_KEY, OPENAI_KEY, GatewayFactory, Upstreams
from tests.factories import deployment, small_policy, tenant

SYSTEM: Any = [{"type": "text", "text": "You are terse.", "cache_control": {"type": "ephemeral", "ttl": "1h"}}]
PDF: Any = {
    "type": "document",
    "source": {"type": "url", "url": "https://example.com/q3.pdf"},
    "citations": {"enabled": True},
}
MESSAGES: Any = [
    {"role": "user", "content": [{"type": "text", "text": "Summarise", "cache_control": {"type": "ephemeral"}}]},
    {
        "role": "assistant",
        "content": [
            {"type": "thinking", "thinking": "The user wants a summary.", "signature": "c2lnbmF0dXJl"},
            {"type": "text", "text": "Which document?"},
        ],
    },
    {
        "role": "user",
        "content": [
            {"type": "text", "text": "This one."},
            {"type": "image", "source": {"type": "url", "url": "https://example.com/a.png"}},
        ],
    },
]
THINKING = {"type": "enabled", "budget_tokens": 2048}


@pytest.fixture
def client(example_gateway: str, upstreams: Upstreams) -> Iterator[anthropic.Anthropic]:
    with anthropic.Anthropic(base_url=example_gateway, api_key="demo-key", max_retries=0) as sdk:
        yield sdk


def test_thinking_and_cache_control_reach_the_deployment_byte_for_byte(
    client: anthropic.Anthropic, upstreams: Upstreams
) -> None:
    sent_messages = copy.deepcopy(MESSAGES)
    raw = client.messages.with_raw_response.create(
        model="claude-sonnet-4",
        max_tokens=4096,
        system=SYSTEM,
        messages=sent_messages,
        thinking=THINKING,  # type: ignore[arg-type]
        metadata={"user_id": "u-9"},
        extra_headers={"anthropic-beta": "extended-cache-ttl-2025-04-11"},
    )
    message = raw.parse()
    assert raw.headers["x-gateway-deployment"] == "claude-sonnet-4-anthropic"
    assert message.model == "claude-sonnet-4" and message.content[0].type == "text"
    call = upstreams.controls["anthropic"].calls()[0]
    assert call.path == "/v1/messages" and call.model == "claude-sonnet-4-20250514"
    for name, value in (("system", SYSTEM), ("messages", MESSAGES), ("thinking", THINKING)):
        assert orjson.dumps(call.body[name]) == orjson.dumps(value), name
    assert call.body["metadata"] == {"user_id": "u-9"} and "user" not in call.body
    assert call.headers["anthropic-beta"] == "extended-cache-ttl-2025-04-11"
    assert call.headers["anthropic-version"] == client.default_headers["anthropic-version"]


def test_documents_that_openai_targets_cannot_take_pass_to_an_anthropic_deployment(
    client: anthropic.Anthropic, upstreams: Upstreams
) -> None:
    turn: Any = [{"role": "user", "content": [PDF, {"type": "text", "text": "Summarise"}]}]
    client.messages.create(model="claude-sonnet-4", max_tokens=100, messages=turn)
    assert upstreams.controls["anthropic"].calls()[0].body["messages"] == turn, "a PDF by URL, citations and all"
    based: Any = dict(PDF, source={"type": "base64", "media_type": "application/pdf", "data": "JVBERi0xLjQK"})
    client.messages.create(model="claude-sonnet-4", max_tokens=100, messages=[{"role": "user", "content": [based]}])
    assert upstreams.controls["anthropic"].calls()[1].body["messages"][0]["content"] == [based]


def test_a_passed_stream_works_with_the_sdk_helpers(client: anthropic.Anthropic, upstreams: Upstreams) -> None:
    with client.messages.stream(
        model="claude-sonnet-4",
        max_tokens=4096,
        system=SYSTEM,
        messages=MESSAGES,
        thinking=THINKING,  # type: ignore[arg-type]
    ) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text and final.content[0].type == "text" and final.content[0].text == text
    assert final.model == "claude-sonnet-4" and final.stop_reason == "end_turn"
    assert final.usage.input_tokens > 0 and final.usage.output_tokens > 0
    sent = upstreams.controls["anthropic"].calls()[0].body
    assert sent["stream"] is True and sent["thinking"] == THINKING and "stream_options" not in sent


def test_a_passed_answer_is_accounted(example_gateway: str, client: anthropic.Anthropic, upstreams: Upstreams) -> None:
    def tokens() -> float:
        text = httpx.get(example_gateway + "/metrics").text
        lines = [ln for ln in text.splitlines() if ln.startswith("gateway_tokens_total") and "claude-sonnet-4" in ln]
        return sum(float(ln.rsplit(" ", 1)[1]) for ln in lines)

    before = tokens()
    message = client.messages.create(model="claude-sonnet-4", max_tokens=100, messages=MESSAGES[:1])
    with client.messages.stream(model="claude-sonnet-4", max_tokens=100, messages=MESSAGES[:1]) as stream:
        streamed = stream.get_final_message()
    used = message.usage.input_tokens + message.usage.output_tokens
    used += streamed.usage.input_tokens + streamed.usage.output_tokens
    assert tokens() - before == used


def test_the_deployments_errors_reach_the_client_in_anthropics_shape(
    client: anthropic.Anthropic, upstreams: Upstreams
) -> None:
    upstreams.controls["anthropic"].inject(Fault(status=400, message="messages.0: bad block"))
    with pytest.raises(anthropic.BadRequestError) as refused:
        client.messages.create(model="claude-sonnet-4", max_tokens=100, messages=MESSAGES[:1])
    body = refused.value.body
    assert body["type"] == "error" and body["error"]["code"] == "upstream_rejected"  # type: ignore[index]


@pytest.fixture
def mixed(tmp_path: Path, upstreams: Upstreams, make_gateway: GatewayFactory) -> Iterator[anthropic.Anthropic]:
    """One model on an Anthropic deployment (cheaper, so first) and an OpenAI-format one behind it."""
    claude = deployment(
        "frontier",
        upstreams.urls["anthropic"],
        provider="anthropic",
        upstream_model="claude-x-1",
        api_key_env="ANTHROPIC_API_KEY",
        self_hosted=False,
        operator="Anthropic",
        max_retries=0,
        price={"input": 1.0, "output": 2.0},
    )
    policy = small_policy(tmp_path, upstreams.v1())
    sections = yaml.safe_load((policy / "deployments.yaml").read_text())
    sections["deployments"]["frontier-claude"] = claude
    sections["deployments"]["frontier-api"]["api_key_env"] = "OPENAI_API_KEY"
    (policy / "deployments.yaml").write_text(yaml.safe_dump(sections))
    tenants = yaml.safe_load((policy / "tenants.yaml").read_text())
    tenants["tenants"]["cached"] = tenant("cached-key", cache={"ttl_seconds": 60})
    (policy / "tenants.yaml").write_text(yaml.safe_dump(tenants))
    env = {"OPENAI_API_KEY": OPENAI_KEY, "ANTHROPIC_API_KEY": ANTHROPIC_KEY}
    with (
        make_gateway(policy, env) as url,
        anthropic.Anthropic(base_url=url, api_key="open-key", max_retries=0) as sdk,
    ):
        yield sdk


def test_a_fallback_from_the_anthropic_deployment_is_translated(
    mixed: anthropic.Anthropic, upstreams: Upstreams
) -> None:
    upstreams.controls["anthropic"].inject(Fault(status=529, times=2))
    raw = mixed.messages.with_raw_response.create(
        model="frontier",
        max_tokens=100,
        messages=MESSAGES[:1],
        thinking=THINKING,  # type: ignore[arg-type]
    )
    assert raw.headers["x-gateway-deployment"] == "frontier-api"
    message = raw.parse()
    assert message.model == "frontier" and message.content[0].type == "text"
    assert "thinking" not in upstreams.controls["c"].calls()[0].body, "the translation went to the OpenAI one"
    with mixed.messages.stream(model="frontier", max_tokens=100, messages=MESSAGES[:1]) as stream:
        assert stream.get_final_message().stop_reason == "end_turn"
    assert upstreams.controls["anthropic"].count() == 2 and upstreams.controls["c"].count() == 2
    answered = mixed.messages.create(model="frontier", max_tokens=100, messages=MESSAGES[:1])
    assert answered.model == "frontier" and upstreams.controls["anthropic"].models()[-1] == "claude-x-1"


def test_a_passed_stream_that_breaks_ends_with_an_error_event(mixed: anthropic.Anthropic, upstreams: Upstreams) -> None:
    upstreams.controls["anthropic"].inject(Fault(drop_after=3))
    with (
        pytest.raises(anthropic.APIStatusError) as broken,
        mixed.messages.stream(model="frontier", max_tokens=100, messages=MESSAGES[:1]) as stream,
    ):
        for _ in stream.text_stream:
            pass
    assert broken.value.body["error"]["type"] == "overloaded_error"  # type: ignore[index]
    assert upstreams.controls["c"].count() == 0, "after the first byte there is no fallback"


def test_cached_answers_stay_in_their_api(mixed: anthropic.Anthropic, upstreams: Upstreams) -> None:
    url = str(mixed.base_url).rstrip("/")
    turn = [{"role": "user", "content": "Summarise"}]
    with anthropic.Anthropic(base_url=url, api_key="cached-key", max_retries=0) as sdk:
        first = sdk.messages.with_raw_response.create(model="frontier", max_tokens=100, messages=turn)  # type: ignore[arg-type]
        again = sdk.messages.with_raw_response.create(model="frontier", max_tokens=100, messages=turn)  # type: ignore[arg-type]
        tier = sdk.messages.with_raw_response.create(
            model="frontier",
            max_tokens=100,
            messages=turn,  # type: ignore[arg-type]
            service_tier="standard_only",
        )
    assert (first.headers["x-gateway-cache"], again.headers["x-gateway-cache"]) == ("miss", "hit")
    assert again.http_response.content == first.http_response.content and again.parse().type == "message"
    assert tier.headers["x-gateway-cache"] == "miss", "a field only the passthrough carries is part of the key"
    translated = {"model": "frontier", "messages": turn, "max_tokens": 100}  # the chat body /v1/messages routed by
    chat = httpx.post(url + "/v1/chat/completions", json=translated, headers={"authorization": "Bearer cached-key"})
    assert chat.headers["x-gateway-cache"] == "miss" and "choices" in chat.json()
