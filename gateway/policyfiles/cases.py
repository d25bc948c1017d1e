"""Example cases that ship next to the policies: request in, expected decision out.

``policies/cases/*.yaml`` holds ``cases:``, each with a tenant, a request body and what must
hold of the decision. ``gateway policy check`` and the test suite run them. Credentials are
ignored here (every deployment counts as available): cases test the policy, not the shell.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import orjson
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from gateway.classify import load_default_classifier
from gateway.errors import GatewayError
from gateway.policy.decide import Decision, decide, refusal
from gateway.policy.policy_set import PolicySet
from gateway.routing.normalize import normalize


class Expect(BaseModel):
    model_config = ConfigDict(extra="forbid")
    tier: str | None = None
    first: str | None = Field(None, description="deployment tried first")
    first_model: str | None = None
    allowed: list[str] | None = Field(None, description="exactly these deployments are allowed, in this order")
    never: list[str] = Field(default_factory=list, description="deployments that must not be allowed")
    error: str | None = Field(None, description="error code the client gets, e.g. policy_denied")
    error_mentions: list[str] = Field(default_factory=list)


class Case(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    tenant: str
    data_class: str | None = None
    endpoint: str = "chat"
    request: dict[str, Any]
    expect: Expect


class CaseFile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    cases: list[Case]


def run_cases(policy: PolicySet, directory: Path) -> list[str]:
    """Return one line per failed expectation (empty when all pass)."""
    if not directory.is_dir():
        return []
    policy = _all_available(policy)
    failures: list[str] = []
    for path in sorted(directory.glob("*.y*ml")):
        try:
            case_file = CaseFile.model_validate(yaml.safe_load(path.read_text(encoding="utf-8")))
        except (yaml.YAMLError, ValidationError) as exc:
            failures.append(f"{path}: invalid case file: {exc}")
            continue
        for case in case_file.cases:
            failures.extend(f"{path}: case {case.name!r}: {problem}" for problem in run_case(policy, case))
    return failures


def run_case(policy: PolicySet, case: Case) -> list[str]:
    if case.tenant not in policy.tenants:
        return [f"unknown tenant {case.tenant!r}"]
    headers = {"x-gateway-data-class": case.data_class} if case.data_class else {}
    try:
        request = normalize(case.endpoint, orjson.dumps(case.request), headers, aliases=policy.aliases)  # type: ignore[arg-type]
        decision = decide(policy, case.tenant, request, load_default_classifier())
        error: GatewayError | None = refusal(decision)
    except GatewayError as exc:
        decision, error = None, exc
    return _compare(case.expect, decision, error)


def _compare(expect: Expect, decision: Decision | None, error: GatewayError | None) -> list[str]:
    problems: list[str] = []
    got_error = error.code if error else None
    if expect.error != got_error:
        problems.append(
            f"expected error {expect.error!r}, got {got_error!r}" + (f" ({error.message})" if error else "")
        )
    for text in expect.error_mentions:
        if error is None or text not in error.message:
            problems.append(f"expected the error message to mention {text!r}")
    if decision is None:
        return problems
    order = [d.id for d in decision.ranked]
    if expect.tier is not None and decision.tier != expect.tier:
        score = decision.complexity.score if decision.complexity else None
        problems.append(f"expected tier {expect.tier!r}, got {decision.tier!r} (score {score})")
    if expect.first is not None and order[:1] != [expect.first]:
        problems.append(f"expected first deployment {expect.first!r}, got order {order}")
    if expect.first_model is not None and [d.model_id for d in decision.ranked[:1]] != [expect.first_model]:
        problems.append(f"expected first model {expect.first_model!r}, got order {order}")
    if expect.allowed is not None and order != expect.allowed:
        problems.append(f"expected allowed {expect.allowed}, got {order}")
    problems.extend(f"deployment {d!r} must not be allowed, got order {order}" for d in expect.never if d in order)
    return problems


def _all_available(policy: PolicySet) -> PolicySet:
    deployments = {k: dataclasses.replace(d, unavailable=None) for k, d in policy.deployments.items()}
    return dataclasses.replace(policy, deployments=deployments)
