"""The learned complexity router: a sparse linear model over text features, calibrated to [0, 1].

Pure: the model is a frozen value (built by ``from_json`` from the shipped artifact) and scoring one
request is dictionary lookups and a sum. The weights depend on the request's *form* (multiple
choice, arithmetic, open; ``features.form_of``): each form's weights are the weights shared by all
requests plus that form's own, learned together, so what makes a quiz question hard need not be
what makes an arithmetic problem hard, while a form with little data leans on the shared weights.
The raw linear score is mapped through the calibration curve recorded at training time, so a score
of 0.7 means "more complex than 70% of the calibration requests", and a target share of
strong-model traffic is a plain threshold (``threshold_for_share``).

A request that is more than one prompt (an agent's: system prompt, tools, history) is scored on its task, and
its context adds one bounded term (``task``; ``RouterModel.view``).
"""

from __future__ import annotations

import bisect
import functools
import heapq
import math
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import pairwise, repeat
from types import MappingProxyType
from typing import Any

from gateway.classify import heuristic
from gateway.classify.base import Complexity
from gateway.classify.features import CHAR_GRAMS, DENSE, FORMS, Analysis, analyze, char_grams, window
from gateway.classify.task import context_fraction, split
from gateway.request import ChatRequest

FORMAT = "switchyard-router"
VERSION = 2
TOP_FEATURES = 6


@dataclass(frozen=True, slots=True)
class Calibration:
    """Raw scores at evenly spaced quantiles (0, 1/k, ..., 1) of the calibration requests."""

    knots: tuple[float, ...]

    def __post_init__(self) -> None:
        if len(self.knots) < 2 or any(b < a for a, b in pairwise(self.knots)):
            raise ValueError("calibration knots must be at least two non-decreasing numbers")

    def score(self, raw: float) -> float:
        """The calibration CDF at ``raw``, linear between knots, clipped to [0, 1]."""
        knots, last = self.knots, len(self.knots) - 1
        if raw <= knots[0]:
            return 0.0
        if raw >= knots[last]:
            return 1.0
        i = bisect.bisect_right(knots, raw) - 1
        low, high = knots[i], knots[i + 1]
        return (i + (raw - low) / (high - low if high > low else 1.0)) / last

    def threshold_for_share(self, share: float) -> float:
        """The score at or above which ``share`` of the calibration requests lie."""
        if not 0.0 <= share <= 1.0:
            raise ValueError(f"a share must be between 0 and 1, got {share}")
        last = len(self.knots) - 1
        position = (1.0 - share) * last
        i = min(int(position), last - 1)
        raw = self.knots[i] + (self.knots[i + 1] - self.knots[i]) * (position - i)
        return round(self.score(raw), 6)


@dataclass(frozen=True, slots=True)
class FormWeights:
    """The weights for one form of request (the shared weights plus the form's own, already summed)."""

    words: Mapping[str, float]  # per token seen in training: the sum of its character grams' weights
    grams: Mapping[str, float]  # character-gram weights, for tokens not in ``words``
    bigrams: Mapping[str, float]
    dense: Mapping[str, float]

    def word_weight(self, word: str) -> float:
        weight = self.words.get(word)
        if weight is not None:
            return weight
        grams = self.grams
        return sum(grams.get(gram, 0.0) for gram in char_grams(word))


