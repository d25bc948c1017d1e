"""The official openai SDK's Responses API against /v1/responses: routed like chat, answered in the Responses shape.

Every body and stream event is checked against the Responses schemas of OpenAI's OpenAPI document."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from gateway.standin.control import Fault
from tests.conftest import OPENAI_KEY, ClientFactory, GatewayFactory, Upstreams
from tests.factories import deployment, small_policy, tenant
from tests.oaschema import validate

WEATHER: Any = {
    "type": "function",
    "name": "get_weather",
    "description": "Weather in a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}
CITY: Any = {
    "type": "json_schema",
    "name": "city",
    "schema": {"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]},
    "strict": True,
}


def create(client: openai.OpenAI, **fields: Any) -> Any:
    """``responses.create`` whose wire body is checked against the Response schema (the SDK's model_dump adds
    nulls of its own, so the raw JSON is what is validated)."""
    raw = client.responses.with_raw_response.create(**fields)
    validate("Response", raw.http_response.json())
    return raw.parse()


def raw_events(url: str, body: dict[str, Any]) -> list[dict[str, Any]]:
    """The stream's events as sent, each checked against ResponseStreamEvent and its ``event:`` name."""
    events = []
    with httpx.stream("POST", url + "/v1/responses", json=body | {"stream": True}, headers=_key(), timeout=30) as reply:
        assert reply.status_code == 200
        name = None
        for line in reply.iter_lines():
            if line.startswith("event: "):
                name = line.removeprefix("event: ")
            elif line.startswith("data: "):
                event = json.loads(line.removeprefix("data: "))
                validate("ResponseStreamEvent", event)
                assert event["type"] == name
                events.append(event)
    return events


