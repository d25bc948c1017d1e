"""Aliases end to end: agent clients' model names (Claude Code's dated ids, Codex's) through the shipped
policies, on /v1/messages, /v1/chat/completions and /v1/completions, in explain and in the audit."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import httpx
import openai
import pytest

from gateway.http.app import create_app
from gateway.settings import Settings
from gateway.standin.server import ThreadedServer
from tests.audit_file import audit_entries
from tests.conftest import ClientFactory, Upstreams
from tests.factories import POLICIES

CLAUDE = "claude-sonnet-4-5-20250929"
HI: list[Any] = [{"role": "user", "content": "say hi"}]


@pytest.fixture
def audited(tmp_path: Path, upstreams: Upstreams) -> Iterator[tuple[str, Path]]:
    """The shipped policies (with policies/aliases.yaml) in front of the stand-ins, auditing to a file. Without
    the Anthropic deployment's key, so that litellm (seconds to import on a busy machine) is not loaded."""
    audit = tmp_path / "audit.jsonl"
    settings = Settings(policies=POLICIES, audit_log=str(audit), audit_flush_seconds=0, reload_seconds=0)
    env = {k: v for k, v in upstreams.example_env().items() if not k.startswith("ANTHROPIC_")}
    with ThreadedServer(create_app(settings, env=env)) as server:
        yield server.url, audit


def test_claude_codes_model_id_is_routed_through_the_alias(audited: tuple[str, Path], upstreams: Upstreams) -> None:
    url, audit = audited
    with anthropic.Anthropic(base_url=url, api_key="demo-key", max_retries=0) as client:
        raw = client.messages.with_raw_response.create(model=CLAUDE, max_tokens=100, messages=HI)
        with client.messages.stream(model="claude-haiku-4-5-20251001", max_tokens=100, messages=HI) as stream:
            streamed = stream.get_final_message()
    message = raw.parse()
    assert raw.headers["x-gateway-tier"] == "simple" and raw.headers["x-gateway-deployment"] == "qwen3-32b-vllm"
    assert message.model == "qwen3-32b" and "say hi" in message.content[0].text  # type: ignore[union-attr]
    assert streamed.stop_reason == "end_turn" and streamed.model == "qwen3-32b"
    assert upstreams.controls["a"].models() == ["Qwen/Qwen3-32B"] * 2, "the upstream gets its own model name"
    lines = audit_entries(audit)
    assert [(e["requested_model"], e["alias"], e["resolved_model"], e["route"]) for e in lines] == [
        (CLAUDE, "claude-*", "auto", "auto"),
        ("claude-haiku-4-5-20251001", "claude-*", "auto", "auto"),
    ]


def test_openai_chat_and_completions_resolve_too(example_gateway: str, make_client: ClientFactory) -> None:
    client = make_client(example_gateway, "demo-key")
    chat = client.chat.completions.with_raw_response.create(model="gpt-5-codex", messages=HI)
    text = client.completions.with_raw_response.create(model=CLAUDE, prompt="say hi", max_tokens=20)
    assert chat.headers["x-gateway-tier"] == "simple" and chat.parse().model == "qwen3-32b"
    assert text.headers["x-gateway-tier"] == "simple" and text.parse().choices[0].text


def test_explain_shows_the_requested_name_the_alias_and_the_target(example_gateway: str) -> None:
    body = {"model": CLAUDE, "messages": HI}
    answer = httpx.post(
        example_gateway + "/v1/route/explain", json=body, headers={"authorization": "Bearer demo-key"}
    ).json()
    decision = answer["decision"]
    assert (decision["requested_model"], decision["alias"], decision["resolved_model"]) == (CLAUDE, "claude-*", "auto")
    assert decision["route"] == "auto" and answer["would_call"] == "qwen3-32b-vllm"
    shown = httpx.post(
        example_gateway + "/v1/chat/completions",
        json=body,
        headers={"authorization": "Bearer demo-key", "x-gateway-explain": "1"},
    )
    assert json.loads(shown.headers["x-gateway-decision"])["alias"] == "claude-*"


def test_an_exact_catalog_id_is_not_taken_by_the_pattern(example_gateway: str, make_client: ClientFactory) -> None:
    answer = make_client(example_gateway, "demo-key").chat.completions.with_raw_response.create(
        model="claude-sonnet-4", messages=HI
    )
    assert answer.headers["x-gateway-deployment"] == "claude-sonnet-4-anthropic"
    assert answer.headers["x-gateway-tier"] == "none"


def test_an_unmatched_name_is_404_and_audited_with_tenant_and_name(
    audited: tuple[str, Path], make_client: ClientFactory
) -> None:
    url, audit = audited
    with pytest.raises(openai.NotFoundError) as missing:
        make_client(url, "demo-us-only").chat.completions.create(model="llama-17", messages=HI)
    assert missing.value.code == "model_not_found"
    (line,) = audit_entries(audit)
    assert (line["tenant"], line["requested_model"], line["status"]) == ("demo-us-only", "llama-17", 404)
    assert (line["error_code"], line["alias"], line["resolved_model"]) == ("model_not_found", None, None)
