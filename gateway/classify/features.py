"""Text features of a request for the learned router. Pure, deterministic, no I/O.

The router reads the text the classifier is given (``ChatRequest.text``) and sees it as:

- *words*: the distinct lowercased tokens (words, punctuation, and numbers as their shape, ``<n2>``
  for a two-digit number, so the router learns "many multi-digit numbers", not "42");
- *bigrams*: the distinct pairs of neighbouring tokens (``step by``, ``how many``);
- the character 3- to 5-grams of each distinct word, so that a word never seen in training still
  shares weight with its relatives (``thermodynamic`` with ``dynamics``);
- *dense* text statistics: length, sentences, numbers, operators, answer options, enumerated parts,
  negations, relational words and other cues of how much work an answer takes;
- its *form*, the kind of work it asks for, read from its layout: ``choice`` (three or more lettered
  answer options), ``arithmetic`` (otherwise, two or more quantities, not counting list numbers) or
  ``open``. What makes a request hard differs between forms, so the model has weights per form.

Work per request is bounded: the head and tail of a long text (``HEAD_CHARS`` + ``TAIL_CHARS``) and
at most ``MAX_TOKENS`` tokens of it; only the character length is read from the whole text.
"""

from __future__ import annotations

import functools
import math
import operator
import re
from collections import Counter
from dataclasses import dataclass
from itertools import compress, pairwise, repeat

HEAD_CHARS, TAIL_CHARS = 2400, 800
MAX_TOKENS = 512
CHAR_GRAMS = (3, 4, 5)

_TOKEN = re.compile(r"[a-z]+|[0-9]+(?:[.,][0-9]+)*|[^\sa-z0-9]")
# A line that starts with an answer option ("A. ...", "(b) ...": the letter is captured) or a number ("1. ...",
# "(2) ..."). Matched on "\n" + text: a literal first character lets ``re`` skip to each line start.
_OPTION = re.compile(r"\n[ \t]*\(?(?:([A-Ha-h])|[0-9]{1,2})[.)][ \t]")

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
    "step by": "reasoning",
    "trade -": "reasoning",
    "edge case": "reasoning",
    "explain why": "reasoning",
    "how many": "math",
    "how much": "math",
    "n '": "negation",
    "only if": "relational",
}
_PART_WORDS = frozenset(["statement", "scenario", "step", "part", "case", "item", "condition"])
_PART_LABELS = frozenset(["i", "ii", "iii", "iv", "v", "a", "b", "c", "d"])
_OPERATORS = frozenset("+*/=^<>")
_SENTENCE_ENDS = frozenset(".!?")
_SHAPES = tuple(f"<{kind}{digits}>" for kind in "nd" for digits in range(1, 5))  # every value of shape()
_BIG_SHAPES = tuple(s for s in _SHAPES if s[2] in "34")
_PART_FOLLOWERS = (*sorted(_PART_LABELS), "<n1>", "<n2>", "<n3>", "<n4>")
_LONG_WORD = 9
_FIRST, _FIRST5 = operator.itemgetter(0), operator.itemgetter(slice(0, 5))
_DIGIT = re.compile("[0-9]")
_ZEROS = repeat(0)  # the default of dict.get in a C-level map
CUE_OF: dict[str, str] = {word: kind for kind, words in _CUES.items() for word in words.split()}
CUE_KINDS = tuple(_CUES)
FORMS = ("choice", "arithmetic", "open")
CHOICE_OPTIONS, ARITHMETIC_NUMBERS = 3, 2

DENSE = (
    "chars",
    "words",
    "lines",
    "sentences",
    "words_per_sentence",
    "word_length",
    "long_words",
    "distinct_words",
    "numbers",
    "distinct_numbers",
    "big_numbers",
    "operators",
    "symbols",
    "questions",
    "options",
    "numeric_options",
    "parts",
    *CUE_KINDS,
)


@dataclass(frozen=True, slots=True)
class Analysis:
    words: tuple[str, ...]  # distinct tokens, first occurrence first
    bigrams: tuple[str, ...]  # distinct "a b" pairs of neighbouring tokens
    dense: dict[str, float]  # raw statistics named as in DENSE
    form: str  # one of FORMS


