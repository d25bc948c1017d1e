"""Policy schema for the guards that need shared state: rate limits, budgets, caps, breakers, cache, admin."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator


def _sha256(value: str) -> str:
    if len(value) != 64 or any(c not in "0123456789abcdef" for c in value):
        raise ValueError("must be 64 lowercase hex characters (see `gateway keys hash`)")
    return value


KeyHash = Annotated[str, AfterValidator(_sha256)]
FailMode = Literal["open", "closed"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RateLimits(_Strict):
    """Requests and tokens per minute. Tokens: prompt estimated before the call, corrected with real usage after."""

    rpm: int | None = Field(None, gt=0)
    tpm: int | None = Field(None, gt=0)


class Budget(_Strict):
    """Spend in USD at catalog prices, per UTC day and calendar month."""

    daily_usd: float | None = Field(None, gt=0)
    monthly_usd: float | None = Field(None, gt=0)
    on_exhausted: Literal["reject", "downgrade"] = "reject"
    downgrade_at: float = Field(0.8, gt=0, le=1)  # with on_exhausted: downgrade, above this share use a cheaper tier
    fail: FailMode = "open"  # when the shared store is down: serve anyway (open) or refuse (closed)

    @model_validator(mode="after")
    def _some_window(self) -> Budget:
        if self.daily_usd is None and self.monthly_usd is None:
            raise ValueError("a budget needs daily_usd, monthly_usd or both")
        return self


class CacheSpec(_Strict):
    """Exact-match response cache for non-streaming requests; entries are never shared between tenants."""

    ttl_seconds: float = Field(gt=0, le=7 * 86400)


class DeploymentCaps(_Strict):
    """Protect a (self-hosted) deployment: a deployment at its cap is skipped like an unhealthy one."""

    max_concurrency: int | None = Field(None, gt=0)
    rpm: int | None = Field(None, gt=0)


class BreakerSpec(_Strict):
    failures: int = Field(5, gt=0)
    window_seconds: float = Field(30.0, gt=0)
    failure_rate: float | None = Field(None, gt=0, le=1)
    min_calls: int = Field(20, gt=0)
    cooldown_seconds: float = Field(30.0, gt=0)


class StateSpec(_Strict):
    """How the shared-state features behave; where the store lives is a process setting (REDIS_URL)."""

    breaker: BreakerSpec = BreakerSpec()
    rate_limits_fail: FailMode = "open"
    cache_fail: FailMode = "open"


class AdminKey(_Strict):
    sha256: KeyHash
    name: str = ""


class AdminSpec(_Strict):
    keys: tuple[AdminKey, ...] = Field(min_length=1)
    # Keys that may read /metrics (e.g. Prometheus' bearer token). When any is set, /metrics needs one
    # of them or an admin key; without any, /metrics stays open for scrapers inside the cluster.
    metrics_keys: tuple[AdminKey, ...] = ()
