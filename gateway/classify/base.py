"""The classifier protocol: one method from a request to a complexity score in [0, 1]."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from gateway.request import ChatRequest


@dataclass(frozen=True, slots=True)
class Complexity:
    score: float  # 0 = trivial, 1 = needs the strongest model
    features: Mapping[str, float]
    top: tuple[tuple[str, float], ...]  # the features that moved the score most, with their contribution
    classifier: str


class Classifier(Protocol):
    name: str

    def classify(self, request: ChatRequest) -> Complexity: ...
