"""Running apps on loopback: in the current event loop, and in a thread for tests."""

from __future__ import annotations

import asyncio
import threading

import httpx
import pytest

from gateway.standin.control import Control
from gateway.standin.openai_wire import create_openai_app
from gateway.standin.server import ThreadedServer, serve

HI = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}


def test_serve_runs_in_the_current_loop_next_to_a_client() -> None:
    async def run() -> tuple[str, int]:
        server = await serve(create_openai_app())
        try:
            async with httpx.AsyncClient(base_url=server.url) as client:
                response = await client.post("/v1/chat/completions", json=HI)
        finally:
            await server.stop()
        return server.url, response.status_code

    url, status = asyncio.run(run())
    assert url.startswith("http://127.0.0.1:") and status == 200
    with pytest.raises(httpx.ConnectError):
        httpx.get(url + "/v1/models")


def test_serve_stop_ends_a_delayed_answer_whose_client_left() -> None:
    async def run() -> None:
        control = Control(delay=30)
        server = await serve(create_openai_app(control))
        async with httpx.AsyncClient(base_url=server.url, timeout=0.2) as client:
            with pytest.raises(httpx.ReadTimeout):
                await client.post("/v1/chat/completions", json=HI)
        await asyncio.wait_for(server.stop(), 2)

    asyncio.run(run())


def test_threaded_server_leaves_no_thread_behind() -> None:
    before = set(threading.enumerate())
    with ThreadedServer(create_openai_app()) as server:
        assert httpx.get(server.url + "/v1/models").status_code == 200
        assert server.port == int(server.url.rsplit(":", 1)[1])
    assert set(threading.enumerate()) == before


def test_threaded_server_on_a_busy_port_fails_to_start() -> None:
    with ThreadedServer(create_openai_app()) as first:
        taken = ThreadedServer(create_openai_app(), port=first.port)
        with pytest.raises(OSError, match="in use"):
            taken.start()
