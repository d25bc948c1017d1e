"""Personal data in a request's text: the detectors that may raise its data class.

Pure: a detector is a function of the text that says whether it found its kind of data; it never
returns what it matched, so nothing downstream (explain, audit, logs) can leak it. Built-in detectors:

- ``email``: ``local@domain.tld``, found from each ``@`` outwards (no scan per position);
- ``phone``: E.164 (``+`` and 8-15 digits, separators allowed) and national formats: North American
  ``(555) 123-4567`` / ``555-123-4567`` (same separator twice) and trunk-prefixed ``030 1234 5678``,
  ``06 12 34 56 78`` (9-12 digits in groups); dates, version strings and numbers glued to letters or
  ``#``/``-`` (order numbers) are not phones;
- ``card``: 13-19 digits (single spaces or hyphens between them) in a card brand's issuer range, passing Luhn;
- ``iban``: a country's IBAN length, passing mod 97 (spaces every four allowed);
- ``us_ssn``: ``123-45-6789`` or ``123 45 6789`` outside the invalid areas (000, 666, 900-999), groups and serials.

Every pattern here starts with the character a match must start with (so the engine skips to candidates
in C) and has only bounded repeats, so its work is linear in the text. A policy compiles its detectors
once per revision into a :class:`Detection`; custom patterns: :mod:`gateway.policy.detect_custom`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from gateway.policy.detect_checks import IBAN_LENGTHS, card_ok, iban_ok, ssn_ok

Finder = Callable[["Scanned"], bool]
_DIGITS = frozenset("0123456789")
# A run of digits and the separators numbers are written with. Card numbers, SSNs and phone numbers lie inside
# such a run of eight characters or more, so their patterns read only those runs (with the characters around
# them) instead of the whole text. One character class repeated: the engine's fastest loop, no backtracking.
_NUMBER = re.compile(r"[+(0-9][0-9 ().+/-]*")


class Scanned:
    """One request's text as the detectors read it; the runs of digits are found once, on first use."""

    __slots__ = ("_numbers", "text")

    def __init__(self, text: str) -> None:
        self.text = text
        self._numbers: str | None = None

    @property
    def numbers(self) -> str:
        """Each run of eight characters or more, with two characters either side (for the patterns' boundaries),
        one a line: the numeric detectors read this once instead of the whole text."""
        if self._numbers is None:
            text = self.text
            self._numbers = "\n".join(
                text[max(0, m.start() - 2) : m.end() + 2] for m in _NUMBER.finditer(text) if m.end() - m.start() >= 8
            )
        return self._numbers


# the local part's last character, then the domain: the scan looks for "@" only (a fast literal search)
_EMAIL = re.compile(
    r"@(?<=[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]@)(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.){1,8}"
    r"[A-Za-z]{2,24}(?![A-Za-z0-9-])"
)


def has_email(scanned: Scanned) -> bool:
    return "@" in scanned.text and _EMAIL.search(scanned.text) is not None


# Each pattern starts with the character class it needs, and the boundary before the match is a lookbehind
# after that first character.
_CARD = re.compile(r"[0-9](?<![0-9.,/-][0-9])(?:[ -]?[0-9]){12,18}(?![0-9]|[.,/-][0-9])")


def has_card(scanned: Scanned) -> bool:
    return any(card_ok(m.group().replace(" ", "").replace("-", "")) for m in _CARD.finditer(scanned.numbers))


_IBAN = re.compile(r"([A-Z](?<![A-Za-z0-9][A-Z])[A-Z])([0-9]{2})((?: ?[A-Z0-9]){11,30})(?![a-z0-9])")


def has_iban(scanned: Scanned) -> bool:
    for match in _IBAN.finditer(scanned.text):
        length = IBAN_LENGTHS.get(match.group(1))
        if length is None:
            continue
        compact = (match.group(1) + match.group(2) + match.group(3)).replace(" ", "")
        if len(compact) >= length and iban_ok(compact[:length]):  # a word in capitals may follow the IBAN
            return True
    return False


