"""Factories for tests: small policy directories, requests and decisions."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import orjson
import yaml

from gateway.policy.policy_set import PolicySet
from gateway.policyfiles.loader import load_policy_dir
from gateway.request import ChatRequest
from gateway.routing.auth import hash_key
from gateway.routing.normalize import normalize

REPO = Path(__file__).resolve().parent.parent
POLICIES = REPO / "policies"
EXAMPLE_PACKS = POLICIES / "examples"
# Every policy set in the repository: the example policies, each scenario pack (found by glob, so a pack
# added later is covered) and the benchmark's. The tests run policy test, check and verify on each.
POLICY_SETS = (POLICIES, *sorted(p for p in EXAMPLE_PACKS.glob("*/") if p.is_dir()), REPO / "bench" / "policies")


def chat(content: str = "hi", model: str = "auto", **fields: Any) -> ChatRequest:
    body = {"model": model, "messages": [{"role": "user", "content": content}], **fields}
    return normalize("chat", orjson.dumps(body), {})


def example_policy(env: Mapping[str, str] | None = None) -> PolicySet:
    return load_policy_dir(POLICIES, dict(env or {}))


def model(origin: str = "US", tier: str = "strong", price: float = 1.0, **fields: Any) -> dict[str, Any]:
    return {
        "vendor": fields.pop("vendor", "Acme"),
        "origin": origin,
        "open_weights": True,
        "license": "Apache-2.0",
        "quality_tier": tier,
        "endpoints": ["chat", "completions"],
        "capabilities": {"tools": True, "json": True, "context_window": 32768},
        "price": {"input": price, "output": price * 2},
        **fields,
    }


def deployment(model_id: str, base_url: str, jurisdiction: str = "US", **fields: Any) -> dict[str, Any]:
    return {
        "model": model_id,
        "base_url": base_url,
        "operator": fields.pop("operator", "self"),
        "jurisdiction": jurisdiction,
        "self_hosted": fields.pop("self_hosted", True),
        **fields,
    }


def tenant(key: str, **rules: Any) -> dict[str, Any]:
    return {"keys": [{"name": key, "sha256": hash_key(key)}], **rules}


def write_policy(directory: Path, **sections: Any) -> Path:
    """Write one YAML file per section into ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    for name, content in sections.items():
        (directory / f"{name}.yaml").write_text(yaml.safe_dump({name: content}, sort_keys=False))
    return directory


def small_policy(directory: Path, urls: Mapping[str, str], **overrides: Any) -> Path:
    """Two open models (CN, US) on two deployments each and a frontier model, one `auto` route."""
    sections: dict[str, Any] = {
        "models": {
            "cn-open": model("CN", "basic", 0.1),
            "us-open": model("US", "strong", 0.2),
            "frontier": model("US", "frontier", 2.0, open_weights=False, license="proprietary"),
        },
        "deployments": {
            "cn-open-a": deployment("cn-open", urls["a"]),
            "cn-open-b": deployment("cn-open", urls["b"], price={"input": 0.15, "output": 0.3}),
            "us-open-a": deployment("us-open", urls["a"]),
            "us-open-b": deployment("us-open", urls["b"], price={"input": 0.25, "output": 0.5}),
            "frontier-api": deployment("frontier", urls["c"], self_hosted=False, operator="Frontier Inc"),
        },
        "tenants": {
            "open": tenant("open-key"),
            "us-only": tenant("us-key", deny_origins=["CN"]),
            "private": tenant("private-key", require_self_hosted=True),
        },
        "routes": {
            "auto": {
                "tiers": {
                    "simple": ["cn-open", "us-open"],
                    "standard": ["us-open", "cn-open"],
                    "complex": ["frontier"],
                },
            }
        },
        "limits": {"max_body_bytes": 65536, "request_deadline_seconds": 10},
    }
    sections.update(overrides)
    return write_policy(directory, **sections)


def env_without_secrets() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY")}


class FakeClock:
    """A clock for code that takes one (``clock=``): it says ``now`` until a test moves it."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now
