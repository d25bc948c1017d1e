"""What self-hosted servers (vLLM, SGLang, Ollama, llama.cpp, TGI) do differently, through the gateway.

The OpenAI stand-in with its quirk switches (gateway/standin/quirks.py) plays each server: reasoning fields
(``reasoning_content``, ``reasoning``) pass through untouched, ``tool_choice: required`` reaches the server
as written, a stream without usage is settled with an estimate that the audit and metrics mark, and Ollama's
OpenAI API lives under ``/v1`` (a base_url without it is named at start).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from gateway.standin.control import Control
from gateway.standin.openai_wire import create_openai_app
from gateway.standin.quirks import THINKING, Quirks
from gateway.standin.server import ThreadedServer
from tests.factories import deployment, model
from tests.upstream.providers.matrix import (
    ASK_WEATHER,
    HELLO,
    WEATHER,
    Gateway,
    provider_gateway,
    streamed_arguments,
    streamed_text,
)

MODEL = "qwen3-32b"
UPSTREAM = "Qwen/Qwen3-32B"


ANSWER = f"[{UPSTREAM}] Here is a short answer to: Say hello"
Served = tuple[Control, str, Gateway]  # the stand-in's control and URL, the gateway in front of it


@contextmanager
def served(directory: Path, quirks: Quirks, *, base_path: str = "/v1") -> Iterator[Served]:
    """A stand-in with ``quirks`` as the self-hosted deployment of MODEL, and a gateway in front of it."""
    control = Control()
    with ThreadedServer(create_openai_app(control, name="vllm", models=[UPSTREAM], quirks=quirks)) as upstream:
        deployments = {"qwen3-32b-vllm": deployment(MODEL, upstream.url + base_path, upstream_model=UPSTREAM)}
        models = {MODEL: model("CN", "strong", 0.2, vendor="Alibaba")}
        with provider_gateway(directory, models, deployments, {}) as gateway:
            yield control, upstream.url, gateway


def through(gateway: Gateway, **body: Any) -> Any:
    answer = httpx.post(gateway.url + "/v1/chat/completions", json={"model": MODEL, **body},
                        headers={"authorization": "Bearer matrix-key"})  # fmt: skip
    assert answer.status_code == 200, answer.text
    return answer.json()


def direct(url: str, **body: Any) -> Any:
    return httpx.post(url + "/v1/chat/completions", json={"model": UPSTREAM, **body}).json()


def deltas(chunks: list[Any]) -> list[Any]:
    return [c.choices[0].delta.model_dump(exclude_unset=True) for c in chunks if c.choices]


@pytest.mark.parametrize("field", ["reasoning_content", "reasoning"])
def test_a_reasoning_field_passes_through_untouched(tmp_path: Path, field: Any) -> None:
    with served(tmp_path, Quirks(reasoning=field)) as (_, url, gateway):
        answer = through(gateway, messages=HELLO)
        assert answer["choices"][0]["message"] == direct(url, messages=HELLO)["choices"][0]["message"]
        assert answer["choices"][0]["message"][field] == THINKING
        assert answer["choices"][0]["message"]["content"] == ANSWER


@pytest.mark.parametrize("field", ["reasoning_content", "reasoning"])
def test_a_streamed_reasoning_field_passes_through_untouched(tmp_path: Path, field: Any) -> None:
    with served(tmp_path, Quirks(reasoning=field)) as (_, url, gateway), gateway.client() as client:
        chunks = list(client.chat.completions.create(model=MODEL, messages=HELLO, stream=True))
        with openai.OpenAI(base_url=url + "/v1", api_key="none", max_retries=0) as upstream:
            expected = list(upstream.chat.completions.create(model=UPSTREAM, messages=HELLO, stream=True))
    assert deltas(chunks) == deltas(expected)
    assert "".join(d.get(field) or "" for d in deltas(chunks)) == THINKING
    assert streamed_text(chunks) == ANSWER


def test_tool_choice_required_reaches_the_server_as_written(tmp_path: Path) -> None:
    with served(tmp_path, Quirks()) as (control, _, gateway), gateway.client() as client:
        completion = client.chat.completions.create(
            model=MODEL, messages=ASK_WEATHER, tools=[WEATHER], tool_choice="required"
        )
        chunks = list(client.chat.completions.create(
            model=MODEL, messages=ASK_WEATHER, tools=[WEATHER], tool_choice="required", stream=True
        ))  # fmt: skip
        sent = [call.body["tool_choice"] for call in control.calls()]
    assert sent == ["required", "required"]
    assert completion.choices[0].finish_reason == "tool_calls" and completion.choices[0].message.tool_calls
    assert json.loads(streamed_arguments(chunks)) == {"city": "example"}
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "tool_calls"


def test_a_stream_without_usage_is_estimated_and_marked(tmp_path: Path) -> None:
    """TGI and older Ollama or llama.cpp builds end a stream without usage, whatever stream_options asks."""
    with served(tmp_path, Quirks(reasoning="reasoning", stream_usage=False)) as (control, _, gateway):
        with gateway.client() as client:
            chunks = list(client.chat.completions.create(model=MODEL, messages=HELLO, stream=True,
                                                         stream_options={"include_usage": True}))  # fmt: skip
        entry = gateway.last_entry(1)
        assert control.calls()[0].body["stream_options"] == {"include_usage": True}
        assert entry["usage_estimated"] == "usage_missing" and entry["cost_usd"] > 0
        assert entry["input_tokens"] == 2  # the gateway's estimate of "Say hello", 9 characters
        assert entry["output_tokens"] >= -(-len(THINKING + ANSWER) // 4)  # the thinking counts as output
        assert gateway.metric("gateway_usage_estimated_total", reason="usage_missing", deployment="qwen3-32b-vllm") == 1
    assert streamed_text(chunks) == ANSWER
    assert not any(c.usage for c in chunks)  # the gateway does not make up a usage chunk for the client


def test_a_stream_with_usage_is_the_servers_own(tmp_path: Path) -> None:
    with served(tmp_path, Quirks(reasoning="reasoning_content")) as (_, _url, gateway), gateway.client() as client:
        chunks = list(client.chat.completions.create(model=MODEL, messages=HELLO, stream=True,
                                                     stream_options={"include_usage": True}))  # fmt: skip
        entry = gateway.last_entry(1)
    assert chunks[-1].usage is not None and entry["usage_estimated"] is None
    assert entry["output_tokens"] == chunks[-1].usage.completion_tokens


@pytest.mark.parametrize("base_path", ["/v1", "/v1/"])
def test_a_base_url_with_v1_reaches_ollamas_openai_api(tmp_path: Path, base_path: str) -> None:
    with served(tmp_path, Quirks(reasoning="reasoning"), base_path=base_path) as (control, _, gateway):
        assert through(gateway, messages=HELLO)["choices"][0]["message"]["content"] == ANSWER
        assert control.calls()[0].path == "/v1/chat/completions"


def test_a_base_url_without_v1_is_named_at_start(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Ollama (like vLLM, SGLang and TGI) serves the OpenAI API under /v1 only: ``http://ollama:11434`` finds
    nothing. The model check at start says so, naming the base_url to write; calls fail over as unavailable."""
    with caplog.at_level(logging.WARNING, "gateway.health"), served(tmp_path, Quirks(), base_path="") as served_:
        _, url, gateway = served_
        with pytest.raises(openai.APIStatusError) as raised, gateway.client() as client:
            client.chat.completions.create(model=MODEL, messages=HELLO)
    assert raised.value.status_code == 503 and "qwen3-32b-vllm" in raised.value.message
    [warning] = [r.getMessage() for r in caplog.records if r.name == "gateway.health"]
    assert f"{url}/models answered 404" in warning and f"base_url should probably be {url}/v1" in warning


def test_a_base_url_with_v1_is_not_named_at_start(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, "gateway.health"), served(tmp_path, Quirks()):
        pass
    assert not [r for r in caplog.records if r.name == "gateway.health"]