_SSN = re.compile(r"([0-9](?<![\w.,-][0-9])[0-9]{2})([- ])([0-9]{2})\2([0-9]{4})(?![\w-]|[.,][0-9])")


def has_us_ssn(scanned: Scanned) -> bool:
    return any(ssn_ok(m[1], m[3], m[4]) for m in _SSN.finditer(scanned.numbers))


_E164 = re.compile(r"\+(?<![\w+]\+)[1-9](?:[ .-]?\(?[0-9]\)?){7,14}(?![0-9]|[.-][0-9])")
_NANP = re.compile(
    r"[(0-9](?<![\w.,#/+-][(0-9])(?:(?<=\()[0-9]{3}\) ?[0-9]{3}-|(?<=[0-9])[0-9]{2}([-. ])[0-9]{3}\1)[0-9]{4}"
    r"(?![\w-]|[.,:/][0-9])"
)
_TRUNK = re.compile(r"0(?<![\w.,#/:+-]0)[0-9]{1,4}(?:[ -][0-9]{2,8}){1,4}(?![\w-]|[.,:/][0-9])")


def has_phone(scanned: Scanned) -> bool:
    numbers = scanned.numbers
    if _E164.search(numbers) is not None or _NANP.search(numbers) is not None:
        return True
    return any(9 <= sum(c in _DIGITS for c in m.group()) <= 12 for m in _TRUNK.finditer(numbers))


BUILTIN: Final[Mapping[str, Finder]] = {
    "email": has_email,
    "phone": has_phone,
    "card": has_card,
    "iban": has_iban,
    "us_ssn": has_us_ssn,
}


def pattern_finder(pattern: re.Pattern[str]) -> Finder:
    search = pattern.search
    return lambda scanned: search(scanned.text) is not None


def fired(finders: Mapping[str, Finder], names: tuple[str, ...], text: str | Scanned) -> tuple[str, ...]:
    """The names of the detectors among ``names`` that find something in ``text``."""
    scanned = text if isinstance(text, Scanned) else Scanned(text)
    return tuple(name for name in names if finders[name](scanned))


@dataclass(frozen=True, slots=True)
class Detected:
    """What the detectors did to a request's data class: never the text they matched."""

    data_class: str  # the class it was raised to
    raised_from: str  # the class the tenant's default and the header gave
    detectors: tuple[str, ...]  # the detectors of that class that fired

    def to_json(self) -> dict[str, Any]:
        return {"data_class": self.data_class, "raised_from": self.raised_from, "detectors": list(self.detectors)}


@dataclass(frozen=True, slots=True)
class Escalation:
    """A data class with ``detect``: the detectors whose finding raises a request to it."""

    data_class: str
    rank: int
    detectors: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Detection:
    """A policy's detectors, compiled once per revision. ``escalations``: most sensitive class first."""

    finders: Mapping[str, Finder] = field(default_factory=lambda: dict(BUILTIN))
    escalations: tuple[Escalation, ...] = ()

    @classmethod
    def of(
        cls, custom: Mapping[str, re.Pattern[str]], detect: Mapping[str, tuple[str, ...]], rank: Mapping[str, int]
    ) -> Detection:
        finders = {**BUILTIN, **{name: pattern_finder(p) for name, p in custom.items()}}
        escalations = [Escalation(name, rank[name], names) for name, names in detect.items() if names]
        return cls(finders, tuple(sorted(escalations, key=lambda e: -e.rank)))

    def scan(self, text: str, declared: str, rank: Mapping[str, int]) -> Detected | None:
        """The most sensitive class above ``declared`` whose detectors find something in ``text``.
        Classes at or below ``declared`` are not scanned for: the class is never lowered."""
        floor, scanned = rank[declared], Scanned(text)
        for escalation in self.escalations:
            if escalation.rank <= floor:
                return None
            names = fired(self.finders, escalation.detectors, scanned)
            if names:
                return Detected(escalation.data_class, declared, names)
        return None
