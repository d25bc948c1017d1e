"""The wire-format edges: OpenAI's endpoints and Anthropic's Messages API over the same pipeline.

Each reads the body, runs the pipeline, shapes the answer (JSON or server-sent events) and hands
the finished request to the side channels; settlement and caching run after the response is sent.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Mapping, Sequence

import orjson
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import Response

from gateway.errors import GatewayError, InvalidRequest, UpstreamUnavailable
from gateway.http import edge, sse
from gateway.http.drain import CUT_CODE, CUT_MESSAGE
from gateway.http.fastpath import EventStream
from gateway.observe.observation import Observation, Sink, observed
from gateway.observe.record import RequestRecord
from gateway.request import Endpoint, Native
from gateway.routing import validate
from gateway.routing.auth import authenticate
from gateway.routing.normalize import parse_json
from gateway.routing.pipeline import Cached, Routed, Routing, finish, route
from gateway.translate import anthropic_messages as anthropic
from gateway.translate import anthropic_tokens
from gateway.upstream.caller import Streaming
from gateway.upstream.providers import anthropic_passthrough as passthrough
from gateway.upstream.providers.anthropic_passthrough import API_VERSION

JSON = "application/json"
NO_CACHE = {"cache-control": "no-cache"}
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
Shaper = Callable[[bytes, str], bytes]  # OpenAI answer bytes, model -> the bytes the client gets


async def openai_endpoint(request: Request, routing: Routing, sinks: Sequence[Sink], endpoint: Endpoint) -> Response:
    headers = edge.header_dict(request)
    rid = edge.request_id(request, headers)
    obs = Observation(sinks, routing.policy, endpoint, rid)
    obs.traceparent = headers.get("traceparent")
    try:
        raw = await edge.read_body(request, routing.policy.limits.max_body_bytes, headers)
        routed = await route(routing, endpoint, raw, headers, obs.decided, on_request=obs.identified)
    except GatewayError as exc:
        obs.called_failed(exc)
        obs.finish(exc.status, exc.code)
        raise
    explain = headers.get("x-gateway-explain") == "1"
    return _answer(routing, routed, obs, rid, explain, _same, _openai_stream)


async def messages_endpoint(request: Request, routing: Routing, sinks: Sequence[Sink]) -> Response:
    """Anthropic's Messages API in front of the same pipeline; answers and errors in Anthropic's shape.

    The body is checked (:data:`validate.MESSAGES`) and translated to chat for routing; a deployment that
    speaks Anthropic's API gets the client's own body (``Native``), any other the translation."""
    headers = edge.header_dict(request)
    rid = edge.request_id(request, headers)
    obs = Observation(sinks, routing.policy, "messages", rid)
    obs.traceparent = headers.get("traceparent")
    try:
        raw = await edge.read_body(request, routing.policy.limits.max_body_bytes, headers)
        native = Native("anthropic", parse_json(raw), _protocol_headers(headers))
        validate.check(validate.MESSAGES, native.body)
        chat = anthropic.to_openai(native.body)
        routed = await route(routing, "chat", chat, headers, obs.decided, native, obs.identified)
    except GatewayError as exc:
        obs.called_failed(exc)
        obs.finish(exc.status, exc.code)
        return _anthropic_error(exc, rid, routing)
    return _answer(routing, routed, obs, rid, False, _to_anthropic, _anthropic_stream)


async def count_tokens_endpoint(request: Request, routing: Routing) -> Response:
    """``POST /v1/messages/count_tokens``: the gateway's estimate (gateway.translate.anthropic_tokens), for a
    key of any tenant, without routing or calling an upstream."""
    headers = edge.header_dict(request)
    rid = edge.request_id(request, headers)
    try:
        raw = await edge.read_body(request, routing.policy.limits.max_body_bytes, headers)
        authenticate(routing.policy, headers)
        _protocol_headers(headers)
        body = parse_json(raw)
        if "max_tokens" in body:
            raise InvalidRequest("'max_tokens' is not a field of count_tokens.", param="max_tokens")
        validate.check(validate.MESSAGES, body)
        tokens = anthropic_tokens.estimate(anthropic.to_openai(body | {"max_tokens": 1}))
    except GatewayError as exc:
        return _anthropic_error(exc, rid, routing)
    return Response(orjson.dumps({"input_tokens": tokens}), media_type=JSON, headers={"x-request-id": rid})


def _protocol_headers(headers: Mapping[str, str]) -> tuple[tuple[str, str], ...]:
    """The ``anthropic-version`` and ``anthropic-beta`` headers, forwarded to Anthropic deployments.

    A version is a date; the gateway speaks the Messages API of 2023-06-01 (the SSE format of today), which
    later versions keep, so a missing one is 2023-06-01, a later date is taken, an earlier one (2023-01-01,
    the old stream format) or anything not a date is refused, naming the header."""
    version = headers.get("anthropic-version") or API_VERSION
    if not _DATE.fullmatch(version) or version < API_VERSION:
        raise InvalidRequest(
            f"anthropic-version {version!r} is not supported; the gateway speaks {API_VERSION} and later.",
            param="anthropic-version",
        )
    beta = headers.get("anthropic-beta")
    return (("anthropic-version", version), *((("anthropic-beta", beta),) if beta else ()))


def _anthropic_error(exc: GatewayError, rid: str, routing: Routing) -> Response:
    return edge.error_response(exc, rid, routing.policy.revision, anthropic.error_body(exc, request_id=rid))


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
    obs.answered(passthrough.counted(outcome.body) if outcome.passthrough else outcome.body)
    record = obs.finish(200)
    done = BackgroundTask(finish, routing, routed, record, body) if routed.has_aftermath else None
    return Response(shape_body(body, outcome.deployment.model_id), media_type=JSON, headers=headers, background=done)


def _same(body: bytes, model: str) -> bytes:
    return body


def _to_anthropic(body: bytes, model: str) -> bytes:
    """An OpenAI answer translated; an Anthropic deployment's own message (passed through) as it is."""
    answer = orjson.loads(body)
    if answer.get("type") == "message":
        return body
    return orjson.dumps(anthropic.from_openai(answer, answer.get("model") or model))


def _openai_stream(
    outcome: Streaming, obs: Observation, after: Callable[[RequestRecord], Awaitable[None]], routed: Routed
) -> EventStream:
    encoder = sse.OpenAIEvents(outcome.deployment.model_id, routed.request.include_usage)
    return EventStream(observed(outcome, obs, after, encoder), cut=lambda: encoder.error(_cut()))


def _anthropic_stream(
    outcome: Streaming, obs: Observation, after: Callable[[RequestRecord], Awaitable[None]], routed: Routed
) -> EventStream:
    model = outcome.deployment.model_id
    encoder = sse.AnthropicPassedEvents(model) if outcome.passthrough else sse.AnthropicEvents(model)
    return EventStream(observed(outcome, obs, after, encoder), cut=lambda: encoder.error(_cut()))


def _cut() -> UpstreamUnavailable:
    """What a stream cut by the drain timeout ends with (a 503: the client may retry on another replica)."""
    return UpstreamUnavailable(CUT_MESSAGE, code=CUT_CODE)