@pytest.fixture(scope="module")
def gateway(
    _upstreams: Upstreams, make_gateway: GatewayFactory, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """Open models on the chat stand-ins a and b; ``frontier`` on c, which speaks the Responses API itself."""
    urls = _upstreams.v1()
    frontier = deployment(
        "frontier", urls["c"], self_hosted=False, operator="Frontier Inc", api="responses", api_key_env="OPENAI_API_KEY"
    )
    deployments = {
        "cn-open-a": deployment("cn-open", urls["a"]),
        "us-open-a": deployment("us-open", urls["a"]),
        "frontier-api": frontier,
    }
    tenants = {
        "open": tenant("open-key"),
        "other": tenant("other-key"),
        "cached": tenant("cached-key", cache={"ttl_seconds": 60}),
    }
    directory = small_policy(tmp_path_factory.mktemp("responses"), urls, deployments=deployments, tenants=tenants)
    with make_gateway(directory, {"OPENAI_API_KEY": OPENAI_KEY}) as url:
        yield url


@pytest.fixture
def client(gateway: str, upstreams: Upstreams, make_client: ClientFactory) -> openai.OpenAI:
    return make_client(gateway, "open-key")


def test_text_is_routed_by_policy(client: openai.OpenAI, upstreams: Upstreams) -> None:
    raw = client.responses.with_raw_response.create(
        model="auto", input="What is the capital of France?", instructions="Be brief.", metadata={"app": "t"}
    )
    validate("Response", raw.http_response.json())
    response = raw.parse()
    assert raw.headers["x-gateway-deployment"] == "cn-open-a"
    assert response.status == "completed" and response.model == "cn-open"
    assert "capital of France" in response.output_text
    assert response.id.startswith("resp_") and response.metadata == {"app": "t"}
    assert response.usage and response.usage.input_tokens > 0 and response.usage.output_tokens > 0
    sent = upstreams.controls["a"].calls()[0].body
    assert sent["messages"][0] == {"role": "system", "content": "Be brief."}
    assert sent["messages"][1] == {"role": "user", "content": "What is the capital of France?"}


def test_sampling_fields_are_translated(client: openai.OpenAI, upstreams: Upstreams) -> None:
    response = create(
        client,
        model="auto",
        input=[{"role": "user", "content": [{"type": "input_text", "text": "Hello there"}]}],
        max_output_tokens=3,
        temperature=0.2,
        top_p=0.5,
        user="u-1",
        reasoning={"effort": "low"},
    )
    assert response.status == "incomplete" and response.incomplete_details
    assert response.incomplete_details.reason == "max_output_tokens"
    sent = upstreams.controls["a"].calls()[0].body
    assert sent["max_tokens"] == 3 and sent["temperature"] == 0.2 and sent["top_p"] == 0.5
    assert sent["user"] == "u-1" and sent["reasoning_effort"] == "low"
    assert sent["messages"] == [{"role": "user", "content": "Hello there"}]


def test_json_schema_output(client: openai.OpenAI, upstreams: Upstreams) -> None:
    response = create(client, model="auto", input="Name a city.", text={"format": CITY})
    assert set(json.loads(response.output_text)) == {"name"}
    sent = upstreams.controls["a"].calls()[0].body
    assert sent["response_format"]["type"] == "json_schema"
    assert sent["response_format"]["json_schema"]["name"] == "city"


def test_function_tool_loop(client: openai.OpenAI, upstreams: Upstreams) -> None:
    first = create(client, model="auto", input="Weather in Paris?", tools=[WEATHER])
    call = next(item for item in first.output if item.type == "function_call")
    assert call.name == "get_weather" and "city" in json.loads(call.arguments)
    second = create(
        client,
        model="auto",
        tools=[WEATHER],
        store=False,
        input=[
            {"role": "user", "content": "Weather in Paris?"},
            *[item.model_dump(exclude_none=True) for item in first.output],
            {"type": "function_call_output", "call_id": call.call_id, "output": "18C, sunny"},
        ],
    )
    assert second.status == "completed" and second.output_text
    sent = upstreams.controls["a"].calls()[-1].body["messages"]
    assert sent[1]["tool_calls"][0]["id"] == call.call_id
    assert sent[2] == {"role": "tool", "tool_call_id": call.call_id, "content": "18C, sunny"}


def test_previous_response_id_continues_the_conversation(
    client: openai.OpenAI, gateway: str, upstreams: Upstreams
) -> None:
    first = client.responses.create(model="auto", input="Weather in Paris?", tools=[WEATHER], instructions="Be brief.")
    call = next(item for item in first.output if item.type == "function_call")
    output = {"type": "function_call_output", "call_id": call.call_id, "output": "18C"}
    second = client.responses.create(model="auto", previous_response_id=first.id, input=[output], tools=[WEATHER])
    assert second.previous_response_id == first.id and second.output_text
    sent = upstreams.controls["a"].calls()[-1].body["messages"]
    assert [m["role"] for m in sent] == ["user", "assistant", "tool"], "instructions are not carried over"
    assert client.responses.retrieve(second.id).output_text == second.output_text
    listed = httpx.get(f"{gateway}/v1/responses/{second.id}/input_items", headers=_key())
    validate("ResponseItemList", listed.json())
    items = client.responses.input_items.list(second.id, order="asc")
    assert [item.type for item in items.data] == ["message", "function_call", "function_call_output"]
    assert client.responses.delete(second.id) is None
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(second.id)


def test_stored_responses_are_per_tenant(gateway: str, client: openai.OpenAI, make_client: ClientFactory) -> None:
    mine = client.responses.create(model="auto", input="Hello")
    other = make_client(gateway, "other-key")
    with pytest.raises(openai.NotFoundError) as missing:
        other.responses.create(model="auto", previous_response_id=mine.id, input="And then?")
    assert missing.value.code == "previous_response_not_found"
    with pytest.raises(openai.NotFoundError):
        other.responses.retrieve(mine.id)
    unstored = client.responses.create(model="auto", input="Hello", store=False)
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(unstored.id)


def test_stream_with_the_sdk_helper(client: openai.OpenAI, gateway: str) -> None:
    with client.responses.stream(model="auto", input="What is the capital of France?") as stream:
        events = list(stream)
        final = stream.get_final_response()
    wire = raw_events(gateway, {"model": "auto", "input": "What is the capital of France?"})
    assert [e["type"] for e in wire] == [e.type for e in events], "the SDK sees the events as sent"
    kinds = [event.type for event in events]
    assert kinds[:4] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
    ]
    assert kinds[-4:] == [
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert [event.sequence_number for event in events] == list(range(len(events)))
    text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert "capital of France" in text and final.output_text == text
    assert final.usage and final.usage.output_tokens > 0
    assert client.responses.retrieve(final.id).output_text == text


def test_streamed_tool_call(client: openai.OpenAI, gateway: str) -> None:
    with client.responses.stream(model="auto", input="Weather in Paris?", tools=[WEATHER]) as stream:
        events = list(stream)
        final = stream.get_final_response()
    raw_events(gateway, {"model": "auto", "input": "Weather in Paris?", "tools": [WEATHER]})
    arguments = "".join(e.delta for e in events if e.type == "response.function_call_arguments.delta")
    call = final.output[0]
    assert call.type == "function_call" and call.arguments == arguments and "city" in json.loads(arguments)


def test_errors_are_api_status_errors(client: openai.OpenAI, gateway: str) -> None:
    with pytest.raises(openai.BadRequestError) as bad:
        client.responses.create(model="auto", input="hi", temperature="hot")  # type: ignore[arg-type]
    assert bad.value.body["param"] == "temperature"  # type: ignore[index]
    with pytest.raises(openai.BadRequestError) as hosted:
        client.responses.create(model="auto", input="hi", tools=[{"type": "web_search"}])
    assert hosted.value.body["param"] == "tools[0].type"  # type: ignore[index]
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=gateway + "/v1", api_key="wrong", max_retries=0).responses.create(
            model="auto", input="hi"
        )
    with pytest.raises(openai.APIStatusError) as denied:
        client.responses.create(model="no-such-model", input="hi")
    assert denied.value.status_code in (403, 404)
    answer = httpx.post(gateway + "/v1/responses", json={"model": "auto", "input": 3}, headers=_key())
    assert answer.status_code == 400 and answer.json()["error"]["param"] == "input"


