"""The policy file schema: what ops may write in ``policies/*.yaml``.

Kept apart from the runtime so it can be validated and tested alone. Every model
forbids unknown keys, so a typo fails loudly with its path instead of being ignored.
A policy directory is the union of its YAML files; each file holds any of the
top-level sections below, and an id may be defined only once across files.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, WithJsonSchema, model_validator

from gateway.policy.countries import ISO_3166_ALPHA2, country_hint
from gateway.policy.detect_custom import compile_custom
from gateway.policy.guarantees_schema import Guarantees
from gateway.policy.guards_schema import AdminSpec, Budget, CacheSpec, DeploymentCaps, RateLimits, StateSpec
from gateway.policy.network_schema import HealthSpec, ProxySetting, TlsSpec
from gateway.policy.provenance import require_filled
from gateway.policy.retry_schema import RetrySpec, legacy_max_retries

Tier = Literal["simple", "standard", "complex"]
TIERS: tuple[Tier, ...] = ("simple", "standard", "complex")
QualityTier = Literal["basic", "strong", "frontier"]
Endpoint = Literal["chat", "completions", "embeddings"]


def _country(value: str) -> str:
    if value not in ISO_3166_ALPHA2:
        raise ValueError(f"{value!r} is not an ISO 3166 country code{country_hint(value)}")
    return value


def _sha256(value: str) -> str:
    if len(value) != 64 or any(c not in "0123456789abcdef" for c in value):
        raise ValueError("must be 64 lowercase hex characters (see `gateway keys hash`)")
    return value


def _detector_pattern(value: str) -> str:
    compile_custom(value)  # raises, naming what is unsafe or invalid
    return value


_COUNTRY_SCHEMA = {"type": "string", "enum": sorted(ISO_3166_ALPHA2), "description": "ISO 3166-1 alpha-2 code"}
Country = Annotated[str, AfterValidator(_country), WithJsonSchema(_COUNTRY_SCHEMA)]
KeyHash = Annotated[str, AfterValidator(_sha256), WithJsonSchema({"type": "string", "pattern": "^[0-9a-f]{64}$"})]
DetectorPattern = Annotated[str, AfterValidator(_detector_pattern)]
Id = Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:/@-]*$")]
AliasName = Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9*?\[][A-Za-z0-9._:/@*?\[\]!-]*$")]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Capabilities(Strict):
    tools: bool = False
    json_output: bool = Field(False, alias="json")
    vision: bool = False
    context_window: int = Field(8192, gt=0)


class Price(Strict):
    """USD per million tokens."""

    input: float = Field(ge=0)
    output: float = Field(0.0, ge=0)


class ModelSpec(Strict):
    """A catalog entry: a model and its provenance."""

    vendor: str
    origin: Country
    open_weights: bool
    license: str
    quality_tier: QualityTier
    endpoints: tuple[Endpoint, ...] = ("chat",)
    capabilities: Capabilities = Capabilities()
    price: Price | None = None
    description: str = ""

    @model_validator(mode="before")
    @classmethod
    def _provenance_filled(cls, data: Any) -> Any:
        return require_filled(data, ("vendor", "origin", "open_weights", "license", "quality_tier"), "model")


class DeploymentSpec(Strict):
    """One callable endpoint of one model."""

    model: Id
    provider: str = "openai_compatible"
    upstream_model: str | None = None
    base_url: str | None = None
    api_key_env: str | None = Field(None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    operator: str
    jurisdiction: Country
    self_hosted: bool = False
    timeout_seconds: float = Field(60.0, gt=0, le=3600)
    retry: RetrySpec = RetrySpec()  # max_retries: N, the legacy spelling, is read as retry: {attempts: N + 1}
    price: Price | None = None
    caps: DeploymentCaps | None = None
    proxy: ProxySetting | None = None  # absent: HTTPS_PROXY / HTTP_PROXY / NO_PROXY; "none": direct
    tls: TlsSpec | None = None
    health: HealthSpec | None = None  # active health checks (openai_compatible deployments)
    api: Literal["chat", "responses"] = "chat"  # responses: /v1/responses requests pass through (docs/api-responses.md)

    @model_validator(mode="before")
    @classmethod
    def _legacy_max_retries(cls, data: Any) -> Any:
        return legacy_max_retries(require_filled(data, ("operator", "jurisdiction", "self_hosted"), "deployment"))

    @model_validator(mode="after")
    def _openai_compatible_needs_url(self) -> DeploymentSpec:
        if self.provider == "openai_compatible" and not self.base_url:
            raise ValueError("an openai_compatible deployment needs base_url")
        if self.provider != "openai_compatible":
            if self.health is not None:
                raise ValueError("health checks are for openai_compatible deployments (self-hosted servers)")
            if self.proxy is not None:
                raise ValueError(
                    "proxy: applies to openai_compatible deployments; litellm-backed ones use the process's "
                    "HTTPS_PROXY / HTTP_PROXY / NO_PROXY"
                )
            if self.tls is not None:
                raise ValueError(
                    "tls: applies to openai_compatible deployments; litellm-backed ones use the process's trust "
                    "(SSL_CERT_FILE) and client certificate (SSL_CERTIFICATE)"
                )
        return self


class ApiKey(Strict):
    sha256: KeyHash
    name: str = ""
    limits: RateLimits | None = None  # per key, on top of the tenant's


class TenantLimits(RateLimits):
    """A tenant's limits: its rates (``rpm``, ``tpm``) and the largest prompt it may send, which overrides
    the global ``limits.max_prompt_chars`` (higher or lower). A key's own ``limits`` holds rates only."""

    max_prompt_chars: int | None = Field(None, gt=0)


