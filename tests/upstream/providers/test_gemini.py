"""Google Gemini through litellm: a fake of the Gemini API's wire format behind the gateway, the openai SDK in front.

Chat (generateContent), streaming (streamGenerateContent with alt=sse), tools (functionDeclarations, a forced
call, a tool result), usage (usageMetadata, thoughtsTokenCount), the key, errors, and the audit and metrics.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest

from gateway.standin.control import Control, Fault
from gateway.standin.server import ThreadedServer
from tests.oaschema import validate
from tests.upstream.fakes.gemini import create_gemini_app, json_names
from tests.upstream.providers.matrix import (
    ASK_WEATHER,
    HELLO,
    LITELLM_WARNINGS,
    WEATHER,
    Gateway,
    catalog_model,
    counts,
    provider_gateway,
    streamed_arguments,
    streamed_text,
)

pytestmark = LITELLM_WARNINGS

KEY = "AIza-fake-gemini-key-0123456789"
MODEL = "gemini-2.5-pro"
ANSWER = f"[{MODEL}] Here is a short answer to: Say hello"


@pytest.fixture(scope="module")
def fake() -> Iterator[tuple[Control, str]]:
    control = Control()
    with ThreadedServer(create_gemini_app(control, api_key=KEY)) as server:
        yield control, server.url


@pytest.fixture(scope="module")
def gateway(fake: tuple[Control, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    deployments = {
        "gemini-2.5-pro-google": {
            "model": MODEL, "provider": "gemini", "base_url": fake[1] + "/v1beta", "api_key_env": "GEMINI_API_KEY",
            "operator": "Google", "jurisdiction": "US",
        },
        "gemini-2.5-pro-wrong-key": {
            "model": "gemini-wrong-key", "provider": "gemini", "upstream_model": MODEL,
            "base_url": fake[1] + "/v1beta", "api_key_env": "WRONG_GEMINI_KEY", "operator": "Google",
            "jurisdiction": "US", "max_retries": 0,
        },
    }  # fmt: skip
    models = {MODEL: catalog_model("Google", "US"), "gemini-wrong-key": catalog_model("Google", "US")}
    env = {"GEMINI_API_KEY": KEY, "WRONG_GEMINI_KEY": "AIza-not-the-key"}
    with provider_gateway(tmp_path_factory.mktemp("gemini"), models, deployments, env) as gateway:
        yield gateway


@pytest.fixture
def gemini(fake: tuple[Control, str]) -> Iterator[Control]:
    fake[0].reset()
    yield fake[0]
    fake[0].reset()


@pytest.fixture
def client(gateway: Gateway) -> Iterator[openai.OpenAI]:
    with gateway.client() as client:
        yield client


def test_chat_is_generate_content_with_the_key_in_its_header(client: openai.OpenAI, gemini: Control) -> None:
    messages: list[Any] = [{"role": "system", "content": "Be brief."}, *HELLO]
    raw = client.chat.completions.with_raw_response.create(model=MODEL, messages=messages, max_tokens=100, stop=["\n"])
    validate("CreateChatCompletionResponse", raw.http_response.json())
    completion = raw.parse()
    assert raw.headers["x-gateway-deployment"] == "gemini-2.5-pro-google"
    assert completion.model == MODEL and completion.choices[0].message.content == ANSWER
    assert completion.choices[0].finish_reason == "stop"
    [call] = gemini.calls()
    assert call.path == f"/v1beta/models/{MODEL}:generateContent" and call.headers["x-goog-api-key"] == KEY
    body = json_names(call.body)
    assert body["contents"] == [{"role": "user", "parts": [{"text": "Say hello"}]}]
    assert body["systemInstruction"] == {"parts": [{"text": "Be brief."}]}
    assert body["generationConfig"]["maxOutputTokens"] == 100
    assert body["generationConfig"]["stopSequences"] == ["\n"]


def test_usage_is_the_usage_metadata(client: openai.OpenAI, gemini: Control) -> None:
    completion = client.chat.completions.create(model=MODEL, messages=HELLO)
    assert completion.usage is not None
    prompt, output = 3, -(-len(ANSWER) // 4)  # the fake counts a token per started four characters
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == (prompt, output)
    assert completion.usage.total_tokens == prompt + output


def test_a_cut_answer_is_finish_reason_length(client: openai.OpenAI, gemini: Control) -> None:
    completion = client.chat.completions.create(model=MODEL, messages=HELLO, max_tokens=3)
    assert completion.choices[0].finish_reason == "length"


def test_stream_is_server_sent_events_and_ends_with_usage(client: openai.OpenAI, gemini: Control) -> None:
    whole = client.chat.completions.create(model=MODEL, messages=HELLO)
    chunks = list(client.chat.completions.create(model=MODEL, messages=HELLO, stream=True,
                                                 stream_options={"include_usage": True}))  # fmt: skip
    for chunk in chunks:
        validate("CreateChatCompletionStreamResponse", chunk.model_dump(exclude_unset=True))
    assert streamed_text(chunks) == ANSWER
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].choices == [] and counts(chunks[-1].usage) == counts(whole.usage)
    assert gemini.calls()[-1].path == f"/v1beta/models/{MODEL}:streamGenerateContent?alt=sse"


def test_a_tool_call_is_a_function_call(client: openai.OpenAI, gemini: Control) -> None:
    completion = client.chat.completions.create(model=MODEL, messages=ASK_WEATHER, tools=[WEATHER])
    [call] = completion.choices[0].message.tool_calls or []
    assert call.function.name == "get_weather" and json.loads(call.function.arguments) == {"city": "example"}
    assert completion.choices[0].finish_reason == "tool_calls"
    [declaration] = json_names(gemini.calls()[0].body)["tools"][0]["functionDeclarations"]
    assert declaration["name"] == "get_weather" and declaration["description"] == "The weather in a city"


def test_a_streamed_tool_call(client: openai.OpenAI, gemini: Control) -> None:
    chunks = list(client.chat.completions.create(model=MODEL, messages=ASK_WEATHER, tools=[WEATHER], stream=True))
    first = next(c.choices[0].delta.tool_calls[0] for c in chunks if c.choices and c.choices[0].delta.tool_calls)
    assert first.function is not None and first.function.name == "get_weather" and first.id
    assert json.loads(streamed_arguments(chunks)) == {"city": "example"}
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "tool_calls"


def test_tool_choice_required_is_mode_any(client: openai.OpenAI, gemini: Control) -> None:
    completion = client.chat.completions.create(
        model=MODEL, messages=ASK_WEATHER, tools=[WEATHER], tool_choice="required"
    )
    assert completion.choices[0].message.tool_calls
    assert json_names(gemini.calls()[0].body)["toolConfig"]["functionCallingConfig"]["mode"] == "ANY"


def test_a_tool_result_goes_back_as_a_function_response(client: openai.OpenAI, gemini: Control) -> None:
    call = {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'}}
    messages: list[Any] = [
        *ASK_WEATHER,
        {"role": "assistant", "content": None, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": "call_1", "content": "sunny, 21 C"},
    ]
    completion = client.chat.completions.create(model=MODEL, messages=messages, tools=[WEATHER])
    assert (completion.choices[0].message.content or "").startswith(f"[{MODEL}] Based on the tool result:")
    contents = json_names(gemini.calls()[0].body)["contents"]
    assert contents[1]["parts"][0]["functionCall"]["name"] == "get_weather"
    assert "functionResponse" in contents[2]["parts"][0]


def test_thoughts_are_reasoning_content_and_reasoning_tokens(client: openai.OpenAI, gemini: Control) -> None:
    completion = client.chat.completions.create(model=MODEL, messages=HELLO, reasoning_effort="low")
    message = completion.choices[0].message.model_dump()
    assert message["content"] == ANSWER and message["reasoning_content"].startswith("The user wants")
    assert completion.usage is not None and completion.usage.completion_tokens_details is not None
    assert completion.usage.completion_tokens_details.reasoning_tokens == 12
    assert json_names(gemini.calls()[0].body)["generationConfig"]["thinkingConfig"]["includeThoughts"] is True


def test_the_audit_and_metrics_name_google_us(client: openai.OpenAI, gateway: Gateway, gemini: Control) -> None:
    before = len(gateway.entries())
    completion = client.chat.completions.create(model=MODEL, messages=HELLO)
    entry = gateway.last_entry(before + 1)
    assert completion.usage is not None
    assert (entry["deployment"], entry["vendor"], entry["origin"]) == ("gemini-2.5-pro-google", "Google", "US")
    assert (entry["operator"], entry["jurisdiction"], entry["self_hosted"]) == ("Google", "US", False)
    assert (entry["input_tokens"], entry["output_tokens"]) == (completion.usage.prompt_tokens,
                                                               completion.usage.completion_tokens)  # fmt: skip
    assert entry["usage_estimated"] is None and entry["cost_usd"] > 0
    labels = {"deployment": "gemini-2.5-pro-google", "vendor": "Google", "origin": "US", "jurisdiction": "US"}
    assert gateway.metric("gateway_requests_total", **labels) >= 1


def test_a_refused_key_is_the_gateways_error_without_the_key(gateway: Gateway, client: openai.OpenAI) -> None:
    with pytest.raises(openai.APIStatusError) as raised:
        client.chat.completions.create(model="gemini-wrong-key", messages=HELLO)
    assert raised.value.status_code == 503 and "credentials" in raised.value.message
    assert "AIza" not in raised.value.message


@pytest.mark.parametrize("status", [429, 500, 503])
def test_an_upstream_failure_is_an_openai_error(client: openai.OpenAI, gemini: Control, status: int) -> None:
    gemini.inject(Fault(status=status, times=10))
    with pytest.raises(openai.APIStatusError) as raised:
        client.chat.completions.create(model=MODEL, messages=HELLO)
    assert raised.value.status_code in (429, 502, 503) and "gemini-2.5-pro-google" in raised.value.message


def test_the_fake_takes_the_key_as_a_query_parameter_and_refuses_none(fake: tuple[Control, str]) -> None:
    """The wire itself: Google accepts ``?key=`` as well as the header; without either it is a 403."""
    url = f"{fake[1]}/v1beta/models/{MODEL}:generateContent"
    body = {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}
    assert httpx.post(url, params={"key": KEY}, json=body).json()["usageMetadata"]["promptTokenCount"] == 1
    refused = httpx.post(url, json=body)
    assert refused.status_code == 403 and refused.json()["error"]["status"] == "PERMISSION_DENIED"
    unknown = httpx.post(url, params={"key": KEY}, json=body | {"model": MODEL})
    assert unknown.status_code == 400 and 'Unknown name "model"' in unknown.json()["error"]["message"]
