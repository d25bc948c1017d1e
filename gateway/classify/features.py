"""Text features of a request for the learned router. Pure, deterministic, no I/O.

Two kinds, both computed from the text the classifier reads (``ChatRequest.text``):

- *sparse* features, each present or absent: word unigrams (``w:``), word bigrams (``b:``) and the
  character 3- to 5-grams of each distinct word (``c:``), so that words never seen in training still
  share weight with their relatives (``thermodynamic`` with ``dynamics``). Numbers become their shape
  (``<n2>`` for a two-digit number), so the router learns "many multi-digit numbers", not "42".
- *dense* text statistics (``#``): length, sentences, numbers, operators, enumerated parts, negations,
  relational words and other cues of how much work an answer takes. Training standardizes them.

Work per request is bounded: at most ``MAX_TOKENS`` tokens (the head and the tail of a long text)
and the character grams of at most ``MAX_CHAR_WORDS`` distinct words.
"""

from __future__ import annotations

import math
import re

MAX_TOKENS = 768
MAX_CHAR_WORDS = 160
CHAR_GRAMS = (3, 4, 5)

_TOKEN = re.compile(r"[a-z]+|[0-9]+(?:[.,][0-9]+)*|[^\sa-z0-9]")
_SENTENCE_END = re.compile(r"[.!?](?:\s|$)")
_OPTION = re.compile(r"^\s*(?:\(?[A-Ha-h][.)]|[0-9]{1,2}[.)])\s", re.M)
_PART = re.compile(r"\b(?:statement|scenario|step|part|case|item|condition)\s+(?:[0-9]+|[ivx]+|[a-d])\b|\((?:[ivx]+|[a-d])\)")
_NUMBER = re.compile(r"[0-9]+(?:[.,][0-9]+)*")
_ARITHMETIC = re.compile(r"[0-9)]\s*[-+*/^=<>]\s*[0-9(a-z]")

NEGATION = ("not ", "n't", "except", "least", "false", "incorrect", "never", "neither", "without", "unless", "cannot")
RELATIONAL = (" than ", " then ", " after ", " before ", " each ", " per ", " remaining", " twice", " half", " times ",
              " ratio", " total", " respectively", " only if", " implies", " therefore", " because ")
MATH = ("equation", "integral", "derivative", "probability", "solve", "calculate", "compute", "how many", "how much",
        "prove", "theorem", "matrix", "function", "polynomial", "\\frac", "\\sum", "sqrt")
CODE = ("```", "def ", "class ", "return ", "import ", "#include", "=>", "();", "};", "select ", "function(")
REASONING = ("step by step", "step-by-step", "explain why", "analy", "trade-off", "tradeoff", "design", "justify",
             "evaluate", "derive", "proof", "optimi", "debug", "edge case", "critique", "reason")
OPEN_ENDED = ("write", "story", "poem", "email", "describe", "imagine", "draft", "essay", "blog", "letter", "tone")

DENSE = (
    "#chars", "#words", "#lines", "#sentences", "#words_per_sentence", "#word_length", "#long_words",
    "#distinct_words", "#numbers", "#distinct_numbers", "#big_numbers", "#arithmetic", "#symbols", "#questions",
    "#options", "#numeric_options", "#parts", "#negation", "#relational", "#math", "#code", "#reasoning",
    "#open_ended", "#first_person",
)


def tokens(text: str) -> list[str]:
    """Lowercased word, number and punctuation tokens, numbers as shapes; head and tail of a long text."""
    found = _TOKEN.findall(text.lower())
    if len(found) > MAX_TOKENS:
        half = MAX_TOKENS // 2
        found = found[:half] + found[-half:]
    return [_shape(t) if t[0].isdigit() else t for t in found]


def _shape(number: str) -> str:
    digits = len(number.split(".", maxsplit=1)[0].replace(",", ""))
    return f"<n{min(digits, 4)}>" if "." not in number else f"<d{min(digits, 4)}>"


def sparse(toks: list[str]) -> set[str]:
    """The names of the sparse features present."""
    out = {"w:" + t for t in toks}
    out.update("b:" + a + " " + b for a, b in zip(toks, toks[1:], strict=False))
    words = [w for w in dict.fromkeys(toks) if w[0].isalpha() and len(w) > 2][:MAX_CHAR_WORDS]
    for word in words:
        padded = " " + word + " "
        for n in CHAR_GRAMS:
            out.update("c:" + padded[i : i + n] for i in range(len(padded) - n + 1))
    return out


def _count(text: str, cues: tuple[str, ...]) -> float:
    return math.log1p(sum(text.count(cue) for cue in cues))


def dense(text: str, toks: list[str]) -> dict[str, float]:
    """Text statistics, each a float on a log or ratio scale (training standardizes them)."""
    low = text.lower()
    words = [t for t in toks if t[0].isalpha()]
    numbers = [t for t in toks if len(t) > 1 and t[0] == "<"]
    n_words = max(len(words), 1)
    sentences = max(len(_SENTENCE_END.findall(text)), 1)
    lines = [line for line in text.split("\n") if line.strip()]
    options = len(_OPTION.findall(text))
    tail = lines[-4:] if options >= 3 else []
    return {
        "#chars": math.log1p(len(text)),
        "#words": math.log1p(len(words)),
        "#lines": math.log1p(len(lines)),
        "#sentences": math.log1p(sentences),
        "#words_per_sentence": math.log1p(len(words) / sentences),
        "#word_length": sum(map(len, words)) / n_words,
        "#long_words": sum(len(w) >= 9 for w in words) / n_words,
        "#distinct_words": len(set(words)) / n_words,
        "#numbers": math.log1p(len(numbers)),
        "#distinct_numbers": math.log1p(len(set(_NUMBER.findall(text)))),
        "#big_numbers": math.log1p(sum(t[2] in "34" for t in numbers)),
        "#arithmetic": math.log1p(len(_ARITHMETIC.findall(low))),
        "#symbols": sum(1 for t in toks if len(t) == 1 and not t.isalnum()) / max(len(toks), 1),
        "#questions": math.log1p(text.count("?")),
        "#options": math.log1p(options),
        "#numeric_options": sum(any(c.isdigit() for c in line) for line in tail) / 4.0,
        "#parts": math.log1p(len(_PART.findall(low))),
        "#negation": _count(low, NEGATION),
        "#relational": _count(low, RELATIONAL),
        "#math": _count(low, MATH),
        "#code": _count(low, CODE),
        "#reasoning": _count(low, REASONING),
        "#open_ended": _count(low, OPEN_ENDED),
        "#first_person": math.log1p(sum(1 for w in words if w in ("i", "me", "my"))),
    }
