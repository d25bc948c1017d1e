"""Every error a client can get: OpenAI's JSON shape, the right status, never a stack trace."""

from __future__ import annotations

from typing import Any

import httpx
import openai
import pytest

from tests.conftest import ClientFactory, Upstreams
from tests.oaschema import validate

HI = [{"role": "user", "content": "hi"}]
KEY = {"authorization": "Bearer demo-key"}


def post(
    url: str, body: Any = None, headers: dict[str, str] | None = None, content: bytes | None = None
) -> httpx.Response:
    return httpx.post(
        url + "/v1/chat/completions",
        json=body if content is None else None,
        content=content,
        headers={**KEY, **(headers or {})},
    )


def error_of(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body = response.json()
    validate("ErrorResponse", body)
    assert "Traceback" not in response.text
    assert response.headers["x-request-id"]
    return dict(body["error"])


def test_missing_and_unknown_keys_are_401(example_gateway: str, make_client: ClientFactory) -> None:
    missing = httpx.post(example_gateway + "/v1/chat/completions", json={"model": "auto", "messages": HI})
    assert error_of(missing, 401)["code"] == "missing_api_key"
    with pytest.raises(openai.AuthenticationError) as info:
        make_client(example_gateway, "nope").chat.completions.create(
            model="auto",
            messages=HI,  # type: ignore[arg-type]
        )
    assert info.value.code == "invalid_api_key"


def test_malformed_json_is_400(example_gateway: str) -> None:
    assert "not valid JSON" in error_of(post(example_gateway, content=b'{"model": "auto", '), 400)["message"]
    assert (
        error_of(post(example_gateway, content=b"[1, 2]"), 400)["message"] == "The request body must be a JSON object."
    )


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"messages": HI}, "model"),
        ({"model": "auto"}, "messages"),
        ({"model": "auto", "messages": [{"role": "wizard", "content": "x"}]}, "messages[0].role"),
        ({"model": "auto", "messages": HI, "stream": "yes"}, "stream"),
        ({"model": "auto", "messages": HI, "max_tokens": -1}, "max_tokens"),
        ({"model": "auto", "messages": HI, "tools": {"a": 1}}, "tools"),
    ],
)
def test_invalid_fields_are_400_naming_the_param(example_gateway: str, body: dict[str, Any], param: str) -> None:
    assert error_of(post(example_gateway, body), 400)["param"] == param


def test_oversize_body_is_413(example_gateway: str) -> None:
    big = {"model": "auto", "messages": [{"role": "user", "content": "x" * 5_000_000}]}
    assert error_of(post(example_gateway, big), 413)["code"] == "request_too_large"


def test_unknown_model_is_404(example_gateway: str) -> None:
    error = error_of(post(example_gateway, {"model": "gpt-17", "messages": HI}), 404)
    assert error["code"] == "model_not_found" and error["param"] == "model"


def test_policy_denial_is_403_naming_rule_and_value(example_gateway: str, upstreams: Upstreams) -> None:
    response = post(
        example_gateway, {"model": "deepseek-v3", "messages": HI}, {"authorization": "Bearer acme-example-key"}
    )
    error = error_of(response, 403)
    assert error["type"] == "permission_error" and error["code"] == "policy_denied"
    assert "tenant.deny_origins" in error["message"] and "'CN'" in error["message"]
    assert "deepseek-v3-deepseek-api" in error["message"], "the message names the denied deployment"


def test_unknown_paths_and_methods(example_gateway: str) -> None:
    assert error_of(httpx.get(example_gateway + "/v1/nothing", headers=KEY), 404)["code"] == "not_found"
    assert (
        error_of(httpx.get(example_gateway + "/v1/chat/completions", headers=KEY), 405)["code"] == "method_not_allowed"
    )


def test_unknown_data_class_is_400(example_gateway: str) -> None:
    response = post(example_gateway, {"model": "auto", "messages": HI}, {"x-gateway-data-class": "top-secret"})
    assert error_of(response, 400)["param"] == "x-gateway-data-class"
