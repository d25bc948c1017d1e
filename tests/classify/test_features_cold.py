"""The text features, computed the cold-cache way (plain-dict counts, one tally loop), against the plain
way they replaced: the same numbers, bit for bit, in the same order."""

from __future__ import annotations

import math
import operator
from collections import Counter
from itertools import compress, pairwise

import pytest

from gateway.classify import features, heuristic
from gateway.classify.features import CUE_KINDS, CUE_OF, DENSE, analyze, raw_tokens, shape, window
from tests.factories import chat

TEXTS = [
    "",
    "   ",
    "123 4,567.89 0.5 12345678",
    "!@#$%^&*() ?!?.",
    "¿Qué pasa? Ünïcödé wörds, naïve façade; İstanbul ǅ ß ﬁ 🙂 日本語のテキスト。٣ ²",
    "Which planet is largest?\nA. Mars\nB. Jupiter\nC. Venus\nD. Earth\nAnswer:",
    "Pick:\n(a) 12\n(b) 13\n(c) 14\n(d) 15",
    "Statement 1 | x. Statement 2 | y. Part ii, case 4, step 3, item b, scenario iv, condition 2.",
    "Prove step by step that the sum of the first n odd numbers is n^2; analyze the trade-offs, optimize, "
    "strategize, debug and refactor. Don't. Can't. How many? How much? Only if not, then explain why.",
    "I think my code: def f(x): return x * 2 + 3 / 4 = 5 ^ 6 < 7 > 8",
    "word " * 700,
    "lorem ipsum 12 dolor 3.5 sit amet " * 150,
    " ".join(f"zq{chr(97 + i % 26)}{chr(97 + i // 26 % 26)}x" for i in range(300)),
]


def reference_dense(text: str, part: str, raw: list[str], toks: list[str], options: int) -> dict[str, float]:
    """The statistics as the C-level map/filter pipelines over ``collections.Counter`` counted them before."""
    counts, pairs = Counter(toks), Counter(map(" ".join, pairwise(toks)))
    alpha = list(filter(str.isalpha, counts))
    freq = list(map(counts.__getitem__, alpha))
    lengths = list(map(len, alpha))
    words = sum(freq)
    numbers = sum(counts[s] for s in features._SHAPES)
    big = sum(counts[s] for s in features._BIG_SHAPES)
    ends = sum(counts[s] for s in features._SENTENCE_ENDS)
    cues = dict.fromkeys(CUE_KINDS, 0)
    for tok in CUE_OF.keys() & counts.keys():
        cues[CUE_OF[tok]] += counts[tok]
    for tok in alpha:
        if tok[:5] in features._STEMS and tok not in CUE_OF:
            cues[features._STEMS[tok[:5]]] += counts[tok]
    for pair, kind in features._PAIRS.items():
        cues[kind] += pairs[pair]
    parts = sum(pairs[w + " " + label] for w in features._PART_WORDS for label in features._PART_FOLLOWERS)
    tail = part.rstrip().rsplit("\n", 4)[-4:] if options >= 3 else []
    n_words, n_sentences = max(words, 1), max(ends, 1)
    stats = {
        "chars": math.log1p(len(text)),
        "words": math.log1p(words),
        "lines": math.log1p(text.count("\n")),
        "sentences": math.log1p(ends),
        "words_per_sentence": math.log1p(words / n_sentences),
        "word_length": sum(map(operator.mul, lengths, freq)) / n_words,
        "long_words": sum(compress(freq, (n >= features._LONG_WORD for n in lengths))) / n_words,
        "distinct_words": len(alpha) / n_words,
        "numbers": math.log1p(numbers),
        "distinct_numbers": math.log1p(len({t for t in raw if t[0].isdigit()}) if numbers else 0),
        "big_numbers": math.log1p(big),
        "operators": math.log1p(sum(counts[s] for s in features._OPERATORS)),
        "symbols": (len(raw) - words - numbers) / max(len(raw), 1),
        "questions": math.log1p(counts["?"]),
        "options": math.log1p(options),
        "numeric_options": sum(any(c.isdigit() for c in line) for line in tail) / 4.0,
        "parts": math.log1p(parts),
    }
    stats.update((kind, math.log1p(n)) for kind, n in cues.items())
    return stats


@pytest.mark.parametrize("text", TEXTS)
def test_the_features_are_the_plain_way_s_bit_for_bit(text: str) -> None:
    part = window(text)
    raw = raw_tokens(part)
    toks = [t if "a" <= t[0] <= "z" else shape(t) for t in raw]
    options = len(features._OPTION.findall("\n" + part))
    analysis = analyze(text)
    expected = reference_dense(text, part, raw, toks, options)
    assert list(analysis.dense) == list(DENSE) == list(expected)  # the scorer zips the values with DENSE
    assert [v.hex() if isinstance(v, float) else v for v in analysis.dense.values()] == [
        v.hex() if isinstance(v, float) else v for v in expected.values()
    ]
    assert analysis.words == tuple(Counter(toks)) and analysis.bigrams == tuple(Counter(map(" ".join, pairwise(toks))))


@pytest.mark.parametrize("toks", [[], ["a"], ["a", "b", "a", "b", "a"], ["x", "x", "x"], list("abracadabra")])
def test_tokens_and_pairs_are_counted_as_a_counter_would(toks: list[str]) -> None:
    counts, pairs = features._count(toks)
    assert list(counts.items()) == list(Counter(toks).items())
    assert list(pairs.items()) == list(Counter(map(" ".join, pairwise(toks))).items())


@pytest.mark.parametrize("text", TEXTS)
def test_a_window_lowered_once_gives_the_same_features_and_prior(text: str) -> None:
    lowered = window(text).lower()
    assert analyze(text, lowered) == analyze(text)
    request = chat(text)
    lowered = window(request.text).lower()
    assert heuristic.features(request, lowered, lowered=True) == heuristic.features(request, window(request.text))
