"""Provider kind -> adapter, built once per process for the kinds the policy uses."""

from __future__ import annotations

import logging

from gateway.policy.policy_set import PolicySet
from gateway.providers.base import Provider
from gateway.providers.openai_compat import OpenAICompatibleProvider

log = logging.getLogger("gateway.providers")
OPENAI_COMPATIBLE = "openai_compatible"


class Providers:
    def __init__(self, policy: PolicySet) -> None:
        self._by_kind: dict[str, Provider] = {OPENAI_COMPATIBLE: OpenAICompatibleProvider()}
        needed = {d.spec.provider for d in policy.deployments.values() if d.unavailable is None}
        if needed - {OPENAI_COMPATIBLE}:
            from gateway.providers.litellm_provider import LiteLLMProvider  # import only when needed

            log.info("loading litellm for providers %s", sorted(needed - {OPENAI_COMPATIBLE}))
            translated = LiteLLMProvider()
            for kind in needed - {OPENAI_COMPATIBLE}:
                self._by_kind[kind] = translated

    def __call__(self, kind: str) -> Provider:
        return self._by_kind[kind]

    async def aclose(self) -> None:
        for provider in set(self._by_kind.values()):
            await provider.aclose()
