"""Policy schema for a tenant's declared guarantees: what ``gateway policy verify`` proves of it.

Guarantees are written apart from the routing rules (``allow_*`` / ``deny_*``, data classes, routes) and
are never read by routing: they state what must hold of every deployment a tenant could ever reach,
so that a change to the rules that breaks a promise is caught by the proof (gateway/policy/proof.py).
"""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from gateway.policy.countries import ISO_3166_ALPHA2


def _country(value: str) -> str:
    if value not in ISO_3166_ALPHA2:
        raise ValueError(f"{value!r} is not an ISO 3166 country code")
    return value


Country = Annotated[str, AfterValidator(_country)]


class Guarantees(BaseModel):
    """Each field, when given, must hold of every deployment the tenant could ever reach."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    never_origins: tuple[Country, ...] = ()  # no model whose weights were made in these countries
    only_origins: tuple[Country, ...] | None = None  # only models made in these countries
    only_jurisdictions: tuple[Country, ...] | None = None  # data goes only to these countries
    never_jurisdictions: tuple[Country, ...] = ()
    only_operators: tuple[str, ...] | None = None  # who runs inference, as deployments spell it
    never_vendors: tuple[str, ...] = ()  # who made the model, as the catalog spells it
    never_models: tuple[str, ...] = ()  # catalog ids
    self_hosted_only: bool = False  # every reachable deployment is self-hosted
    self_hosted_origins: tuple[Country, ...] = ()  # models of these origins only through self-hosted deployments
    self_hosted_data_classes: tuple[str, ...] = ()  # data of these classes reaches only self-hosted deployments
    min_vendors_per_tier: int | None = Field(None, ge=1, le=16)  # distinct vendors in every route tier it may use
