"""The HTTP surface with the official openai SDK against the example policies.

Every answer is checked against the schemas of OpenAI's OpenAPI document."""

from __future__ import annotations

import json
from typing import Any

import httpx
import openai
import pytest

from tests.conftest import ClientFactory, Upstreams
from tests.oaschema import validate

HI: list[Any] = [{"role": "user", "content": "What is the capital of France?"}]
HARD: list[Any] = [
    {
        "role": "user",
        "content": "Prove step by step that the sum of the first n odd numbers is n^2; analyze the trade-offs "
        "of induction versus a combinatorial argument, design a plan, justify it and evaluate the edge cases.",
    }
]
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather in a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}


@pytest.fixture
def client(example_gateway: str, upstreams: Upstreams, make_client: ClientFactory) -> openai.OpenAI:
    return make_client(example_gateway, "demo-key")


def test_simple_prompt_goes_to_the_open_model_with_routing_headers(client: openai.OpenAI, upstreams: Upstreams) -> None:
    raw = client.chat.completions.with_raw_response.create(model="auto", messages=HI)
    completion = raw.parse()
    validate("CreateChatCompletionResponse", raw.http_response.json())
    assert completion.model == "qwen3-32b" and completion.usage and completion.usage.total_tokens > 0
    assert raw.headers["x-gateway-tier"] == "simple"
    assert raw.headers["x-gateway-deployment"] == "qwen3-32b-vllm"
    assert raw.headers["x-request-id"].startswith("req_")
    assert len(raw.headers["x-gateway-policy-revision"]) == 12
    assert upstreams.controls["a"].models() == ["Qwen/Qwen3-32B"]


def test_hard_prompt_goes_to_the_frontier_tier(client: openai.OpenAI, upstreams: Upstreams) -> None:
    raw = client.chat.completions.with_raw_response.create(model="auto", messages=HARD)
    assert raw.headers["x-gateway-tier"] == "complex"
    assert raw.headers["x-gateway-model"] == "gpt-4.1"
    assert upstreams.controls["c"].models() == ["gpt-4.1"]


def test_us_only_tenant_never_reaches_a_cn_model(
    example_gateway: str, upstreams: Upstreams, make_client: ClientFactory
) -> None:
    us = make_client(example_gateway, "demo-us-only")
    raw = us.chat.completions.with_raw_response.create(model="auto", messages=HI)
    assert raw.headers["x-gateway-model"] == "gpt-oss-120b"
    with pytest.raises(openai.PermissionDeniedError) as info:
        us.chat.completions.create(model="qwen3-32b", messages=HI)
    validate("ErrorResponse", info.value.response.json())
    assert "tenant.deny_origins" in info.value.message and "'CN'" in info.value.message
    assert upstreams.controls["a"].count() == 0


def test_confidential_data_stays_self_hosted(example_gateway: str, upstreams: Upstreams) -> None:
    helios = openai.OpenAI(
        base_url=example_gateway + "/v1",
        api_key="helios-example-key",
        max_retries=0,
        default_headers={"x-gateway-data-class": "confidential"},
    )
    raw = helios.chat.completions.with_raw_response.create(model="auto", messages=HARD)
    assert raw.headers["x-gateway-deployment"] == "gpt-oss-120b-vllm"
    assert upstreams.controls["c"].count() == 0 and upstreams.controls["anthropic"].count() == 0
    with pytest.raises(openai.PermissionDeniedError, match="require_self_hosted"):
        helios.chat.completions.create(model="gpt-4.1", messages=HI)


def test_stream_with_usage_validates_chunk_by_chunk(example_gateway: str, client: openai.OpenAI) -> None:
    body = {"model": "auto", "messages": HI, "stream": True, "stream_options": {"include_usage": True}}
    chunks = _sse(example_gateway, body)
    for chunk in chunks:
        validate("CreateChatCompletionStreamResponse", chunk)
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["total_tokens"] > 0
    assert all(c["usage"] is None for c in chunks[:-1])
    assert [c["choices"][0]["finish_reason"] for c in chunks[:-1]][-1] == "stop"


