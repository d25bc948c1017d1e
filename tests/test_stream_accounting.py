"""What a request costs when its usage does not arrive: a stream the client leaves or the upstream drops,
an upstream that sends no usage or malformed usage; and what a client gets of upstream extras (timings).

Rate limits and budgets are checked with the real pieces: the gateway in a thread over the in-memory
store and over a real Redis, the stand-in upstream streaming, the official openai SDK as the client.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from gateway.app import create_app
from gateway.settings import Settings
from gateway.standin.server import ThreadedServer
from tests.conftest import ClientFactory, Upstreams
from tests.factories import small_policy, tenant

PROMPT = "word " * 1600  # 8,000 characters: a 2,000-token prompt, by the gateway's and the stand-in's estimate
STREAMS = 12
TPM = 6_500  # three read-to-end streams (2,000 prompt + ~25 output tokens each) fit, a fourth does not
DAILY_USD = 0.0021  # us-open-a: $0.2/M in, $0.4/M out; ~$0.00041 per stream, $0.00042 reserved: five fit


@dataclass
class Gateway:
    url: str
    audit: Path

    def entries(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.audit.read_text().splitlines()]

    def wait_idle(self, lines: int) -> None:
        """Until ``lines`` requests are recorded and none is in flight: a stream's settlement runs before its
        request stops counting as in flight, so the next request sees it."""
        deadline = time.monotonic() + 10
        while (len(self.entries()) < lines or self.in_flight() != 0) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert len(self.entries()) >= lines and self.in_flight() == 0

    def in_flight(self) -> float:
        text = httpx.get(self.url + "/metrics").text
        match = re.search(r"^gateway_in_flight_requests (\S+)$", text, re.M)
        assert match is not None
        return float(match.group(1))

    def metrics(self) -> str:
        return httpx.get(self.url + "/metrics").text


def accounting_policy(directory: Path, upstreams: Upstreams) -> Path:
    tenants = {
        "open": tenant("open-key"),
        **{f"tpm-{mode}": tenant(f"tpm-{mode}-key", limits={"tpm": TPM}) for mode in ("read", "cancel")},
        **{f"budget-{mode}": tenant(f"budget-{mode}-key", budget={"daily_usd": DAILY_USD}) for mode in ("read", "cancel")},
    }
    return small_policy(directory, upstreams.v1(), tenants=tenants)


@pytest.fixture(params=["memory", "redis"])
def gateway(request: pytest.FixtureRequest, tmp_path: Path, upstreams: Upstreams) -> Iterator[Gateway]:
    env = {"REDIS_URL": request.getfixturevalue("redis_server").url} if request.param == "redis" else {}
    audit = tmp_path / "audit.jsonl"
    settings = Settings(
        policies=accounting_policy(tmp_path / "p", upstreams), audit_log=str(audit), audit_flush_seconds=0,
        reload_seconds=0,
    )  # fmt: skip
    with ThreadedServer(create_app(settings, env=env)) as server:
        yield Gateway(server.url, audit)


def clear_of_a_minute_boundary(seconds: float = 15.0) -> None:
    """Rate limits count in fixed one-minute windows: start a run where it cannot cross into a new one."""
    left = 60.0 - time.time() % 60.0
    if left < seconds:
        time.sleep(left + 0.05)


def admitted(gateway: Gateway, client: openai.OpenAI, cancel: bool) -> int:
    """Of STREAMS sequential streams of the 2,000-token prompt: how many the gateway let through. A cancelling
    client closes each stream after its 5th content chunk."""
    count = 0
    for _ in range(STREAMS):
        try:
            stream = client.chat.completions.create(
                model="us-open", max_tokens=50, stream=True, messages=[{"role": "user", "content": PROMPT}]
            )
        except openai.RateLimitError as exc:
            assert exc.code in ("rate_limit_exceeded", "insufficient_quota")
            continue
        count += 1
        with stream:
            content = 0
            for chunk in stream:
                content += bool(chunk.choices and chunk.choices[0].delta.content)
                if cancel and content == 5:
                    break
        gateway.wait_idle(count)
    return count


@pytest.mark.parametrize("limit", ["tpm", "budget"])
def test_a_stream_cancelled_early_costs_what_it_used(
    limit: str, gateway: Gateway, make_client: ClientFactory, upstreams: Upstreams
) -> None:
    clear_of_a_minute_boundary()
    read = admitted(gateway, make_client(gateway.url, f"{limit}-read-key"), cancel=False)
    for control in (upstreams.controls["a"], upstreams.controls["b"]):
        control.set_timing(chunk_gap=0.02)  # so the client can leave while the upstream still streams
    cancelled = admitted(gateway, make_client(gateway.url, f"{limit}-cancel-key"), cancel=True)
    print(f"{limit}: admitted {read} of {STREAMS} read to the end, {cancelled} of {STREAMS} cancelled early")
    assert read == (3 if limit == "tpm" else 5)
    assert cancelled == read
