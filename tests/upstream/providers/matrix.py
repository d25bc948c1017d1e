"""The provider matrix's harness: one provider's fake on loopback, a gateway with one catalog model on it, and
what the gateway says it did (audit lines, metric labels).

Each provider's test file builds its fake and calls :func:`provider_gateway` with its catalog entry and
deployment; tests then use the official openai SDK against the gateway and read the fake's recorded calls.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from gateway.http.app import create_app
from gateway.settings import Settings
from gateway.standin.server import ThreadedServer
from gateway.upstream.providers.litellm_provider import load_litellm
from tests.audit_file import audit_entries
from tests.factories import model, tenant, write_policy

# litellm hides pydantic's "`ReadOnly` qualifier" warning with a filter pytest drops after the first test
# (see test_litellm_provider.py); its Azure and Bedrock streams read pydantic's deprecated `model_fields` and
# `model_computed_fields` off instances, harmless, but the suite's `error` filter would turn the warning into an
# exception inside litellm (a 500 mid-stream). Both are litellm's, not the gateway's.
LITELLM_WARNINGS = [
    pytest.mark.filterwarnings("ignore:.*`ReadOnly` qualifier:UserWarning"),
    pytest.mark.filterwarnings("ignore:Accessing the 'model_\\w+' attribute on the instance:DeprecationWarning"),
]
TENANT_KEY = "matrix-key"
HELLO: list[Any] = [{"role": "user", "content": "Say hello"}]
WEATHER: Any = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}
ASK_WEATHER: list[Any] = [{"role": "user", "content": "Weather in Paris?"}]


@dataclass
class Gateway:
    url: str
    audit: Path

    def client(self) -> openai.OpenAI:
        return openai.OpenAI(base_url=self.url + "/v1", api_key=TENANT_KEY, max_retries=0)

    def entries(self) -> list[dict[str, Any]]:
        return audit_entries(self.audit, writing=True)

    def last_entry(self, count: int) -> dict[str, Any]:
        """The audit line of the ``count``-th request (lines are written at once: flush_seconds 0)."""
        deadline = time.monotonic() + 10
        while len(self.entries()) < count and time.monotonic() < deadline:
            time.sleep(0.01)
        return self.entries()[count - 1]

    def metric(self, name: str, **labels: str) -> float:
        """The sum of ``name`` over the series whose labels include ``labels``."""
        text = httpx.get(self.url + "/metrics").text
        total = 0.0
        for series, value in re.findall(rf"^{name}{{([^}}]*)}} (\S+)$", text, re.M):
            found = dict(re.findall(r'(\w+)="([^"]*)"', series))
            if all(found.get(key) == wanted for key, wanted in labels.items()):
                total += float(value)
        return total


def catalog_model(vendor: str, origin: str, **fields: Any) -> dict[str, Any]:
    """A closed frontier model of ``vendor`` made in ``origin``, with chat, tools and a price."""
    fields = {"open_weights": False, "license": "proprietary", "endpoints": ["chat"]} | fields
    return model(origin, "frontier", 1.0, vendor=vendor, **fields)


@contextmanager
def provider_gateway(
    directory: Path, models: Mapping[str, Any], deployments: Mapping[str, Any], env: Mapping[str, str]
) -> Iterator[Gateway]:
    """A gateway in a thread with ``models`` and ``deployments``, one tenant (:data:`TENANT_KEY`), an audit log."""
    policy = write_policy(
        directory / "policy",
        models=dict(models),
        deployments=dict(deployments),
        tenants={"matrix": tenant(TENANT_KEY)},
        limits={"max_body_bytes": 65536, "request_deadline_seconds": 20},
    )
    if any(spec.get("provider", "openai_compatible") != "openai_compatible" for spec in deployments.values()):
        load_litellm()  # its import takes seconds on a busy machine: not within the server's start timeout
    audit = directory / "audit.jsonl"
    settings = Settings(policies=policy, audit_log=str(audit), audit_flush_seconds=0, reload_seconds=0)
    with ThreadedServer(create_app(settings, env=dict(env))) as server:
        yield Gateway(server.url, audit)


def streamed_text(chunks: list[Any]) -> str:
    return "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)


def streamed_arguments(chunks: list[Any]) -> str:
    return "".join(
        call.function.arguments or ""
        for c in chunks
        if c.choices
        for call in (c.choices[0].delta.tool_calls or [])
        if call.function
    )


def counts(usage: Any) -> tuple[int, int, int]:
    """A usage's three counts (streams and whole answers differ in which details they carry)."""
    assert usage is not None
    return usage.prompt_tokens, usage.completion_tokens, usage.total_tokens
