"""The learned classifier's cold-cache layout and shortcuts change where things are in memory and how much is
visited, never a number: the weights are the artifact's, and each shortcut matches the plain way."""

from __future__ import annotations

import gzip
import json

import pytest

from gateway.classify import heuristic, learned, load_router_model
from gateway.classify.features import FORMS, window
from gateway.classify.learned import UNSEEN_PER_REQUEST, LearnedClassifier
from gateway.training.cli import default_artifact
from tests.factories import chat


def test_the_packed_weights_are_the_artifact_s_hottest_first() -> None:
    artifact = json.loads(gzip.decompress(default_artifact().read_bytes()))
    model = load_router_model()
    for form in FORMS:
        for table in ("words", "bigrams"):
            packed, parsed = getattr(model.forms[form], table), artifact["forms"][form][table]
            assert {k: float(v).hex() for k, v in packed.items()} == {k: float(v).hex() for k, v in parsed.items()}
    order = list(model.forms["open"].words)
    assert order.index("the") < 20 and order.index("theorem") > 10_000  # common words first, on few pages
    assert list(model.forms["open"].bigrams).index("of the") < 100
    keys = [next(iter(model.forms[form].words)) for form in FORMS]
    assert keys[0] is keys[1] is keys[2]  # one key object for all forms


def test_unseen_words_past_the_budget_weigh_nothing_as_before() -> None:
    classifier = LearnedClassifier(load_router_model())
    scorer = classifier._forms["open"]
    words = ["the", *(f"zq{chr(97 + i % 26)}{chr(97 + i // 26)}x" for i in range(UNSEEN_PER_REQUEST + 20)), "of"]
    found = [scorer.words(w) for w in words]
    expected, budget = [], UNSEEN_PER_REQUEST
    for word, weight in zip(words, found, strict=True):  # the plain loop the in-place fill replaced
        if weight is not None:
            expected.append(weight)
        else:
            expected.append(scorer.unseen(word) if budget > 0 else 0.0)
            budget -= 1
    assert scorer.fill_unseen(words, found) == expected and found == expected


@pytest.mark.parametrize("prior", [0.0, 0.3])
def test_the_prior_terms_are_the_heuristic_s_weighted(prior: float) -> None:
    request = chat("Hi! Step by step, prove that 2+2=4 and debug this function.", max_tokens=2000)
    values = heuristic.features(request, window(request.text))
    expected = [("prior:" + n, prior * heuristic.WEIGHTS[n] * v) for n, v in values.items() if v and prior]
    expected.append(("prior:brief", learned.BRIEF_WEIGHT * (1.0 - request.prompt_tokens_estimate / 16)))
    assert learned._prior_terms(prior, request) == expected
    assert learned._prior_terms(prior, request, window(request.text).lower()) == expected