@dataclass(frozen=True, slots=True)
class RouterModel:
    forms: Mapping[str, FormWeights]  # one per name in ``features.FORMS``
    dense_mean: Mapping[str, float]
    dense_scale: Mapping[str, float]
    bias: float
    calibration: Calibration
    prior_weight: float = 0.0  # weight of the transparent heuristic's terms (cues the data cannot teach)
    training: Mapping[str, Any] = field(default_factory=dict)  # provenance: data, parameters, seed

    def contributions(self, analysis: Analysis, request: ChatRequest, context: float = 0.0) -> list[tuple[str, float]]:
        """Every non-zero term of the raw score, named (``pair:step by``, ``word:prove``, ``chars``,
        ``prior:tools``, ``context``): the learned text terms of the request's form plus the weighted heuristic
        prior, and ``context`` (the bounded weight of an agent's system prompt, tools and history, see ``task``)."""
        weights = self.forms[analysis.form]
        terms = _prior_terms(self.prior_weight, request, context=context)
        terms.extend(("word:" + w, c) for w in analysis.words if (c := weights.word_weight(w)))
        bigrams = weights.bigrams
        terms.extend(("pair:" + b, c) for b in analysis.bigrams if (c := bigrams.get(b, 0.0)))
        terms.extend(
            (name, weights.dense[name] * clip((value - self.dense_mean[name]) / self.dense_scale[name]))
            for name, value in analysis.dense.items()
        )
        return terms

    def raw(self, analysis: Analysis, request: ChatRequest, context: float = 0.0) -> float:
        offset = self.prior_weight * heuristic.BIAS
        return self.bias + offset + sum(c for _, c in self.contributions(analysis, request, context))

    @property
    def context_cap(self) -> float:
        """The most that context (system prompt, tool schemas, history) adds to the raw score: a third of the
        calibration's 10%-90% spread, so it cannot carry a trivial task across the tiers on its own."""
        knots = self.calibration.knots
        last = len(knots) - 1
        return CONTEXT_SPAN * (knots[round(0.9 * last)] - knots[round(0.1 * last)])

    def view(self, request: ChatRequest) -> tuple[ChatRequest, float]:
        """What is scored: the request itself, or its task (``task.split``), and the context term."""
        task = split(request)
        if task is None:
            return request, 0.0
        return task.request, self.context_cap * context_fraction(task.context_tokens)

    def terms(self, request: ChatRequest) -> tuple[Analysis, list[tuple[str, float]]]:
        """The reference for ``LearnedClassifier.classify``: the analysis scored and every term, named."""
        scored, context = self.view(request)
        analysis = analyze(scored.text)
        return analysis, self.contributions(analysis, scored, context)


CONTEXT_SPAN = 1 / 3  # of the calibration's 10%-90% raw spread: the cap of the context term
BRIEF_TOKENS, BRIEF_WEIGHT = 16, -1.0  # a request of a few tokens is easy, whatever its words
DENSE_CLIP = 2.0  # standardized text statistics are clipped, so odd requests do not extrapolate wildly


def clip(z: float) -> float:
    return -DENSE_CLIP if z < -DENSE_CLIP else DENSE_CLIP if z > DENSE_CLIP else z


UNSEEN_CACHE = 16384  # words (not in the artifact) whose character-gram weight is memoised, per classifier
UNSEEN_PER_REQUEST = 64  # at most this many unseen words of one request are scored from character grams


