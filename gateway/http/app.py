"""The app factory: ``create_app(settings)``. Long-lived resources are built in the lifespan."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Match
from starlette.types import Receive, Scope, Send

from gateway.errors import AuthenticationFailed, GatewayError, MethodNotAllowed, ModelNotFound, RouteNotFound
from gateway.http import edge, fastpath, openapi
from gateway.http.drain import drain_of
from gateway.http.endpoints import count_tokens_endpoint, messages_endpoint, openai_endpoint
from gateway.http.policy_admin import admin_policies, reload_on_sighup, reload_policies
from gateway.http.reload import PolicyReloader
from gateway.http.responses import delete_response, get_response, input_items, responses_endpoint
from gateway.observe.audit import AuditLog
from gateway.observe.metrics import Metrics
from gateway.observe.observation import Sink
from gateway.observe.tracing import open_tracing
from gateway.policy.decide import decide, refusal
from gateway.policy.policy_set import Deployment, PolicySet
from gateway.policy.visible import visible_models
from gateway.policyfiles.loader import load_policy_dir
from gateway.routing.auth import authenticate, holds_key, is_admin
from gateway.routing.normalize import normalize
from gateway.routing.pipeline import Routing
from gateway.settings import PROCESS_ENV, Settings
from gateway.state import open_store, target_from_env
from gateway.state.guards import Guards, Outages
from gateway.state.settlement import Settlements
from gateway.upstream.caller import Caller
from gateway.upstream.gate import DeploymentGate
from gateway.upstream.health import HealthChecker, check_models
from gateway.upstream.providers.registry import Providers

log = logging.getLogger("gateway")


@dataclass(slots=True)
class Gateway:
    routing: Routing  # replaced whole when the policy reloads; a request reads it once
    metrics: Metrics
    sinks: tuple[Sink, ...]  # where finished requests go: metrics, audit
    started: int
    reloader: PolicyReloader  # file watch, SIGHUP, POST /admin/policies/reload (gateway/http/policy_admin.py)
    workers: int = 1  # processes serving the port; above 1 an admin reload is passed on to the others


class GatewayApp(FastAPI):
    """FastAPI, with the hot endpoints served as plain ASGI ahead of its middleware (gateway/http/fastpath.py)."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST" and (handler := HOT.get(scope["path"])):
            gw: Gateway | None = getattr(self.state, "gw", None)
            if gw is not None:
                scope["app"] = self
                await fastpath.serve(handler, gw.routing.policy.revision, gw.metrics.in_flight, scope, receive, send)
                return
        await super().__call__(scope, receive, send)


