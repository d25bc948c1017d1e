from __future__ import annotations

import pytest
from pydantic import ValidationError

from gateway.classify import load_default_classifier, load_router_model
from gateway.classify.features import FORMS, analyze
from gateway.classify.learned import Calibration, LearnedClassifier, from_json, quantile_knots, to_json
from gateway.classify.loader import read_router_model
from gateway.policy.decide import tier_for
from gateway.policy.schema import Thresholds
from tests.factories import example_policy

EASY = "What is the capital of France?"
HARD = (
    "Prove step by step that the sum of the first n odd numbers is n^2; analyze the trade-offs "
    "of induction versus a combinatorial argument, design a plan, justify it and evaluate the edge cases."
)


def chat(content: str, **fields: object) -> object:
    from tests.factories import chat as make

    return make(content, **fields)


def test_the_shipped_artifact_loads_and_is_the_default() -> None:
    from gateway.classify.loader import ARTIFACT
    from gateway.training.cli import default_artifact

    model = read_router_model(default_artifact())  # its load time: bench/router_latency.py (no timed asserts)
    assert default_artifact().name == ARTIFACT and default_artifact().stat().st_size < 5_000_000
    assert set(model.forms) == set(FORMS) and len(model.calibration.knots) == 101
    assert all(w.words and w.bigrams and w.grams for w in model.forms.values())
    classifier = load_default_classifier()
    assert isinstance(classifier, LearnedClassifier) and classifier.model is load_router_model()


def test_scoring_is_deterministic_and_in_range() -> None:
    first, second = LearnedClassifier(load_router_model()), LearnedClassifier(load_router_model())
    for text in (EASY, HARD, "", "x" * 20000, "1 + 1 = ?"):
        a, b = first.classify(chat(text)), second.classify(chat(text))  # type: ignore[arg-type]
        assert a == b and a.top == b.top and 0.0 <= a.score <= 1.0


def test_explain_shows_the_score_and_the_strongest_features() -> None:
    result = load_default_classifier().classify(chat(HARD))  # type: ignore[arg-type]
    assert result.classifier == "learned" and "raw" in result.features
    assert 1 <= len(result.top) <= 6
    sizes = [abs(c) for _, c in result.top]
    assert sizes == sorted(sizes, reverse=True)
    assert any(name.startswith(("word:", "pair:", "prior:")) for name, _ in result.top)


def test_hand_written_prompts_land_in_the_expected_tiers() -> None:
    thresholds = example_policy().routes["auto"].thresholds
    classifier = load_default_classifier()
    assert tier_for(classifier.classify(chat(EASY)).score, thresholds) == "simple"  # type: ignore[arg-type]
    assert tier_for(classifier.classify(chat(HARD)).score, thresholds) == "complex"  # type: ignore[arg-type]


def test_tools_raise_the_score_through_the_prior() -> None:
    tool = {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}
    classifier = load_default_classifier()
    plain = classifier.classify(chat("Book me a table for two tonight."))  # type: ignore[arg-type]
    tools = classifier.classify(chat("Book me a table for two tonight.", tools=[tool]))  # type: ignore[arg-type]
    assert tools.score > plain.score


def test_calibration_is_a_cdf_and_shares_become_thresholds() -> None:
    calibration = Calibration(quantile_knots([float(i) for i in range(1000)], [1.0] * 1000))
    assert calibration.score(-5) == 0.0 and calibration.score(5000) == 1.0
    assert calibration.score(500.0) == pytest.approx(0.5, abs=0.01)
    assert calibration.threshold_for_share(0.3) == pytest.approx(0.7, abs=0.01)
    with pytest.raises(ValueError):
        calibration.threshold_for_share(1.5)


def test_the_artifact_round_trips_and_rejects_strangers() -> None:
    model = load_router_model()
    assert from_json(to_json(model)) == model
    with pytest.raises(ValueError):
        from_json({"format": "something-else", "version": 1})


