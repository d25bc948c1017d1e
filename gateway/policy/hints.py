""" "Did you mean" hints for names that are almost right."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


def did_you_mean(value: str, known: Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` for the closest known name, or ``""`` when none is close."""
    choices = [str(k) for k in known]
    close = difflib.get_close_matches(value, choices, n=1, cutoff=0.75)
    if not close:
        folded = {c.lower(): c for c in choices}
        close = [folded[value.lower()]] if value.lower() in folded else []
    return f" (did you mean {close[0]!r}?)" if close else ""
