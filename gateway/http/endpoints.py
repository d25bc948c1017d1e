"""The wire-format edges: OpenAI's endpoints and Anthropic's Messages API over the same pipeline.

Each reads the body, runs the pipeline, shapes the answer (JSON or server-sent events) and hands
the finished request to the side channels; settlement and caching run after the response is sent.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

import orjson
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import Response

from gateway.errors import GatewayError, UpstreamUnavailable
from gateway.http import edge, sse
from gateway.http.drain import CUT_CODE, CUT_MESSAGE
from gateway.http.fastpath import EventStream
from gateway.observe.observation import Observation, Sink, observed
from gateway.observe.record import RequestRecord
from gateway.request import Endpoint
from gateway.routing.normalize import parse_json
from gateway.routing.pipeline import Cached, Routed, Routing, finish, route
from gateway.translate import anthropic_messages as anthropic
from gateway.upstream.caller import Streaming

JSON = "application/json"
NO_CACHE = {"cache-control": "no-cache"}
Shaper = Callable[[bytes, str], bytes]  # OpenAI answer bytes, model -> the bytes the client gets


async def openai_endpoint(request: Request, routing: Routing, sinks: Sequence[Sink], endpoint: Endpoint) -> Response:
    headers = edge.header_dict(request)
    rid = edge.request_id(request, headers)
    obs = Observation(sinks, routing.policy, endpoint, rid)
    obs.traceparent = headers.get("traceparent")
    try:
        raw = await edge.read_body(request, routing.policy.limits.max_body_bytes, headers)
        routed = await route(routing, endpoint, raw, headers, obs.decided)
    except GatewayError as exc:
        obs.called_failed(exc)
        obs.finish(exc.status, exc.code)
        raise
    explain = headers.get("x-gateway-explain") == "1"
    return _answer(routing, routed, obs, rid, explain, _same, _openai_stream)


async def messages_endpoint(request: Request, routing: Routing, sinks: Sequence[Sink]) -> Response:
    """Anthropic's Messages API in front of the same pipeline; answers and errors in Anthropic's shape."""
    headers = edge.header_dict(request)
    rid = edge.request_id(request, headers)
    obs = Observation(sinks, routing.policy, "messages", rid)
    obs.traceparent = headers.get("traceparent")
    try:
        raw = await edge.read_body(request, routing.policy.limits.max_body_bytes, headers)
        body = orjson.dumps(anthropic.to_openai(parse_json(raw)))
        routed = await route(routing, "chat", body, headers, obs.decided)
    except GatewayError as exc:
        obs.called_failed(exc)
        obs.finish(exc.status, exc.code)
        error = anthropic.error_body(exc, request_id=rid)
        return edge.error_response(exc, rid, routing.policy.revision, error)
    return _answer(routing, routed, obs, rid, False, _to_anthropic, _anthropic_stream)


def _answer(
    routing: Routing,
    routed: Routed,
    obs: Observation,
    rid: str,
    explain: bool,
    shape_body: Shaper,
    stream: Callable[[Streaming, Observation, Callable[[RequestRecord], Awaitable[None]], Routed], EventStream],
) -> Response:
    outcome = routed.outcome
    if isinstance(outcome, Cached):
        dep = routing.policy.deployments.get(outcome.deployment)
        obs.cached(True, dep)
        record = obs.finish(200)
        headers = edge.routed_headers(rid, routed.decision, dep, explain) if dep else {"x-request-id": rid}
        headers["x-gateway-cache"] = "hit"
        hit = BackgroundTask(finish, routing, routed, record, None)
        return Response(shape_body(outcome.body, outcome.deployment), media_type=JSON, headers=headers, background=hit)
    if routed.cache is not None:
        obs.cached(False, None)
    obs.called(outcome.deployment, outcome.attempts, routed.request.prompt_tokens_estimate)
    headers = edge.routed_headers(rid, routed.decision, outcome.deployment, explain)
    if routed.cache is not None:
        headers["x-gateway-cache"] = "miss"
    if isinstance(outcome, Streaming):
        headers.pop("x-gateway-decision", None)

        async def after(record: RequestRecord) -> None:
            await finish(routing, routed, record, None)

        response = stream(outcome, obs, after, routed)
        response.headers.update({**headers, **NO_CACHE})
        return response
    body = orjson.dumps(outcome.body)
    obs.answered(outcome.body)
    record = obs.finish(200)
    done = BackgroundTask(finish, routing, routed, record, body) if routed.has_aftermath else None
    return Response(shape_body(body, outcome.deployment.model_id), media_type=JSON, headers=headers, background=done)


def _same(body: bytes, model: str) -> bytes:
    return body


def _to_anthropic(body: bytes, model: str) -> bytes:
    answer = orjson.loads(body)
    return orjson.dumps(anthropic.from_openai(answer, answer.get("model") or model))


def _openai_stream(
    outcome: Streaming, obs: Observation, after: Callable[[RequestRecord], Awaitable[None]], routed: Routed
) -> EventStream:
    encoder = sse.OpenAIEvents(outcome.deployment.model_id, routed.request.include_usage)
    return EventStream(observed(outcome, obs, after, encoder), cut=lambda: encoder.error(_cut()))


def _anthropic_stream(
    outcome: Streaming, obs: Observation, after: Callable[[RequestRecord], Awaitable[None]], routed: Routed
) -> EventStream:
    encoder = sse.AnthropicEvents(outcome.deployment.model_id)
    return EventStream(observed(outcome, obs, after, encoder), cut=lambda: encoder.error(_cut()))


def _cut() -> UpstreamUnavailable:
    """What a stream cut by the drain timeout ends with (a 503: the client may retry on another replica)."""
    return UpstreamUnavailable(CUT_MESSAGE, code=CUT_CODE)
