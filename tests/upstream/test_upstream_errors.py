"""Errors that inference servers report about the request: what the client sees, and that the deployment stays healthy.

The upstream here answers like llama.cpp's ``llama-server`` (the bodies are the server's own): a prompt
over the context size is 400 ``exceed_context_size_error`` with ``n_prompt_tokens`` and ``n_ctx``; an
embedding input over the batch size is a 500 "input (N tokens) is too large to process"; anything
else is answered normally.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import httpx
import openai
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from gateway.standin.server import ThreadedServer
from tests.conftest import GatewayFactory, Upstreams
from tests.factories import deployment, model, small_policy, tenant
from tests.oaschema import validate

CONTEXT = 64  # tokens; the stand-in counts 4 characters a token
LONG = "word " * 200


class LlamaCppLike:
    def __init__(self) -> None:
        self.calls: list[str] = []

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/v1/chat/completions", self.chat, methods=["POST"]),
                Route("/v1/embeddings", self.embeddings, methods=["POST"]),
            ]
        )

    async def chat(self, request: Request) -> JSONResponse:
        body = await request.json()
        self.calls.append("chat")
        tokens = sum(len(str(m.get("content"))) for m in body["messages"]) // 4
        if tokens > CONTEXT:
            message = f"request ({tokens} tokens) exceeds the available context size ({CONTEXT} tokens)"
            error = {"code": 400, "message": message, "type": "exceed_context_size_error"}
            return JSONResponse({"error": error | {"n_prompt_tokens": tokens, "n_ctx": CONTEXT}}, status_code=400)
        answer = {"role": "assistant", "content": "short"}
        return JSONResponse(
            {
                "id": "chatcmpl-1",
                "object": "chat.completion",
                "created": 1,
                "model": body["model"],
                "choices": [{"index": 0, "message": answer, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": tokens, "completion_tokens": 1, "total_tokens": tokens + 1},
            }
        )

    async def embeddings(self, request: Request) -> JSONResponse:
        body = await request.json()
        self.calls.append("embeddings")
        tokens = len(str(body["input"])) // 4
        if tokens > CONTEXT:
            message = f"input ({tokens} tokens) is too large to process. increase the physical batch size"
            return JSONResponse({"error": {"code": 500, "message": message, "type": "server_error"}}, status_code=500)
        data = [{"object": "embedding", "index": 0, "embedding": [0.1, 0.2]}]
        usage = {"prompt_tokens": tokens, "total_tokens": tokens}
        return JSONResponse({"object": "list", "model": body["model"], "data": data, "usage": usage})


@pytest.fixture
def llama() -> Iterator[tuple[LlamaCppLike, str]]:
    server = LlamaCppLike()
    with ThreadedServer(server.app()) as running:
        yield server, running.url + "/v1"


@pytest.fixture
def gateway(
    tmp_path: Path, llama: tuple[LlamaCppLike, str], upstreams: Upstreams, make_gateway: GatewayFactory
) -> Iterator[str]:
    v1 = upstreams.v1()
    models: dict[str, Any] = {
        "tiny": model("US", "basic", 0.1, endpoints=["chat", "embeddings"]),
        "us-open": model("US", "strong", 0.2),
        "cn-open": model("CN", "basic", 0.1),
        "frontier": model("US", "frontier", 2.0),
    }
    deployments = {
        "tiny-llama": deployment("tiny", llama[1], max_retries=2),
        "tiny-b": deployment("tiny", v1["b"], price={"input": 0.5, "output": 1.0}),
        "us-open-b": deployment("us-open", v1["b"]),
        "cn-open-b": deployment("cn-open", v1["b"]),
        "frontier-api": deployment("frontier", v1["b"], self_hosted=False, operator="F"),
    }
    tenants = {"open": tenant("open-key")}
    state = {"breaker": {"failures": 2, "window_seconds": 30, "cooldown_seconds": 60}}
    policy = small_policy(tmp_path / "p", v1, models=models, deployments=deployments, tenants=tenants, state=state)
    with make_gateway(policy, {}) as url:
        yield url


def test_a_prompt_over_the_context_is_400_context_length_exceeded_with_the_numbers(
    gateway: str, llama: tuple[LlamaCppLike, str], upstreams: Upstreams
) -> None:
    with (
        openai.OpenAI(base_url=gateway + "/v1", api_key="open-key", max_retries=0) as client,
        pytest.raises(openai.BadRequestError) as info,
    ):
        client.chat.completions.create(model="tiny", messages=[{"role": "user", "content": LONG}])
    error = info.value.response.json()
    validate("ErrorResponse", error)
    assert error["error"]["code"] == "context_length_exceeded"
    assert "250 tokens" in error["error"]["message"] and f"{CONTEXT} tokens" in error["error"]["message"]
    assert llama[0].calls == ["chat"], "not retried"
    assert upstreams.controls["b"].count() == 0, "no fallback: another deployment of the same size would refuse too"


def test_the_anthropic_sdk_gets_the_same_error_in_its_shape(gateway: str) -> None:
    with (
        anthropic.Anthropic(base_url=gateway, api_key="open-key", max_retries=0) as sdk,
        pytest.raises(anthropic.BadRequestError) as info,
    ):
        sdk.messages.create(model="tiny", max_tokens=10, messages=[{"role": "user", "content": LONG}])
    body = info.value.response.json()
    assert body["type"] == "error" and body["error"]["type"] == "invalid_request_error"
    assert "250 tokens" in body["error"]["message"]
    assert f"has a context size of {CONTEXT} tokens" in body["error"]["message"], "the gateway's message, not the echo"


def test_an_input_error_reported_as_500_is_400_and_leaves_the_breaker_closed(
    gateway: str, llama: tuple[LlamaCppLike, str], upstreams: Upstreams
) -> None:
    headers = {"authorization": "Bearer open-key"}
    for _ in range(3):  # breaker failures: 2; before, each request counted 3 failures (1 try + 2 retries)
        answer = httpx.post(gateway + "/v1/embeddings", json={"model": "tiny", "input": LONG}, headers=headers)
        assert answer.status_code == 400, answer.text
        assert answer.json()["error"]["code"] == "upstream_rejected"
        assert "too large" not in answer.text, "the upstream's words stay in the gateway's log"
    assert llama[0].calls == ["embeddings"] * 3, "not retried"
    answer = httpx.post(gateway + "/v1/embeddings", json={"model": "tiny", "input": "short"}, headers=headers)
    assert answer.status_code == 200 and answer.headers["x-gateway-deployment"] == "tiny-llama"
    assert upstreams.controls["b"].count() == 0
