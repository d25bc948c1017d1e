"""One error tree for the whole gateway, mapped to HTTP in one place.

Every class carries its HTTP status, OpenAI error ``type`` and default ``code``.
The HTTP edge turns any :class:`GatewayError` into OpenAI's JSON error shape
``{"error": {"message", "type", "param", "code"}}``; nothing else reaches a client.

    GatewayError
    ├── InvalidRequest (400)
    │   ├── BodyTooLarge (413)
    │   ├── PromptTooLarge (400)      the prompt is over the tenant's limits.max_prompt_chars
    │   └── NotCapable (400)          no candidate can serve what the request needs
    ├── AuthenticationFailed (401)
    ├── PolicyDenied (403)            names the rule and the value
    ├── RateLimited (429)             a tenant or key limit of the policy
    ├── BudgetExhausted (429)         a tenant's spend budget (insufficient_quota)
    ├── StateUnavailableError (503)   shared store down for a fail-closed feature
    ├── PolicyRejected (422)          an admin's reload found the policy files invalid
    ├── ModelNotFound (404)
    ├── RouteNotFound (404)           unknown URL path
    ├── MethodNotAllowed (405)
    └── UpstreamError                 raised by provider adapters
        ├── UpstreamRateLimited (429)     retryable
        ├── UpstreamTimeout (504)         retryable
        ├── UpstreamUnavailable (503)     retryable: connect error, 5xx
        ├── UpstreamBadResponse (502)     retryable: unparseable answer
        ├── UpstreamRejected (400)        not retryable: the upstream refused the request itself
        │   └── ContextLengthExceeded (400)   the prompt is over the deployment's context size
        └── AllCandidatesFailed (status of the failures)
"""

from __future__ import annotations

from typing import Any


class GatewayError(Exception):
    status: int = 500
    type: str = "server_error"
    code: str | None = "internal_error"
    attempts: tuple[Any, ...] = ()  # upstream attempts made before the error (gateway.call.Attempt)
    retry_after: float | None = None  # seconds, sent as Retry-After
    rule: str | None = None  # the policy rule that refused the request before any decision (gateway_policy_denials)

    def __init__(
        self, message: str, *, param: str | None = None, code: str | None = None, retry_after: float | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.retry_after = retry_after
        if code is not None:
            self.code = code

    def body(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}


class InvalidRequest(GatewayError):
    status = 400
    type = "invalid_request_error"
    code = "invalid_request"


class BodyTooLarge(InvalidRequest):
    status = 413
    code = "request_too_large"


class PromptTooLarge(InvalidRequest):
    """A 400, not a 413: the body was within ``max_body_bytes``; its prompt is over a policy limit, which is
    how OpenAI and Anthropic answer a prompt that is too long (their SDKs raise ``BadRequestError``)."""

    code = "prompt_too_large"

    def __init__(self, message: str, *, param: str | None, rule: str) -> None:
        super().__init__(message, param=param)
        self.rule = rule


class NotCapable(InvalidRequest):
    code = "model_not_capable"


class AuthenticationFailed(GatewayError):
    status = 401
    type = "authentication_error"
    code = "invalid_api_key"


class PolicyDenied(GatewayError):
    status = 403
    type = "permission_error"
    code = "policy_denied"


class PolicyRejected(GatewayError):
    """``POST /admin/policies/reload``: the files on disk are invalid; the revision in force stays."""

    status = 422
    type = "invalid_request_error"
    code = "policy_invalid"


class ModelNotFound(GatewayError):
    status = 404
    type = "invalid_request_error"
    code = "model_not_found"


class RouteNotFound(GatewayError):
    status = 404
    type = "invalid_request_error"
    code = "not_found"


class MethodNotAllowed(GatewayError):
    status = 405
    type = "invalid_request_error"
    code = "method_not_allowed"


class RateLimited(GatewayError):
    """A tenant or key limit of the policy (rpm, tpm) is used up for this window."""

    status = 429
    type = "rate_limit_error"
    code = "rate_limit_exceeded"


class BudgetExhausted(GatewayError):
    status = 429
    type = "insufficient_quota"
    code = "insufficient_quota"


class StateUnavailableError(GatewayError):
    """The shared store is down and the feature is configured to fail closed."""

    status = 503
    code = "state_unavailable"


class UpstreamError(GatewayError):
    """A provider adapter failed to get an answer. ``retryable`` decides retry and fallback."""

    status = 502
    type = "server_error"
    code = "upstream_error"
    retryable = True  # may be retried and may fall back
    retry_same = True  # ... and may be retried on the same deployment (False: only fall back)


class UpstreamRateLimited(UpstreamError):
    status = 429
    type = "rate_limit_error"
    code = "rate_limit_exceeded"


class UpstreamTimeout(UpstreamError):
    status = 504
    code = "upstream_timeout"


class UpstreamUnavailable(UpstreamError):
    status = 503
    code = "upstream_unavailable"


class UpstreamBadResponse(UpstreamError):
    status = 502
    code = "upstream_bad_response"


class UpstreamRejected(UpstreamError):
    """The upstream said the request itself is wrong (4xx other than 401/403/408/429): do not retry elsewhere."""

    status = 400
    type = "invalid_request_error"
    code = "upstream_rejected"
    retryable = False


class ContextLengthExceeded(UpstreamRejected):
    """The prompt (with max_tokens) does not fit the deployment's context; the message has the numbers when known."""

    code = "context_length_exceeded"


class AllCandidatesFailed(GatewayError):
    """Every allowed candidate failed; status follows what the failures had in common."""

    type = "server_error"

    def __init__(self, message: str, *, status: int, code: str, retry_after: float | None = None) -> None:
        super().__init__(message, code=code, retry_after=retry_after)
        self.status = status
        if status == 429:
            self.type = "rate_limit_error"


RETRYABLE: tuple[type[UpstreamError], ...] = (
    UpstreamRateLimited,
    UpstreamTimeout,
    UpstreamUnavailable,
    UpstreamBadResponse,
)
