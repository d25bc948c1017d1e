"""Azure OpenAI through litellm: a fake of Azure's data-plane wire format behind the gateway, the openai SDK in front.

Deployment paths with ``api-version``, the ``api-key`` header, Azure's content-filter fields and its leading
filter-only stream chunk, tools, usage, errors, and the audit and metrics (an OpenAI model run by Microsoft in SE).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from urllib.parse import parse_qs, urlsplit

import openai
import pytest

from gateway.standin.control import Control, Fault
from gateway.standin.server import ThreadedServer
from tests.oaschema import validate
from tests.upstream.fakes.azure import API_VERSIONS, create_azure_app
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

KEY = "0123456789abcdef0123456789abcdef"
MODEL = "gpt-4.1"
AZURE_DEPLOYMENT = "gpt41-prod"  # the name of the deployment in the Azure resource
BEHIND = "gpt-4.1-2025-04-14"  # the model Azure runs for it, which answers name
ANSWER = f"[{BEHIND}] Here is a short answer to: Say hello"


@pytest.fixture(scope="module")
def fake() -> Iterator[tuple[Control, str]]:
    control = Control()
    app = create_azure_app(control, api_key=KEY, models={AZURE_DEPLOYMENT: BEHIND})
    with ThreadedServer(app) as server:
        yield control, server.url


@pytest.fixture(scope="module")
def gateway(fake: tuple[Control, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    common = {"provider": "azure", "base_url": fake[1], "operator": "Microsoft Azure", "jurisdiction": "SE"}
    deployments = {
        "gpt-4.1-azure-se": common | {"model": MODEL, "upstream_model": AZURE_DEPLOYMENT, "api_key_env": "AZURE_KEY"},
        "gpt-4.1-azure-wrong-key": common | {"model": "azure-wrong-key", "upstream_model": AZURE_DEPLOYMENT,
                                             "api_key_env": "WRONG_AZURE_KEY", "max_retries": 0},
        "gpt-4.1-azure-pinned": common | {"model": "azure-pinned", "upstream_model": AZURE_DEPLOYMENT,
                                          "base_url": f"{fake[1]}?api-version=2024-10-21", "api_key_env": "AZURE_KEY"},
        "gpt-4.1-azure-missing": common | {"model": "azure-missing", "upstream_model": "no-such-deployment",
                                           "api_key_env": "AZURE_KEY", "max_retries": 0},
    }  # fmt: skip
    models = {spec["model"]: catalog_model("OpenAI", "US") for spec in deployments.values()}
    env = {"AZURE_KEY": KEY, "WRONG_AZURE_KEY": "f" * 32}
    with provider_gateway(tmp_path_factory.mktemp("azure"), models, deployments, env) as gateway:
        yield gateway


@pytest.fixture
def azure(fake: tuple[Control, str]) -> Iterator[Control]:
    fake[0].reset()
    yield fake[0]
    fake[0].reset()


@pytest.fixture
def client(gateway: Gateway) -> Iterator[openai.OpenAI]:
    with gateway.client() as client:
        yield client


def test_chat_goes_to_the_deployment_path_with_api_version_and_api_key(client: openai.OpenAI, azure: Control) -> None:
    raw = client.chat.completions.with_raw_response.create(model=MODEL, messages=HELLO, max_tokens=100)
    body = raw.http_response.json()
    validate("CreateChatCompletionResponse", body)
    completion = raw.parse()
    assert raw.headers["x-gateway-deployment"] == "gpt-4.1-azure-se"
    assert completion.model == MODEL and completion.choices[0].message.content == ANSWER
    assert "prompt_filter_results" not in body and "content_filter_results" not in body["choices"][0]
    [call] = azure.calls()
    path = urlsplit(call.path)
    assert path.path == f"/openai/deployments/{AZURE_DEPLOYMENT}/chat/completions"
    assert parse_qs(path.query)["api-version"][0] in API_VERSIONS
    assert call.headers["api-key"] == KEY and "authorization" not in call.headers
    assert call.body["max_tokens"] == 100


def test_a_base_url_with_api_version_pins_it(client: openai.OpenAI, azure: Control) -> None:
    """Azure's own URL form: ``https://<resource>.openai.azure.com?api-version=2024-10-21``. Without one, litellm
    sends the process's AZURE_API_VERSION, else its own default."""
    completion = client.chat.completions.create(model="azure-pinned", messages=HELLO, stream=True)
    assert streamed_text(list(completion)) == ANSWER
    path = urlsplit(azure.calls()[0].path)
    assert path.path == f"/openai/deployments/{AZURE_DEPLOYMENT}/chat/completions"
    assert parse_qs(path.query) == {"api-version": ["2024-10-21"]}


