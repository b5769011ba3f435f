"""CI ID tokens (OIDC JWTs, e.g. GitLab CI `id_tokens`) checked against their issuer's keys.

A token is accepted only if:

- its `iss` is one of the configured issuers (exactly, as RFC 7519 §4.1.1
  compares it) and its `aud` is that issuer's configured audience;
- it is signed with a public key from the issuer's JWKS (RFC 7517), found by
  `kid`, with that key's own algorithm: the header's `alg` never chooses the
  algorithm, so `none` and HMAC signed with the public key as secret
  ("algorithm confusion") are refused;
- `exp`, `iat` (and `nbf` if present) hold, with a small leeway for clock skew,
  and the token is not meant to live longer than `max_token_lifetime`
  (`exp - iat`): a leaked long-lived token would be a standing credential;
- its claims map to at least one project (`OidcIssuerSettings.projects`), its
  ref matches one of `refs` if they are configured, and every claim named in
  `required_claims` has one of the values allowed there (`ref_type = ["tag"]`,
  `ref_protected = ["true"]`: GitLab's `ref` is a bare name, so only `ref_type`
  tells a tag `v1` from a branch `v1`).

The identity it yields (`ci`) is limited to the mapped projects, for reading
as for uploading (`auth.permissions.may_read`); each token uploads one release
(`auth.ci_replay`).

The JWKS comes from `jwks_url`, or from the issuer's OpenID discovery document,
and is cached by `auth.jwks.KeySets` (refetched on an unknown `kid`, rate-limited).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from fnmatch import fnmatchcase
from typing import Any
from urllib.parse import urlsplit

import httpx
import jwt
from packaging.utils import canonicalize_name

from packyard.auth.identity import Identity
from packyard.auth.jwks import KeySets
from packyard.errors import AuthenticationFailed, UpstreamError
from packyard.settings import OidcIssuerSettings

REQUIRED_CLAIMS = ("exp", "iat", "iss", "aud")


class OidcVerifier:
    """Turns CI ID tokens of the configured issuers into `ci` identities."""

    def __init__(
        self,
        issuers: Sequence[OidcIssuerSettings],
        http_client: httpx.AsyncClient,
        *,
        jwks_ttl: float = 3600.0,
        min_refresh: float = 30.0,
        leeway: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._issuers = {issuer.issuer: issuer for issuer in issuers}
        self._key_sets = KeySets(http_client, ttl=jwks_ttl, min_refresh=min_refresh, clock=clock)
        self._leeway = leeway

    async def authenticate(self, token: str) -> Identity:
        """The `ci` identity of a valid ID token.

        Raises:
            AuthenticationFailed: the token is malformed, from an issuer not
                configured here, for another audience, expired or not yet
                valid, not signed by one of the issuer's keys with that key's
                algorithm, or its claims grant no project.
            UpstreamUnavailable: the issuer's keys could not be fetched.
            UpstreamError: the issuer answered with something that is not a JWKS.
        """
        settings = self._issuer_of(token)
        key = await self._signing_key(settings, token)
        claims = self._verified_claims(settings, key, token)
        _check_lifetime(settings, claims)
        return _identity(settings, claims)

    def _issuer_of(self, token: str) -> OidcIssuerSettings:
        try:
            unverified = jwt.decode(token, options={"verify_signature": False})
        except jwt.InvalidTokenError as exc:
            raise AuthenticationFailed(f"Malformed CI token: {exc}.") from exc
        issuer = unverified.get("iss")
        settings = self._issuers.get(issuer) if isinstance(issuer, str) else None
        if settings is None:
            raise AuthenticationFailed(f"The CI token's issuer {issuer!r} is not trusted here.")
        return settings

    async def _signing_key(self, settings: OidcIssuerSettings, token: str) -> jwt.PyJWK:
        async def keys_url() -> str:
            return settings.jwks_url or await self._discovered_keys_url(settings)

        return await self._key_sets.signing_key(settings.issuer, keys_url, token, "The CI token")

    def _verified_claims(
        self, settings: OidcIssuerSettings, key: jwt.PyJWK, token: str
    ) -> dict[str, Any]:
        try:
            return jwt.decode(
                token,
                key.key,
                algorithms=[key.algorithm_name],
                audience=settings.audience,
                issuer=settings.issuer,
                leeway=self._leeway,
                options={"require": list(REQUIRED_CLAIMS)},
            )
        except jwt.ExpiredSignatureError as exc:
            raise AuthenticationFailed("The CI token has expired.") from exc
        except jwt.ImmatureSignatureError as exc:
            raise AuthenticationFailed("The CI token is not valid yet.") from exc
        except jwt.InvalidAudienceError as exc:
            raise AuthenticationFailed(
                f"The CI token is not meant for this server: its audience must be "
                f"{settings.audience!r}."
            ) from exc
        except jwt.InvalidTokenError as exc:
            raise AuthenticationFailed(f"Invalid CI token: {exc}.") from exc

    async def _discovered_keys_url(self, settings: OidcIssuerSettings) -> str:
        discovery = settings.issuer.rstrip("/") + "/.well-known/openid-configuration"
        document = await self._key_sets.get_json(settings.issuer, discovery)
        # OpenID Connect Discovery §4.3: the document must name the same issuer.
        keys_url = document.get("jwks_uri")
        if document.get("issuer") != settings.issuer or not isinstance(keys_url, str):
            raise UpstreamError(settings.issuer, f"{discovery} names another issuer or no jwks_uri")
        return keys_url


def _check_lifetime(settings: OidcIssuerSettings, claims: dict[str, Any]) -> None:
    """Refuse a token meant to live longer than the issuer's `max_token_lifetime`.

    Raises:
        AuthenticationFailed: `exp - iat` (or `exp - now`) exceeds it.
    """
    exp, iat = claims["exp"], claims["iat"]  # required, and numbers (PyJWT checks both)
    lifetime = max(exp - iat, exp - time.time())
    if lifetime > settings.max_token_lifetime:
        raise AuthenticationFailed(
            f"The CI token is valid for {int(lifetime)} seconds; tokens of {settings.issuer} "
            f"may live at most {int(settings.max_token_lifetime)} seconds here "
            "(max_token_lifetime). Ask the CI for a shorter-lived ID token."
        )


def _claim_text(value: object) -> str | None:
    """A claim as the text rules compare: booleans as JSON writes them, numbers as
    decimals, strings as they are; None for anything else (lists, objects)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float | str):
        return str(value)
    return None


