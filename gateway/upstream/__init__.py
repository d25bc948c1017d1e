"""Calling deployments: the provider adapters and their HTTP/1.1 client, the caller (retries and
fallback), the per-deployment gate (breaker, caps) and the bodies sent and returned (shape).

May import state, policy and the shared vocabulary; never routing, observe or http. litellm lives only
in providers/litellm_provider."""
