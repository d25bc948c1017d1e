"""API key -> tenant. Keys are stored only as sha256 hashes in the policy."""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Mapping

from gateway.errors import AuthenticationFailed
from gateway.policy.policy_set import PolicySet


@functools.lru_cache(maxsize=1024)
def hash_key(key: str) -> str:
    """The key's sha256, remembered for the last 1,024 keys presented: the same few keys arrive on
    every request, and OpenSSL's digest is ~2% of a request's CPU when the process wakes cold. (The
    keys are in this process's memory anyway, while their requests run.)"""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def presented_key(headers: Mapping[str, str]) -> str | None:
    authorization = headers.get("authorization")
    if authorization:
        scheme, _, value = authorization.partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
        return None
    return headers.get("x-api-key") or headers.get("api-key") or None


def authenticate(policy: PolicySet, headers: Mapping[str, str]) -> tuple[str, str]:
    """The tenant and the hash of the key it presented."""
    key = presented_key(headers)
    if key is None:
        raise AuthenticationFailed("Missing API key. Send it as 'Authorization: Bearer <key>'.", code="missing_api_key")
    digest = hash_key(key)
    tenant = policy.tenant_by_key_hash.get(digest)
    if tenant is None:
        raise AuthenticationFailed("Incorrect API key provided.")
    return tenant, digest


def is_admin(policy: PolicySet, headers: Mapping[str, str]) -> bool:
    key = presented_key(headers)
    return key is not None and hash_key(key) in policy.admin_key_hashes
