"""API key -> tenant. Keys are stored only as sha256 hashes in the policy."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping

from gateway.errors import AuthenticationFailed
from gateway.policy.policy_set import PolicySet

# Longest key worth hashing: OpenAI's are about 160 characters. A longer one matches nothing
# anyone was issued, so it is refused as it is, without hashing it or keeping it.
MAX_KEY_LENGTH = 512
KNOWN_KEYS_MAX = 4096


class _KnownKeys:
    """The hashes of keys that matched a tenant or an admin key, so that the same few keys need no
    digest on every request (OpenSSL's sha256 is ~2% of a request's CPU when the process wakes cold).

    Only keys that matched are kept: a client sending a new random key with every request would
    otherwise fill the memo with its junk (issue #18: 1 MB keys took RSS past a gigabyte). At most
    ``KNOWN_KEYS_MAX`` are kept; when full the memo starts again, which costs a digest per key once.
    A revoked key stays harmless here: the memo maps key to hash, and the hash is looked up in the
    live policy each time.
    """

    __slots__ = ("_digests",)

    def __init__(self) -> None:
        self._digests: dict[str, str] = {}

    def digest(self, key: str) -> str:
        known = self._digests.get(key)
        return known if known is not None else hash_key(key)

    def remember(self, key: str, digest: str) -> None:
        if len(self._digests) >= KNOWN_KEYS_MAX:
            self._digests.clear()
        self._digests[key] = digest

    def __len__(self) -> int:
        return len(self._digests)


KNOWN_KEYS = _KnownKeys()


def hash_key(key: str) -> str:
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
    if len(key) > MAX_KEY_LENGTH:
        raise AuthenticationFailed("Incorrect API key provided.")
    digest = KNOWN_KEYS.digest(key)
    tenant = policy.tenant_by_key_hash.get(digest)
    if tenant is None:
        raise AuthenticationFailed("Incorrect API key provided.")
    KNOWN_KEYS.remember(key, digest)
    return tenant, digest


def is_admin(policy: PolicySet, headers: Mapping[str, str]) -> bool:
    return holds_key(headers, policy.admin_key_hashes)


def holds_key(headers: Mapping[str, str], hashes: frozenset[str]) -> bool:
    """Whether the request presents a key whose hash is one of ``hashes`` (admin keys, metrics keys)."""
    key = presented_key(headers)
    if key is None or len(key) > MAX_KEY_LENGTH:
        return False
    digest = KNOWN_KEYS.digest(key)
    if digest not in hashes:
        return False
    KNOWN_KEYS.remember(key, digest)
    return True