def create_app(
    settings: Settings,
    env: Mapping[str, str] | None = None,
    on_ready: Callable[[Gateway], None] | None = None,
) -> FastAPI:
    """Build the app. ``env`` is where ``${NAME}``, ``api_key_env`` and ``REDIS_URL`` are looked up."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            app.state.gw = await _start(settings, env, stack)
            if on_ready is not None:
                on_ready(app.state.gw)
            yield

    app = GatewayApp(lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None, redirect_slashes=False)
    app.add_exception_handler(GatewayError, _gateway_error)  # type: ignore[arg-type]
    app.add_exception_handler(HTTPException, _http_error)  # type: ignore[arg-type]
    app.add_exception_handler(Exception, _unexpected_error)
    _add_routes(app)
    return app


async def _start(settings: Settings, env: Mapping[str, str] | None, stack: AsyncExitStack) -> Gateway:
    lookup: Mapping[str, str] = os.environ if env is None else env
    if settings.demo:
        from gateway.standin.demo import start_demo_upstreams

        process = {name: lookup[name] for name in PROCESS_ENV if name in lookup}
        lookup = {**process, **await start_demo_upstreams(stack)}
    policy = load_policy_dir(settings.policies, lookup)
    warnings, note = _startup_warnings(policy, settings.demo)
    for warning in warnings:
        log.warning("policy: %s", warning)
    if note:
        log.info(note)
    metrics = Metrics()
    providers = Providers(policy, lookup, lambda dep, limit: metrics.upstream_limits.labels(dep, limit).inc())
    stack.push_async_callback(providers.aclose)
    store = await open_store(target_from_env(lookup))  # REDIS_URL, REDIS_MODE, ... (gateway/state/redis_target.py)
    stack.push_async_callback(store.aclose)
    metrics.policy_loaded(policy.revision, None)
    outages = Outages(lambda feature: metrics.state_errors.labels(feature).inc())
    settlements = Settlements(
        store,
        on_failure=lambda exc: outages.report("settlement", exc),
        on_depth=metrics.settlements_pending.set,
        on_drop=metrics.settlements_dropped.inc,
    )
    stack.push_async_callback(settlements.drain)  # before the store closes: a bounded wait for what is queued
    guards = Guards(store, outages, settlements)
    gate = DeploymentGate(store, guards.outages)
    caller = Caller(providers, gate, lookup, passthrough=providers.passthrough, responses=providers.responses)
    routing = Routing(policy, caller, guards, gate)
    sinks: list[Sink] = [metrics.record]
    if (tracing := open_tracing(lookup)) is not None:  # OTEL_EXPORTER_OTLP_ENDPOINT set
        stack.callback(tracing.close)
        sinks.append(tracing.record)
    if settings.audit_log:
        audit = AuditLog(settings.audit_log, settings.audit_flush_seconds, shared=settings.workers > 1)
        stack.callback(audit.close)
        sinks.append(audit)
    log.info("policy %s loaded from %s; shared state: %s", policy.revision, policy.source, store.name)
    reloader = PolicyReloader(settings.policies, lookup, providers, policy.revision)
    gw = Gateway(routing, metrics, tuple(sinks), int(time.time()), reloader, settings.workers)
    reload_on_sighup(gw, reloader, stack)
    if settings.reload_seconds > 0:
        task = asyncio.create_task(reloader.watch(gw, settings.reload_seconds), name="policy-watcher")
        stack.push_async_callback(_cancel, task)
    _start_health(gw, gate, providers, lookup, stack)
    return gw


def _startup_warnings(policy: PolicySet, demo: bool) -> tuple[list[str], str | None]:
    if not demo:
        return list(policy.warnings), None
    from gateway.standin.demo import demo_warnings

    return demo_warnings(policy)


def _start_health(
    gw: Gateway, gate: DeploymentGate, providers: Providers, env: Mapping[str, str], stack: AsyncExitStack
) -> None:
    """The active health checks and, once, the check that each deployment's server lists its model."""

    def api_key(dep: Deployment) -> str | None:
        return env.get(dep.spec.api_key_env) if dep.spec.api_key_env else None

    def on_probe(deployment: str, result: str) -> None:
        gw.metrics.health_probes.labels(deployment, result).inc()
        gw.metrics.health.labels(deployment).set(1 if result == "ok" else 0)

    checker = HealthChecker(lambda: gw.routing.policy, gate, providers.openai_compatible, api_key, on_probe)
    health = asyncio.create_task(checker.run(), name="health-checks")
    stack.push_async_callback(_cancel, health)
    models = asyncio.create_task(check_models(gw.routing.policy, providers.openai_compatible, api_key))
    stack.push_async_callback(_cancel, models)


