"""The hashed word-n-gram logistic regression that ``router eval`` prints beside the router."""

from __future__ import annotations

from gateway.training.baseline import BUCKETS, NgramBaseline, design, hashed
from gateway.training.evaluate import MMLU_GROUPS, mmlu_group


def test_words_and_pairs_are_hashed_the_same_on_every_run() -> None:
    assert hashed("Prove it.") == hashed("prove IT.") and all(0 <= b < BUCKETS for b in hashed("Prove it."))
    assert len(hashed("a b")) == 3  # two words and their pair
    rows = design(["a b", ""])
    assert rows.shape == (2, BUCKETS) and abs((rows[0].multiply(rows[0])).sum() - 1.0) < 1e-9 and rows[1].nnz == 0


def test_the_baseline_learns_which_words_mean_the_strong_model_wins() -> None:
    hard = [f"prove the theorem about group {i}" for i in range(20)]
    easy = [f"name the capital of country {i}" for i in range(20)]
    baseline = NgramBaseline(hard + easy, [True] * 20 + [False] * 20)
    high, low = baseline.scores(["prove this theorem", "name this capital"])
    assert high > 0 > low


def test_mmlu_subjects_fall_into_the_papers_four_groups() -> None:
    assert mmlu_group("college_physics") == "stem" and mmlu_group("anatomy") == "other"
    assert mmlu_group("jurisprudence") == "humanities" and mmlu_group("sociology") == "social_sciences"
    assert len(MMLU_GROUPS) == 18 + 13 + 12
