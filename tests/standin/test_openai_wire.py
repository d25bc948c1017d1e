"""The OpenAI stand-in against the official openai SDK; every body and chunk checked against OpenAI's schema."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import jsonschema
import openai
import pytest

from gateway.standin.control import Control, Fault
from gateway.standin.openai_wire import create_openai_app
from gateway.standin.server import ThreadedServer
from tests.oaschema import validate

KEY = "sk-standin-unit"
DEFAULTS: dict[str, Any] = {"api_key": KEY, "max_retries": 0}
HI: list[Any] = [{"role": "user", "content": "What is the capital of France?"}]
CITY_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"city": {"type": "string"}, "days": {"type": "integer"}, "unit": {"enum": ["c", "f"]}},
    "required": ["city", "days", "unit"],
}
WEATHER: Any = {"type": "function", "function": {"name": "get_weather", "parameters": CITY_SCHEMA}}
TIME: Any = {"type": "function", "function": {"name": "get_time", "parameters": {"type": "object"}}}


@pytest.fixture(scope="module")
def control() -> Control:
    return Control()


@pytest.fixture(scope="module")
def server(control: Control) -> Iterator[ThreadedServer]:
    with ThreadedServer(create_openai_app(control, name="unit", api_key=KEY, models=["listed"])) as server:
        yield server


@pytest.fixture(autouse=True)
def _fresh(control: Control) -> None:
    control.reset()


@pytest.fixture
def make_client(server: ThreadedServer) -> Iterator[Callable[..., openai.OpenAI]]:
    clients: list[openai.OpenAI] = []

    def make(**options: Any) -> openai.OpenAI:
        clients.append(openai.OpenAI(base_url=server.url + "/v1", **(DEFAULTS | options)))
        return clients[-1]

    yield make
    for client in clients:
        client.close()


@pytest.fixture
def client(make_client: Callable[..., openai.OpenAI]) -> openai.OpenAI:
    return make_client()


@pytest.fixture(scope="module")
def http(server: ThreadedServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, headers={"authorization": f"Bearer {KEY}"}) as http:
        yield http


def chunks_of(response: httpx.Response) -> list[dict[str, Any]]:
    """The JSON chunks of an SSE body, checking it ends with ``data: [DONE]``."""
    data = [line.removeprefix("data: ") for line in response.text.split("\n\n") if line]
    assert data[-1] == "[DONE]"
    return [json.loads(item) for item in data[:-1]]


def stream_chat(http: httpx.Client, **fields: Any) -> list[dict[str, Any]]:
    response = http.post("/v1/chat/completions", json={"model": "m-x", "messages": HI, "stream": True, **fields})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    chunks = chunks_of(response)
    for chunk in chunks:
        validate("CreateChatCompletionStreamResponse", chunk)
    return chunks


# -- chat, whole ----------------------------------------------------------------


def test_chat_answer_names_the_model_and_counts_tokens(client: openai.OpenAI, control: Control) -> None:
    raw = client.chat.completions.with_raw_response.create(model="model-x", messages=HI, seed=7)
    validate("CreateChatCompletionResponse", raw.http_response.json())
    completion = raw.parse()
    content = completion.choices[0].message.content
    assert content == "[model-x] Here is a short answer to: What is the capital of France?"
    assert completion.model == "model-x" and completion.choices[0].finish_reason == "stop"
    assert completion.usage is not None
    assert completion.usage.prompt_tokens == 8  # 30 characters
    assert completion.usage.completion_tokens == 17  # 68 characters
    assert completion.usage.total_tokens == 25
    assert control.models() == ["model-x"]
    assert control.calls()[0].headers["authorization"] == f"Bearer {KEY}"


def test_chat_long_prompt_is_cut_to_sixty_characters(client: openai.OpenAI) -> None:
    completion = client.chat.completions.create(
        model="m", messages=[{"role": "system", "content": "Be brief."}, {"role": "user", "content": "x" * 100}]
    )
    assert completion.choices[0].message.content == "[m] Here is a short answer to: " + "x" * 60


def test_chat_n_stop_and_max_tokens(client: openai.OpenAI) -> None:
    several = client.chat.completions.create(model="m", messages=HI, n=3)
    assert [c.index for c in several.choices] == [0, 1, 2]
    stopped = client.chat.completions.create(model="m", messages=HI, stop=["short", "zzz"])
    assert stopped.choices[0].message.content == "[m] Here is a "
    assert stopped.choices[0].finish_reason == "stop"
    cut = client.chat.completions.create(model="m", messages=HI, max_completion_tokens=4)
    assert cut.choices[0].message.content == "[m] Here is a"
    assert cut.choices[0].finish_reason == "length"
    assert cut.usage is not None and cut.usage.completion_tokens <= 4


def test_chat_json_object_and_json_schema(client: openai.OpenAI) -> None:
    plain = client.chat.completions.create(model="m", messages=HI, response_format={"type": "json_object"})
    assert json.loads(plain.choices[0].message.content or "")["answer"].startswith("[m] Here")
    shaped = client.chat.completions.create(
        model="m",
        messages=HI,
        response_format={"type": "json_schema", "json_schema": {"name": "city", "schema": CITY_SCHEMA}},
    )
    value = json.loads(shaped.choices[0].message.content or "")
    jsonschema.validate(value, CITY_SCHEMA)
    assert value == {"city": "example", "days": 0, "unit": "c"}


def test_chat_calls_the_first_tool_then_answers_the_tool_result(client: openai.OpenAI) -> None:
    raw = client.chat.completions.with_raw_response.create(model="m", messages=HI, tools=[WEATHER, TIME])
    validate("CreateChatCompletionResponse", raw.http_response.json())
    choice = raw.parse().choices[0]
    assert choice.finish_reason == "tool_calls" and choice.message.content is None
    call = (choice.message.tool_calls or [])[0]
    assert call.type == "function" and call.function.name == "get_weather" and call.id.startswith("call_")
    jsonschema.validate(json.loads(call.function.arguments), CITY_SCHEMA)
    result = {"role": "tool", "tool_call_id": call.id, "content": "sunny, 21 degrees"}
    follow_up = client.chat.completions.create(
        model="m", messages=[*HI, choice.message.model_dump(exclude_none=True), result], tools=[WEATHER]
    )
    assert follow_up.choices[0].message.content == "[m] Based on the tool result: sunny, 21 degrees"
    assert follow_up.choices[0].finish_reason == "stop"


def test_chat_tool_choice_names_the_tool_or_turns_tools_off(client: openai.OpenAI) -> None:
    named = client.chat.completions.create(
        model="m",
        messages=HI,
        tools=[WEATHER, TIME],
        tool_choice={"type": "function", "function": {"name": "get_time"}},
    )
    call = (named.choices[0].message.tool_calls or [])[0]
    assert call.function.name == "get_time" and call.function.arguments == "{}"
    off = client.chat.completions.create(model="m", messages=HI, tools=[WEATHER], tool_choice="none")
    assert off.choices[0].message.tool_calls is None and off.choices[0].finish_reason == "stop"


# -- chat, streamed -------------------------------------------------------------


def test_stream_chunks_like_openai(client: openai.OpenAI, http: httpx.Client) -> None:
    whole = client.chat.completions.create(model="m-x", messages=HI)
    chunks = stream_chat(http, stream_options={"include_usage": True})
    assert len({(c["id"], c["created"], c["model"], c["object"]) for c in chunks}) == 1
    assert chunks[0]["object"] == "chat.completion.chunk"
    *content_chunks, usage_chunk = chunks
    assert all(c["usage"] is None for c in content_chunks)
    assert usage_chunk["choices"] == [] and usage_chunk["usage"] == whole.model_dump(exclude_none=True)["usage"]
    deltas = [c["choices"][0]["delta"] for c in content_chunks]
    assert deltas[0] == {"role": "assistant", "content": "", "refusal": None}
    assert len(deltas) > 5
    assert "".join(d.get("content") or "" for d in deltas) == whole.choices[0].message.content
    reasons = [c["choices"][0]["finish_reason"] for c in content_chunks]
    assert reasons == [None] * (len(reasons) - 1) + ["stop"]
    assert content_chunks[-1]["choices"][0]["delta"]["content"]  # the last content chunk has the finish reason


def test_stream_without_usage_option_has_no_usage_key(http: httpx.Client) -> None:
    chunks = stream_chat(http, n=2, max_tokens=3)
    assert all("usage" not in c for c in chunks)
    by_choice = {i: [c["choices"][0] for c in chunks if c["choices"][0]["index"] == i] for i in (0, 1)}
    for choices in by_choice.values():
        assert choices[0]["delta"]["role"] == "assistant"
        assert [c["finish_reason"] for c in choices][-2:] == [None, "length"]


def test_stream_tool_call_like_openai(client: openai.OpenAI, http: httpx.Client) -> None:
    chunks = stream_chat(http, tools=[WEATHER], stream_options={"include_usage": True})
    first = chunks[0]["choices"][0]["delta"]["tool_calls"][0]
    assert first["index"] == 0 and first["id"].startswith("call_") and first["type"] == "function"
    assert first["function"] == {"name": "get_weather", "arguments": ""}
    pieces = [c["choices"][0]["delta"]["tool_calls"][0] for c in chunks[1:-1]]
    assert len(pieces) > 1 and all(set(p) == {"index", "function"} for p in pieces)
    jsonschema.validate(json.loads("".join(p["function"]["arguments"] for p in pieces)), CITY_SCHEMA)
    assert chunks[-2]["choices"][0]["finish_reason"] == "tool_calls"
    with client.chat.completions.stream(model="m", messages=HI, tools=[WEATHER]) as stream:
        final = stream.get_final_completion()
    call = (final.choices[0].message.tool_calls or [])[0]
    assert call.function.name == "get_weather" and json.loads(call.function.arguments)["days"] == 0


def test_sdk_stream_accumulates_the_same_text(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(model="m", messages=HI, stream=True)
    text = "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices)
    assert text == "[m] Here is a short answer to: What is the capital of France?"


def test_async_client_whole_and_streamed(server: ThreadedServer) -> None:
    async def run() -> tuple[str | None, str]:
        async with openai.AsyncOpenAI(base_url=server.url + "/v1", api_key=KEY, max_retries=0) as client:
            whole = await client.chat.completions.create(model="async-m", messages=HI)
            stream = await client.chat.completions.create(model="async-m", messages=HI, stream=True)
            streamed = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
            return whole.choices[0].message.content, streamed

    whole, streamed = asyncio.run(run())
    assert whole == streamed and whole is not None and whole.startswith("[async-m]")


# -- other endpoints ------------------------------------------------------------


def test_legacy_completions_whole_and_streamed(client: openai.OpenAI, http: httpx.Client) -> None:
    raw = client.completions.with_raw_response.create(model="m", prompt=["Say hi", "Say bye"], n=2, max_tokens=50)
    validate("CreateCompletionResponse", raw.http_response.json())
    completion = raw.parse()
    assert [c.text for c in completion.choices] == ["[m] Here is a short answer to: Say hi"] * 2 + [
        "[m] Here is a short answer to: Say bye"
    ] * 2
    streamed = http.post("/v1/completions", json={"model": "m", "prompt": "Say hi", "stream": True})
    chunks = chunks_of(streamed)
    assert {c["object"] for c in chunks} == {"text_completion"}
    assert "".join(c["choices"][0]["text"] for c in chunks) == completion.choices[0].text
    assert [c["choices"][0]["finish_reason"] for c in chunks][-2:] == [None, "stop"]


def test_embeddings_are_deterministic_unit_vectors(client: openai.OpenAI, http: httpx.Client) -> None:
    body = {"model": "embed", "input": ["hello", [1, 2, 3]], "dimensions": 8}
    raw = http.post("/v1/embeddings", json=body).json()
    validate("CreateEmbeddingResponse", raw)
    vectors = [item["embedding"] for item in raw["data"]]
    assert [len(v) for v in vectors] == [8, 8] and vectors[0] != vectors[1]
    assert sum(x * x for x in vectors[0]) == pytest.approx(1.0, abs=1e-5)
    decoded = client.embeddings.create(model="embed", input=["hello", [1, 2, 3]], dimensions=8)  # asks base64
    assert [d.embedding for d in decoded.data] == vectors
    assert raw["usage"] == {"prompt_tokens": 5, "total_tokens": 5}
    assert len(client.embeddings.create(model="embed", input="x").data[0].embedding) == 16


def test_models_list_and_retrieve(client: openai.OpenAI, http: httpx.Client) -> None:
    client.chat.completions.create(model="asked", messages=HI)
    listed = http.get("/v1/models").json()
    validate("ListModelsResponse", listed)
    assert [m["id"] for m in listed["data"]] == ["listed", "asked"]
    model = client.models.retrieve("org/some-model")
    validate("Model", model.model_dump())
    assert model.id == "org/some-model" and model.owned_by == "unit"


# -- errors ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"messages": HI}, "model"),
        ({"model": "m", "messages": []}, "messages"),
        ({"model": "m", "messages": HI, "n": 0}, "n"),
        (
            {"model": "m", "messages": HI, "tools": [WEATHER], "tool_choice": {"function": {"name": "nope"}}},
            "tool_choice",
        ),
    ],
)
def test_bad_requests_name_the_parameter(http: httpx.Client, body: dict[str, Any], param: str) -> None:
    response = http.post("/v1/chat/completions", json=body)
    assert response.status_code == 400
    validate("ErrorResponse", response.json())
    assert response.json()["error"]["param"] == param
    assert response.json()["error"]["type"] == "invalid_request_error"


def test_wrong_key_unknown_route_and_bad_json(make_client: Callable[..., openai.OpenAI], http: httpx.Client) -> None:
    with pytest.raises(openai.AuthenticationError) as denied:
        make_client(api_key="wrong").chat.completions.create(model="m", messages=HI)
    validate("ErrorResponse", denied.value.response.json())
    assert denied.value.code == "invalid_api_key"
    responses = [http.get("/v1/nowhere"), http.get("/v1/chat/completions"), http.post("/v1/embeddings", content=b"{")]
    for response in responses:
        validate("ErrorResponse", response.json())
    assert [r.status_code for r in responses] == [404, 405, 400]


# -- faults ---------------------------------------------------------------------


def test_500_then_success_with_sdk_retry(make_client: Callable[..., openai.OpenAI], control: Control) -> None:
    control.inject(Fault(status=500, retry_after=0.01))
    completion = make_client(max_retries=1).chat.completions.create(model="m", messages=HI)
    assert completion.choices[0].message.content
    assert control.count("m") == 2 and control.pending_faults() == []


def test_429_carries_retry_after_and_an_openai_error(http: httpx.Client, control: Control) -> None:
    control.inject(Fault(status=429, retry_after=2, message="slow down"))
    response = http.post("/v1/chat/completions", json={"model": "m", "messages": HI})
    assert response.status_code == 429
    assert response.headers["retry-after"] == "2" and response.headers["retry-after-ms"] == "2000"
    validate("ErrorResponse", response.json())
    assert response.json()["error"]["message"] == "slow down"


def test_fault_for_one_model_spares_the_others(client: openai.OpenAI, control: Control) -> None:
    control.inject(Fault(status=503, model="sick", times=2))
    assert client.chat.completions.create(model="healthy", messages=HI).choices
    for _ in range(2):
        with pytest.raises(openai.InternalServerError):
            client.chat.completions.create(model="sick", messages=HI)
    assert client.chat.completions.create(model="sick", messages=HI).choices
    assert control.counts() == {"healthy": 1, "sick": 3}


def test_delay_triggers_a_client_timeout(make_client: Callable[..., openai.OpenAI], control: Control) -> None:
    control.inject(Fault(delay=2.0))
    started = time.monotonic()
    with pytest.raises(openai.APITimeoutError):
        make_client(timeout=0.2).chat.completions.create(model="m", messages=HI)
    assert time.monotonic() - started < 1.5
    assert make_client().chat.completions.create(model="m", messages=HI).choices


def test_stream_drops_after_k_chunks(client: openai.OpenAI, control: Control) -> None:
    control.inject(Fault(drop_after=2))
    chunks = iter(client.chat.completions.create(model="m", messages=HI, stream=True))
    first, second = next(chunks), next(chunks)
    assert first.choices[0].delta.role == "assistant" and second.choices[0].delta.content
    with pytest.raises(openai.APIConnectionError):
        next(chunks)


def test_whole_answer_drop_is_a_connection_error(client: openai.OpenAI, control: Control) -> None:
    control.inject(Fault(drop_after=0))
    with pytest.raises(openai.APIConnectionError):
        client.chat.completions.create(model="m", messages=HI)


def test_chunk_gap_paces_the_stream(http: httpx.Client, control: Control) -> None:
    control.set_timing(chunk_gap=0.02)
    started = time.monotonic()
    chunks = stream_chat(http)
    assert time.monotonic() - started >= 0.02 * (len(chunks) - 1)
