"""A transparent complexity heuristic: a handful of text features, a weighted sum, a logistic squash.

Every feature and weight is visible in the explain output, so ops can see why a request
landed in a tier. A learned classifier can replace this behind the same protocol.
"""

from __future__ import annotations

import math
import re
from types import MappingProxyType

from gateway.classify.base import Complexity
from gateway.request import ChatRequest

# Literal cues, counted with str.count on the lowercased text: far cheaper than one big regex.
CODE_CUES = ("```", "def ", "class ", "function", "return ", "#include", "import ", "=>", "select ", "const ", ";\n")
MATH_CUES = ("\\frac", "\\sum", "\\int", "integral", "derivative", "matrix", "prove", "theorem", "equation")
REASONING_CUES = (
    "step by step",
    "step-by-step",
    "explain why",
    "reason",
    "analy",
    "compare",
    "trade-off",
    "tradeoff",
    "design",
    "architect",
    "optimi",
    "debug",
    "refactor",
    "derive",
    "proof",
    "evaluate",
    "critique",
    "plan",
    "strateg",
    "implication",
    "justify",
    "edge case",
)
_ARITHMETIC = re.compile(r"[0-9] ?[-+*/^=] ?[0-9]")
_SIMPLE = re.compile(
    r"\s*(hi|hello|hey|thanks|thank you|what is|what's|who is|when (is|was)|define|translate|summari[sz]e)\b"
)


OPENER_CHARS = 200  # the opener is matched at the start of the last user message


def _cues(text: str, cues: tuple[str, ...]) -> int:
    return sum(map(text.count, cues))


# weight of each feature in the logit; the bias puts a short plain question near 0.1
WEIGHTS = MappingProxyType(
    {
        "length": 1.1,  # log2 of prompt tokens, centred at ~64 tokens
        "turns": 0.25,
        "code": 1.4,
        "math": 1.2,
        "reasoning": 0.9,
        "tools": 0.8,
        "json_schema": 0.6,
        "max_tokens": 0.5,
        "simple_opener": -1.2,
    }
)
BIAS = -1.6


def features(request: ChatRequest, text: str | None = None, *, lowered: bool = False) -> dict[str, float]:
    """The heuristic's features of ``request``, its cues counted in ``text`` (default: all of the request's text).
    ``lowered``: ``text`` is lowercased already (the learned classifier lowers its window once for two uses)."""
    text = request.text if text is None else text
    if not lowered:
        text = text.lower()
    return {
        "length": max(0.0, math.log2(max(request.prompt_tokens_estimate, 1)) - 6.0) / 2.0,
        "turns": float(min(max(request.turns - 1, 0), 8)),
        "code": min(_cues(text, CODE_CUES), 4) / 2.0,
        "math": min(_cues(text, MATH_CUES) + len(_ARITHMETIC.findall(text)), 6) / 3.0,
        "reasoning": float(min(_cues(text, REASONING_CUES), 4)),
        "tools": 1.0 if request.needs_tools else 0.0,
        "json_schema": 1.0 if request.needs_json else 0.0,
        "max_tokens": min((request.max_tokens or 0) / 4096.0, 2.0),
        "simple_opener": 1.0 if _SIMPLE.match(request.last_user[:OPENER_CHARS].lower()) else 0.0,
    }


class HeuristicClassifier:
    name = "heuristic"

    def classify(self, request: ChatRequest) -> Complexity:
        values = features(request)
        contributions = {name: WEIGHTS[name] * value for name, value in values.items()}
        logit = BIAS + sum(contributions.values())
        score = 1.0 / (1.0 + math.exp(-logit))
        top = sorted(((n, round(c, 3)) for n, c in contributions.items() if c), key=lambda item: -abs(item[1]))
        return Complexity(round(score, 4), MappingProxyType(values), tuple(top[:4]), self.name)