async def _cancel(task: asyncio.Task[Any]) -> None:
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
    app.add_api_route("/v1/messages/count_tokens", _count_tokens, methods=["POST"])
    app.add_api_route("/v1/responses", _responses, methods=["POST"])
    app.add_api_route("/v1/responses/{response_id}", _get_response, methods=["GET"])
    app.add_api_route("/v1/responses/{response_id}", _delete_response, methods=["DELETE"])
    app.add_api_route("/v1/responses/{response_id}/input_items", _input_items, methods=["GET"])
    app.add_api_route("/v1/models", _models, methods=["GET"])
    app.add_api_route("/v1/models/{model_id:path}", _model, methods=["GET"])
    app.add_api_route("/v1/route/explain", _explain, methods=["POST"])
    app.add_api_route("/admin/deployments", _admin_deployments, methods=["GET"])
    app.add_api_route("/admin/policies", admin_policies, methods=["GET"])
    app.add_api_route("/admin/policies/reload", reload_policies, methods=["POST"])
    app.add_api_route("/healthz", _healthz, methods=["GET"])
    app.add_api_route("/readyz", _readyz, methods=["GET"])
    app.add_api_route("/metrics", _metrics, methods=["GET"])
    app.add_api_route("/openapi.json", _openapi, methods=["GET"])


async def _chat(request: Request) -> Response:
    gw = _gw(request)
    return await openai_endpoint(request, gw.routing, gw.sinks, "chat")


async def _completions(request: Request) -> Response:
    gw = _gw(request)
    return await openai_endpoint(request, gw.routing, gw.sinks, "completions")


async def _embeddings(request: Request) -> Response:
    gw = _gw(request)
    return await openai_endpoint(request, gw.routing, gw.sinks, "embeddings")


async def _messages(request: Request) -> Response:
    gw = _gw(request)
    return await messages_endpoint(request, gw.routing, gw.sinks)


async def _count_tokens(request: Request) -> Response:
    return await count_tokens_endpoint(request, _gw(request).routing)


async def _responses(request: Request) -> Response:
    gw = _gw(request)
    return await responses_endpoint(request, gw.routing, gw.sinks)


async def _get_response(request: Request) -> Response:
    edge.request_id(request)
    return await get_response(request, _gw(request).routing)


async def _delete_response(request: Request) -> Response:
    edge.request_id(request)
    return await delete_response(request, _gw(request).routing)


async def _input_items(request: Request) -> Response:
    edge.request_id(request)
    return await input_items(request, _gw(request).routing)


HOT: dict[str, fastpath.Handler] = {
    "/v1/chat/completions": _chat,
    "/v1/completions": _completions,
    "/v1/embeddings": _embeddings,
    "/v1/messages": _messages,
    "/v1/responses": _responses,
}


async def _models(request: Request) -> Response:
    gw = _gw(request)
    edge.request_id(request)
    tenant, _ = authenticate(gw.routing.policy, request.headers)
    return JSONResponse({"object": "list", "data": visible_models(gw.routing.policy, tenant, gw.started)})


async def _model(request: Request) -> Response:
    gw = _gw(request)
    edge.request_id(request)
    tenant, _ = authenticate(gw.routing.policy, request.headers)
    model_id = request.path_params["model_id"]
    for entry in visible_models(gw.routing.policy, tenant, gw.started):
        if entry["id"] == model_id:
            return JSONResponse(entry)
    raise ModelNotFound(f"The model {model_id!r} does not exist or is not available to this key.", param="model")


async def _explain(request: Request) -> Response:
    """Decide as for /v1/chat/completions without calling any upstream."""
    gw = _gw(request)
    edge.request_id(request)
    routing = gw.routing
    policy = routing.policy
    headers = edge.header_dict(request)
    raw = await edge.read_body(request, policy.limits.max_body_bytes, headers)
    tenant, _ = authenticate(policy, headers)
    req = normalize("chat", raw, headers, aliases=policy.aliases)
    decision = decide(policy, tenant, req, policy.classifier, await routing.gate.unhealthy(policy))
    error = refusal(decision)
    return JSONResponse(
        {
            "decision": decision.to_json(),
            "would_call": decision.ranked[0].id if decision.ranked else None,
            "error": error.body()["error"] if error else None,
        }
    )