def test_usage_is_azures(client: openai.OpenAI, azure: Control) -> None:
    completion = client.chat.completions.create(model=MODEL, messages=HELLO)
    assert completion.usage is not None
    output = -(-len(ANSWER) // 4)
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == (3, output)


def test_stream_skips_the_filter_only_chunk_and_ends_with_usage(client: openai.OpenAI, azure: Control) -> None:
    whole = client.chat.completions.create(model=MODEL, messages=HELLO)
    chunks = list(client.chat.completions.create(model=MODEL, messages=HELLO, stream=True,
                                                 stream_options={"include_usage": True}))  # fmt: skip
    for chunk in chunks:
        validate("CreateChatCompletionStreamResponse", chunk.model_dump(exclude_unset=True))
        assert chunk.id and chunk.model == MODEL
    assert chunks[0].choices, "Azure's leading chunk without choices reached the client"
    assert streamed_text(chunks) == ANSWER
    assert chunks[-1].choices == [] and counts(chunks[-1].usage) == counts(whole.usage)
    assert azure.calls()[-1].body["stream"] is True


def test_tools_and_tool_choice_required_pass_as_openai_fields(client: openai.OpenAI, azure: Control) -> None:
    completion = client.chat.completions.create(
        model=MODEL, messages=ASK_WEATHER, tools=[WEATHER], tool_choice="required"
    )
    [call] = completion.choices[0].message.tool_calls or []
    assert call.function.name == "get_weather" and json.loads(call.function.arguments) == {"city": "example"}
    assert completion.choices[0].finish_reason == "tool_calls"
    sent = azure.calls()[0].body
    assert sent["tool_choice"] == "required" and sent["tools"][0]["function"]["name"] == "get_weather"


def test_a_streamed_tool_call(client: openai.OpenAI, azure: Control) -> None:
    chunks = list(client.chat.completions.create(model=MODEL, messages=ASK_WEATHER, tools=[WEATHER], stream=True))
    first = next(c.choices[0].delta.tool_calls[0] for c in chunks if c.choices and c.choices[0].delta.tool_calls)
    assert first.function is not None and first.function.name == "get_weather" and first.id
    assert json.loads(streamed_arguments(chunks)) == {"city": "example"}
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "tool_calls"


def test_the_audit_and_metrics_name_openai_us_run_in_se(
    client: openai.OpenAI, gateway: Gateway, azure: Control
) -> None:
    before = len(gateway.entries())
    completion = client.chat.completions.create(model=MODEL, messages=HELLO, stream=True,
                                                stream_options={"include_usage": True})  # fmt: skip
    usage = list(completion)[-1].usage
    entry = gateway.last_entry(before + 1)
    assert usage is not None
    assert (entry["deployment"], entry["vendor"], entry["origin"]) == ("gpt-4.1-azure-se", "OpenAI", "US")
    assert (entry["operator"], entry["jurisdiction"]) == ("Microsoft Azure", "SE")
    assert (entry["input_tokens"], entry["output_tokens"]) == (usage.prompt_tokens, usage.completion_tokens)
    assert entry["usage_estimated"] is None
    labels = {"deployment": "gpt-4.1-azure-se", "vendor": "OpenAI", "origin": "US", "jurisdiction": "SE"}
    assert gateway.metric("gateway_requests_total", **labels) >= 1


def test_a_refused_key_is_the_gateways_error_without_the_key(client: openai.OpenAI) -> None:
    with pytest.raises(openai.APIStatusError) as raised:
        client.chat.completions.create(model="azure-wrong-key", messages=HELLO)
    assert raised.value.status_code == 503 and "credentials" in raised.value.message
    assert "f" * 32 not in raised.value.message


def test_a_deployment_azure_does_not_have_is_unavailable(client: openai.OpenAI) -> None:
    with pytest.raises(openai.APIStatusError) as raised:
        client.chat.completions.create(model="azure-missing", messages=HELLO)
    assert raised.value.status_code == 503 and "gpt-4.1-azure-missing" in raised.value.message


def test_a_rate_limit_keeps_its_retry_after(client: openai.OpenAI, azure: Control) -> None:
    azure.inject(Fault(status=429, retry_after=1, times=10))
    with pytest.raises(openai.RateLimitError) as raised:
        client.chat.completions.create(model=MODEL, messages=HELLO)
    assert "gpt-4.1-azure-se" in raised.value.message
    assert raised.value.response.headers["retry-after"] == "1"
