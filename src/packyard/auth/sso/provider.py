"""An OpenID Connect provider, as a relying party uses it (OpenID Connect Core §3.1).

    provider = SsoProvider(settings, http_client, key_sets)
    url = await provider.authorization_url(attempt, redirect_uri)   # send the browser there
    claims = await provider.claims(code, attempt, redirect_uri)     # when it comes back

The discovery document is read on first use, not at start: a provider that
is down when packyard starts does not stop it. It is read again at the start
of every sign-in (so a provider that is down gets a page saying so), and kept
for the answers. An ID token is accepted only if it is signed by one of the
provider's keys with that key's algorithm (`auth/jwks.py`), names this
provider as `iss` and this client in `aud` (and as `azp` when there are
several audiences), is within `exp`/`iat` (a minute of leeway), and carries
the attempt's nonce. The userinfo endpoint's claims are added when the
provider has one (and `userinfo` is not turned off), after checking that they
are of the same `sub` (Core §5.3.2).
"""

from __future__ import annotations

import base64
import hmac
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote_plus, urlencode

import httpx
import jwt

from packyard.auth.jwks import KeySets
from packyard.auth.sso.attempt import SignInAttempt
from packyard.errors import AuthenticationFailed, UpstreamError, UpstreamUnavailable
from packyard.settings import SsoProviderSettings

DISCOVERY_SECONDS = 3600.0
LEEWAY_SECONDS = 60
REQUIRED_CLAIMS = ("iss", "aud", "exp", "iat", "sub")
Claims = dict[str, Any]


@dataclass(frozen=True, slots=True)
class _Endpoints:
    authorization: str
    token: str
    jwks: str
    userinfo: str | None
    # Client authentication at the token endpoint (Core §9): Basic unless the
    # provider accepts only the secret in the form.
    secret_in_form: bool
    fetched_at: float


