"""Replay past requests on two policy sets: the example cases of both directories, and an audit trail's
recorded decisions rebuilt from their features (tenant, data class, model or route, complexity score,
the capabilities the candidates' rules show were needed, prompt tokens). No upstream is called.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from gateway.classify.base import Classifier, FixedScore
from gateway.errors import GatewayError
from gateway.policy.decide import decide, refusal, tier_for
from gateway.policy.policy_set import PolicySet, all_available
from gateway.policy.proof import Need, synthetic_request
from gateway.policyfiles.cases import CASE_FILE_ERRORS, CASES_DIR, Case, case_files, case_request, read_case_file
from gateway.request import ChatRequest, Endpoint


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one request gets: the deployments in the order tried, or the error code."""

    order: tuple[str, ...] = ()
    error: str | None = None

    def __str__(self) -> str:
        return self.order[0] if self.order else f"refused ({self.error})"


@dataclass
class Replay:
    """How many replayed requests route differently, and how (``old -> new`` of the first choice)."""

    replayed: int = 0
    changed: int = 0
    skipped: int = 0  # lines that are not routed decisions (e.g. a 401 before any tenant was known)
    transitions: Counter[str] = field(default_factory=Counter)
    examples: list[str] = field(default_factory=list)

    def add(self, name: str, old: Outcome, new: Outcome) -> None:
        self.replayed += 1
        if old.order[:1] == new.order[:1] and old.error == new.error:
            return
        self.changed += 1
        self.transitions[f"{old} -> {new}"] += 1
        if len(self.examples) < 20:
            self.examples.append(f"{name}: {old} -> {new}")

    def to_json(self) -> dict[str, Any]:
        return {
            "replayed": self.replayed,
            "changed": self.changed,
            "skipped": self.skipped,
            "transitions": dict(self.transitions.most_common()),
            "examples": self.examples,
        }


def outcome(policy: PolicySet, tenant: str, request: ChatRequest, classifier: Classifier, downgrade: bool) -> Outcome:
    if tenant not in policy.tenants:
        return Outcome(error="unknown_tenant")
    try:
        decision = decide(policy, tenant, request, classifier, downgrade=downgrade)
    except GatewayError as exc:
        return Outcome(error=exc.code)
    error = refusal(decision)
    return Outcome(tuple(d.id for d in decision.ranked), error.code if error else None)


def replay_cases(old: PolicySet, new: PolicySet, directories: Iterable[Path]) -> Replay:
    """Every case of every directory's ``cases/`` on both sets (credentials ignored, as ``policy check`` does)."""
    old, new = all_available(old), all_available(new)
    result = Replay()
    for path, case in _cases(directories, result):
        try:
            request, classifier = case_request(new, case)
        except GatewayError as exc:
            result.add(f"{path}: {case.name}", Outcome(error=exc.code), Outcome(error=exc.code))
            continue
        name = f"{path.parent.parent.name}/cases/{path.name}: {case.name}"
        result.add(
            name,
            outcome(old, case.tenant, request, classifier, False),
            outcome(new, case.tenant, request, classifier, False),
        )
    return result


def _cases(directories: Iterable[Path], result: Replay) -> Iterator[tuple[Path, Case]]:
    """Each case once: a case kept unchanged in both directories is replayed once."""
    seen: set[bytes] = set()
    for directory in directories:
        for path in case_files(directory / CASES_DIR):
            try:
                case_file, _ = read_case_file(path)
            except CASE_FILE_ERRORS:
                result.skipped += 1
                continue
            for case in case_file.cases:
                if (key := orjson.dumps(case.model_dump(), option=orjson.OPT_SORT_KEYS)) not in seen:
                    seen.add(key)
                    yield path, case


def replay_audit(old: PolicySet, new: PolicySet, lines: Iterable[bytes]) -> Replay:
    """Each audit line's request rebuilt from its recorded features, decided on both sets."""
    old, new = all_available(old), all_available(new)
    result = Replay()
    for number, line in enumerate(lines, 1):
        rebuilt = rebuild(line, old)
        if rebuilt is None:
            result.skipped += 1
            continue
        tenant, request, score, downgrade = rebuilt
        classifier = FixedScore(score, "replay")
        name = f"line {number} ({tenant}, {request.model})"
        result.add(
            name,
            outcome(old, tenant, request, classifier, downgrade),
            outcome(new, tenant, request, classifier, downgrade),
        )
    return result


def rebuild(line: bytes, policy: PolicySet) -> tuple[str, ChatRequest, float, bool] | None:
    """(tenant, request, complexity score, budget downgrade) from one audit line, or None when it holds no decision."""
    try:
        entry = orjson.loads(line)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(entry, dict) or not entry.get("tenant") or not entry.get("data_class"):
        return None
    model = entry.get("resolved_model") or entry.get("route") or entry.get("requested_model")
    if not isinstance(model, str):
        return None
    rules = {rule for c in entry.get("candidates") or () for rule in c.get("rules", ())}
    endpoint: Endpoint = entry["endpoint"] if entry.get("endpoint") in ("chat", "completions", "embeddings") else "chat"
    need = Need(endpoint, "capability.tools" in rules, "capability.vision" in rules, "capability.json" in rules)
    request = synthetic_request(model, str(entry["data_class"]), need)
    tokens = entry.get("input_tokens")
    if isinstance(tokens, int) and tokens > 0:
        request = dataclasses.replace(request, prompt_tokens_estimate=tokens, max_tokens=None)
    score = float(entry.get("complexity_score") or 0.0)
    route = policy.routes.get(model)
    downgrade = route is not None and entry.get("tier") == "simple" and tier_for(score, route.thresholds) != "simple"
    return str(entry["tenant"]), request, score, downgrade
