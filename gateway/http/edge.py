"""HTTP edge helpers: body limits, request ids, routed headers and OpenAI-shaped error responses."""

from __future__ import annotations

import json
import math
import random
import re
from collections.abc import Mapping
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from gateway.errors import AuthenticationFailed, BodyTooLarge, GatewayError, InvalidRequest
from gateway.observe.logs import REQUEST_ID
from gateway.policy.decide import Decision
from gateway.policy.policy_set import Deployment, PolicySet
from gateway.routing.auth import is_admin

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


_JOINED = b"x-gateway-data-class"  # repeated, every value counts (the most sensitive class wins)


def header_dict(request: Request) -> dict[str, str]:
    """The request's headers as a plain dict (names lower-case, the first of repeated ones, except that a
    repeated ``x-gateway-data-class`` keeps all its values, comma-joined): the hot endpoints look up about
    six, and each ``request.headers.get`` scans the raw list."""
    raw = request.scope["headers"]
    headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in reversed(raw)}
    if "x-gateway-data-class" in headers:
        values = [v.decode("latin-1") for k, v in raw if k == _JOINED]
        headers["x-gateway-data-class"] = ", ".join(values)
    return headers


def request_id(request: Request, headers: Mapping[str, str] | None = None) -> str:
    given = (request.headers if headers is None else headers).get("x-request-id")
    # 128 random bits from the process's PRNG: an id must be unique, not secret, and os.urandom is a syscall
    rid = given if given and _REQUEST_ID.match(given) else f"req_{random.getrandbits(128):032x}"
    request.state.request_id = rid
    REQUEST_ID.set(rid)
    return rid


def require_admin(request: Request, policy: PolicySet) -> None:
    """An admin endpoint: the request id set, and a 401 unless the request holds one of the policy's admin keys."""
    request_id(request)
    if not is_admin(policy, request.headers):
        raise AuthenticationFailed("This endpoint needs an admin key (the policy's admin.keys).")


async def read_body(request: Request, limit: int, headers: Mapping[str, str] | None = None) -> bytes:
    declared = (request.headers if headers is None else headers).get("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise InvalidRequest("Invalid Content-Length header.")
        if int(declared) > limit:
            raise BodyTooLarge(f"The request body is {declared} bytes; the limit is {limit} bytes.")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge(f"The request body exceeds the limit of {limit} bytes.")
        chunks.append(chunk)
    return b"".join(chunks)


def routed_headers(rid: str, decision: Decision, deployment: Deployment, explain: bool) -> dict[str, str]:
    headers = {
        "x-request-id": rid,
        "x-gateway-model": deployment.model_id,
        "x-gateway-deployment": deployment.id,
        "x-gateway-tier": decision.tier or "none",
        "x-gateway-policy-revision": decision.revision,
    }
    if explain:
        headers["x-gateway-decision"] = json.dumps(decision.to_json(), ensure_ascii=True, separators=(",", ":"))
    return headers


def error_response(
    exc: GatewayError, rid: str | None, revision: str | None = None, body: dict[str, Any] | None = None
) -> Response:
    """The error as OpenAI's JSON shape, or as ``body`` when another wire format needs its own."""
    headers = {}
    if rid:
        headers["x-request-id"] = rid
    if revision:
        headers["x-gateway-policy-revision"] = revision
    if exc.retry_after is not None:
        headers["retry-after"] = str(max(1, math.ceil(exc.retry_after)))
    elif exc.status in (429, 503):
        headers["retry-after"] = "1"
    content = orjson.dumps(exc.body() if body is None else body)
    return Response(content, status_code=exc.status, headers=headers, media_type="application/json")
