"""AWS Bedrock (Converse) through litellm: a fake of bedrock-runtime's wire format behind the gateway, the openai
SDK in front.

``/model/{id}/converse`` and ``/converse-stream`` (AWS's binary event stream), SigV4 signing with credentials
from the environment (fake ones: litellm signs, the fake checks the signature's scope), a Bedrock API key as
a bearer token, tools (toolSpec, toolChoice), usage, errors, and the audit and metrics (a Mistral AI model, FR,
run by AWS in DE).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from urllib.parse import unquote

import openai
import pytest
from botocore.eventstream import EventStreamBuffer

from gateway.standin.control import Control, Fault
from gateway.standin.server import ThreadedServer
from tests.oaschema import validate
from tests.upstream.fakes.bedrock import create_bedrock_app, event_message
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

ACCESS_KEY_ID = "AKIAFAKEFAKEFAKE0000"
REGION = "eu-central-1"
API_KEY = "ABSKfakebedrockapikey0123456789"
MODEL = "mistral-large"
MODEL_ID = "mistral.mistral-large-2407-v1:0"
ANSWER = f"[{MODEL_ID}] Here is a short answer to: Say hello"
AWS_ENV = {
    "AWS_ACCESS_KEY_ID": ACCESS_KEY_ID,
    "AWS_SECRET_ACCESS_KEY": "fake/secret/access/key/0123456789abcdefgh",
    "AWS_REGION_NAME": REGION,
    "AWS_REGION": REGION,
    "AWS_EC2_METADATA_DISABLED": "true",  # never ask an instance metadata service for credentials
}


@pytest.fixture(scope="module")
def fake() -> Iterator[tuple[Control, str]]:
    control = Control()
    app = create_bedrock_app(control, access_key_id=ACCESS_KEY_ID, region=REGION, api_key=API_KEY)
    with ThreadedServer(app) as server:
        yield control, server.url


@pytest.fixture(scope="module")
def gateway(fake: tuple[Control, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    """litellm reads AWS credentials from the process environment (boto3's chain), not the gateway's env."""
    common = {"provider": "bedrock", "base_url": fake[1], "operator": "AWS Bedrock", "jurisdiction": "DE",
              "upstream_model": f"converse/{MODEL_ID}"}  # fmt: skip
    deployments = {
        "mistral-large-bedrock-de": common | {"model": MODEL},
        "mistral-large-bedrock-api-key": common | {"model": "bedrock-api-key", "api_key_env": "BEDROCK_KEY"},
        "mistral-large-bedrock-wrong-key": common | {"model": "bedrock-wrong-key", "api_key_env": "WRONG_KEY",
                                                     "max_retries": 0},
    }  # fmt: skip
    models = {name: catalog_model("Mistral AI", "FR") for name in (MODEL, "bedrock-api-key", "bedrock-wrong-key")}
    env = {"BEDROCK_KEY": API_KEY, "WRONG_KEY": "ABSKnotthekey"}
    with pytest.MonkeyPatch.context() as patch:
        for name, value in AWS_ENV.items():
            patch.setenv(name, value)
        for name in ("AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_BEARER_TOKEN_BEDROCK", "AWS_BEDROCK_RUNTIME_ENDPOINT"):
            patch.delenv(name, raising=False)
        with provider_gateway(tmp_path_factory.mktemp("bedrock"), models, deployments, env) as gateway:
            yield gateway


@pytest.fixture
def bedrock(fake: tuple[Control, str]) -> Iterator[Control]:
    fake[0].reset()
    yield fake[0]
    fake[0].reset()


@pytest.fixture
def client(gateway: Gateway) -> Iterator[openai.OpenAI]:
    with gateway.client() as client:
        yield client


def test_chat_is_converse_signed_with_sigv4(client: openai.OpenAI, bedrock: Control) -> None:
    messages: list[object] = [{"role": "system", "content": "Be brief."}, *HELLO]
    raw = client.chat.completions.with_raw_response.create(model=MODEL, messages=messages, max_tokens=100)  # type: ignore[arg-type]
    validate("CreateChatCompletionResponse", raw.http_response.json())
    completion = raw.parse()
    assert raw.headers["x-gateway-deployment"] == "mistral-large-bedrock-de"
    assert completion.model == MODEL and completion.choices[0].message.content == ANSWER
    assert completion.choices[0].finish_reason == "stop"
    [call] = bedrock.calls()
    assert unquote(call.path) == f"/model/{MODEL_ID}/converse"
    authorization = call.headers["authorization"]
    assert authorization.startswith(f"AWS4-HMAC-SHA256 Credential={ACCESS_KEY_ID}/")
    assert f"/{REGION}/bedrock/aws4_request" in authorization and "x-amz-date" in call.headers
    assert call.body["messages"] == [{"role": "user", "content": [{"text": "Say hello"}]}]
    assert call.body["system"] == [{"text": "Be brief."}]
    assert call.body["inferenceConfig"]["maxTokens"] == 100


def test_usage_is_bedrocks(client: openai.OpenAI, bedrock: Control) -> None:
    completion = client.chat.completions.create(model=MODEL, messages=HELLO)
    assert completion.usage is not None
    output = -(-len(ANSWER) // 4)
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == (3, output)
    assert completion.usage.total_tokens == 3 + output


def test_stream_is_the_binary_event_stream_and_ends_with_usage(client: openai.OpenAI, bedrock: Control) -> None:
    whole = client.chat.completions.create(model=MODEL, messages=HELLO)
    chunks = list(client.chat.completions.create(model=MODEL, messages=HELLO, stream=True,
                                                 stream_options={"include_usage": True}))  # fmt: skip
    for chunk in chunks:
        validate("CreateChatCompletionStreamResponse", chunk.model_dump(exclude_unset=True))
    assert streamed_text(chunks) == ANSWER
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].choices == [] and counts(chunks[-1].usage) == counts(whole.usage)
    assert unquote(bedrock.calls()[-1].path) == f"/model/{MODEL_ID}/converse-stream"


def test_a_tool_call_is_tool_use(client: openai.OpenAI, bedrock: Control) -> None:
    completion = client.chat.completions.create(model=MODEL, messages=ASK_WEATHER, tools=[WEATHER])
    [call] = completion.choices[0].message.tool_calls or []
    assert call.function.name == "get_weather" and json.loads(call.function.arguments) == {"city": "example"}
    assert completion.choices[0].finish_reason == "tool_calls"
    [tool] = bedrock.calls()[0].body["toolConfig"]["tools"]
    assert tool["toolSpec"]["name"] == "get_weather" and tool["toolSpec"]["inputSchema"]["json"]["required"] == ["city"]


def test_a_streamed_tool_call(client: openai.OpenAI, bedrock: Control) -> None:
    chunks = list(client.chat.completions.create(model=MODEL, messages=ASK_WEATHER, tools=[WEATHER], stream=True))
    first = next(c.choices[0].delta.tool_calls[0] for c in chunks if c.choices and c.choices[0].delta.tool_calls)
    assert first.function is not None and first.function.name == "get_weather" and first.id
    assert json.loads(streamed_arguments(chunks)) == {"city": "example"}
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "tool_calls"


def test_tool_choice_required_is_any(client: openai.OpenAI, bedrock: Control) -> None:
    client.chat.completions.create(model=MODEL, messages=ASK_WEATHER, tools=[WEATHER], tool_choice="required")
    assert bedrock.calls()[0].body["toolConfig"]["toolChoice"] == {"any": {}}


def test_a_tool_result_goes_back_as_tool_result(client: openai.OpenAI, bedrock: Control) -> None:
    call = {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'}}
    messages: list[object] = [
        *ASK_WEATHER,
        {"role": "assistant", "content": None, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": "call_1", "content": "sunny, 21 C"},
    ]
    completion = client.chat.completions.create(model=MODEL, messages=messages, tools=[WEATHER])  # type: ignore[arg-type]
    assert (completion.choices[0].message.content or "").startswith(f"[{MODEL_ID}] Based on the tool result:")
    sent = bedrock.calls()[0].body["messages"]
    assert sent[1]["content"][-1]["toolUse"]["name"] == "get_weather"
    assert sent[2]["content"][0]["toolResult"]["toolUseId"] == "call_1"


def test_a_bedrock_api_key_is_a_bearer_token(client: openai.OpenAI, bedrock: Control) -> None:
    completion = client.chat.completions.create(model="bedrock-api-key", messages=HELLO)
    assert completion.choices[0].message.content == ANSWER
    assert bedrock.calls()[0].headers["authorization"] == f"Bearer {API_KEY}"


def test_the_audit_and_metrics_name_mistral_fr_run_in_de(
    client: openai.OpenAI, gateway: Gateway, bedrock: Control
) -> None:
    before = len(gateway.entries())
    completion = client.chat.completions.create(model=MODEL, messages=HELLO)
    entry = gateway.last_entry(before + 1)
    assert completion.usage is not None
    assert (entry["deployment"], entry["vendor"], entry["origin"]) == ("mistral-large-bedrock-de", "Mistral AI", "FR")
    assert (entry["operator"], entry["jurisdiction"]) == ("AWS Bedrock", "DE")
    assert (entry["input_tokens"], entry["output_tokens"]) == (completion.usage.prompt_tokens,
                                                               completion.usage.completion_tokens)  # fmt: skip
    assert entry["usage_estimated"] is None
    labels = {"deployment": "mistral-large-bedrock-de", "vendor": "Mistral AI", "origin": "FR", "jurisdiction": "DE"}
    assert gateway.metric("gateway_requests_total", **labels) >= 1


def test_a_refused_key_is_the_gateways_error_without_the_key(client: openai.OpenAI) -> None:
    with pytest.raises(openai.APIStatusError) as raised:
        client.chat.completions.create(model="bedrock-wrong-key", messages=HELLO)
    assert raised.value.status_code == 503 and "credentials" in raised.value.message
    assert "ABSK" not in raised.value.message


def test_throttling_is_a_rate_limit(client: openai.OpenAI, bedrock: Control) -> None:
    bedrock.inject(Fault(status=429, times=10))
    with pytest.raises(openai.RateLimitError) as raised:
        client.chat.completions.create(model=MODEL, messages=HELLO)
    assert "mistral-large-bedrock-de" in raised.value.message


def test_a_stream_cut_mid_way_is_an_error_event(client: openai.OpenAI, bedrock: Control) -> None:
    bedrock.inject(Fault(drop_after=4, times=10))
    with pytest.raises(openai.APIError):
        list(client.chat.completions.create(model=MODEL, messages=HELLO, stream=True))


def test_the_fakes_event_stream_is_what_botocore_decodes() -> None:
    """The framing itself, against AWS's own decoder: lengths, both CRC32s, the string headers."""
    buffer = EventStreamBuffer()
    buffer.add_data(event_message("contentBlockDelta", {"delta": {"text": "hi"}}) + event_message("messageStop", {}))
    first, second = list(buffer)
    assert first.headers == {":event-type": "contentBlockDelta", ":content-type": "application/json",
                             ":message-type": "event"}  # fmt: skip
    assert json.loads(first.payload) == {"delta": {"text": "hi"}} and second.headers[":event-type"] == "messageStop"
