"""The hot endpoints served ahead of FastAPI: same errors, streams that end when the client leaves."""

from __future__ import annotations

import re
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from starlette.requests import Request

from gateway.http.app import create_app
from gateway.http.edge import header_dict, request_id
from gateway.settings import Settings
from gateway.standin.server import ThreadedServer
from tests.conftest import Upstreams
from tests.factories import deployment, small_policy, tenant
from tests.oaschema import validate

BODY = {"model": "cn-open", "messages": [{"role": "user", "content": "hi"}]}


@pytest.fixture
def gateway(tmp_path: Path, upstreams: Upstreams) -> Iterator[str]:
    v1 = upstreams.v1()
    deployments = {
        "cn-open-a": deployment("cn-open", v1["a"], max_retries=0, caps={"max_concurrency": 1}),
        "cn-open-b": deployment("cn-open", v1["b"], max_retries=0, price={"input": 0.15, "output": 0.3}),
        "us-open-a": deployment("us-open", v1["a"]),
        "frontier-api": deployment("frontier", v1["c"], self_hosted=False, operator="F", api_key_env="K"),
    }
    policy = small_policy(tmp_path / "p", v1, tenants={"open": tenant("open-key")}, deployments=deployments)
    app = create_app(Settings(policies=policy, reload_seconds=0), env={"K": "sk-test-openai-standin"})
    with ThreadedServer(app) as server:
        yield server.url


def in_flight(url: str) -> float:
    match = re.search(r"^gateway_in_flight_requests (\S+)$", httpx.get(url + "/metrics").text, re.M)
    assert match is not None
    return float(match.group(1))


def test_a_client_leaving_mid_stream_ends_the_stream_and_gives_the_lease_back(
    gateway: str, upstreams: Upstreams
) -> None:
    upstreams.controls["a"].set_timing(chunk_gap=0.5)  # the whole answer would take several seconds
    host = urlsplit(gateway)
    body = httpx.Request("POST", "/", json={**BODY, "stream": True}).content
    head = (
        f"POST /v1/chat/completions HTTP/1.1\r\nhost: {host.netloc}\r\nauthorization: Bearer open-key\r\n"
        f"content-type: application/json\r\ncontent-length: {len(body)}\r\n\r\n"
    ).encode()
    with socket.create_connection((host.hostname, host.port), timeout=10) as sock:
        sock.sendall(head + body)
        received = b""
        while b"data: " not in received:
            received += sock.recv(65536)
        assert b"x-gateway-deployment: cn-open-a" in received
        assert in_flight(gateway) == 1
    deadline = time.monotonic() + 2
    while in_flight(gateway) != 0 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert in_flight(gateway) == 0, "the stream ended when its client went away"
    upstreams.controls["a"].set_timing(chunk_gap=0.0)
    again = httpx.post(gateway + "/v1/chat/completions", json=BODY, headers={"authorization": "Bearer open-key"})
    assert again.headers["x-gateway-deployment"] == "cn-open-a", "the capped deployment's lease was given back"


def test_hot_endpoint_errors_keep_openai_shape_and_headers(gateway: str) -> None:
    answer = httpx.post(
        gateway + "/v1/chat/completions",
        content=b"{not json",
        headers={"authorization": "Bearer open-key", "x-request-id": "mine-1"},
    )
    assert answer.status_code == 400
    assert answer.headers["x-request-id"] == "mine-1"
    assert answer.headers["x-gateway-policy-revision"]
    validate("ErrorResponse", answer.json())
    assert answer.json()["error"]["code"] == "invalid_request"
    assert in_flight(gateway) == 0


def test_other_methods_and_paths_still_go_through_the_router(gateway: str) -> None:
    wrong_method = httpx.get(gateway + "/v1/chat/completions")
    assert wrong_method.status_code == 405
    assert wrong_method.json()["error"]["code"] == "method_not_allowed"
    slash = httpx.post(gateway + "/v1/chat/completions/?x=1", json=BODY, headers={"host": "evil.example"})
    assert slash.status_code == 307, "the router, not the fast path, answers a path with a trailing slash"
    assert slash.headers["location"] == "/v1/chat/completions?x=1", "relative: the Host header is the client's"
    assert httpx.post(gateway + "/v1/nothing/", json=BODY).status_code == 404


def test_header_lookups_see_the_first_of_repeated_headers() -> None:
    scope = {
        "type": "http",
        "headers": [(b"x-request-id", b"first-id"), (b"authorization", b"Bearer k"), (b"x-request-id", b"second")],
    }
    request = Request(scope)
    headers = header_dict(request)
    assert headers == {"x-request-id": "first-id", "authorization": "Bearer k"}
    assert request_id(request, headers) == request_id(request) == "first-id", "the same as Starlette's headers.get"
