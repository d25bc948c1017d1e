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
from itertools import compress

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
_FIRST = operator.itemgetter(0)
_DIGIT = re.compile("[0-9]")
# What a non-letter token counts as in _dense: one lookup per distinct token, not one per shape and symbol.
_NUMBER, _BIG, _OPERATOR, _END = "number", "big number", "operator", "sentence end"
_ROLE = {
    **{shape: _BIG if shape in _BIG_SHAPES else _NUMBER for shape in _SHAPES},
    **dict.fromkeys(_OPERATORS, _OPERATOR),
    **dict.fromkeys(_SENTENCE_ENDS, _END),
}
CUE_OF: dict[str, str] = {word: kind for kind, words in _CUES.items() for word in words.split()}
CUE_KINDS = tuple(_CUES)
_CUE_WORDS, _STEM_PREFIXES = frozenset(CUE_OF), tuple(_STEMS)
_PARTS = "parts"
_TALLIED = (*CUE_KINDS, _NUMBER, _BIG, _OPERATOR, _END, _PARTS)
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
    return _cut(_TOKEN.findall(text.lower()))


def _cut(found: list[str]) -> list[str]:
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


def analyze(text: str, lowered: str | None = None) -> Analysis:
    """The request text's features. ``lowered`` is ``window(text).lower()`` if the caller has it already
    (the classifier lowers the window once for these features and for the heuristic prior)."""
    part = window(text)
    raw = _cut(_TOKEN.findall(part.lower() if lowered is None else lowered))
    if part.isascii() and _DIGIT.search(part) is None:
        toks = raw  # no number to shape
    else:
        toks = [t if "a" <= t[0] <= "z" else shape(t) for t in raw]
    counts, pairs = _count(toks)
    options = _OPTION.findall("\n" + part)
    numbered = options.count("")
    lettered = len(options) - numbered
    dense, numbers = _dense(text, part, raw, counts, pairs, len(options))
    return Analysis(tuple(counts), tuple(pairs), dense, form_of(lettered, numbers - numbered))


def _count(toks: list[str]) -> tuple[dict[str, int], dict[str, int]]:
    """How often each token and each pair of neighbouring tokens occurs, first occurrence first.

    One loop into plain dicts, not ``collections.Counter``: a Counter goes through Python-level
    ``__init__``/``update`` and an ABC ``isinstance(..., Mapping)`` check, which touch far more memory.
    With the caches cold (the gateway sleeps between requests): 60 -> 35 us per bench prompt, warm the
    same (11 us). A 2 kB prompt: cold the same (~210 us), warm 133 -> 153 us."""
    counts: dict[str, int] = {}
    pairs: dict[str, int] = {}
    count, pair_count = counts.get, pairs.get
    prev = None
    for tok in toks:
        counts[tok] = count(tok, 0) + 1
        if prev is not None:
            pair = f"{prev} {tok}"
            pairs[pair] = pair_count(pair, 0) + 1
        prev = tok
    return counts, pairs


def form_of(options: int, quantities: int) -> str:
    """``choice`` with three or more lettered options, else ``arithmetic`` with two or more quantities (numbers
    that do not number a line), else ``open``."""
    if options >= CHOICE_OPTIONS:
        return FORMS[0]
    return FORMS[1] if quantities >= ARITHMETIC_NUMBERS else FORMS[2]


def _dense(
    text: str, part: str, raw: list[str], counts: dict[str, int], pairs: dict[str, int], options: int
) -> tuple[dict[str, float], int]:
    """The raw statistics named as in DENSE (in that order), and the count of numbers (``form_of`` reads it too)."""
    words, letters, long_words, distinct_words, tally = _tally(counts, pairs)
    big, ends = tally[_BIG], tally[_END]
    numbers = tally[_NUMBER] + big
    n_words, n_sentences = max(words, 1), max(ends, 1)
    log1p = math.log1p
    # One dict display with every entry (the cue kinds written out): no second pass, no resize.
    stats = {
        "chars": log1p(len(text)),
        "words": log1p(words),
        "lines": log1p(text.count("\n")),
        "sentences": log1p(ends),
        "words_per_sentence": log1p(words / n_sentences),
        "word_length": letters / n_words,
        "long_words": long_words / n_words,
        "distinct_words": distinct_words / n_words,
        "numbers": log1p(numbers),
        "distinct_numbers": log1p(len(set(compress(raw, map(str.isdigit, map(_FIRST, raw))))) if numbers else 0),
        "big_numbers": log1p(big),
        "operators": log1p(tally[_OPERATOR]),
        "symbols": (len(raw) - words - numbers) / max(len(raw), 1),
        "questions": log1p(counts.get("?", 0)),
        "options": log1p(options),
        "numeric_options": _numeric_lines(part) / 4.0 if options >= 3 else 0.0,
        "parts": log1p(tally[_PARTS]),
        "negation": log1p(tally["negation"]),
        "relational": log1p(tally["relational"]),
        "math": log1p(tally["math"]),
        "code": log1p(tally["code"]),
        "reasoning": log1p(tally["reasoning"]),
        "open_ended": log1p(tally["open_ended"]),
        "first_person": log1p(tally["first_person"]),
    }
    return stats, numbers


def _tally(counts: dict[str, int], pairs: dict[str, int]) -> tuple[int, int, int, int, dict[str, int]]:
    """Words, letters, long words and distinct words (tokens of letters), and a count per name in _TALLIED.

    One Python loop over the distinct tokens. It used to be about twenty C-level map/filter/compress/sum
    pipelines: quick when warm, but each runs its own C code and reads its own tables, and with the
    caches cold (the gateway sleeps between requests) that costs more than the loop. ``_dense`` per bench
    prompt, cold: ~95 -> ~65 us; warm: 17 -> 14 us."""
    words = letters = long_words = distinct_words = 0
    tally = dict.fromkeys(_TALLIED, 0)
    role_of = _ROLE.get
    for tok, n in counts.items():  # tokens are letters (``str.isalpha``), number shapes or single symbols
        if tok.isalpha():
            size = len(tok)
            words += n
            letters += size * n
            distinct_words += 1
            if size >= _LONG_WORD:
                long_words += n
            if tok in _CUE_WORDS:  # a set, not CUE_OF: a miss reads only the set's table, not its keys
                tally[CUE_OF[tok]] += n
            elif tok.startswith(_STEM_PREFIXES):
                tally[_STEMS[tok[:5]]] += n
        elif role := role_of(tok):
            tally[role] += n
    for pair, kind in _PAIRS.items():
        tally[kind] += pairs.get(pair, 0)
    for word in _PART_WORDS:
        if word in counts:
            for label in _PART_FOLLOWERS:
                tally[_PARTS] += pairs.get(word + " " + label, 0)
    return words, letters, long_words, distinct_words, tally


def _numeric_lines(part: str) -> int:
    """How many of the last four lines hold a digit (after three or more options: numeric answers)."""
    return sum(any(c.isdigit() for c in line) for line in part.rstrip().rsplit("\n", 4)[-4:])


def gram_counts(analysis: Analysis) -> Counter[str]:
    """Character grams over the distinct words of a request, counted once per word they occur in."""
    counts: Counter[str] = Counter()
    for word in analysis.words:
        counts.update(char_grams(word))
    return counts