class LearnedClassifier:
    """Scores requests with ``model``. The same terms and sum as ``RouterModel.contributions``, computed
    without naming every term (only the strongest few are named) and with plain-dict lookups; the
    character-gram weight of a word the artifact lacks is memoised (bounded LRU), and at most
    ``UNSEEN_PER_REQUEST`` such words per request are looked up, so a long text of new words stays cheap.

    The gateway sleeps between requests, so ``classify`` mostly runs with cold caches, where what it costs
    is how much memory it touches more than how many instructions it runs: the window is lowercased once
    for the text features and the prior, and the weights are laid out for it (``_packed_tables``)."""

    name = "learned"

    def __init__(self, model: RouterModel) -> None:
        self.model = model
        self._forms = {form: _FormScorer(model, form) for form in FORMS}
        self._offset = model.bias + model.prior_weight * heuristic.BIAS

    def classify(self, request: ChatRequest) -> Complexity:
        model = self.model
        request, context = model.view(request)
        text = request.text
        lowered = window(text).lower()  # read by both the text features and the heuristic prior
        analysis = analyze(text, lowered)
        scorer = self._forms[analysis.form]
        prior = _prior_terms(model.prior_weight, request, lowered, context)
        words = analysis.words
        found = list(map(scorer.words, words))
        word_c: list[float] = scorer.fill_unseen(words, found) if None in found else found  # type: ignore[assignment]
        pair_c = list(map(scorer.bigrams, analysis.bigrams, repeat(0.0, len(analysis.bigrams))))
        dense_c = []
        for value, (mean, scale, weight) in zip(analysis.dense.values(), scorer.dense, strict=True):
            z = (value - mean) / scale  # clip(z), inline: this loop runs for every request
            z = -DENSE_CLIP if z < -DENSE_CLIP else DENSE_CLIP if z > DENSE_CLIP else z
            dense_c.append(weight * z)
        values = [c for _, c in prior]
        values += word_c
        values += pair_c
        values += dense_c
        raw = self._offset + sum(values)  # the terms in the order ``contributions`` sums them: the same float
        n_terms = len(values) - word_c.count(0.0) - pair_c.count(0.0)

        def strongest() -> tuple[tuple[str, float], ...]:  # named only when the decision is explained
            dense_terms = list(zip(analysis.dense, dense_c, strict=True))
            top = self._top(values, prior, words, analysis.bigrams, dense_terms)
            if top is None:  # fewer than TOP_FEATURES non-zero terms: name them the plain way
                terms = model.contributions(analysis, request, context)
                top = heapq.nlargest(TOP_FEATURES, terms, key=lambda term: abs(term[1]))
            return tuple((name, round(c, 4)) for name, c in top)

        named = {"raw": round(raw, 4), "terms": float(n_terms), "form:" + analysis.form: 1.0}
        if context:  # scored on the task: show how much the task and its context gave
            named |= {"task": round(raw - context, 4), "context": round(context, 4)}
        return Complexity(round(model.calibration.score(raw), 6), MappingProxyType(named), strongest, self.name)

    @staticmethod
    def _top(
        values: list[float],
        prior: list[tuple[str, float]],
        words: Sequence[str],
        bigrams: Sequence[str],
        dense_terms: list[tuple[str, float]],
    ) -> list[tuple[str, float]] | None:
        """The ``TOP_FEATURES`` largest terms by magnitude, ties in term order (as ``heapq.nlargest``)."""
        if len(values) < 2 * TOP_FEATURES:
            return None
        ordered = sorted(values)  # the largest magnitudes are among the TOP_FEATURES lowest and highest values
        ends = ordered[:TOP_FEATURES] + ordered[-TOP_FEATURES:]
        cut = sorted(map(abs, ends), reverse=True)[TOP_FEATURES - 1]
        if cut == 0.0:
            return None
        picked = {x for x in ends if abs(x) >= cut}
        if any(bisect.bisect_right(ordered, x) - bisect.bisect_left(ordered, x) > 1 for x in picked):
            return None  # a repeated value: ties are ordered by position, which the plain way does
        chosen = sorted(map(values.index, picked), key=lambda i: (-abs(values[i]), i))  # first positions
        n_prior, n_words, n_pairs = len(prior), len(words), len(bigrams)
        top = []
        for i in chosen[:TOP_FEATURES]:
            if i < n_prior:
                top.append(prior[i])
                continue
            j = i - n_prior
            if j < n_words:
                top.append(("word:" + words[j], values[i]))
            elif j < n_words + n_pairs:
                top.append(("pair:" + bigrams[j - n_words], values[i]))
            else:
                top.append(dense_terms[j - n_words - n_pairs])
        return top


