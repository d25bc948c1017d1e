"""OpenAI's Responses API in front of the same pipeline as chat: ``POST /v1/responses`` and the stored responses
(``GET``/``DELETE /v1/responses/{id}``, ``GET /v1/responses/{id}/input_items``).

The body is checked (:data:`validate.RESPONSES`), its ``previous_response_id`` chain resolved from the tenant's
stored responses, and translated to chat for routing (:mod:`gateway.translate.responses_request`). A deployment
with ``api: responses`` gets the client's own body (``Native("responses")``), any other the translation; its
answer goes back in the Responses shape (:mod:`gateway.translate.responses_response`, ``responses_stream``).
With ``store`` (the API's default: true) the response is kept for ``limits.responses_ttl_seconds``
(:mod:`gateway.state.responses_store`) before the client sees it whole, so a follow-up can always find it.
Errors are OpenAI's shape, as for chat.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from gateway.errors import GatewayError, RouteNotFound, StateUnavailableError, UpstreamError
from gateway.http import edge
from gateway.http.endpoints import JSON, _answer, _cut
from gateway.http.fastpath import EventStream
from gateway.observe.observation import Observation, Sink, observed
from gateway.observe.record import RequestRecord
from gateway.request import Native
from gateway.routing import validate
from gateway.routing.auth import authenticate
from gateway.routing.normalize import parse_json
from gateway.routing.pipeline import Cached, Routed, Routing, route
from gateway.state.base import StateUnavailable
from gateway.state.responses_store import ResponseStore, Stored
from gateway.translate import responses_request as requests
from gateway.translate import responses_response as responses
from gateway.translate.responses_stream import ResponsesStream
from gateway.upstream.caller import Streaming
from gateway.upstream.providers.base import Json
from gateway.upstream.providers.responses_passthrough import ENDINGS

log = logging.getLogger("gateway.responses")


async def responses_endpoint(request: Request, routing: Routing, sinks: Sequence[Sink]) -> Response:
    headers = edge.header_dict(request)
    rid = edge.request_id(request, headers)
    obs = Observation(sinks, routing.policy, "responses", rid)
    obs.traceparent = headers.get("traceparent")
    store = ResponseStore(routing.guards.store.cache)
    try:
        raw = await edge.read_body(request, routing.policy.limits.max_body_bytes, headers)
        body = parse_json(raw)
        validate.check(validate.RESPONSES, body)
        tenant, _ = authenticate(routing.policy, headers)
        earlier = await _history(store, tenant, body.get("previous_response_id"))
        chat = requests.to_chat(body, earlier)
        reply = _Reply(body, [*earlier, *responses.as_resources(requests.input_items(body))], tenant, store, routing)
        native = Native("responses", _resolved(body, earlier))
        routed = await route(routing, "chat", chat, headers, obs.decided, native, obs.identified)
    except GatewayError as exc:
        obs.called_failed(exc)
        obs.finish(exc.status, exc.code)
        raise
    reply.cached = isinstance(routed.outcome, Cached)
    response = _answer(routing, routed, obs, rid, headers.get("x-gateway-explain") == "1", reply.shape, reply.stream)
    if reply.final is not None:  # a whole answer: stored before the client has it
        await reply.save(reply.final)
    return response


async def get_response(request: Request, routing: Routing) -> Response:
    stored = await _stored(request, routing)
    return Response(orjson.dumps(stored.response), media_type=JSON)


async def input_items(request: Request, routing: Routing) -> Response:
    stored = await _stored(request, routing)
    items = list(reversed(stored.input)) if request.query_params.get("order", "desc") == "desc" else stored.input
    page: Json = {
        "object": "list",
        "data": items,
        "first_id": items[0].get("id") if items else None,
        "last_id": items[-1].get("id") if items else None,
        "has_more": False,
    }
    return Response(orjson.dumps(page), media_type=JSON)


async def delete_response(request: Request, routing: Routing) -> Response:
    tenant, _ = authenticate(routing.policy, request.headers)
    response_id = request.path_params["response_id"]
    store = ResponseStore(routing.guards.store.cache)
    if not await _state(store.delete(tenant, response_id)):
        raise _not_found(response_id)
    return Response(orjson.dumps({"id": response_id, "object": "response", "deleted": True}), media_type=JSON)


async def _stored(request: Request, routing: Routing) -> Stored:
    tenant, _ = authenticate(routing.policy, request.headers)
    response_id = request.path_params["response_id"]
    stored: Stored | None = await _state(ResponseStore(routing.guards.store.cache).get(tenant, response_id))
    if stored is None:
        raise _not_found(response_id)
    return stored


async def _history(store: ResponseStore, tenant: str, previous: str | None) -> list[Json]:
    if previous is None:
        return []
    stored = await _state(store.get(tenant, previous))
    if stored is None:
        raise RouteNotFound(
            f"Previous response with id {previous!r} not found (responses are kept for limits.responses_ttl_seconds, "
            "and only for the tenant that made them, and only with store: true).",
            param="previous_response_id",
            code="previous_response_not_found",
        )
    history: list[Json] = stored.history
    return history


def _resolved(body: Json, earlier: list[Json]) -> Json:
    """The body a Responses deployment gets: the chain's items in ``input`` instead of ``previous_response_id``
    (which that deployment may never have seen), without the ids the gateway gave them, and without reasoning
    items that carry no ``encrypted_content`` (a deployment could only resolve them by an id it may not have)."""
    if not earlier:
        return body
    kept = [item for item in earlier if item.get("type") != "reasoning" or item.get("encrypted_content")]
    history = [{k: v for k, v in item.items() if k != "id"} for item in kept]
    resolved = {k: v for k, v in body.items() if k != "previous_response_id"}
    return resolved | {"input": [*history, *requests.input_items(body)]}


async def _state(call: Awaitable[Any]) -> Any:
    try:
        return await call
    except StateUnavailable:
        raise StateUnavailableError("The store of responses is unavailable; try again.") from None


def _not_found(response_id: str) -> RouteNotFound:
    return RouteNotFound(f"No response with id {response_id!r} is stored for this key's tenant.", code="not_found")


class _Reply:
    """One request's answer in the Responses shape, and its storing (``store``, true unless the client said not)."""

    def __init__(self, body: Json, items: list[Json], tenant: str, store: ResponseStore, routing: Routing) -> None:
        self.body = body
        self.items = items
        self.tenant = tenant
        self.store = store
        self.routing = routing
        self.id = responses.new_id("resp_")
        self.created = time.time()
        self.final: Json | None = None
        self.cached = False  # the answer came from the response cache

    def shape(self, answer_bytes: bytes, model: str) -> bytes:
        answer = orjson.loads(answer_bytes)
        if answer.get("object") == "response":  # a Responses deployment's own answer (passed through)
            if self.cached:  # a new response, though its answer is an earlier one's
                answer |= {"id": self.id, "created_at": int(self.created)}
            self.final = self.passed(answer, model)
            return orjson.dumps(answer)
        self.final = responses.from_chat(answer, self.body, answer.get("model") or model, self.id, self.created)
        return orjson.dumps(self.final)

    def stream(
        self, outcome: Streaming, obs: Observation, after: Callable[[RequestRecord], Awaitable[None]], routed: Routed
    ) -> EventStream:
        model = outcome.deployment.model_id
        encoder = (
            _Passed(self, model)
            if outcome.passthrough
            else _Events(ResponsesStream(self.body, model, self.id, self.created))
        )

        async def then(record: RequestRecord) -> None:
            await after(record)
            if encoder.final is not None:
                await self.save(encoder.final)

        return EventStream(observed(outcome, obs, then, encoder), cut=lambda: encoder.error(_cut()))

    def passed(self, response: Json, model: str) -> Json:
        """A Responses deployment's own response, with the catalog model and the client's chain and store."""
        response["model"] = model
        response["previous_response_id"] = self.body.get("previous_response_id")
        response["store"] = self.body.get("store") is not False
        return response

    async def save(self, response: Json) -> None:
        if self.body.get("store") is False:
            return
        ttl = self.routing.policy.limits.responses_ttl_seconds
        try:
            await self.store.put(self.tenant, response, self.items, ttl)
        except StateUnavailable as exc:  # the answer still goes out; a follow-up naming it gets a clear 404
            self.routing.guards.outages.report("responses", exc)


