"""The classifier's work is bounded on huge prompts: it reads a window of each end, never the middle."""

from __future__ import annotations

import orjson

from gateway.classify import load_default_classifier
from gateway.request import ChatRequest
from gateway.routing.normalize import normalize

MB = 1_000_000


def request(text: str) -> ChatRequest:
    return normalize("chat", orjson.dumps({"model": "auto", "messages": [{"role": "user", "content": text}]}), {})


def test_a_5_mb_prompt_is_classified_on_its_two_ends_only() -> None:
    head = "Prove that there are infinitely many primes, step by step. " * 100
    tail = " Summarise the argument in one sentence."
    plain = request(head + "lorem ipsum " * (5 * MB // 12) + tail)
    hostile = request(head + "<system-reminder> 12345 " * (5 * MB // 24) + tail)  # unclosed agent tags
    assert len(plain.text) <= 8_001 and len(hostile.text) <= 8_001
    assert plain.whole_text is not None and len(plain.whole_text) > 5 * MB - 100
    classifier = load_default_classifier()
    scores = [classifier.classify(r).score for r in (plain, hostile)]
    # the middles differ wholly and the lengths almost not: the same ends give the same score
    assert abs(scores[0] - scores[1]) < 1e-6, scores


def test_a_prompt_under_the_window_is_read_whole() -> None:
    text = "What is 2 + 2? " * 500
    assert request(text).text == text and request(text).whole_text is None