class _FormScorer:
    """One form's weights as plain dicts (a mappingproxy's ``.get`` is several times slower than a dict's),
    with a bounded memo of the character-gram weight of words the artifact lacks."""

    def __init__(self, model: RouterModel, form: str) -> None:
        weights = model.forms[form]
        self.words = dict(weights.words).get
        self.bigrams = dict(weights.bigrams).get
        # (mean, scale, weight) per name in DENSE, in that order: ``analyze`` gives the statistics in that order.
        self.dense = tuple((model.dense_mean[name], model.dense_scale[name], weights.dense[name]) for name in DENSE)
        grams = dict(weights.grams).get

        @functools.lru_cache(maxsize=UNSEEN_CACHE)
        def unseen(word: str) -> float:  # == sum(grams.get(g, 0.0) for g in char_grams(word)), in C-level maps
            if len(word) < 3 or not word[0].isalpha():
                return 0.0
            spans = gram_slices(len(word) + 2)
            return sum(map(grams, map(f" {word} ".__getitem__, spans), repeat(0.0, len(spans))))

        self.unseen = unseen

    def fill_unseen(self, words: Sequence[str], weights: list[float | None]) -> list[float]:
        """``weights`` with each None (a word the artifact lacks) replaced in place: by the word's character-gram
        weight for the first ``UNSEEN_PER_REQUEST`` such words, by 0.0 after. Only those words are visited."""
        unseen, start = self.unseen, 0
        for budget in range(UNSEEN_PER_REQUEST, UNSEEN_PER_REQUEST - weights.count(None), -1):
            i = weights.index(None, start)
            weights[i] = unseen(words[i]) if budget > 0 else 0.0
            start = i + 1
        return weights  # type: ignore[return-value]  # no None is left


@functools.lru_cache(maxsize=256)
def gram_slices(size: int) -> tuple[slice, ...]:
    """The slices of a padded word of ``size`` characters that ``char_grams`` takes, in its order."""
    return tuple(slice(i, i + n) for n in CHAR_GRAMS for i in range(size - n + 1))


_PRIOR_TERMS = {name: ("prior:" + name, weight) for name, weight in heuristic.WEIGHTS.items()}  # name -> label, weight


def _prior_terms(
    prior: float, request: ChatRequest, lowered: str | None = None, context: float = 0.0
) -> list[tuple[str, float]]:
    """The weighted heuristic's terms, its cues counted in the text's window (``lowered``: the window lowercased),
    and the context term when the request was scored on its task."""
    terms = []
    if prior:
        text = window(request.text).lower() if lowered is None else lowered
        for name, value in heuristic.features(request, text, lowered=True).items():
            if value:
                label, weight = _PRIOR_TERMS[name]
                terms.append((label, prior * weight * value))
    if request.prompt_tokens_estimate < BRIEF_TOKENS:  # the data has no requests this short to learn from
        terms.append(("prior:brief", BRIEF_WEIGHT * (1.0 - request.prompt_tokens_estimate / BRIEF_TOKENS)))
    if context:
        terms.append(("context", context))
    return terms


def from_json(data: Mapping[str, Any]) -> RouterModel:
    """The model from the artifact's parsed JSON; ``ValueError`` naming what is wrong."""
    if data.get("format") != FORMAT or data.get("version") != VERSION:
        raise ValueError(f"not a {FORMAT} artifact of version {VERSION}; retrain with `gateway router train`")
    forms = data["forms"]
    missing = [form for form in FORMS if form not in forms]
    missing += [f"{f}.{name}" for f in FORMS if f in forms for name in DENSE if name not in forms[f]["dense"]]
    if missing:
        raise ValueError(f"the artifact lacks {missing}; retrain with `gateway router train`")
    words, bigrams = _packed_tables(forms)
    return RouterModel(
        forms=MappingProxyType({form: _form_weights(forms[form], words[form], bigrams[form]) for form in FORMS}),
        dense_mean=MappingProxyType(_floats(data["dense"]["mean"])),
        dense_scale=MappingProxyType(_floats(data["dense"]["scale"])),
        bias=float(data["bias"]),
        prior_weight=float(data.get("prior_weight", 0.0)),
        calibration=Calibration(tuple(float(k) for k in data["calibration"]["raw"])),
        training=MappingProxyType(dict(data.get("training", {}))),
    )