def _key() -> dict[str, str]:
    return {"authorization": "Bearer open-key"}


def test_a_responses_deployment_gets_the_clients_body(client: openai.OpenAI, upstreams: Upstreams) -> None:
    """No double translation: the body reaches the Responses deployment as the client sent it (but for the
    model), and its answer reaches the client as it answered (but for the catalog model)."""
    first = create(client, model="frontier", input="Weather in Paris?", tools=[WEATHER], include=["x.y"], store=True)
    assert first.model == "frontier" and first.output[0].type == "function_call"
    sent = upstreams.controls["c"].calls()[0]
    assert sent.path == "/v1/responses" and sent.headers["authorization"] == f"Bearer {OPENAI_KEY}"
    assert sent.body == {
        "model": "frontier",
        "input": "Weather in Paris?",
        "tools": [WEATHER],
        "include": ["x.y"],
        "store": True,
    }
    output = {"type": "function_call_output", "call_id": first.output[0].call_id, "output": "18C"}  # type: ignore[union-attr]
    second = create(client, model="frontier", previous_response_id=first.id, input=[output], tools=[WEATHER])
    assert second.previous_response_id == first.id and second.output_text
    resolved = upstreams.controls["c"].calls()[1].body
    assert "previous_response_id" not in resolved, "the gateway keeps the chain; the deployment gets it in input"
    assert [item.get("type", "message") for item in resolved["input"]] == [
        "message",
        "function_call",
        "function_call_output",
    ]
    assert client.responses.retrieve(second.id).output_text == second.output_text


def test_a_passed_stream_works_with_the_sdk_helper(client: openai.OpenAI, gateway: str, upstreams: Upstreams) -> None:
    with client.responses.stream(model="frontier", input="What is the capital of France?") as stream:
        text = "".join(e.delta for e in stream if e.type == "response.output_text.delta")
        final = stream.get_final_response()
    assert "capital of France" in text and final.output_text == text and final.model == "frontier"
    assert upstreams.controls["c"].calls()[0].path == "/v1/responses"
    assert client.responses.retrieve(final.id).output_text == text
    raw_events(gateway, {"model": "frontier", "input": "Hi"})


@pytest.mark.parametrize("model", ["cn-open", "frontier"])
def test_a_stream_that_breaks_ends_with_response_failed(
    client: openai.OpenAI, gateway: str, upstreams: Upstreams, model: str
) -> None:
    stand_in = upstreams.controls["c" if model == "frontier" else "a"]
    stand_in.inject(Fault(drop_after=4))
    with client.responses.stream(model=model, input="What is the capital of France?") as stream:
        events = list(stream)
        with pytest.raises(RuntimeError):
            stream.get_final_response()
    assert events[-1].type == "response.failed" and events[-1].response.status == "failed"  # type: ignore[union-attr]
    assert events[-1].response.error and events[-1].response.error.code == "server_error"  # type: ignore[union-attr]
    stand_in.inject(Fault(drop_after=4))
    wire = raw_events(gateway, {"model": model, "input": "What is the capital of France?"})
    assert wire[-1]["type"] == "response.failed"


