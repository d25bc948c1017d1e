"""The app factory: ``create_app(settings)``. Long-lived resources are built in the lifespan."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass

import orjson
from fastapi import FastAPI
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse

from gateway import edge, sse
from gateway.audit import AuditLog
from gateway.auth import authenticate
from gateway.call import Caller, Completed, Streaming
from gateway.classify.heuristic import HeuristicClassifier
from gateway.errors import GatewayError, MethodNotAllowed, RouteNotFound
from gateway.health import HealthBoard
from gateway.metrics import Metrics
from gateway.normalize import normalize, parse_json
from gateway.observe import Observation, Sink, observed
from gateway.pipeline import Routing, execute, plan
from gateway.policy.decide import decide, refusal
from gateway.policy.visible import visible_models
from gateway.policy_loader import load_policy_dir
from gateway.providers.registry import Providers
from gateway.reload import PolicyWatcher
from gateway.request import Endpoint
from gateway.settings import Settings
from gateway.translate import anthropic_messages as anthropic

log = logging.getLogger("gateway")
_NO_CACHE = {"cache-control": "no-cache"}


@dataclass(slots=True)
class Gateway:
    routing: Routing  # replaced whole when the policy reloads; a request reads it once
    metrics: Metrics
    sinks: tuple[Sink, ...]  # where finished requests go: metrics, audit
    started: int


def create_app(
    settings: Settings,
    env: Mapping[str, str] | None = None,
    on_ready: Callable[[Gateway], None] | None = None,
) -> FastAPI:
    """Build the app. ``env`` is where ``${NAME}`` and ``api_key_env`` are looked up (default: os.environ)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            app.state.gw = await _start(settings, env, stack)
            if on_ready is not None:
                on_ready(app.state.gw)
            yield

    app = FastAPI(lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)
    app.add_exception_handler(GatewayError, _gateway_error)  # type: ignore[arg-type]
    app.add_exception_handler(HTTPException, _http_error)  # type: ignore[arg-type]
    app.add_exception_handler(Exception, _unexpected_error)
    _add_routes(app)
    return app


async def _start(settings: Settings, env: Mapping[str, str] | None, stack: AsyncExitStack) -> Gateway:
    import os

    lookup: Mapping[str, str] = os.environ if env is None else env
    if settings.demo:
        from gateway.demo import start_demo_upstreams

        lookup = await start_demo_upstreams(stack)
    policy = load_policy_dir(settings.policies, lookup)
    for warning in policy.warnings:
        log.warning("policy: %s", warning)
    providers = Providers(policy)
    stack.push_async_callback(providers.aclose)
    health = HealthBoard()
    routing = Routing(policy, HeuristicClassifier(), health, Caller(providers, health, lookup))
    metrics = Metrics()
    metrics.policy_loaded(policy.revision, None)
    sinks: list[Sink] = [metrics.record]
    if settings.audit_log:
        audit = AuditLog(settings.audit_log)
        stack.callback(audit.close)
        sinks.append(audit)
    log.info("policy %s loaded from %s", policy.revision, policy.source)
    gw = Gateway(routing, metrics, tuple(sinks), int(time.time()))
    if settings.reload_seconds > 0:
        watcher = PolicyWatcher(settings.policies, lookup, providers, settings.reload_seconds)
        task = asyncio.create_task(watcher.run(gw), name="policy-watcher")
        stack.push_async_callback(_cancel, task)
    return gw