async def _admin_deployments(request: Request) -> Response:
    """Each deployment's breaker, in-flight requests, recent latency and error rate (admin key only)."""
    gw = _gw(request)
    edge.require_admin(request, gw.routing.policy)
    store = gw.routing.guards.store
    deployments = await gw.routing.gate.report(gw.routing.policy)
    return JSONResponse({"shared_state": store.name, "deployments": deployments})


async def _openapi(request: Request) -> Response:
    """The OpenAPI document (gateway/http/openapi.py); it names nothing of the policy, so no key is needed."""
    return JSONResponse(openapi.document())


async def _healthz(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


async def _readyz(request: Request) -> Response:
    """Ready or not, with counts of deployments by state; each deployment's state (and why one is
    unavailable, which names credential variables) only for an admin key."""
    gw: Gateway | None = getattr(request.app.state, "gw", None)
    if gw is None:
        return JSONResponse({"status": "starting"}, status_code=503)
    if (drain := drain_of(request.scope.get("state"))) is not None and drain.draining:
        return JSONResponse({"status": "draining"}, status_code=503)  # SIGTERM: take this replica out
    policy = gw.routing.policy
    gate = gw.routing.gate
    tripped = await gate.unhealthy(policy)
    states = {d.id: _state(d, tripped, gate.down) for d in policy.deployments.values()}
    ready: dict[str, object] = {"status": "ready", "policy_revision": policy.revision}
    ready["deployment_counts"] = dict(sorted(Counter(states.values()).items()))
    if is_admin(policy, request.headers):
        why = {"breaker_open": "circuit breaker not closed", "ok": "ok"}
        ready["deployments"] = {
            d.id: d.unavailable or gate.down.get(d.id) or why[states[d.id]] for d in policy.deployments.values()
        }
    return JSONResponse(ready)


def _state(dep: Deployment, tripped: frozenset[str], down: Mapping[str, str]) -> str:
    if dep.unavailable:
        return "unavailable"
    if dep.id in down:
        return "health_down"
    return "breaker_open" if dep.id in tripped else "ok"


def _may_read_metrics(policy: PolicySet, headers: Mapping[str, str]) -> bool:
    """Open unless the policy names metrics keys (admin.metrics_keys); then one of them or an admin key."""
    hashes = policy.metrics_key_hashes
    return not hashes or is_admin(policy, headers) or holds_key(headers, hashes)


async def _metrics(request: Request) -> Response:
    gw = _gw(request)
    edge.request_id(request)
    if not _may_read_metrics(gw.routing.policy, request.headers):
        raise AuthenticationFailed("The metrics need a metrics key (the policy's admin.metrics_keys) or an admin key.")
    gw.metrics.breakers(await gw.routing.gate.statuses(gw.routing.policy))
    gw.metrics.budgets(await gw.routing.guards.budget_usage(gw.routing.policy))
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
    if exc.status_code == 404 and (location := _without_slash(request)) is not None:
        return Response(status_code=307, headers={"location": location})
    if exc.status_code == 405:
        error = MethodNotAllowed(f"Method {request.method} is not allowed on {request.url.path}.")
    else:
        error = RouteNotFound(f"Unknown path {request.url.path}.")
    return edge.error_response(error, _rid(request))


def _without_slash(request: Request) -> str | None:
    """The relative location of the same path without its trailing slash, if that is a route. Starlette's
    own redirect builds an absolute URL from the Host header, which the client controls."""
    path = request.url.path
    if not path.endswith("/") or path == "/":
        return None
    stripped = path.rstrip("/")
    scope = {**request.scope, "path": stripped}
    if not any(route.matches(scope)[0] != Match.NONE for route in request.app.router.routes):
        return None
    query = request.url.query
    return stripped + (f"?{query}" if query else "")


async def _unexpected_error(request: Request, exc: Exception) -> Response:
    log.exception("unexpected error on %s", request.url.path)
    return edge.error_response(GatewayError("The gateway failed unexpectedly."), _rid(request))