def test_fields_are_checked_before_any_upstream_is_called(gateway: str, upstreams: Upstreams) -> None:
    bad: list[tuple[dict[str, Any], str]] = [
        ({"temperature": 3}, "temperature"),
        ({"max_output_tokens": 0}, "max_output_tokens"),
        ({"metadata": {"k": 1}}, "metadata"),
        ({"store": "yes"}, "store"),
        ({"truncation": "sometimes"}, "truncation"),
        ({"previous_response_id": 7}, "previous_response_id"),
        ({"tool_choice": "always"}, "tool_choice"),
        ({"text": {"format": {"type": "yaml"}}}, "text.format.type"),
        ({"input": [{"type": "function_call_output", "output": "x"}]}, "input[0].call_id"),
    ]
    for fields, param in bad:
        answer = httpx.post(gateway + "/v1/responses", json={"model": "auto", "input": "hi"} | fields, headers=_key())
        assert answer.status_code == 400, fields
        error = answer.json()["error"]
        assert error["param"] == param and error["type"] == "invalid_request_error", fields
    assert upstreams.controls["a"].count() == 0
    fine = {"model": "auto", "input": "hi", "vendor_field": {"any": "thing"}, "truncation": "disabled"}
    assert httpx.post(gateway + "/v1/responses", json=fine, headers=_key()).status_code == 200


@pytest.mark.parametrize("model", ["cn-open", "frontier"])
def test_cached_answers_are_new_responses(
    gateway: str, make_client: ClientFactory, upstreams: Upstreams, model: str
) -> None:
    cached = make_client(gateway, "cached-key")
    first = cached.responses.with_raw_response.create(model=model, input="Cache me")
    again = cached.responses.with_raw_response.create(model=model, input="Cache me")
    assert first.headers["x-gateway-cache"] == "miss" and again.headers["x-gateway-cache"] == "hit"
    validate("Response", again.http_response.json())
    one, two = first.parse(), again.parse()
    assert one.output_text == two.output_text and one.id != two.id
    assert cached.responses.retrieve(two.id).output_text == two.output_text
    assert upstreams.controls["c" if model == "frontier" else "a"].count() == 1


def test_answers_are_accounted_with_their_usage(client: openai.OpenAI, gateway: str) -> None:
    """Tokens reach the metrics, for translated and passed answers, whole and streamed."""

    def tokens(dep: str) -> float:
        text = httpx.get(gateway + "/metrics").text
        lines = [ln for ln in text.splitlines() if ln.startswith("gateway_tokens_total") and f'"{dep}"' in ln]
        return sum(float(ln.rsplit(" ", 1)[1]) for ln in lines)

    for model, dep in (("cn-open", "cn-open-a"), ("frontier", "frontier-api")):
        before = tokens(dep)
        whole = client.responses.create(model=model, input="What is the capital of France?")
        with client.responses.stream(model=model, input="What is the capital of France?") as stream:
            streamed = stream.get_final_response()
        assert whole.usage and streamed.usage
        assert tokens(dep) - before == whole.usage.total_tokens + streamed.usage.total_tokens, model


def test_stored_responses_live_the_policys_ttl(
    _upstreams: Upstreams, make_gateway: GatewayFactory, make_client: ClientFactory, tmp_path: Path
) -> None:
    limits = {"max_body_bytes": 65536, "request_deadline_seconds": 10, "responses_ttl_seconds": 0.5}
    with make_gateway(small_policy(tmp_path, _upstreams.v1(), limits=limits), {}) as url:
        client = make_client(url, "open-key")
        first = client.responses.create(model="cn-open", input="Hello")
        assert client.responses.retrieve(first.id).id == first.id
        time.sleep(0.8)
        with pytest.raises(openai.NotFoundError):
            client.responses.create(model="cn-open", previous_response_id=first.id, input="And then?")
