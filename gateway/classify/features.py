"""Text features of a request for the learned router. Pure, deterministic, no I/O.

The router reads the text the classifier is given (``ChatRequest.text``) and sees it as:

- *words*: the distinct lowercased tokens (words, punctuation, and numbers as their shape, ``<n2>``
  for a two-digit number, so the router learns "many multi-digit numbers", not "42");
- *bigrams*: the distinct pairs of neighbouring tokens (``step by``, ``how many``);
- the character 3- to 5-grams of each distinct word, so that a word never seen in training still
  shares weight with its relatives (``thermodynamic`` with ``dynamics``);
- *dense* text statistics: length, sentences, numbers, operators, answer options, enumerated parts,
  negations, relational words and other cues of how much work an answer takes.

Work per request is bounded: the head and tail of a long text (``HEAD_CHARS`` + ``TAIL_CHARS``) and
at most ``MAX_TOKENS`` tokens of it; only the character length is read from the whole text.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass
from itertools import pairwise

HEAD_CHARS, TAIL_CHARS = 2400, 800
MAX_TOKENS = 512
CHAR_GRAMS = (3, 4, 5)

_TOKEN = re.compile(r"[a-z]+|[0-9]+(?:[.,][0-9]+)*|[^\sa-z0-9]")
_OPTION = re.compile(r"^[ \t]*\(?(?:[A-Ha-h]|[0-9]{1,2})[.)][ \t]", re.M)

# Cue words, by the kind of work they signal. Matched on whole tokens, or on a token's first
# five letters for the stems in _STEMS, and on token pairs in _PAIRS.
_CUES = {
    "negation": "not except least false incorrect never neither nor without unless cannot",
    "relational": "than then after before each per remaining twice half times ratio total respectively implies "
    "therefore because whereas unless until",
    "math": "equation integral derivative probability solve calculate compute prove theorem matrix function "
    "polynomial sqrt frac sum product percent average",
    "code": "def class return import include const var function select print lambda async",
    "reasoning": "why justify evaluate derive proof critique reason reasons plan design",
    "open_ended": "write story poem email describe imagine draft essay blog letter tone creative",
    "first_person": "i me my",
}
_STEMS = {"analy": "reasoning", "optim": "reasoning", "strat": "reasoning", "debug": "code", "refac": "code"}
_PAIRS = {
    "step by": "reasoning", "trade -": "reasoning", "edge case": "reasoning", "explain why": "reasoning",
    "how many": "math", "how much": "math", "n '": "negation", "only if": "relational",
}
_PART_WORDS = frozenset(["statement", "scenario", "step", "part", "case", "item", "condition"])
_PART_LABELS = frozenset(["i", "ii", "iii", "iv", "v", "a", "b", "c", "d"])
_OPERATORS = frozenset("+*/=^<>")
_SENTENCE_ENDS = frozenset(".!?")
CUE_OF: dict[str, str] = {word: kind for kind, words in _CUES.items() for word in words.split()}
KINDS = tuple(_CUES)

DENSE = (
    "chars", "words", "lines", "sentences", "words_per_sentence", "word_length", "long_words", "distinct_words",
    "numbers", "distinct_numbers", "big_numbers", "operators", "symbols", "questions", "options", "numeric_options",
    "parts", *KINDS,
)


@dataclass(frozen=True, slots=True)
class Analysis:
    words: tuple[str, ...]  # distinct tokens, first occurrence first
    bigrams: tuple[str, ...]  # distinct "a b" pairs of neighbouring tokens
    dense: dict[str, float]  # raw statistics named as in DENSE


def window(text: str) -> str:
    if len(text) <= HEAD_CHARS + TAIL_CHARS:
        return text
    return text[:HEAD_CHARS] + "\n" + text[-TAIL_CHARS:]


def raw_tokens(text: str) -> list[str]:
    found = _TOKEN.findall(text.lower())
    if len(found) > MAX_TOKENS:
        found = found[: MAX_TOKENS * 3 // 4] + found[-MAX_TOKENS // 4 :]
    return found


def shape(token: str) -> str:
    """A number as its shape: ``<n1>`` .. ``<n4>`` by integer digits, ``<d..>`` with a fraction."""
    if not token[0].isdigit():
        return token
    integer, dot, _ = token.partition(".")
    return f"<{'d' if dot else 'n'}{min(len(integer.replace(',', '')), 4)}>"


def char_grams(word: str) -> list[str]:
    """The character 3- to 5-grams of `` word `` (with the spaces), for words of three letters or more."""
    if len(word) < 3 or not word[0].isalpha():
        return []
    padded = f" {word} "
    return [padded[i : i + n] for n in CHAR_GRAMS for i in range(len(padded) - n + 1)]


def analyze(text: str) -> Analysis:
    part = window(text)
    raw = raw_tokens(part)
    toks = [shape(t) for t in raw]
    counts = Counter(toks)
    bigrams = [a + " " + b for a, b in pairwise(toks)]
    dense = _dense(text, part, raw, counts, Counter(bigrams))
    return Analysis(tuple(counts), tuple(dict.fromkeys(bigrams)), dense)


def _dense(text: str, part: str, raw: list[str], counts: Counter[str], pairs: Counter[str]) -> dict[str, float]:
    cues = dict.fromkeys(KINDS, 0)
    words = numbers = big = long_words = letters = symbols = operators = ends = 0
    for tok, k in counts.items():
        first = tok[0]
        if first.isalpha():
            words += k
            letters += len(tok) * k
            long_words += k if len(tok) >= 9 else 0
            kind = CUE_OF.get(tok) or _STEMS.get(tok[:5])
            if kind is not None:
                cues[kind] += k
        elif first == "<" and len(tok) > 1:
            numbers += k
            big += k if tok[2] in "34" else 0
        else:
            symbols += k
            operators += k if tok in _OPERATORS else 0
            ends += k if tok in _SENTENCE_ENDS else 0
    for pair, k in pairs.items():
        kind = _PAIRS.get(pair)
        if kind is not None:
            cues[kind] += k
    parts = sum(k for pair, k in pairs.items() if _is_part(pair))
    options = _OPTION.findall(part)
    tail = part.rstrip().rsplit("\n", 4)[-4:] if len(options) >= 3 else []
    distinct_words = sum(1 for tok in counts if tok[0].isalpha())
    n_words, n_sentences = max(words, 1), max(ends, 1)
    stats = {
        "chars": math.log1p(len(text)),
        "words": math.log1p(words),
        "lines": math.log1p(text.count("\n")),
        "sentences": math.log1p(ends),
        "words_per_sentence": math.log1p(words / n_sentences),
        "word_length": letters / n_words,
        "long_words": long_words / n_words,
        "distinct_words": distinct_words / n_words,
        "numbers": math.log1p(numbers),
        "distinct_numbers": math.log1p(len({t for t in raw if t[0].isdigit()})),
        "big_numbers": math.log1p(big),
        "operators": math.log1p(operators),
        "symbols": symbols / max(len(raw), 1),
        "questions": math.log1p(counts.get("?", 0)),
        "options": math.log1p(len(options)),
        "numeric_options": sum(any(c.isdigit() for c in line) for line in tail) / 4.0,
        "parts": math.log1p(parts),
    }
    stats.update((kind, math.log1p(n)) for kind, n in cues.items())
    return stats


def _is_part(pair: str) -> bool:
    first, _, second = pair.partition(" ")
    return first in _PART_WORDS and (second in _PART_LABELS or second.startswith("<n"))
