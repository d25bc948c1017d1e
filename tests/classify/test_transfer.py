from __future__ import annotations

import dataclasses

import pytest

from gateway.classify.learned import LearnedClassifier
from gateway.training import transfer
from gateway.training.params import DEFAULTS
from gateway.training.train import Example, chat_request, dataset, train

CHAINS = [
    "Ann has 3 pens.",
    "Ann has 3 pens and buys 4 more, then gives 2 to Bo. How many are left?",
    "Ann has 3 pens and buys 4 more, then gives 2 to Bo, who had 5 and lost half. Each pen costs 2 dollars. "
    "How much is the total, in dollars, of the pens Bo has after he buys 6 more than twice that?",
]


def _examples(bench: str, prompts: list[str], hard_gains: bool) -> list[Example]:
    """Twelve requests of ``bench``: the longer the chain, the more the strong model gains (if ``hard_gains``)."""
    examples = []
    for i in range(12):
        depth = i % len(prompts)
        gain = depth / (len(prompts) - 1) if hard_gains else float(i % 2)
        examples.append(
            Example(f"{bench}:{i}", bench, bench, chat_request(f"{prompts[depth]} (case {i})"), 1.0 - gain, 1.0)
        )
    return examples


def test_the_head_is_monotone_and_learns_within_each_benchmark() -> None:
    data = dataset([*_examples("arith", CHAINS, True), *_examples("chat", ["Say hi.", "Write a poem."], False)])
    mean, scale = dict.fromkeys(data.analyses[0].dense, 0.0), dict.fromkeys(data.analyses[0].dense, 1.0)
    benches, gains = [ex.bench for ex in data.examples], [ex.strong - ex.weak for ex in data.examples]
    head = transfer.fit_head(data.analyses, benches, gains, mean, scale, 1.0)
    assert list(head) == list(transfer.FEATURES)
    assert all(weight >= 0.0 for weight in head.values()), "monotone: no cue makes a request easier"
    assert head["numbers"] > 0 and head["words"] > 0, "longer chains of quantities gain more here"


def test_each_form_blends_by_how_little_training_data_it_has() -> None:
    blends = transfer.form_blends(["choice"] * 990 + ["open"] * 10, k=10.0)
    assert blends == {"choice": pytest.approx(10 / 1000), "arithmetic": transfer.MAX_BLEND, "open": 0.5}
    assert set(transfer.form_blends(["open"], k=0.0).values()) == {0.0}


def test_training_folds_the_head_into_the_dense_weights_of_the_forms_it_lacks() -> None:
    data = dataset([*_examples("arith", CHAINS, True), *_examples("chat", ["Say hi.", "Write a poem."], False)])
    with_head = train(data)
    without = train(data, dataclasses.replace(DEFAULTS, transfer_k=0.0))
    added = {
        form: {name: with_head.forms[form].dense[name] - without.forms[form].dense[name] for name in transfer.FEATURES}
        for form in ("choice", "arithmetic")
    }
    assert all(value >= -1e-4 for form in added.values() for value in form.values())
    others = set(with_head.forms["choice"].dense) - set(transfer.FEATURES)
    assert all(with_head.forms["choice"].dense[n] == without.forms["choice"].dense[n] for n in others)
    # no multiple-choice request in training: that form leans on the head far more than the arithmetic one
    assert sum(added["choice"].values()) > 5 * sum(added["arithmetic"].values()) > 0
    assert with_head.training["transfer"]["blend"]["choice"] == transfer.MAX_BLEND

    quiz = chat_request("Which is NOT a prime, given 3 numbers 91, 97 and 89?\nA. 91\nB. 97\nC. 89\nAnswer:")
    explained = LearnedClassifier(with_head).classify(quiz)
    named = dict(explained.top)
    assert named.keys() & set(transfer.FEATURES), f"explain names the cues that moved the score: {named}"