class SsoProvider:
    """One `[[auth.sso]]` provider; see the module's docstring."""

    def __init__(
        self,
        settings: SsoProviderSettings,
        http_client: httpx.AsyncClient,
        key_sets: KeySets,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self._http = http_client
        self._key_sets = key_sets
        self._clock = clock
        self._endpoints: _Endpoints | None = None

    @property
    def name(self) -> str:
        return self.settings.name

    async def authorization_url(self, attempt: SignInAttempt, redirect_uri: str) -> str:
        """Where to send the browser: the provider's sign-in for this attempt.

        Raises:
            UpstreamUnavailable, UpstreamError: the provider's discovery document
                cannot be read or is not usable.
        """
        # Read again at every start, not from the cache: the browser is sent there
        # next, and a provider that is down must get our page saying so, not the
        # browser's "cannot be reached" (sign-ins are rare: one request each).
        endpoints = await self._discovered(fresh=True)
        query = urlencode(
            {
                "response_type": "code",
                "client_id": self.settings.client_id,
                "redirect_uri": redirect_uri,
                "scope": " ".join(self.settings.scopes),
                "state": attempt.state,
                "nonce": attempt.nonce,
                "code_challenge": attempt.challenge,
                "code_challenge_method": "S256",
            }
        )
        separator = "&" if "?" in endpoints.authorization else "?"
        return endpoints.authorization + separator + query

    async def claims(self, code: str, attempt: SignInAttempt, redirect_uri: str) -> Claims:
        """The verified claims of the person the provider signed in: the ID token's,
        with the userinfo endpoint's added.

        Raises:
            AuthenticationFailed: the provider refused the code, or the ID token
                is forged, expired, for another client, or of another attempt.
            UpstreamUnavailable, UpstreamError: the provider cannot be reached or
                answered with something unusable.
        """
        endpoints = await self._discovered()
        tokens = await self._exchange(endpoints, code, attempt, redirect_uri)
        id_token = tokens.get("id_token")
        if not isinstance(id_token, str):
            raise UpstreamError(self._label, "the token endpoint returned no id_token")
        claims = await self._verified(endpoints, id_token, attempt)
        access_token = tokens.get("access_token")
        if (
            self.settings.userinfo
            and endpoints.userinfo is not None
            and isinstance(access_token, str)
        ):
            claims = {**await self._userinfo(endpoints.userinfo, access_token, claims), **claims}
        return claims

    @property
    def _label(self) -> str:
        return f"{self.name} ({self.settings.issuer})"

    async def _discovered(self, *, fresh: bool = False) -> _Endpoints:
        cached = self._endpoints
        if (
            not fresh
            and cached is not None
            and self._clock() - cached.fetched_at < DISCOVERY_SECONDS
        ):
            return cached
        issuer = self.settings.issuer
        url = issuer.rstrip("/") + "/.well-known/openid-configuration"
        document = await self._key_sets.get_json(self._label, url)
        # Discovery §4.3: the document must name exactly the configured issuer.
        if document.get("issuer") != issuer:
            raise UpstreamError(
                self._label, f"{url} names the issuer {document.get('issuer')!r}, not {issuer!r}"
            )
        required = ("authorization_endpoint", "token_endpoint", "jwks_uri")
        missing = [key for key in required if not isinstance(document.get(key), str)]
        if missing:
            raise UpstreamError(self._label, f"{url} has no {', '.join(missing)}")
        methods = document.get("token_endpoint_auth_methods_supported")
        userinfo = document.get("userinfo_endpoint")
        self._endpoints = _Endpoints(
            authorization=document["authorization_endpoint"],
            token=document["token_endpoint"],
            jwks=document["jwks_uri"],
            userinfo=userinfo if isinstance(userinfo, str) else None,
            secret_in_form=isinstance(methods, list)
            and "client_secret_basic" not in methods
            and "client_secret_post" in methods,
            fetched_at=self._clock(),
        )
        return self._endpoints

    async def _exchange(
        self, endpoints: _Endpoints, code: str, attempt: SignInAttempt, redirect_uri: str
    ) -> dict[str, Any]:
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": redirect_uri,
            "code_verifier": attempt.verifier,
        }
        secret = self.settings.secret()
        headers = {}
        if endpoints.secret_in_form:
            form |= {"client_id": self.settings.client_id, "client_secret": secret}
        else:
            # RFC 6749 §2.3.1: both form-encoded before Basic encoding.
            pair = f"{quote_plus(self.settings.client_id)}:{quote_plus(secret)}"
            headers["Authorization"] = "Basic " + base64.b64encode(pair.encode()).decode()
        try:
            response = await self._http.post(
                endpoints.token, data=form, headers=headers, timeout=self.settings.timeout_seconds
            )
        except httpx.HTTPError as exc:
            raise UpstreamUnavailable(self._label, f"its token endpoint: {exc!r}") from exc
        body = _json_object(response)
        if response.status_code in (400, 401) and body is not None and "error" in body:
            # RFC 6749 §5.2: e.g. invalid_grant for a code used twice or expired.
            detail = body.get("error_description") or ""
            raise AuthenticationFailed(
                f"{self.name} refused to complete the sign-in ({body.get('error')}"
                f"{': ' + str(detail) if detail else ''}). Start again."
            )
        if response.status_code != 200 or body is None:
            raise UpstreamUnavailable(
                self._label, f"its token endpoint answered {response.status_code}"
            )
        return body

    async def _verified(
        self, endpoints: _Endpoints, id_token: str, attempt: SignInAttempt
    ) -> Claims:
        async def keys_url() -> str:
            return endpoints.jwks

        issuer, client = self.settings.issuer, self.settings.client_id
        key = await self._key_sets.signing_key(issuer, keys_url, id_token, "The ID token")
        try:
            claims: Claims = jwt.decode(
                id_token,
                key.key,
                algorithms=[key.algorithm_name],
                audience=client,
                issuer=issuer,
                leeway=LEEWAY_SECONDS,
                options={"require": list(REQUIRED_CLAIMS)},
            )
        except jwt.ExpiredSignatureError as exc:
            raise AuthenticationFailed(f"The ID token from {self.name} has expired.") from exc
        except jwt.InvalidAudienceError as exc:
            raise AuthenticationFailed(
                f"The ID token from {self.name} is not meant for this server "
                f"(its audience is not {client!r})."
            ) from exc
        except jwt.InvalidIssuerError as exc:
            raise AuthenticationFailed(
                f"The ID token is not from {self.name}: its issuer is not {issuer!r}."
            ) from exc
        except jwt.InvalidTokenError as exc:
            raise AuthenticationFailed(f"The ID token from {self.name} is invalid: {exc}.") from exc
        audiences = claims["aud"] if isinstance(claims["aud"], list) else [claims["aud"]]
        if len(audiences) > 1 and claims.get("azp") != client:
            raise AuthenticationFailed(
                f"The ID token from {self.name} was issued to {claims.get('azp')!r}, not to "
                "this server."
            )
        nonce = claims.get("nonce")
        if not isinstance(nonce, str) or not hmac.compare_digest(nonce, attempt.nonce):
            raise AuthenticationFailed(
                f"The ID token from {self.name} belongs to another sign-in (its nonce does "
                "not match): start again."
            )
        return claims

    async def _userinfo(self, url: str, access_token: str, claims: Claims) -> Claims:
        try:
            response = await self._http.get(
                url,
                headers={"Authorization": f"Bearer {access_token}"},
                timeout=self.settings.timeout_seconds,
            )
        except httpx.HTTPError as exc:
            raise UpstreamUnavailable(self._label, f"its userinfo endpoint: {exc!r}") from exc
        body = _json_object(response)
        if response.status_code != 200 or body is None:
            raise UpstreamUnavailable(
                self._label, f"its userinfo endpoint answered {response.status_code}"
            )
        if body.get("sub") != claims["sub"]:
            raise AuthenticationFailed(
                f"{self.name}'s userinfo is of another person than its ID token: refused."
            )
        return body


def _json_object(response: httpx.Response) -> dict[str, Any] | None:
    try:
        body = response.json()
    except ValueError:
        return None
    return body if isinstance(body, dict) else None