async def _cancel(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


def _gw(request: Request) -> Gateway:
    gateway: Gateway = request.app.state.gw
    return gateway


def _add_routes(app: FastAPI) -> None:
    app.add_api_route("/v1/chat/completions", _chat, methods=["POST"])
    app.add_api_route("/v1/completions", _completions, methods=["POST"])
    app.add_api_route("/v1/embeddings", _embeddings, methods=["POST"])
    app.add_api_route("/v1/messages", _messages, methods=["POST"])
    app.add_api_route("/v1/models", _models, methods=["GET"])
    app.add_api_route("/v1/models/{model_id:path}", _model, methods=["GET"])
    app.add_api_route("/v1/route/explain", _explain, methods=["POST"])
    app.add_api_route("/healthz", _healthz, methods=["GET"])
    app.add_api_route("/readyz", _readyz, methods=["GET"])
    app.add_api_route("/metrics", _metrics, methods=["GET"])


async def _chat(request: Request) -> Response:
    return await _proxy(request, "chat")


async def _completions(request: Request) -> Response:
    return await _proxy(request, "completions")


async def _embeddings(request: Request) -> Response:
    return await _proxy(request, "embeddings")


async def _proxy(request: Request, endpoint: Endpoint) -> Response:
    gw = _gw(request)
    routing = gw.routing
    rid = edge.request_id(request)
    obs = Observation(gw.sinks, routing.policy, endpoint, rid)
    try:
        raw = await edge.read_body(request, routing.policy.limits.max_body_bytes)
        req, decision = plan(routing, endpoint, raw, request.headers)
        obs.decided(decision, req.text)
        outcome = await execute(routing, req, decision)
    except GatewayError as exc:
        obs.called_failed(exc)
        obs.finish(exc.status, exc.code)
        raise
    obs.called(outcome.deployment, outcome.attempts)
    headers = edge.routed_headers(rid, decision, outcome.deployment, request.headers.get("x-gateway-explain") == "1")
    if isinstance(outcome, Streaming):
        headers.pop("x-gateway-decision", None)
        events = sse.openai_events(observed(outcome, obs), outcome.deployment.model_id, req.include_usage)
        return StreamingResponse(events, media_type="text/event-stream", headers={**headers, **_NO_CACHE})
    assert isinstance(outcome, Completed)
    obs.answered(outcome.body)
    obs.finish(200)
    return Response(orjson.dumps(outcome.body), media_type="application/json", headers=headers)


async def _messages(request: Request) -> Response:
    """Anthropic's Messages API in front of the same pipeline; answers and errors in Anthropic's shape."""
    gw = _gw(request)
    routing = gw.routing
    rid = edge.request_id(request)
    obs = Observation(gw.sinks, routing.policy, "messages", rid)
    try:
        raw = await edge.read_body(request, routing.policy.limits.max_body_bytes)
        body = anthropic.to_openai(parse_json(raw))
        req, decision = plan(routing, "chat", orjson.dumps(body), request.headers)
        obs.decided(decision, req.text)
        outcome = await execute(routing, req, decision)
    except GatewayError as exc:
        obs.called_failed(exc)
        obs.finish(exc.status, exc.code)
        return edge.error_response(exc, rid, routing.policy.revision, anthropic.error_body(exc, request_id=rid))
    obs.called(outcome.deployment, outcome.attempts)
    headers = edge.routed_headers(rid, decision, outcome.deployment, explain=False)
    model = outcome.deployment.model_id
    if isinstance(outcome, Streaming):
        events = sse.anthropic_events(observed(outcome, obs), model)
        return StreamingResponse(events, media_type="text/event-stream", headers={**headers, **_NO_CACHE})
    obs.answered(outcome.body)
    obs.finish(200)
    answer = orjson.dumps(anthropic.from_openai(outcome.body, model))
    return Response(answer, media_type="application/json", headers=headers)


async def _models(request: Request) -> Response:
    gw = _gw(request)
    edge.request_id(request)
    tenant = authenticate(gw.routing.policy, request.headers)
    return JSONResponse({"object": "list", "data": visible_models(gw.routing.policy, tenant, gw.started)})


async def _model(request: Request) -> Response:
    gw = _gw(request)
    edge.request_id(request)
    tenant = authenticate(gw.routing.policy, request.headers)
    model_id = request.path_params["model_id"]
    for entry in visible_models(gw.routing.policy, tenant, gw.started):
        if entry["id"] == model_id:
            return JSONResponse(entry)
    from gateway.errors import ModelNotFound

    raise ModelNotFound(f"The model {model_id!r} does not exist or is not available to this key.", param="model")


async def _explain(request: Request) -> Response:
    """Decide as for /v1/chat/completions without calling any upstream."""
    gw = _gw(request)
    edge.request_id(request)
    routing = gw.routing
    raw = await edge.read_body(request, routing.policy.limits.max_body_bytes)
    tenant = authenticate(routing.policy, request.headers)
    req = normalize("chat", raw, request.headers)
    decision = decide(routing.policy, tenant, req, routing.classifier, routing.health.unhealthy())
    error = refusal(decision)
    return JSONResponse(
        {
            "decision": decision.to_json(),
            "would_call": decision.ranked[0].id if decision.ranked else None,
            "error": error.body()["error"] if error else None,
        }
    )


async def _healthz(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


async def _readyz(request: Request) -> Response:
    gw: Gateway | None = getattr(request.app.state, "gw", None)
    if gw is None:
        return JSONResponse({"status": "starting"}, status_code=503)
    policy = gw.routing.policy
    cooling = gw.routing.health.unhealthy()
    deployments = {
        d.id: d.unavailable or ("cooling down after failures" if d.id in cooling else "ok")
        for d in policy.deployments.values()
    }
    return JSONResponse({"status": "ready", "policy_revision": policy.revision, "deployments": deployments})


async def _metrics(request: Request) -> Response:
    gw = _gw(request)
    gw.metrics.health(list(gw.routing.policy.deployments), gw.routing.health.unhealthy())
    return Response(gw.metrics.exposition(), media_type="text/plain; version=0.0.4; charset=utf-8")


def _rid(request: Request) -> str:
    rid: str | None = getattr(request.state, "request_id", None)
    return rid or edge.request_id(request)


async def _gateway_error(request: Request, exc: GatewayError) -> Response:
    gw: Gateway | None = getattr(request.app.state, "gw", None)
    revision = gw.routing.policy.revision if gw else None
    return edge.error_response(exc, _rid(request), revision)


async def _http_error(request: Request, exc: HTTPException) -> Response:
    error: GatewayError
    if exc.status_code == 405:
        error = MethodNotAllowed(f"Method {request.method} is not allowed on {request.url.path}.")
    else:
        error = RouteNotFound(f"Unknown path {request.url.path}.")
    return edge.error_response(error, _rid(request))


async def _unexpected_error(request: Request, exc: Exception) -> Response:
    log.exception("unexpected error on %s", request.url.path)
    return edge.error_response(GatewayError("The gateway failed unexpectedly."), _rid(request))
