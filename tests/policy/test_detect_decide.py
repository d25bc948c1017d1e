"""Personal data raises the data class in ``decide``: the order, the floor, explain, and the loader's checks."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from gateway.classify.heuristic import HeuristicClassifier
from gateway.errors import PolicyDenied
from gateway.policy.decide import decide
from gateway.policy.policy_set import PolicySet
from gateway.policyfiles.loader import PolicyError, load_policy_dir
from gateway.routing.normalize import normalize
from tests.factories import chat, small_policy, tenant

URLS = {"a": "http://127.0.0.1:9/v1", "b": "http://127.0.0.1:9/v1", "c": "http://127.0.0.1:9/v1"}
CLASSIFIER = HeuristicClassifier()
CARD = "4111 1111 1111 1111"
DATA_CLASSES = {
    "public": {},
    "internal": {"detect": ["email", "phone", "employee_id"], "allow_jurisdictions": ["US"]},
    "confidential": {"detect": ["card", "iban", "us_ssn"], "require_self_hosted": True},
}


def load(tmp_path: Path, **overrides: Any) -> PolicySet:
    sections: dict[str, Any] = {
        "data_classes": DATA_CLASSES,
        "detectors": {"employee_id": "EMP-[0-9]{6}"},
        "tenants": {
            "open": tenant("open-key"),
            "internal": tenant("internal-key", default_data_class="internal"),
            "no-secrets": tenant("ns-key", allow_data_classes=["public", "internal"]),
        },
    }
    sections.update(overrides)
    return load_policy_dir(small_policy(tmp_path, URLS, **sections), {})


def test_a_card_number_raises_the_class_to_confidential(tmp_path: Path) -> None:
    policy = load(tmp_path)
    decision = decide(policy, "open", chat(f"refund my card {CARD} please"), CLASSIFIER)
    assert decision.data_class == "confidential"
    assert decision.detected is not None and decision.detected.detectors == ("card",)
    assert decision.detected.raised_from == "public"
    assert "frontier-api" not in [d.id for d in decision.ranked], "confidential data stays self-hosted"


def test_clean_text_keeps_the_declared_class(tmp_path: Path) -> None:
    decision = decide(load(tmp_path), "open", chat("what is the capital of France?"), CLASSIFIER)
    assert (decision.data_class, decision.detected) == ("public", None)


def test_the_most_sensitive_class_that_fired_wins(tmp_path: Path) -> None:
    decision = decide(load(tmp_path), "open", chat(f"mail a@example.com, card {CARD}"), CLASSIFIER)
    assert decision.data_class == "confidential"
    decision = decide(load(tmp_path / "2"), "open", chat("ticket for EMP-004711"), CLASSIFIER)
    assert (decision.data_class, decision.detected.detectors) == ("internal", ("employee_id",))  # type: ignore[union-attr]


def test_never_lowered_below_the_tenant_or_the_header(tmp_path: Path) -> None:
    policy = load(tmp_path)
    internal = decide(policy, "internal", chat("mail a@example.com"), CLASSIFIER)
    assert (internal.data_class, internal.detected) == ("internal", None), "email raises only to internal"
    body = orjson.dumps({"model": "auto", "messages": [{"role": "user", "content": "mail a@example.com"}]})
    asked = normalize("chat", body, {"x-gateway-data-class": "confidential"})
    assert decide(policy, "open", asked, CLASSIFIER).data_class == "confidential"


def test_a_raised_class_the_tenant_may_not_send_is_denied_naming_the_detector(tmp_path: Path) -> None:
    with pytest.raises(PolicyDenied) as caught:
        decide(load(tmp_path), "no-secrets", chat(f"card {CARD}"), CLASSIFIER)
    assert "'confidential'" in caught.value.message and "card" in caught.value.message
    assert "4111" not in caught.value.message


def test_explain_names_the_detector_and_never_the_text(tmp_path: Path) -> None:
    decision = decide(load(tmp_path), "open", chat(f"card {CARD}, ssn 123-45-6789"), CLASSIFIER)
    explained = orjson.dumps(decision.to_json()).decode()
    assert decision.to_json()["detected"] == {
        "data_class": "confidential",
        "raised_from": "public",
        "detectors": ["card", "us_ssn"],
    }
    assert "4111" not in explained and "6789" not in explained


def test_the_whole_prompt_is_scanned_not_the_classifier_window(tmp_path: Path) -> None:
    request = chat("filler " * 5_000 + f" card {CARD} " + "filler " * 5_000)
    assert CARD not in request.text, "the classifier reads only the ends"
    assert decide(load(tmp_path), "open", request, CLASSIFIER).data_class == "confidential"


@pytest.mark.parametrize(
    ("endpoint", "body"),
    [
        ("completions", {"model": "auto", "prompt": f"card {CARD}"}),
        ("embeddings", {"model": "auto", "input": ["hello", f"card {CARD}"]}),
    ],
)
def test_prompt_and_input_are_scanned(tmp_path: Path, endpoint: Any, body: dict[str, Any]) -> None:
    request = normalize(endpoint, orjson.dumps(body), {})
    policy = load(tmp_path)
    assert decide(policy, "open", request, CLASSIFIER).data_class == "confidential"


def test_no_detect_in_the_policy_scans_nothing(tmp_path: Path) -> None:
    policy = load_policy_dir(small_policy(tmp_path, URLS), {})
    assert policy.detection.escalations == ()
    assert decide(policy, "open", chat(f"card {CARD}"), CLASSIFIER).detected is None


def problems(tmp_path: Path, **overrides: Any) -> str:
    with pytest.raises(PolicyError) as caught:
        load(tmp_path, **overrides)
    return "\n".join(caught.value.problems)


def test_unknown_detector_is_named_with_its_path(tmp_path: Path) -> None:
    found = problems(tmp_path, data_classes={"public": {}, "secret": {"detect": ["credit_card"]}})
    assert "data_classes.secret.detect[0]: unknown detector 'credit_card'" in found
    assert "built-in: email, phone, card, iban, us_ssn" in found


def test_a_custom_detector_may_not_take_a_built_in_name(tmp_path: Path) -> None:
    assert "detectors.email: 'email' is a built-in detector" in problems(tmp_path, detectors={"email": "x{3}"})


def test_an_unsafe_custom_pattern_is_refused_at_load(tmp_path: Path) -> None:
    found = problems(tmp_path, detectors={"employee_id": "(EMP-[0-9]+)+"})
    assert "detectors.yaml:2: detectors.employee_id: every repeat needs an upper bound" in found
