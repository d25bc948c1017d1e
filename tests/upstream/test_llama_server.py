"""Through the gateway to a real llama.cpp ``llama-server`` (tests/llamacpp.py: built from the llama-cpp-python
sdist, a tiny random-weight model), with the official openai SDK, compared with the same request sent directly.

The server runs with a physical batch of 64 tokens and 512 tokens of context per slot, so that an embedding
input over 64 tokens gets llama.cpp's own 500 "input (N tokens) is too large to process" and a long prompt its
400 ``exceed_context_size_error``: the errors of issue #20 from the real server, not a stand-in's imitation.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from gateway.http.app import create_app
from gateway.settings import Settings
from gateway.standin.server import ThreadedServer
from tests.audit_file import audit_entries
from tests.conftest import Upstreams
from tests.factories import deployment, model, small_policy, tenant
from tests.llamacpp import LlamaServer

CONTEXT = 512
HI = [{"role": "user", "content": "What is the capital of France?"}]
SAME = {"temperature": 0, "seed": 7, "max_tokens": 8}
LONG = "hello world " * 600  # ~1,200 tokens: over the context and over the batch


@pytest.fixture(scope="module")
def llama() -> Iterator[LlamaServer]:
    server = LlamaServer.start(context=CONTEXT, parallel=4, extra=("--pooling", "mean", "-ub", "64", "-b", "64"))
    yield server
    server.stop()


@pytest.fixture
def gateway(tmp_path: Path, llama: LlamaServer, upstreams: Upstreams) -> Iterator[str]:
    v1 = upstreams.v1()
    models: dict[str, Any] = {
        "tiny": model("US", "basic", 0.1, endpoints=["chat", "completions", "embeddings"]),
        "us-open": model("US", "strong", 0.2),
        "cn-open": model("CN", "basic", 0.1),
        "frontier": model("US", "frontier", 2.0),
    }
    deployments = {
        "tiny-llama": deployment("tiny", llama.url + "/v1", max_retries=2),
        "tiny-standin": deployment("tiny", v1["b"], price={"input": 1.0, "output": 2.0}),  # the fallback
        "us-open-b": deployment("us-open", v1["b"]),
        "cn-open-b": deployment("cn-open", v1["b"]),
        "frontier-api": deployment("frontier", v1["b"], self_hosted=False, operator="F"),
    }
    state = {"breaker": {"failures": 2, "window_seconds": 30, "cooldown_seconds": 60}}
    policy = small_policy(
        tmp_path / "p", v1, models=models, deployments=deployments, tenants={"open": tenant("open-key")}, state=state
    )
    settings = Settings(
        policies=policy, reload_seconds=0, audit_log=str(tmp_path / "audit.jsonl"), audit_flush_seconds=0
    )
    with ThreadedServer(create_app(settings, env={})) as server:
        yield server.url


def clients(gateway: str, llama: LlamaServer) -> tuple[openai.OpenAI, openai.OpenAI]:
    through = openai.OpenAI(base_url=gateway + "/v1", api_key="open-key", max_retries=0)
    direct = openai.OpenAI(base_url=llama.url + "/v1", api_key="none", max_retries=0)
    return through, direct


def audit(tmp_path: Path) -> list[dict[str, Any]]:
    return audit_entries(tmp_path / "audit.jsonl", writing=True)


def eventually(found: Callable[[], list[dict[str, Any]]], seconds: float = 5.0) -> list[dict[str, Any]]:
    """What ``found`` returns once it is not empty: settlement and the audit line follow the response."""
    deadline = time.monotonic() + seconds
    while not (result := found()) and time.monotonic() < deadline:
        time.sleep(0.02)
    return result


def test_a_chat_answer_is_the_servers_own(gateway: str, llama: LlamaServer) -> None:
    through, direct = clients(gateway, llama)
    via = through.chat.completions.with_raw_response.create(model="tiny", messages=HI, **SAME)  # type: ignore[arg-type]
    assert via.headers["x-gateway-deployment"] == "tiny-llama"
    got, expected = via.parse(), direct.chat.completions.create(model="tiny", messages=HI, **SAME)  # type: ignore[arg-type]
    assert [c.message.content for c in got.choices] == [c.message.content for c in expected.choices]
    assert [c.finish_reason for c in got.choices] == [c.finish_reason for c in expected.choices] == ["length"]
    assert got.usage is not None and expected.usage is not None
    assert (got.usage.prompt_tokens, got.usage.completion_tokens) == (expected.usage.prompt_tokens, 8)
    assert "timings" in (got.model_extra or {}), "llama.cpp's own fields pass through"


@pytest.mark.parametrize("usage", [True, False], ids=["include_usage", "no_usage"])
def test_a_stream_is_the_servers_own_chunk_for_chunk(gateway: str, llama: LlamaServer, usage: bool) -> None:
    through, direct = clients(gateway, llama)
    options: dict[str, Any] = {"stream_options": {"include_usage": True}} if usage else {}

    def chunks(client: openai.OpenAI) -> list[Any]:
        return list(client.chat.completions.create(model="tiny", messages=HI, stream=True, **SAME, **options))  # type: ignore[arg-type, call-overload]

    got, expected = chunks(through), chunks(direct)
    assert len(got) == len(expected)
    for mine, theirs in zip(got, expected, strict=True):
        assert [c.delta.content for c in mine.choices] == [c.delta.content for c in theirs.choices]
        assert [c.finish_reason for c in mine.choices] == [c.finish_reason for c in theirs.choices]
        assert (mine.usage is None) == (theirs.usage is None)
        if theirs.usage is not None:
            assert mine.usage.completion_tokens == theirs.usage.completion_tokens == 8
    with_timings = [i for i, c in enumerate(expected) if "timings" in (c.model_extra or {})]
    assert with_timings and [i for i, c in enumerate(got) if "timings" in (c.model_extra or {})] == with_timings


def test_completions_and_embeddings_are_the_servers_own(gateway: str, llama: LlamaServer) -> None:
    through, direct = clients(gateway, llama)
    text = [through.completions.create(model="tiny", prompt="hello", **SAME).choices[0].text]  # type: ignore[arg-type]
    assert text == [direct.completions.create(model="tiny", prompt="hello", **SAME).choices[0].text]  # type: ignore[arg-type]
    vector = through.embeddings.create(model="tiny", input="hello").data[0].embedding
    assert vector == direct.embeddings.create(model="tiny", input="hello").data[0].embedding
    assert len(vector) == 64


def test_a_prompt_over_the_context_is_400_context_length_exceeded(
    gateway: str, llama: LlamaServer, upstreams: Upstreams
) -> None:
    through, _ = clients(gateway, llama)
    with pytest.raises(openai.BadRequestError) as info:
        through.chat.completions.create(model="tiny", messages=[{"role": "user", "content": LONG}])
    error = info.value.response.json()["error"]
    assert error["code"] == "context_length_exceeded"
    assert f"has a context size of {CONTEXT} tokens" in error["message"]
    assert upstreams.controls["b"].count() == 0, "no fallback"


def test_an_embedding_over_the_batch_is_400_and_leaves_the_server_in_rotation(
    gateway: str, llama: LlamaServer, upstreams: Upstreams
) -> None:
    """llama.cpp answers 500 for it: before, each such request was retried twice and two opened the breaker."""
    headers = {"authorization": "Bearer open-key"}
    for _ in range(3):
        answer = httpx.post(gateway + "/v1/embeddings", json={"model": "tiny", "input": LONG}, headers=headers)
        assert answer.status_code == 400 and answer.json()["error"]["code"] == "upstream_rejected"
    answer = httpx.post(gateway + "/v1/embeddings", json={"model": "tiny", "input": "hello"}, headers=headers)
    assert answer.status_code == 200 and answer.headers["x-gateway-deployment"] == "tiny-llama"
    assert upstreams.controls["b"].count() == 0


def test_a_stream_the_client_leaves_is_settled_with_estimated_usage(
    gateway: str, llama: LlamaServer, tmp_path: Path
) -> None:
    body = {"model": "tiny", "messages": HI, "stream": True, "max_tokens": 400, "temperature": 0}
    with httpx.stream(
        "POST", gateway + "/v1/chat/completions", json=body, headers={"authorization": "Bearer open-key"}
    ) as response:
        events = 0
        for line in response.iter_lines():
            events += line.startswith("data: ")
            if events == 4:
                break  # the client goes away mid-stream
    (entry,) = eventually(lambda: [e for e in audit(tmp_path) if e["endpoint"] == "chat"])
    assert entry["usage_estimated"] == "client_cancelled"
    assert entry["input_tokens"] > 0 and 3 <= entry["output_tokens"] < 400