def test_shares_and_scores_are_not_mixed() -> None:
    assert Thresholds(strong_share=0.3).by_share
    with pytest.raises(ValidationError):
        Thresholds(strong_share=0.3, complex=0.5)
    with pytest.raises(ValidationError):
        Thresholds(standard_share=0.3)
    with pytest.raises(ValidationError):
        Thresholds(strong_share=0.7, standard_share=0.5)


def test_the_loader_resolves_shares_from_the_calibration() -> None:
    auto = example_policy().routes["auto"].thresholds
    calibration = load_router_model().calibration
    assert auto.strong_share is not None and auto.standard_share is not None
    assert auto.complex == calibration.threshold_for_share(auto.strong_share)
    assert auto.standard == calibration.threshold_for_share(auto.strong_share + auto.standard_share)
    assert 0.0 < auto.standard < auto.complex < 1.0


def test_the_fast_scorer_matches_the_reference_sum_of_named_terms() -> None:
    """``classify`` sums the same terms as ``RouterModel.contributions`` and names the same strongest ones."""
    import heapq

    model = load_router_model()
    classifier = LearnedClassifier(model)
    texts = [
        EASY,
        HARD,
        "",
        "hi",
        "1 + 1 = ?",
        "x" * 20000,
        "x² + y³ = é 12,345.6 and 3.14; statement ii, case 4, part b " * 40,
        "Qwertzuiop flibbertigibbet zyxwvut " * 10,
        "Which planet is largest?\nA. Mars\nB. Jupiter\nC. Venus\nD. Earth",
    ]
    for text in texts:
        request = chat(text)
        result = classifier.classify(request)  # type: ignore[arg-type]
        terms = model.contributions(analyze(request.text), request)  # type: ignore[attr-defined]
        raw = model.raw(analyze(request.text), request)  # type: ignore[attr-defined]
        assert result.features["raw"] == round(raw, 4)
        assert result.score == round(model.calibration.score(raw), 6)
        assert result.features["terms"] == len(terms)
        top = heapq.nlargest(6, terms, key=lambda term: abs(term[1]))
        assert result.top == tuple((name, round(c, 4)) for name, c in top)


def test_unseen_words_are_memoised_and_bounded_per_request() -> None:
    from gateway.classify import learned

    classifier = LearnedClassifier(load_router_model())
    fresh = " ".join(f"zq{chr(97 + i % 26)}{chr(97 + i // 26 % 26)}x" for i in range(300))
    result = classifier.classify(chat(fresh))  # type: ignore[arg-type]
    assert 0.0 <= result.score <= 1.0
    unseen = classifier._forms["open"].unseen
    assert unseen.cache_info().currsize == learned.UNSEEN_PER_REQUEST  # only a flood's first words get grams
    classifier.classify(chat(fresh))  # type: ignore[arg-type]
    assert unseen.cache_info().hits >= learned.UNSEEN_PER_REQUEST


def test_the_form_of_a_request_is_read_from_its_layout() -> None:
    quiz = "Which planet is largest?\nA. Mars\nB. Jupiter\nC. Venus\nD. Earth\nAnswer:"
    assert analyze(quiz).form == "choice"
    assert analyze("Tom has 3 apples and buys 4 more. How many apples does he have?").form == "arithmetic"
    assert analyze("Write a short poem about the sea.").form == "open"
    assert analyze("What is 12 squared?").form == "open"  # one quantity is not yet arithmetic
    numbered = "Plan a trip:\n1. pick a city\n2. book a hotel\n3. list five museums"
    assert analyze(numbered).form == "open"  # list numbers are not quantities


def test_each_form_has_its_own_weights_and_the_explain_output_names_it() -> None:
    model = load_router_model()
    assert model.forms["choice"].dense != model.forms["arithmetic"].dense
    result = load_default_classifier().classify(chat("Tom has 3 apples and buys 4 more. How many now?"))  # type: ignore[arg-type]
    assert result.features["form:arithmetic"] == 1.0