def _check_required_claims(settings: OidcIssuerSettings, claims: dict[str, Any]) -> None:
    """Raises AuthenticationFailed unless every `required_claims` claim has an allowed value."""
    for name, allowed in settings.required_claims.items():
        value = _claim_text(claims.get(name))
        if value is None or not any(fnmatchcase(value, glob) for glob in allowed):
            raise AuthenticationFailed(
                f"The CI token's {name} {claims.get(name)!r} may not publish: "
                f"{settings.issuer} requires {name} to be {' or '.join(allowed)}."
            )


def _identity(settings: OidcIssuerSettings, claims: dict[str, Any]) -> Identity:
    """Map verified claims to a `ci` identity and the projects it may publish.

    Raises:
        AuthenticationFailed: no project claim, a ref or another required claim
            not allowed, or no project granted.
    """
    subject = claims.get(settings.project_claim)
    if not isinstance(subject, str) or not subject:
        raise AuthenticationFailed(f"The CI token has no {settings.project_claim!r} claim.")
    if settings.refs:
        ref = claims.get(settings.ref_claim)
        if not isinstance(ref, str) or not any(fnmatchcase(ref, glob) for glob in settings.refs):
            raise AuthenticationFailed(
                f"The CI token's {settings.ref_claim} {ref!r} may not publish: "
                f"allowed are {', '.join(settings.refs)}."
            )
    _check_required_claims(settings, claims)
    # fnmatch's `*` also matches `/`: `group/*` covers nested subgroups too.
    projects = frozenset(
        canonicalize_name(name)
        for pattern, names in settings.projects.items()
        if fnmatchcase(subject, pattern)
        for name in names
    )
    if not projects:
        raise AuthenticationFailed(
            f"The CI project {subject!r} of {settings.issuer} may not publish any project here."
        )
    host = urlsplit(settings.issuer).netloc.rpartition("@")[2]
    return Identity(kind="ci", name=f"{host}/{subject}", projects=projects, claims=claims)