def window(text: str) -> str:
    if len(text) <= HEAD_CHARS + TAIL_CHARS:
        return text
    return text[:HEAD_CHARS] + "\n" + text[-TAIL_CHARS:]


def raw_tokens(text: str) -> list[str]:
    found = _TOKEN.findall(text.lower())
    if len(found) > MAX_TOKENS:
        found = found[: MAX_TOKENS * 3 // 4] + found[-MAX_TOKENS // 4 :]
    return found


@functools.lru_cache(maxsize=4096)
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
    if part.isascii() and _DIGIT.search(part) is None:
        toks = raw  # no number to shape
    else:
        toks = [t if "a" <= t[0] <= "z" else shape(t) for t in raw]
    counts = Counter(toks)
    pairs = Counter(map(" ".join, pairwise(toks)))
    options = _OPTION.findall("\n" + part)
    numbered = options.count("")
    lettered = len(options) - numbered
    dense = _dense(text, part, raw, counts, pairs, len(options))
    numbers = sum(map(counts.get, _SHAPES, _ZEROS))
    return Analysis(tuple(counts), tuple(pairs), dense, form_of(lettered, numbers - numbered))


def form_of(options: int, quantities: int) -> str:
    """``choice`` with three or more lettered options, else ``arithmetic`` with two or more quantities (numbers
    that do not number a line), else ``open``."""
    if options >= CHOICE_OPTIONS:
        return FORMS[0]
    return FORMS[1] if quantities >= ARITHMETIC_NUMBERS else FORMS[2]


def _dense(
    text: str, part: str, raw: list[str], counts: Counter[str], pairs: Counter[str], options: int
) -> dict[str, float]:
    # Counted with C-level map/filter over the distinct tokens, not a Python loop: this is the hot path.
    # Tokens are letters (``str.isalpha``), number shapes (_SHAPES) or single symbols.
    get = counts.get
    alpha = list(filter(str.isalpha, counts))
    freq = list(map(counts.__getitem__, alpha))
    lengths = list(map(len, alpha))
    words, distinct_words = sum(freq), len(alpha)
    letters = sum(map(operator.mul, lengths, freq))
    long_words = sum(compress(freq, map((_LONG_WORD - 1).__lt__, lengths)))
    numbers = sum(map(get, _SHAPES, _ZEROS))
    big = sum(map(get, _BIG_SHAPES, _ZEROS))
    symbols = len(raw) - words - numbers
    operators = sum(map(get, _OPERATORS, _ZEROS))
    ends = sum(map(get, _SENTENCE_ENDS, _ZEROS))
    cues = dict.fromkeys(CUE_KINDS, 0)
    for tok in CUE_OF.keys() & counts.keys():
        cues[CUE_OF[tok]] += counts[tok]
    for tok in compress(alpha, map(_STEMS.__contains__, map(_FIRST5, alpha))):
        if tok not in CUE_OF:
            cues[_STEMS[tok[:5]]] += counts[tok]
    for pair, kind in _PAIRS.items():
        k = pairs.get(pair)
        if k:
            cues[kind] += k
    parts = 0
    for word in _PART_WORDS.intersection(counts):
        parts += sum(pairs.get(word + " " + label, 0) for label in _PART_FOLLOWERS)
    tail = part.rstrip().rsplit("\n", 4)[-4:] if options >= 3 else []
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
        "distinct_numbers": math.log1p(len(set(compress(raw, map(str.isdigit, map(_FIRST, raw))))) if numbers else 0),
        "big_numbers": math.log1p(big),
        "operators": math.log1p(operators),
        "symbols": symbols / max(len(raw), 1),
        "questions": math.log1p(counts.get("?", 0)),
        "options": math.log1p(options),
        "numeric_options": sum(any(c.isdigit() for c in line) for line in tail) / 4.0,
        "parts": math.log1p(parts),
    }
    stats.update((kind, math.log1p(n)) for kind, n in cues.items())
    return stats