class _Events:
    """The Responses API's named events (``event: <type>``) for the upstream's chat chunks."""

    __slots__ = ("translator",)

    def __init__(self, translator: ResponsesStream) -> None:
        self.translator = translator

    @property
    def final(self) -> Json | None:
        return self.translator.final

    def feed(self, chunk: Json) -> bytes:
        return _encode(self.translator.feed(chunk))

    def finish(self) -> bytes:
        return _encode(self.translator.finish())

    def error(self, exc: UpstreamError) -> bytes:
        return _encode(self.translator.failed(exc))


class _Passed:
    """A Responses deployment's own events (gateway.upstream.providers.responses_passthrough envelopes), as they
    came but for the response's model, chain and store; the final response is kept to store it."""

    __slots__ = ("final", "id", "model", "reply", "sequence")

    def __init__(self, reply: _Reply, model: str) -> None:
        self.reply = reply
        self.model = model
        self.final: Json | None = None
        self.sequence = 0
        self.id = reply.id  # the deployment's own id, once its response.created came

    def feed(self, envelope: Json) -> bytes:
        event = envelope["data"]
        self.sequence = event.get("sequence_number", self.sequence) + 1
        if isinstance(event.get("response"), dict):
            self.reply.passed(event["response"], self.model)
            self.id = event["response"].get("id") or self.id
            if event["type"] in ENDINGS and event["type"] != "response.failed":
                self.final = event["response"]
        return _encode([event])

    def finish(self) -> bytes:
        return b""

    def error(self, exc: UpstreamError) -> bytes:
        error = {"code": responses.error_code(exc), "message": exc.message}
        failed = responses.echo(self.reply.body, self.model, self.id, self.reply.created, "failed")
        event = {"type": "response.failed", "sequence_number": self.sequence, "response": failed | {"error": error}}
        return _encode([event])


def _encode(events: list[Json]) -> bytes:
    return b"".join(b"event: " + e["type"].encode() + b"\ndata: " + orjson.dumps(e) + b"\n\n" for e in events)
