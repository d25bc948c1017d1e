"""The retry part of a deployment: how often it is tried before the next candidate, and the pauses between.

Pure schema (no I/O). ``max_retries: N`` is the legacy spelling of ``retry: {attempts: N + 1}``.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

LEGACY_MAX_RETRIES = 10  # the most ``max_retries`` ever allowed


class RetrySpec(BaseModel):
    """Tries on one deployment, the first included, and full-jitter exponential backoff between them.

    The pause before try ``n + 1`` is drawn uniformly from 0 .. ``min(max_backoff_seconds,
    backoff_seconds * 2**(n - 1))``, or is the upstream's ``Retry-After`` when that is longer."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    attempts: int = Field(3, ge=1, le=LEGACY_MAX_RETRIES + 1)  # 1: no retry, straight to the next candidate
    backoff_seconds: float = Field(0.05, ge=0, le=60)  # the ceiling of the first pause; it doubles per try
    max_backoff_seconds: float = Field(2.0, ge=0, le=300)  # ... up to this

    @model_validator(mode="after")
    def _ordered(self) -> RetrySpec:
        if self.max_backoff_seconds < self.backoff_seconds:
            raise ValueError(
                f"max_backoff_seconds ({self.max_backoff_seconds:g}) must not be below backoff_seconds "
                f"({self.backoff_seconds:g})"
            )
        return self


def legacy_max_retries(data: Any) -> Any:
    """A deployment's raw fields with ``max_retries: N`` turned into ``retry: {attempts: N + 1}``."""
    if not isinstance(data, dict) or "max_retries" not in data:
        return data
    fields = dict(data)
    legacy = fields.pop("max_retries")
    if "retry" in fields:
        raise ValueError(
            "give either retry: {attempts, backoff_seconds, max_backoff_seconds} or the legacy max_retries, not both "
            "(max_retries: N is retry: {attempts: N + 1})"
        )
    if isinstance(legacy, bool) or not isinstance(legacy, int) or not 0 <= legacy <= LEGACY_MAX_RETRIES:
        raise ValueError(
            f"max_retries must be a whole number from 0 to {LEGACY_MAX_RETRIES} (retries after the first try), "
            f"not {legacy!r}"
        )
    fields["retry"] = {"attempts": legacy + 1}
    return fields
