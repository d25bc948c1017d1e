"""Load the shipped router artifact and build a classifier by name. The only file reading in classify/.

Called once at start (app, policy loader, CLI); nothing is read at import time. The artifact is
parsed once per process and shared, as it is immutable.
"""

from __future__ import annotations

import functools
import gzip
import json
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Literal

from gateway.classify.base import Classifier
from gateway.classify.heuristic import HeuristicClassifier
from gateway.classify.learned import LearnedClassifier, RouterModel, from_json

ARTIFACT = "router.json.gz"
ClassifierName = Literal["learned", "heuristic"]
DEFAULT_CLASSIFIER: ClassifierName = "learned"


def read_router_model(path: Path | str) -> RouterModel:
    """A router artifact from a file (gzip-compressed JSON or plain JSON)."""
    return parse_router_model(Path(path).read_bytes())


def parse_router_model(raw: bytes) -> RouterModel:
    """A router artifact from its bytes (gzip-compressed JSON or plain JSON); ``ValueError``, ``KeyError``,
    ``TypeError`` or ``EOFError`` when they are not one."""
    return from_json(json.loads(gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw))


@functools.cache
def load_router_model() -> RouterModel:
    """The router the package ships (``gateway/classify/router.json.gz``), parsed once per process."""
    return read_router_model(Path(str(resources.files("gateway.classify").joinpath(ARTIFACT))))


CLASSIFIERS: dict[ClassifierName, Callable[[], Classifier]] = {
    "learned": lambda: LearnedClassifier(load_router_model()),
    "heuristic": HeuristicClassifier,
}


def load_classifier(name: ClassifierName = DEFAULT_CLASSIFIER) -> Classifier:
    return CLASSIFIERS[name]()


@functools.cache
def load_default_classifier() -> Classifier:
    """The classifier the ``auto`` routes use everywhere a policy directory has no router of its own: gateway,
    policy cases, explain, ``router score``. One per process, shared (its weight tables are tens of MB)."""
    return load_classifier(DEFAULT_CLASSIFIER)
