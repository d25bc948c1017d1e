"""Example cases that ship next to the policies: request in, expected decision out.

``DIR/cases/*.yaml`` holds ``cases:``, each with a tenant, a request (a full body under ``request:``
or just its ``features:``) and what must hold of the decision. ``gateway policy test`` and
``gateway policy check`` run them. Credentials are ignored here (every deployment counts as
available): cases test the policy, not the shell. Nothing is called.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any

import orjson
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from gateway.classify.base import Classifier, FixedScore
from gateway.errors import GatewayError
from gateway.policy.decide import Decision, decide, refusal
from gateway.policy.policy_set import PolicySet, all_available
from gateway.policy.proof import score_in_tier
from gateway.policyfiles.case_features import Features, body_of
from gateway.policyfiles.yaml_lines import LineMap, load_with_lines
from gateway.request import ChatRequest
from gateway.routing.normalize import normalize

CASES_DIR = "cases"  # DIR/cases/*.yaml


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
    request: dict[str, Any] | None = Field(None, description="a full request body")
    features: Features | None = Field(None, description="or just the request's features")
    expect: Expect

    @model_validator(mode="after")
    def _one_request(self) -> Case:
        if (self.request is None) == (self.features is None):
            raise ValueError("give either request (a full body) or features, not both")
        return self


class CaseFile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    cases: list[Case]


@dataclasses.dataclass(frozen=True)
class CaseOutcome:
    """One case run: what failed (empty: it passed) and the decision's reasons, for the failure report."""

    file: Path
    line: int | None
    name: str
    problems: list[str]
    reasons: list[str] = dataclasses.field(default_factory=list)
    seconds: float = 0.0

    @property
    def where(self) -> str:
        return f"{self.file}:{self.line}" if self.line else str(self.file)


def case_files(directory: Path) -> list[Path]:
    return sorted(directory.glob("*.y*ml")) if directory.is_dir() else []


def run_cases(policy: PolicySet, directory: Path) -> list[str]:
    """Return one line per failed expectation (empty when all pass)."""
    return [
        f"{outcome.where}: case {outcome.name!r}: {problem}"
        for outcome in run_case_files(policy, directory)
        for problem in outcome.problems
    ]


def run_case_files(policy: PolicySet, directory: Path) -> list[CaseOutcome]:
    policy = all_available(policy)
    outcomes: list[CaseOutcome] = []
    for path in case_files(directory):
        try:
            case_file, lines = read_case_file(path)
        except CASE_FILE_ERRORS as exc:
            outcomes.append(CaseOutcome(path, None, "(the file)", [f"invalid case file: {exc}"]))
            continue
        outcomes.extend(_run_timed(policy, case, path, lines, i) for i, case in enumerate(case_file.cases))
    return outcomes


def _run_timed(policy: PolicySet, case: Case, path: Path, lines: LineMap, index: int) -> CaseOutcome:
    start = time.perf_counter()
    problems, reasons = run_case(policy, case)
    line = lines.line_of(f"cases[{index}]")
    return CaseOutcome(path, line, case.name, problems, reasons, time.perf_counter() - start)


CASE_FILE_ERRORS = (OSError, UnicodeDecodeError, yaml.YAMLError, ValidationError)


def read_case_file(path: Path) -> tuple[CaseFile, LineMap]:
    """A case file and where each case is written; raises one of ``CASE_FILE_ERRORS``."""
    raw, lines = load_with_lines(path.read_text(encoding="utf-8"))
    return CaseFile.model_validate(raw), lines


def case_request(policy: PolicySet, case: Case) -> tuple[ChatRequest, Classifier]:
    """The request a case describes, normalized as the gateway does (raises ``GatewayError``), and what
    scores it: the default classifier, or for a case that gives its tier, a score in that tier."""
    features = case.features
    data_class = (features.data_class if features else None) or case.data_class
    headers = {"x-gateway-data-class": data_class} if data_class else {}
    body = body_of(features) if features else case.request
    request = normalize(case.endpoint, orjson.dumps(body), headers, aliases=policy.aliases)  # type: ignore[arg-type]
    if features is not None and features.tier is not None:
        return request, FixedScore(score_in_tier(policy.routes.get(request.model), features.tier), "case-features")
    return request, policy.classifier


def run_case(policy: PolicySet, case: Case) -> tuple[list[str], list[str]]:
    """(failed expectations, the decision's reasons)."""
    if case.tenant not in policy.tenants:
        return [f"unknown tenant {case.tenant!r}; known: {', '.join(policy.tenants)}"], []
    decision: Decision | None = None
    try:
        request, classifier = case_request(policy, case)
        decision = decide(policy, case.tenant, request, classifier)
        error: GatewayError | None = refusal(decision)
    except GatewayError as exc:
        error = exc
    return _compare(case.expect, decision, error), reasons(decision, error)


def reasons(decision: Decision | None, error: GatewayError | None) -> list[str]:
    """The decision in a few lines: route, tier and score, data class, order, and why each candidate was denied."""
    lines = [f"error {error.code}: {error.message}"] if error else []
    if decision is None:
        return lines
    score = f" (score {decision.complexity.score:.3f})" if decision.complexity else ""
    lines.append(
        f"decision: model {decision.requested_model!r} -> route {decision.route}, tier {decision.tier}{score}, "
        f"data class {decision.data_class}, order {[d.id for d in decision.ranked]}"
    )
    for verdict in decision.verdicts:
        why = "; ".join(f"{v.rule}: {v.message}" for v in verdict.violations)
        lines.append(f"  {verdict.deployment.id}: " + (f"denied: {why}" if why else "allowed"))
    return lines


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
