"""The policy's admin side: ``GET /admin/policies``, ``POST /admin/policies/reload`` and SIGHUP.

With ``--workers N`` each worker process has its own copy of the policy. A reload that one worker
made on ``POST`` is passed on by sending SIGHUP to the parent, which sends SIGHUP to every worker
(``gateway.http.serve.Workers.handle_hup``); each then reloads the same files. The file watch runs
in every worker too, so all of them end on the revision the files hold.
"""

from __future__ import annotations

import asyncio
import os
import signal
import threading
from contextlib import AsyncExitStack
from typing import Protocol

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from gateway.errors import PolicyRejected
from gateway.http import edge
from gateway.http.reload import PolicyReloader, Running


class Admin(Running, Protocol):
    """What these endpoints read of the running app (``gateway.http.app.Gateway``)."""

    reloader: PolicyReloader
    workers: int


def _admin(request: Request) -> Admin:
    gw: Admin = request.app.state.gw
    edge.require_admin(request, gw.routing.policy)
    return gw


async def admin_policies(request: Request) -> Response:
    """The revision in force, when and from where it was loaded, and the last refused attempt."""
    gw = _admin(request)
    return JSONResponse({**gw.reloader.report(), "worker_pid": os.getpid()})


async def reload_policies(request: Request) -> Response:
    """Reload now: 200 with the revision in force, or 422 with every problem (the old revision stays)."""
    gw = _admin(request)
    outcome = gw.reloader.reload(gw, "admin")
    if outcome.problems:
        error = PolicyRejected(
            f"The policy in {gw.reloader.directory} has {len(outcome.problems)} problem(s); "
            f"revision {outcome.revision} stays in force: " + "; ".join(outcome.problems)
        )
        body = error.body()
        body["error"]["problems"] = list(outcome.problems)
        return edge.error_response(error, request.state.request_id, outcome.revision, body)
    if outcome.changed and gw.workers > 1:
        os.kill(os.getppid(), signal.SIGHUP)  # the supervisor passes it to every worker
    body = {"revision": outcome.revision, "changed": outcome.changed, **gw.reloader.report()}
    return JSONResponse(body, headers={"x-gateway-policy-revision": outcome.revision})


def reload_on_sighup(gw: Running, reloader: PolicyReloader, stack: AsyncExitStack) -> None:
    """SIGHUP reloads at once. Signals reach only the main thread: an app served from another thread
    (the tests' in-process servers) has the file watch and the endpoint only."""
    if threading.current_thread() is not threading.main_thread():
        return
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGHUP, reloader.reload, gw, "sighup")
    stack.callback(loop.remove_signal_handler, signal.SIGHUP)
