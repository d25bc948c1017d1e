"""What a request costs when its usage does not arrive: a stream the client leaves or the upstream drops,
an upstream that sends no usage or malformed usage; and what a client gets of upstream extras (timings).

Rate limits and budgets are checked with the real pieces: the gateway in a thread over the in-memory
store and over a real Redis, the stand-in upstream streaming, the official openai SDK as the client.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anthropic
import httpx
import openai
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from gateway.errors import UpstreamUnavailable
from gateway.http import sse
from gateway.http.app import create_app
from gateway.settings import Settings
from gateway.standin.control import Fault
from gateway.standin.server import ThreadedServer
from tests.audit_file import audit_entries
from tests.conftest import ClientFactory, Upstreams
from tests.factories import deployment, model, small_policy, tenant

PROMPT = "word " * 1600  # 8,000 characters: a 2,000-token prompt, by the gateway's and the stand-in's estimate
STREAMS = 12
TPM = 6_500  # three read-to-end streams (2,000 prompt + ~25 output tokens each) fit, a fourth does not
MODES = ("read", "cancel")  # each on a tenant of its own, so the runs do not share a limit
DAILY_USD = 0.0021  # us-open-a: $0.2/M in, $0.4/M out; ~$0.00041 per stream, $0.00042 reserved: five fit


@dataclass
class Gateway:
    url: str
    audit: Path

    def entries(self) -> list[dict[str, Any]]:
        return audit_entries(self.audit, writing=True)

    def wait_idle(self, lines: int) -> None:
        """Until ``lines`` requests are recorded and none is in flight: a stream's settlement runs before its
        request stops counting as in flight, so the next request sees it."""
        deadline = time.monotonic() + 10
        while (len(self.entries()) < lines or self.in_flight() != 0) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert len(self.entries()) >= lines and self.in_flight() == 0

    def in_flight(self) -> float:
        text = httpx.get(self.url + "/metrics").text
        match = re.search(r"^gateway_in_flight_requests (\S+)$", text, re.M)
        assert match is not None
        return float(match.group(1))

    def estimated(self, reason: str) -> float:
        """``gateway_usage_estimated_total`` for ``reason``, summed over tenants and deployments."""
        text = httpx.get(self.url + "/metrics").text
        pattern = rf'^gateway_usage_estimated_total{{[^}}]*reason="{reason}"[^}}]*}} (\S+)$'
        return sum(float(value) for value in re.findall(pattern, text, re.M))


def accounting_policy(directory: Path, upstreams: Upstreams) -> Path:
    tenants = {
        "open": tenant("open-key"),
        **{f"tpm-{mode}": tenant(f"tpm-{mode}-key", limits={"tpm": TPM}) for mode in MODES},
        **{f"budget-{mode}": tenant(f"budget-{mode}-key", budget={"daily_usd": DAILY_USD}) for mode in MODES},
    }
    return small_policy(directory, upstreams.v1(), tenants=tenants)


@pytest.fixture(params=["memory", "redis"])
def gateway(request: pytest.FixtureRequest, tmp_path: Path, upstreams: Upstreams) -> Iterator[Gateway]:
    env = {"REDIS_URL": request.getfixturevalue("redis_server").url} if request.param == "redis" else {}
    audit = tmp_path / "audit.jsonl"
    settings = Settings(
        policies=accounting_policy(tmp_path / "p", upstreams), audit_log=str(audit), audit_flush_seconds=0,
        reload_seconds=0,
    )  # fmt: skip
    with ThreadedServer(create_app(settings, env=env)) as server:
        yield Gateway(server.url, audit)


def clear_of_a_minute_boundary(seconds: float = 15.0) -> None:
    """Rate limits count in fixed one-minute windows: start a run where it cannot cross into a new one."""
    left = 60.0 - time.time() % 60.0
    if left < seconds:
        time.sleep(left + 0.05)


def admitted(gateway: Gateway, client: openai.OpenAI, cancel: bool) -> int:
    """Of STREAMS sequential streams of the 2,000-token prompt: how many the gateway let through. A cancelling
    client closes each stream after its 5th content chunk."""
    count = 0
    for _ in range(STREAMS):
        try:
            stream = client.chat.completions.create(
                model="us-open", max_tokens=50, stream=True, messages=[{"role": "user", "content": PROMPT}]
            )
        except openai.RateLimitError as exc:
            assert exc.code in ("rate_limit_exceeded", "insufficient_quota")
            continue
        count += 1
        with stream:
            content = 0
            for chunk in stream:
                content += bool(chunk.choices and chunk.choices[0].delta.content)
                if cancel and content == 5:
                    break
        gateway.wait_idle(count)
    return count


@pytest.mark.parametrize("limit", ["tpm", "budget"])
def test_a_stream_cancelled_early_costs_what_it_used(
    limit: str, gateway: Gateway, make_client: ClientFactory, upstreams: Upstreams
) -> None:
    clear_of_a_minute_boundary()
    read = admitted(gateway, make_client(gateway.url, f"{limit}-read-key"), cancel=False)
    for control in (upstreams.controls["a"], upstreams.controls["b"]):
        control.set_timing(chunk_gap=0.02)  # so the client can leave while the upstream still streams
    cancelled = admitted(gateway, make_client(gateway.url, f"{limit}-cancel-key"), cancel=True)
    print(f"{limit}: admitted {read} of {STREAMS} read to the end, {cancelled} of {STREAMS} cancelled early")
    assert read == (3 if limit == "tpm" else 5)
    assert cancelled == read
    served = [e for e in gateway.entries() if e["status"] == 200]
    whole = [e for e in served if e["tenant"] == f"{limit}-read"]
    left = [e for e in served if e["tenant"] == f"{limit}-cancel"]
    assert all(e["usage_estimated"] is None and e["input_tokens"] == 2000 for e in whole)
    assert all(e["usage_estimated"] == "client_cancelled" and e["input_tokens"] == 2000 for e in left)
    assert all(5 <= e["output_tokens"] < whole[0]["output_tokens"] and e["cost_usd"] > 0 for e in left)
    assert gateway.estimated("client_cancelled") == cancelled


def test_a_stream_the_upstream_drops_is_settled_with_an_estimate(
    gateway: Gateway, make_client: ClientFactory, upstreams: Upstreams
) -> None:
    upstreams.controls["a"].inject(Fault(drop_after=6))  # the role chunk and five words, then the connection goes
    body = {"model": "us-open", "stream": True, "messages": [{"role": "user", "content": PROMPT}]}
    with httpx.stream(
        "POST", gateway.url + "/v1/chat/completions", json=body, headers={"authorization": "Bearer open-key"}
    ) as response:
        events = [line for line in response.iter_lines() if line.startswith("data: ")]
    assert '"error"' in events[-1]
    gateway.wait_idle(1)
    (entry,) = gateway.entries()
    assert entry["status"] >= 500 and entry["usage_estimated"] == "upstream_failed"
    assert entry["input_tokens"] == 2000 and entry["output_tokens"] >= 5 and entry["cost_usd"] > 0
    assert gateway.estimated("upstream_failed") == 1


def test_an_anthropic_stream_cancelled_early_is_settled_with_an_estimate(
    gateway: Gateway, upstreams: Upstreams
) -> None:
    upstreams.controls["a"].set_timing(chunk_gap=0.02)
    with anthropic.Anthropic(base_url=gateway.url, api_key="open-key", max_retries=0) as client:
        messages: list[Any] = [{"role": "user", "content": PROMPT}]
        with client.messages.stream(model="us-open", max_tokens=50, messages=messages) as stream:
            words = 0
            for event in stream:
                words += event.type == "content_block_delta"
                if words == 5:
                    break
    gateway.wait_idle(1)
    (entry,) = gateway.entries()
    assert entry["endpoint"] == "messages" and entry["usage_estimated"] == "client_cancelled"
    assert entry["input_tokens"] == 2000 and entry["output_tokens"] >= 5


# --- an upstream of the gateway's own: llama.cpp's timings, and usage missing or malformed ----------------------

TIMINGS = {"prompt_n": 4, "prompt_ms": 1.5, "predicted_n": 3, "predicted_ms": 21.0}
WORDS = ["Hello", " there", " friend"]
NO_USAGE = object()


@dataclass
class LlamaLike:
    """A llama.cpp-like server: ``timings`` on its last chunk, and with ``include_usage`` on the usage-only
    chunk after it. ``usage`` is what it reports (``NO_USAGE``: nothing), in answers and streams alike."""

    usage: Any = field(default_factory=lambda: {"prompt_tokens": 4, "completion_tokens": 3, "total_tokens": 7})

    def app(self) -> Starlette:
        return Starlette(routes=[Route("/v1/chat/completions", self.chat, methods=["POST"])])

    async def chat(self, request: Request) -> Response:
        body = await request.json()
        head = {"id": "chatcmpl-1", "created": 1, "model": body["model"]}
        usage = {} if self.usage is NO_USAGE else {"usage": self.usage}
        if not body.get("stream"):
            message = {"role": "assistant", "content": "".join(WORDS)}
            choice = {"index": 0, "message": message, "finish_reason": "stop"}
            return JSONResponse({**head, "object": "chat.completion", "choices": [choice], **usage})
        asked = bool((body.get("stream_options") or {}).get("include_usage"))
        return StreamingResponse(self.events(head, usage if asked else None), media_type="text/event-stream")

    async def events(self, head: dict[str, Any], usage: dict[str, Any] | None) -> Any:
        head = {**head, "object": "chat.completion.chunk"}
        deltas = [{"role": "assistant", "content": None}, *({"content": word} for word in WORDS), {}]
        for index, delta in enumerate(deltas):
            last = index == len(deltas) - 1
            chunk = {**head, "choices": [{"index": 0, "delta": delta, "finish_reason": "stop" if last else None}]}
            yield _data(chunk | ({"timings": TIMINGS} if last and usage is None else {}))
        if usage is not None:
            yield _data({**head, "choices": [], **usage, "timings": TIMINGS})
        yield "data: [DONE]\n\n"


def _data(chunk: dict[str, Any]) -> str:
    return f"data: {json.dumps(chunk)}\n\n"


@pytest.fixture
def llama() -> Iterator[tuple[LlamaLike, str]]:
    upstream = LlamaLike()
    with ThreadedServer(upstream.app()) as server:
        yield upstream, server.url


@pytest.fixture
def llama_gateway(tmp_path: Path, upstreams: Upstreams, llama: tuple[LlamaLike, str]) -> Iterator[Gateway]:
    v1 = upstreams.v1()
    models = {"cn-open": model("CN", "basic", 0.1), "us-open": model("US", "strong", 0.2), "llama": model()}
    deployments = {
        "cn-open-a": deployment("cn-open", v1["a"]),
        "us-open-a": deployment("us-open", v1["a"]),
        "llama-cpp": deployment("llama", llama[1] + "/v1", max_retries=0),
    }
    routes = {"auto": {"tiers": {"simple": ["cn-open"], "standard": ["us-open"], "complex": ["us-open"]}}}
    policy = small_policy(tmp_path / "p", v1, models=models, deployments=deployments, routes=routes)
    audit = tmp_path / "audit.jsonl"
    settings = Settings(policies=policy, audit_log=str(audit), audit_flush_seconds=0, reload_seconds=0)
    with ThreadedServer(create_app(settings, env={})) as server:
        yield Gateway(server.url, audit)


HI: list[Any] = [{"role": "user", "content": "Say hello to my friend, please."}]  # 31 characters: a 7-token estimate


def test_upstream_fields_of_the_usage_chunk_reach_a_client_that_did_not_ask_for_usage(
    llama_gateway: Gateway, llama: tuple[LlamaLike, str], make_client: ClientFactory
) -> None:
    through = list(make_client(llama_gateway.url, "open-key").chat.completions.create(
        model="llama", messages=HI, stream=True
    ))  # fmt: skip
    direct = list(make_client(llama[1], "none").chat.completions.create(model="llama", messages=HI, stream=True))
    assert [c.model_extra for c in through] == [c.model_extra for c in direct], "timings on the same chunk"
    assert through[-1].choices[0].finish_reason == "stop" and through[-1].model_extra == {"timings": TIMINGS}
    assert all(c.choices and c.usage is None for c in through), "no usage chunk for a client that did not ask"
    asked = list(make_client(llama_gateway.url, "open-key").chat.completions.create(
        model="llama", messages=HI, stream=True, stream_options={"include_usage": True}
    ))  # fmt: skip
    assert asked[-1].choices == [] and asked[-1].usage is not None and asked[-1].usage.prompt_tokens == 4
    assert asked[-1].model_extra == {"timings": TIMINGS} and "timings" not in (asked[-2].model_extra or {})


MALFORMED = [
    {"prompt_tokens": "four", "completion_tokens": 3},
    {"prompt_tokens": {"cached": 4}, "completion_tokens": 3},
    {"prompt_tokens": "4", "completion_tokens": 3},
    {"prompt_tokens": 4.5, "completion_tokens": 3},
    {"prompt_tokens": -4, "completion_tokens": 3},
    {"prompt_tokens": True, "completion_tokens": 3},
    {"prompt_tokens": 4, "completion_tokens": [3]},
    {"completion_tokens": 3},
    "4 tokens",
]


MISTYPED = [usage for usage in MALFORMED if usage != {"completion_tokens": 3}]


@pytest.mark.parametrize("usage", MISTYPED, ids=[str(i) for i in range(len(MISTYPED))])
def test_an_answer_with_mistyped_usage_is_a_bad_answer_not_a_500(
    usage: Any, llama_gateway: Gateway, llama: tuple[LlamaLike, str], make_client: ClientFactory
) -> None:
    """A whole answer can still be refused: 502 (after retries and fallbacks), since usage is what is billed."""
    llama[0].usage = usage
    client = make_client(llama_gateway.url, "open-key")
    with pytest.raises(openai.InternalServerError) as info:
        client.chat.completions.create(model="llama", messages=HI)
    assert info.value.status_code == 502 and "malformed usage" in info.value.message


ESTIMATED = [(usage, True) for usage in MALFORMED] + [(usage, False) for usage in MALFORMED if usage not in MISTYPED]


@pytest.mark.parametrize(
    ("usage", "stream"), ESTIMATED, ids=[f"{i}-{'stream' if s else 'answer'}" for i, (_, s) in enumerate(ESTIMATED)]
)
def test_malformed_upstream_usage_is_estimated_not_a_500(
    usage: Any, stream: bool, llama_gateway: Gateway, llama: tuple[LlamaLike, str], make_client: ClientFactory
) -> None:
    """A stream cannot be refused after its first byte: its usage is estimated; so is an answer's usage that
    lacks a count (but is not mistyped)."""
    llama[0].usage = usage
    client = make_client(llama_gateway.url, "open-key")
    if stream:
        text = "".join(c.choices[0].delta.content or "" for c in client.chat.completions.create(
            model="llama", messages=HI, stream=True, stream_options={"include_usage": True}
        ) if c.choices)  # fmt: skip
    else:
        text = client.chat.completions.create(model="llama", messages=HI).choices[0].message.content or ""
    assert text == "".join(WORDS)
    llama_gateway.wait_idle(1)
    (entry,) = llama_gateway.entries()
    assert entry["status"] == 200 and entry["usage_estimated"] == "usage_invalid"
    assert (entry["input_tokens"], entry["output_tokens"]) == (7, 5)  # the prompt estimate; 18 characters / 4
    assert llama_gateway.estimated("usage_invalid") == 1


@pytest.mark.parametrize("stream", [False, True], ids=["answer", "stream"])
def test_an_answer_without_usage_is_estimated_not_free(
    stream: bool, llama_gateway: Gateway, llama: tuple[LlamaLike, str], make_client: ClientFactory
) -> None:
    llama[0].usage = NO_USAGE
    client = make_client(llama_gateway.url, "open-key")
    if stream:
        list(client.chat.completions.create(model="llama", messages=HI, stream=True))
    else:
        client.chat.completions.create(model="llama", messages=HI)
    llama_gateway.wait_idle(1)
    (entry,) = llama_gateway.entries()
    assert entry["usage_estimated"] == "usage_missing" and entry["input_tokens"] == 7 and entry["cost_usd"] > 0


def test_reported_usage_is_the_upstreams_own(
    llama_gateway: Gateway, llama: tuple[LlamaLike, str], make_client: ClientFactory
) -> None:
    client = make_client(llama_gateway.url, "open-key")
    client.chat.completions.create(model="llama", messages=HI)
    list(client.chat.completions.create(model="llama", messages=HI, stream=True))
    llama_gateway.wait_idle(2)
    for entry in llama_gateway.entries():
        assert entry["usage_estimated"] is None and (entry["input_tokens"], entry["output_tokens"]) == (4, 3)


# --- the encoder itself ----------------------------------------------------------------------------------------


def chunk(finish: str | None = None, **fields: Any) -> dict[str, Any]:
    delta = {} if finish else {"content": "hi"}
    return {"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "up", **fields,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}  # fmt: skip


def decoded(events: bytes) -> list[Any]:
    return [json.loads(e[6:]) if e != b"data: [DONE]" else "[DONE]" for e in events.split(b"\n\n") if e]


def test_the_encoder_holds_only_a_finishing_chunk_and_gives_it_the_dropped_chunks_extras() -> None:
    encoder = sse.OpenAIEvents("m", include_usage=False)
    assert decoded(encoder.feed(chunk()))[0]["choices"][0]["delta"] == {"content": "hi"}, "content is not held"
    assert encoder.feed(chunk("stop")) == b"", "the finishing chunk waits for what follows it"
    usage = {"id": "c", "object": "chat.completion.chunk", "choices": [], "usage": {"prompt_tokens": 1}}
    (last,) = decoded(encoder.feed({**usage, "timings": TIMINGS, "system_fingerprint": "fp"}))
    assert last["choices"][0]["finish_reason"] == "stop" and last["timings"] == TIMINGS and "usage" not in last
    assert "system_fingerprint" not in last, "only fields outside OpenAI's chunk schema move"
    assert decoded(encoder.finish()) == ["[DONE]"]


def test_a_held_chunk_goes_out_before_done_or_the_error() -> None:
    ended = sse.OpenAIEvents("m", include_usage=False)
    assert ended.feed(chunk("stop")) == b""
    assert [e if e == "[DONE]" else e["choices"][0]["finish_reason"] for e in decoded(ended.finish())] == [
        "stop", "[DONE]",
    ]  # fmt: skip
    failed = sse.OpenAIEvents("m", include_usage=False)
    failed.feed(chunk("stop"))
    finishing, error = decoded(failed.error(UpstreamUnavailable("gone")))
    assert finishing["choices"][0]["finish_reason"] == "stop" and error["error"]["code"] == "upstream_unavailable"
    asked = sse.OpenAIEvents("m", include_usage=True)
    assert decoded(asked.feed(chunk("stop")))[0]["usage"] is None, "a client that asked gets every chunk at once"
