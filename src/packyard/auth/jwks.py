"""The public keys of token issuers (RFC 7517 JWKS), fetched and cached.

Shared by the CI ID tokens (`auth/oidc.py`) and people's sign-in ID tokens
(`auth/sso/provider.py`). A key set is cached for `ttl` seconds and fetched
again at once when a token names an unknown `kid` (key rotation), at most
every `min_refresh` seconds, so that tokens with made-up `kid`s cannot make
us hammer the issuer. The header's `alg` never chooses the algorithm: each
key is used with its own, and only public-key algorithms are accepted, so
`none` and HMAC signed with the public key as secret are refused.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import anyio
import httpx
import jwt

from packyard.errors import AuthenticationFailed, UpstreamError, UpstreamUnavailable

# Public-key algorithms only (RFC 7518 §3.1 without `none` and HS*).
PUBLIC_KEY_ALGORITHMS = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}
)

KeysUrl = Callable[[], Awaitable[str]]
"""Where an issuer's JWKS is: a fixed URL, or read from its discovery document."""


@dataclass(frozen=True, slots=True)
class _KeySet:
    fetched_at: float
    keys: Mapping[str | None, jwt.PyJWK]


class KeySets:
    """The key sets of several issuers, each fetched on first use and cached."""

    def __init__(
        self,
        http_client: httpx.AsyncClient,
        *,
        ttl: float = 3600.0,
        min_refresh: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._http = http_client
        self._ttl = ttl
        self._min_refresh = min_refresh
        self._clock = clock
        self._key_sets: dict[str, _KeySet] = {}
        self._locks: dict[str, anyio.Lock] = {}

    async def signing_key(self, issuer: str, keys_url: KeysUrl, token: str, what: str) -> jwt.PyJWK:
        """The key of `issuer` that the token's header names.

        `what` names the token in messages ("The CI token", "The ID token").

        Raises:
            AuthenticationFailed: a malformed header, an algorithm that is not a
                public-key one, or a `kid` the issuer does not have.
            UpstreamUnavailable, UpstreamError: the keys could not be fetched.
        """
        try:
            header = jwt.get_unverified_header(token)
        except jwt.InvalidTokenError as exc:
            raise AuthenticationFailed(f"{what} is malformed: {exc}.") from exc
        algorithm, kid = header.get("alg"), header.get("kid")
        if algorithm not in PUBLIC_KEY_ALGORITHMS:
            raise AuthenticationFailed(
                f"{what} is signed with {algorithm!r}; only public-key signatures "
                "(RS256, ES256 and their kin) are accepted."
            )
        keys = await self._keys(issuer, keys_url, refresh=False)
        if kid not in keys:
            keys = await self._keys(issuer, keys_url, refresh=True)
        if kid is None and len(keys) == 1:
            # An issuer with a single key may leave `kid` out (RFC 7515 §4.1.4).
            return next(iter(keys.values()))
        if kid not in keys:
            raise AuthenticationFailed(
                f"{what} is signed with key {kid!r}, which is not among the keys of {issuer}."
            )
        return keys[kid]

    async def get_json(self, issuer: str, url: str) -> dict[str, Any]:
        """A JSON object from the issuer (its discovery document, its keys).

        Raises:
            UpstreamUnavailable: no answer, or not a 200.
            UpstreamError: the answer is not a JSON object.
        """
        try:
            response = await self._http.get(url)
        except httpx.HTTPError as exc:
            raise UpstreamUnavailable(issuer, f"cannot fetch {url}: {exc!r}") from exc
        if response.status_code != 200:
            raise UpstreamUnavailable(issuer, f"{url} answered {response.status_code}")
        try:
            document = response.json()
        except ValueError as exc:
            raise UpstreamError(issuer, f"{url} is not JSON") from exc
        if not isinstance(document, dict):
            raise UpstreamError(issuer, f"{url} is not a JSON object")
        return document

    async def _keys(
        self, issuer: str, keys_url: KeysUrl, *, refresh: bool
    ) -> Mapping[str | None, jwt.PyJWK]:
        cached = self._key_sets.get(issuer)
        if cached is not None and self._fresh(cached, refresh):
            return cached.keys
        lock = self._locks.setdefault(issuer, anyio.Lock())
        async with lock:
            # Another task may have fetched the keys while this one waited.
            latest = self._key_sets.get(issuer)
            if latest is not None and latest is not cached and self._fresh(latest, False):
                return latest.keys
            keys = public_keys(await self.get_json(issuer, await keys_url()))
            self._key_sets[issuer] = _KeySet(self._clock(), keys)
            return keys

    def _fresh(self, key_set: _KeySet, refresh: bool) -> bool:
        age = self._clock() - key_set.fetched_at
        return age < (self._min_refresh if refresh else self._ttl)


def public_keys(jwks: Mapping[str, Any]) -> dict[str | None, jwt.PyJWK]:
    """The signing keys of a JWKS by `kid`; symmetric and unusable keys are left out."""
    keys: dict[str | None, jwt.PyJWK] = {}
    entries = jwks.get("keys")
    for entry in entries if isinstance(entries, list) else []:
        if not isinstance(entry, dict) or entry.get("use", "sig") != "sig":
            continue
        try:
            key = jwt.PyJWK(entry)
        except (jwt.PyJWKError, jwt.InvalidKeyError):
            continue
        if key.algorithm_name in PUBLIC_KEY_ALGORITHMS:
            keys[entry.get("kid")] = key
    return keys
