"""Provider kind -> adapter, built once per process for the kinds the policy uses."""

from __future__ import annotations

import logging
from collections.abc import Mapping

from gateway.policy.policy_set import PolicySet
from gateway.upstream.providers.anthropic_passthrough import AnthropicPassthrough
from gateway.upstream.providers.base import Provider
from gateway.upstream.providers.openai_compat import OnLimit, OpenAICompatibleProvider
from gateway.upstream.providers.responses_passthrough import ResponsesPassthrough

log = logging.getLogger("gateway.providers")
OPENAI_COMPATIBLE = "openai_compatible"


class Providers:
    def __init__(
        self, policy: PolicySet, env: Mapping[str, str] | None = None, on_limit: OnLimit | None = None
    ) -> None:
        """``env``: where HTTPS_PROXY, HTTP_PROXY and NO_PROXY are read; ``on_limit``: see the adapter."""
        self.openai_compatible = OpenAICompatibleProvider(env=env, on_limit=on_limit)
        self._by_kind: dict[str, Provider] = {OPENAI_COMPATIBLE: self.openai_compatible}
        self._translated: Provider | None = None
        self.passthrough = AnthropicPassthrough()  # Anthropic Messages clients to Anthropic deployments
        self.responses = ResponsesPassthrough()  # Responses API clients to deployments with api: responses
        self.ensure(policy)

    def ensure(self, policy: PolicySet) -> None:
        """Make sure every provider kind the policy can call has an adapter (litellm only when needed),
        and tell the OpenAI-compatible one how each deployment is reached (proxy, TLS)."""
        self.openai_compatible.configure(policy)
        needed = {d.spec.provider for d in policy.deployments.values() if d.unavailable is None}
        missing = needed - set(self._by_kind)
        if not missing:
            return
        if self._translated is None:
            from gateway.upstream.providers.litellm_provider import LiteLLMProvider  # import only when needed

            log.info("loading litellm for providers %s", sorted(missing))
            self._translated = LiteLLMProvider()
        for kind in missing:
            self._by_kind[kind] = self._translated

    def __call__(self, kind: str) -> Provider:
        return self._by_kind[kind]

    async def aclose(self) -> None:
        for provider in set(self._by_kind.values()):
            await provider.aclose()
        await self.passthrough.aclose()
        await self.responses.aclose()
