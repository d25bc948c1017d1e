"""Strict validation at the edge: a bad value of a field the API defines is a 400 in that API's error shape,
naming the field, and no upstream is called; unknown fields still reach the upstream untouched."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.conftest import Upstreams
from tests.oaschema import validate

CHAT = {"model": "auto", "messages": [{"role": "user", "content": "hi"}]}
COMPLETION = {"model": "qwen3-32b", "prompt": "Once upon a time"}
EMBEDDING = {"model": "qwen3-embedding-8b", "input": "hello"}
MESSAGE = {"model": "auto", "max_tokens": 50, "messages": [{"role": "user", "content": "hi"}]}

OPENAI_CASES: list[tuple[str, dict[str, Any], dict[str, Any], str]] = [
    ("/v1/chat/completions", CHAT, {"temperature": "hot"}, "temperature"),
    ("/v1/chat/completions", CHAT, {"max_tokens": -1}, "max_tokens"),
    ("/v1/chat/completions", CHAT, {"n": 0}, "n"),
    ("/v1/chat/completions", CHAT, {"top_p": 1.5}, "top_p"),
    ("/v1/chat/completions", CHAT, {"stop": 7}, "stop"),
    ("/v1/chat/completions", CHAT, {"tool_choice": "always"}, "tool_choice"),
    ("/v1/chat/completions", CHAT, {"logit_bias": {"1": 500}}, "logit_bias"),
    ("/v1/chat/completions", CHAT, {"messages": "hi"}, "messages"),
    ("/v1/chat/completions", CHAT, {"messages": [{"role": "robot", "content": "hi"}]}, "messages[0].role"),
    ("/v1/chat/completions", CHAT, {"messages": [{"role": "user"}]}, "messages[0].content"),
    ("/v1/chat/completions", CHAT, {"messages": [{"role": "assistant", "content": None}]}, "messages[0].content"),
    ("/v1/completions", COMPLETION, {"temperature": "hot"}, "temperature"),
    ("/v1/completions", COMPLETION, {"best_of": 99}, "best_of"),
    ("/v1/completions", COMPLETION, {"logprobs": 9}, "logprobs"),
    ("/v1/completions", COMPLETION, {"echo": "yes"}, "echo"),
    ("/v1/embeddings", EMBEDDING, {"encoding_format": "int8"}, "encoding_format"),
    ("/v1/embeddings", EMBEDDING, {"dimensions": 0}, "dimensions"),
]


@pytest.fixture
def http(example_gateway: str) -> Any:
    with httpx.Client(base_url=example_gateway, timeout=10) as client:
        yield client


def _no_upstream_called(upstreams: Upstreams) -> None:
    assert sum(control.count() for control in upstreams.controls.values()) == 0


@pytest.mark.parametrize(
    ("path", "body", "fields", "param"), OPENAI_CASES, ids=[f"{c[0]}:{c[3]}" for c in OPENAI_CASES]
)
def test_openai_endpoints_refuse_a_bad_field_in_openais_shape(
    http: httpx.Client, upstreams: Upstreams, path: str, body: dict[str, Any], fields: dict[str, Any], param: str
) -> None:
    answer = http.post(path, json=body | fields, headers={"authorization": "Bearer demo-key"})
    assert answer.status_code == 400
    error = answer.json()
    validate("ErrorResponse", error)
    assert error["error"]["param"] == param and error["error"]["type"] == "invalid_request_error"
    _no_upstream_called(upstreams)


MESSAGE_CASES: list[tuple[dict[str, Any], str]] = [
    ({"temperature": "hot"}, "temperature"),
    ({"temperature": 1.5}, "temperature"),
    ({"max_tokens": -1}, "max_tokens"),
    ({"top_k": -3}, "top_k"),
    ({"stop_sequences": "END"}, "stop_sequences"),
    ({"thinking": {"type": "enabled", "budget_tokens": 5}}, "thinking"),
    ({"messages": {"role": "user"}}, "messages"),
    ({"messages": [{"role": "robot", "content": "hi"}]}, "messages[0].role"),
    ({"messages": [{"role": "user"}]}, "messages[0].content"),
    ({"tool_choice": {"type": "sometimes"}}, "tool_choice"),
]


@pytest.mark.parametrize(("fields", "param"), MESSAGE_CASES, ids=[p for _, p in MESSAGE_CASES])
def test_messages_refuses_a_bad_field_in_anthropics_shape(
    http: httpx.Client, upstreams: Upstreams, fields: dict[str, Any], param: str
) -> None:
    answer = http.post("/v1/messages", json=MESSAGE | fields, headers={"x-api-key": "demo-key"})
    assert answer.status_code == 400
    body = answer.json()
    assert body["type"] == "error" and body["error"]["type"] == "invalid_request_error"
    assert body["error"]["param"] == param and f"{param.split('[', maxsplit=1)[0]}" in body["error"]["message"]
    assert body["request_id"] == answer.headers["x-request-id"]
    _no_upstream_called(upstreams)


def test_unknown_fields_still_pass_through(http: httpx.Client, upstreams: Upstreams) -> None:
    extra = {"top_k": 20, "min_p": 0.05, "chat_template_kwargs": {"enable_thinking": False}}
    answer = http.post(
        "/v1/chat/completions", json=CHAT | {"model": "qwen3-32b"} | extra, headers={"authorization": "Bearer demo-key"}
    )
    assert answer.status_code == 200
    sent = upstreams.controls["a"].calls()[0].body
    assert {k: sent[k] for k in extra} == extra


def test_an_upstream_400_keeps_its_param(http: httpx.Client, upstreams: Upstreams) -> None:
    # the stand-in refuses a tool_choice naming a tool it was not given, with param "tool_choice"
    tool = {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}
    fields = {"model": "qwen3-32b", "tools": [tool], "tool_choice": {"type": "function", "function": {"name": "g"}}}
    answer = http.post("/v1/chat/completions", json=CHAT | fields, headers={"authorization": "Bearer demo-key"})
    assert answer.status_code == 400 and upstreams.controls["a"].count() == 1
    error = answer.json()
    validate("ErrorResponse", error)
    assert error["error"]["param"] == "tool_choice" and error["error"]["code"] == "upstream_rejected"
    assert "not among the tools" not in error["error"]["message"], "the upstream's words stay server-side"