class TenantSpec(Strict):
    """Who is calling and what they allow. Absent allow-lists allow everything."""

    keys: tuple[ApiKey, ...] = Field(min_length=1)
    description: str = ""
    allow_origins: tuple[Country, ...] | None = None
    deny_origins: tuple[Country, ...] = ()
    allow_jurisdictions: tuple[Country, ...] | None = None
    allow_data_classes: tuple[Id, ...] | None = None
    default_data_class: Id = "public"
    allow_quality_tiers: tuple[QualityTier, ...] | None = None
    allow_models: tuple[Id, ...] | None = None
    deny_models: tuple[Id, ...] = ()
    allow_routes: tuple[Id, ...] | None = None
    require_self_hosted: bool = False
    audit_content: bool = False  # write prompt and completion text to the audit log
    limits: TenantLimits | None = None
    budget: Budget | None = None
    cache: CacheSpec | None = None  # cache this tenant's non-streaming answers
    guarantees: Guarantees | None = None  # what `gateway policy verify` proves (never read by routing)


class DataClassSpec(Strict):
    """A sensitivity class. Classes are ordered as written: later is more sensitive."""

    description: str = ""
    require_self_hosted: bool = False
    allow_jurisdictions: tuple[Country, ...] | None = None
    detect: tuple[Id, ...] = ()  # detectors (built-in or the policy's) whose finding raises a request to this class


class Thresholds(Strict):
    """Complexity score at or above which a request is ``standard`` / ``complex``.

    Either boundary may instead be a target share of traffic: ``strong_share`` (the share that
    reaches ``complex``) and ``standard_share`` (the share at ``standard``). The policy loader turns
    shares into scores from the router's calibration curve, so routing stays a plain compare.
    """

    standard: float = Field(0.35, ge=0, le=1)
    complex: float = Field(0.65, ge=0, le=1)
    strong_share: float | None = Field(None, ge=0, le=1)
    standard_share: float | None = Field(None, ge=0, le=1)

    @model_validator(mode="after")
    def _ordered(self) -> Thresholds:
        given = self.model_fields_set
        if self.strong_share is not None and "complex" in given:
            raise ValueError("give either complex or strong_share, not both")
        if self.standard_share is not None and "standard" in given:
            raise ValueError("give either standard or standard_share, not both")
        if self.standard_share is not None and self.strong_share is None:
            raise ValueError("standard_share needs strong_share for the boundary above it")
        if (self.strong_share or 0.0) + (self.standard_share or 0.0) > 1.0:
            raise ValueError("strong_share + standard_share must not exceed 1")
        if self.strong_share is None and self.standard_share is None and self.complex < self.standard:
            raise ValueError("complex threshold must be >= standard threshold")
        return self

    @property
    def by_share(self) -> bool:
        return self.strong_share is not None or self.standard_share is not None


class RouteSpec(Strict):
    """An alias clients ask for (``auto``). Each tier lists candidate models in order of preference."""

    description: str = ""
    thresholds: Thresholds = Thresholds()
    tiers: dict[Tier, tuple[Id, ...]]
    fallback: tuple[Id, ...] = ()  # tried after the tier's candidates, whatever the tier
    rank: Literal["price", "order"] = "price"
    baseline_model: Id | None = None
    cache: CacheSpec | None = None  # cache non-streaming answers on this route

    @model_validator(mode="after")
    def _all_tiers(self) -> RouteSpec:
        missing = [t for t in TIERS if not self.tiers.get(t)]
        if missing:
            raise ValueError(f"tiers {missing} need at least one candidate model")
        return self


class Limits(Strict):
    max_body_bytes: int = Field(4 * 1024 * 1024, gt=0)
    # the most prompt text a request may carry, in characters (docs/edge-limits.md#prompt-size); none: no limit
    # but max_body_bytes. A tenant's limits.max_prompt_chars overrides it.
    max_prompt_chars: int | None = Field(None, gt=0)
    request_deadline_seconds: float = Field(120.0, gt=0)
    responses_ttl_seconds: float = Field(3600.0, gt=0, le=30 * 86400)  # stored Responses API answers (store: true)


class PolicyFile(Strict):
    """One YAML file. Every section is optional; ids are unique across the directory."""

    models: dict[Id, ModelSpec] = {}
    deployments: dict[Id, DeploymentSpec] = {}
    tenants: dict[Id, TenantSpec] = {}
    data_classes: dict[Id, DataClassSpec] = {}
    routes: dict[Id, RouteSpec] = {}
    aliases: dict[AliasName, Id] = {}  # client model name or glob -> route or model (gateway/policy/aliases.py)
    detectors: dict[Id, DetectorPattern] = {}  # custom personal-data detectors: name -> regex (policy/detect_custom.py)
    limits: Limits | None = None
    state: StateSpec | None = None
    admin: AdminSpec | None = None