def test_stream_without_usage_has_no_usage_chunk(example_gateway: str) -> None:
    chunks = _sse(example_gateway, {"model": "auto", "messages": HI, "stream": True})
    assert all(c["choices"] and "usage" not in c for c in chunks)
    for chunk in chunks:
        validate("CreateChatCompletionStreamResponse", chunk)


def test_sdk_stream_assembles_text(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(model="auto", messages=HI, stream=True)
    text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert "capital of France" in text


@pytest.mark.anyio
async def test_async_client_stream_and_not(example_gateway: str) -> None:
    async with openai.AsyncOpenAI(base_url=example_gateway + "/v1", api_key="demo-key", max_retries=0) as aclient:
        await _async_calls(aclient)


async def _async_calls(aclient: openai.AsyncOpenAI) -> None:
    completion = await aclient.chat.completions.create(model="auto", messages=HI)
    assert completion.choices[0].message.content
    stream = await aclient.chat.completions.create(
        model="auto", messages=HI, stream=True, stream_options={"include_usage": True}
    )
    chunks = [chunk async for chunk in stream]
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0


def test_tool_calls_non_streamed_and_streamed(client: openai.OpenAI) -> None:
    messages: list[Any] = [{"role": "user", "content": "Weather in Paris?"}]
    raw = client.chat.completions.with_raw_response.create(model="auto", messages=messages, tools=[WEATHER])
    validate("CreateChatCompletionResponse", raw.http_response.json())
    call = raw.parse().choices[0].message.tool_calls[0]  # type: ignore[index]
    assert call.function.name == "get_weather" and "city" in json.loads(call.function.arguments)
    stream = client.chat.completions.create(model="auto", messages=messages, tools=[WEATHER], stream=True)
    name, arguments = "", ""
    for chunk in stream:
        for delta_call in (chunk.choices[0].delta.tool_calls or []) if chunk.choices else []:
            name += (delta_call.function and delta_call.function.name) or ""
            arguments += (delta_call.function and delta_call.function.arguments) or ""
    assert name == "get_weather" and "city" in json.loads(arguments)


def test_request_fields_pass_through_untouched(client: openai.OpenAI, upstreams: Upstreams) -> None:
    completion = client.chat.completions.create(
        model="auto",
        messages=HI,
        n=2,
        stop=["zzz"],
        seed=7,
        temperature=0.1,
        response_format={"type": "json_object"},
        extra_body={"top_k": 5, "chat_template_kwargs": {"thinking": False}},
    )
    assert len(completion.choices) == 2
    json.loads(completion.choices[0].message.content or "")
    body = upstreams.controls["a"].calls()[0].body
    assert body["top_k"] == 5 and body["chat_template_kwargs"] == {"thinking": False}
    assert body["seed"] == 7 and body["n"] == 2 and body["stop"] == ["zzz"] and body["model"] == "Qwen/Qwen3-32B"


def test_completions_and_embeddings(client: openai.OpenAI) -> None:
    raw = client.completions.with_raw_response.create(model="auto", prompt="Say hi")
    validate("CreateCompletionResponse", raw.http_response.json())
    assert raw.headers["x-gateway-model"] == "qwen3-32b"
    raw_emb = client.embeddings.with_raw_response.create(
        model="qwen3-embedding-8b", input=["a", "b"], encoding_format="float"
    )
    validate("CreateEmbeddingResponse", raw_emb.http_response.json())
    assert len(raw_emb.parse().data) == 2 and raw_emb.parse().model == "qwen3-embedding-8b"
    # the SDK's default asks for base64, which the spec's schema does not describe; it must still decode
    assert len(client.embeddings.create(model="qwen3-embedding-8b", input="a", dimensions=8).data[0].embedding) == 8


def test_models_lists_only_what_this_key_may_use(example_gateway: str) -> None:
    listed = httpx.get(example_gateway + "/v1/models", headers={"authorization": "Bearer demo-us-only"}).json()
    validate("ListModelsResponse", listed)
    ids = {m["id"] for m in listed["data"]}
    assert {"auto", "auto-fast", "gpt-oss-120b", "gpt-4.1", "claude-sonnet-4"} <= ids
    assert not ids & {"qwen3-32b", "deepseek-v3", "qwen3-embedding-8b"}
    assert "gemini-2.5-pro" not in ids, "no credentials for it here"
    one = httpx.get(example_gateway + "/v1/models/gpt-4.1", headers={"authorization": "Bearer demo-key"}).json()
    validate("Model", one)


def test_explain_header_and_endpoint(example_gateway: str, client: openai.OpenAI, upstreams: Upstreams) -> None:
    raw = client.chat.completions.with_raw_response.create(
        model="auto", messages=HI, extra_headers={"x-gateway-explain": "1"}
    )
    decision = json.loads(raw.headers["x-gateway-decision"])
    assert decision["tier"] == "simple" and decision["complexity"]["score"] < 0.35
    assert decision["order"][0] == "qwen3-32b-vllm"
    calls_before = upstreams.controls["a"].count()
    explained = httpx.post(
        example_gateway + "/v1/route/explain",
        json={"model": "auto", "messages": HI},
        headers={"authorization": "Bearer demo-us-only"},
    ).json()
    assert explained["would_call"] == "gpt-oss-120b-vllm" and explained["error"] is None
    denied = [c for c in explained["decision"]["candidates"] if not c["allowed"]]
    assert denied[0]["deployment"] == "qwen3-32b-vllm" and denied[0]["violations"][0]["rule"] == "tenant.deny_origins"
    assert upstreams.controls["a"].count() == calls_before, "explain calls nothing"


def test_health_readiness_and_metrics(example_gateway: str, client: openai.OpenAI) -> None:
    client.chat.completions.create(model="auto", messages=HI)
    assert httpx.get(example_gateway + "/healthz").json() == {"status": "ok"}
    ready = httpx.get(example_gateway + "/readyz").json()
    assert ready["status"] == "ready" and ready["deployment_counts"]["ok"] >= 1
    assert ready["deployment_counts"]["unavailable"] >= 1, "gemini: GEMINI_API_KEY is not set"
    assert "deployments" not in ready, "details only for an admin key (tests/test_operator_endpoints.py)"
    metrics = httpx.get(example_gateway + "/metrics").text
    assert (
        'gateway_requests_total{deployment="qwen3-32b-vllm",endpoint="chat",jurisdiction="US",model="qwen3-32b",'
        'origin="CN",route="auto",self_hosted="true",status="200",tenant="demo",tier="simple",vendor="Alibaba (Qwen)"}'
    ) in metrics
    assert "gateway_policy_info{revision=" in metrics


def _sse(url: str, body: dict[str, Any]) -> list[dict[str, Any]]:
    with httpx.stream(
        "POST", url + "/v1/chat/completions", json=body, headers={"authorization": "Bearer demo-key"}
    ) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        lines = [line[6:] for line in r.iter_lines() if line.startswith("data: ")]
    assert lines[-1] == "[DONE]"
    return [json.loads(line) for line in lines[:-1]]


# ---- issue #18: bad input is a 400 naming the field, never a 500 (more in tests/test_fuzz.py) -----


@pytest.mark.parametrize("role", [{}, [], ["user"]])
def test_a_role_that_is_not_a_string_is_a_400_naming_it(client: openai.OpenAI, role: Any) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model="auto", messages=[{"role": role, "content": "hi"}])
    validate("ErrorResponse", info.value.response.json())
    assert info.value.param == "messages[0].role"  # type: ignore[attr-defined]


@pytest.mark.parametrize("endpoint", ["chat", "completions", "embeddings"])
def test_a_body_nested_300_deep_is_a_400_naming_the_limit(client: openai.OpenAI, endpoint: str) -> None:
    """orjson reads 1,024 levels but writes 254: the body failed when sent on to the upstream, a 500."""
    deep: Any = []
    for _ in range(299):
        deep = [deep]
    with pytest.raises(openai.BadRequestError) as info:
        if endpoint == "chat":
            client.chat.completions.create(model="auto", messages=HI, extra_body={"extra": deep})
        elif endpoint == "completions":
            client.completions.create(model="auto", prompt="Say hi", extra_body={"extra": deep})
        else:
            client.embeddings.create(model="qwen3-embedding-8b", input="hello", extra_body={"extra": deep})
    validate("ErrorResponse", info.value.response.json())
    assert "more than 128 levels deep" in info.value.message
