"""The HTTP face of :class:`Control`, mounted under ``/_standin`` on a stand-in app that asks for it.

Off by default (``create_openai_app(..., admin=True)`` turns it on): the routes take no key, so
whoever reaches the stand-in could read every prompt it recorded and queue faults. Tests that
drive a stand-in over HTTP turn it on; ``gateway serve --demo`` never does.

- ``POST /_standin/faults``  body: JSON list of faults -> ``{"pending": n}``
- ``GET  /_standin/calls``   -> ``{"calls": [...], "counts": {model: n}, "pending_faults": [...]}``
- ``POST /_standin/reset``   forget calls, faults and timing
- ``POST /_standin/timing``  body: ``{"delay": s, "chunk_gap": s}`` (either may be left out)
"""

from __future__ import annotations

import json

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from gateway.standin.control import FAULT_LIST, Control


class Timing(BaseModel):
    model_config = ConfigDict(extra="forbid")

    delay: float | None = Field(default=None, ge=0)
    chunk_gap: float | None = Field(default=None, ge=0)


def admin_routes(control: Control) -> list[Route]:
    async def faults(request: Request) -> Response:
        try:
            parsed = FAULT_LIST.validate_json(await request.body())
        except ValidationError as exc:
            return _invalid(exc)
        control.inject(*parsed)
        return JSONResponse({"pending": len(control.pending_faults())})

    async def calls(request: Request) -> Response:
        return JSONResponse(control.snapshot())

    async def reset(request: Request) -> Response:
        control.reset()
        return JSONResponse({"reset": True})

    async def timing(request: Request) -> Response:
        try:
            parsed = Timing.model_validate_json(await request.body())
        except ValidationError as exc:
            return _invalid(exc)
        control.set_timing(delay=parsed.delay, chunk_gap=parsed.chunk_gap)
        return JSONResponse({"delay": control.delay, "chunk_gap": control.chunk_gap})

    return [
        Route("/_standin/faults", faults, methods=["POST"]),
        Route("/_standin/calls", calls, methods=["GET"]),
        Route("/_standin/reset", reset, methods=["POST"]),
        Route("/_standin/timing", timing, methods=["POST"]),
    ]


def _invalid(exc: ValidationError) -> Response:
    return JSONResponse({"error": json.loads(exc.json(include_url=False))}, status_code=400)
