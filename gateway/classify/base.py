"""The classifier protocol: one method from a request to a complexity score in [0, 1]."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from gateway.request import ChatRequest

Terms = tuple[tuple[str, float], ...]


@dataclass(frozen=True, slots=True)
class Complexity:
    score: float  # 0 = trivial, 1 = needs the strongest model
    features: Mapping[str, float]
    strongest: Terms | Callable[[], Terms] = field(compare=False)  # ``top``, or how to name it when asked
    classifier: str

    @property
    def top(self) -> Terms:
        """The features that moved the score most, with their contribution. A classifier may name them
        only when asked (explain output): most requests are never explained, and naming costs time."""
        strongest = self.strongest
        return strongest() if callable(strongest) else strongest


class Classifier(Protocol):
    name: str

    def classify(self, request: ChatRequest) -> Complexity: ...


@dataclass(slots=True)
class FixedScore:
    """A classifier that gives every request one score: it puts a synthetic request (the compliance proof,
    a policy case given by its features, a replayed audit line) in the tier wanted."""

    score: float
    name: str = "fixed"

    def classify(self, request: ChatRequest) -> Complexity:
        return Complexity(self.score, {}, (), self.name)
