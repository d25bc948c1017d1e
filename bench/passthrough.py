"""The floor: a pass-through proxy with no gateway logic (no auth, no parsing, no policy, no metrics).

    .venv/bin/python -m bench.passthrough --upstream http://127.0.0.1:9000 --port 8090 [--client aiohttp|httpx]

Raw ASGI under uvicorn (uvloop, httptools) and one pooled HTTP client: aiohttp (the default, the
floor of the issue) or httpx (the client the gateway uses), so the two clients' costs can be told
apart. What it costs is what any Python gateway on this stack pays before doing any work.
"""

from __future__ import annotations

import argparse
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import httpx
import uvicorn

Scope = dict[str, Any]
HOP = {b"connection", b"keep-alive", b"transfer-encoding", b"content-length", b"host"}


def create_httpx_app(upstream: str) -> Any:
    client = httpx.AsyncClient(
        base_url=upstream, timeout=None, limits=httpx.Limits(max_connections=512, max_keepalive_connections=512)
    )

    async def app(scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send, lambda: None, client.aclose)
            return
        body = await _body(receive)
        headers = [(k, v) for k, v in scope["headers"] if k.lower() not in HOP]
        request = client.build_request(scope["method"], scope["path"], headers=headers, content=body)
        response = await client.send(request, stream=True)
        out = [(k.encode(), v.encode()) for k, v in response.headers.items() if k.encode() not in HOP]
        await send({"type": "http.response.start", "status": response.status_code, "headers": out})
        async for chunk in response.aiter_raw():
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await response.aclose()
        await send({"type": "http.response.body", "body": b""})

    return app


def create_aiohttp_app(upstream: str) -> Any:
    session: list[aiohttp.ClientSession] = []

    async def app(scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send, lambda: session.append(_session(upstream)), lambda: _close(session))
            return
        body = await _body(receive)
        headers = {k.decode(): v.decode() for k, v in scope["headers"] if k.lower() not in HOP}
        async with session[0].request(scope["method"], scope["path"], headers=headers, data=body) as response:
            out = [(k.encode(), v.encode()) for k, v in response.headers.items() if k.lower().encode() not in HOP]
            await send({"type": "http.response.start", "status": response.status, "headers": out})
            async for chunk in response.content.iter_any():
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b""})

    return app


def _session(upstream: str) -> aiohttp.ClientSession:
    return aiohttp.ClientSession(upstream, connector=aiohttp.TCPConnector(limit=512), auto_decompress=False)


async def _close(session: list[aiohttp.ClientSession]) -> None:
    await session[0].close()


async def _body(receive: Any) -> bytes:
    body, more = b"", True
    while more:
        message = await receive()
        body += message.get("body", b"")
        more = message.get("more_body", False)
    return body


async def _lifespan(
    receive: Any, send: Any, on_start: Callable[[], object], on_stop: Callable[[], Awaitable[None]]
) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            on_start()
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await on_stop()
            await send({"type": "lifespan.shutdown.complete"})
            return


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--upstream", required=True, help="scheme://host:port of the upstream")
    parser.add_argument("--port", type=int, default=8090)
    parser.add_argument("--client", choices=["aiohttp", "httpx"], default="aiohttp")
    args = parser.parse_args()
    create = create_aiohttp_app if args.client == "aiohttp" else create_httpx_app
    uvicorn.run(
        create(args.upstream),
        host="127.0.0.1",
        port=args.port,
        loop="uvloop",
        http="httptools",
        log_level="warning",
        access_log=False,
        lifespan="on",
    )


if __name__ == "__main__":
    main()