def _form_weights(data: Mapping[str, Any], words: dict[str, float], bigrams: dict[str, float]) -> FormWeights:
    return FormWeights(
        words=MappingProxyType(words),
        grams=MappingProxyType(_floats(data["grams"])),
        bigrams=MappingProxyType(bigrams),
        dense=MappingProxyType(_floats(data["dense"])),
    )


def _packed_tables(forms: Mapping[str, Any]) -> tuple[dict[str, dict[str, float]], dict[str, dict[str, float]]]:
    """Each form's word and bigram weights, laid out so that a request's look-ups touch few memory pages.

    A look-up of a key that is present reads four objects: the dict's index slot and entry, the key and
    the float. The gateway sleeps between requests and finds its caches cold, so each read costs ~0.5 us,
    more when its page is far from the last one read. As parsed from JSON, the keys and floats lie in file
    (alphabetical) order across megabytes. Here they are allocated anew, in one run, the most common first,
    and the entries follow the same order: the few common words that most of a request is made of then
    share pages. Same keys, same values. Cold ``classify`` per bench prompt: 20-30 us less (-5 to -8%).
    The price: 0.1-0.2 s more at load, 6-8 MB more memory (the parsed originals leave holes behind)."""
    pairs = dict.fromkeys(pair for form in FORMS for pair in forms[form]["bigrams"])
    # How common a word is: the artifact keeps no counts, but a bigram is kept only if seen in two training
    # requests, so a word in many bigrams is a common one.
    heat = Counter(word for pair in pairs for word in pair.split(" "))
    words = _packed({form: forms[form]["words"] for form in FORMS}, heat.__getitem__)
    bigrams = _packed(
        {form: forms[form]["bigrams"] for form in FORMS}, lambda pair: min(map(heat.__getitem__, pair.split(" ")))
    )
    return words, bigrams


def _packed(tables: Mapping[str, Mapping[str, Any]], heat: Callable[[str], int]) -> dict[str, dict[str, float]]:
    """``tables`` as dicts of floats, hottest key first, with keys (shared by the tables) and floats made anew."""
    order = sorted(dict.fromkeys(key for table in tables.values() for key in table), key=heat, reverse=True)
    keys = ["".join((key, "")) for key in order]  # new str objects (``str(key)`` would be ``key`` itself)
    return {
        name: {new: float(table[key]) * 1.0 for new, key in zip(keys, order, strict=True) if key in table}
        for name, table in tables.items()
    }


def to_json(model: RouterModel) -> dict[str, Any]:
    return {
        "format": FORMAT,
        "version": VERSION,
        "bias": model.bias,
        "prior_weight": model.prior_weight,
        "dense": {"mean": dict(model.dense_mean), "scale": dict(model.dense_scale)},
        "calibration": {"raw": list(model.calibration.knots)},
        "training": dict(model.training),
        "forms": {
            form: {
                "dense": dict(w.dense),
                "words": dict(w.words),
                "bigrams": dict(w.bigrams),
                "grams": dict(w.grams),
            }
            for form, w in model.forms.items()
        },
    }


def _floats(values: Mapping[str, Any]) -> dict[str, float]:
    return {str(k): float(v) for k, v in values.items()}


def quantile_knots(values: Sequence[float], weights: Sequence[float], count: int = 101) -> tuple[float, ...]:
    """Weighted quantiles of ``values`` at 0, 1/(count-1), ..., 1 (the calibration curve)."""
    pairs = sorted(zip(values, weights, strict=True))
    total = math.fsum(w for _, w in pairs)
    knots, cumulative, j = [], 0.0, 0
    for k in range(count):
        target = total * k / (count - 1)
        while j < len(pairs) - 1 and cumulative + pairs[j][1] < target:
            cumulative += pairs[j][1]
            j += 1
        knots.append(pairs[j][0])
    return tuple(knots)
