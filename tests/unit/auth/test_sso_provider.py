"""The relying party's checks of a provider's answer (`auth/sso/provider.py`):
each hostile or broken answer is a clear refusal, never a person signed in."""

from __future__ import annotations

import base64
import hashlib
import time
from collections.abc import Iterator
from urllib.parse import parse_qs, urlsplit

import httpx
import jwt
import pytest

from packyard.auth.jwks import KeySets
from packyard.auth.sso.attempt import SignInAttempt
from packyard.auth.sso.provider import SsoProvider
from packyard.errors import AuthenticationFailed, UpstreamError, UpstreamUnavailable
from packyard.settings import SsoProviderSettings
from tests.unit.auth.jwks_server import SigningKey
from tests.unit.auth.sso_server import CLIENT_ID, CLIENT_SECRET, ScriptedProvider

pytestmark = pytest.mark.anyio
CALLBACK = "http://127.0.0.1:9/admin/sso/lab/callback"


@pytest.fixture
def scripted(rsa_key: SigningKey) -> Iterator[ScriptedProvider]:
    with ScriptedProvider() as provider:
        provider.publish(rsa_key)
        yield provider


def provider_of(scripted: ScriptedProvider, client: httpx.AsyncClient) -> SsoProvider:
    settings = SsoProviderSettings(
        name="lab", issuer=scripted.issuer, client_id=CLIENT_ID, client_secret=CLIENT_SECRET
    )
    return SsoProvider(settings, client, KeySets(client))


async def test_the_authorization_url_carries_state_nonce_and_an_s256_challenge(
    scripted: ScriptedProvider, http_client: httpx.AsyncClient
) -> None:
    attempt = SignInAttempt.start("lab", "/admin/")
    url = await provider_of(scripted, http_client).authorization_url(attempt, CALLBACK)

    parts = urlsplit(url)
    query = {key: values[0] for key, values in parse_qs(parts.query).items()}
    assert url.startswith(scripted.issuer + "/auth?")
    assert query["state"] == attempt.state
    assert query["nonce"] == attempt.nonce
    assert query["redirect_uri"] == CALLBACK
    assert query["response_type"] == "code"
    assert query["code_challenge_method"] == "S256"
    digest = hashlib.sha256(attempt.verifier.encode()).digest()
    assert query["code_challenge"] == base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
    assert query["scope"] == "openid profile email"


async def test_a_good_answer_gives_the_claims_and_the_code_is_exchanged_with_the_verifier(
    scripted: ScriptedProvider, http_client: httpx.AsyncClient, rsa_key: SigningKey
) -> None:
    attempt = SignInAttempt.start("lab", "/admin/")
    scripted.id_token = rsa_key.sign(scripted.claims(nonce=attempt.nonce))
    scripted.userinfo = {"sub": "f3b1c2d4-alice", "manager": "bob"}

    claims = await provider_of(scripted, http_client).claims("code-1", attempt, CALLBACK)

    assert claims["preferred_username"] == "alice"
    assert claims["manager"] == "bob"
    request = scripted.token_requests[0]
    assert request["code_verifier"] == [attempt.verifier]
    assert request["code"] == ["code-1"]
    secret = base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
    assert request["authorization"] == [f"Basic {secret}"]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"exp": int(time.time()) - 3600, "iat": int(time.time()) - 7200}, "has expired"),
        ({"aud": "another-client"}, "not meant for this server"),
        ({"iss": "http://127.0.0.1:1/evil"}, "is not from lab"),
        ({"sub": None}, "invalid"),
        ({"aud": [CLIENT_ID, "another"], "azp": "another"}, "issued to 'another'"),
    ],
)
async def test_a_token_with_wrong_claims_is_refused(
    scripted: ScriptedProvider,
    http_client: httpx.AsyncClient,
    rsa_key: SigningKey,
    change: dict[str, object],
    message: str,
) -> None:
    attempt = SignInAttempt.start("lab", "/admin/")
    scripted.id_token = rsa_key.sign(scripted.claims(nonce=attempt.nonce, **change))

    with pytest.raises(AuthenticationFailed, match=message):
        await provider_of(scripted, http_client).claims("code-1", attempt, CALLBACK)


async def test_a_token_of_another_sign_in_is_refused_as_a_replay(
    scripted: ScriptedProvider, http_client: httpx.AsyncClient, rsa_key: SigningKey
) -> None:
    earlier = SignInAttempt.start("lab", "/admin/")
    scripted.id_token = rsa_key.sign(scripted.claims(nonce=earlier.nonce))
    provider = provider_of(scripted, http_client)
    await provider.claims("code-1", earlier, CALLBACK)

    now = SignInAttempt.start("lab", "/admin/")
    with pytest.raises(AuthenticationFailed, match="belongs to another sign-in"):
        await provider.claims("code-2", now, CALLBACK)
    scripted.id_token = rsa_key.sign(scripted.claims())  # no nonce at all
    with pytest.raises(AuthenticationFailed, match="belongs to another sign-in"):
        await provider.claims("code-3", now, CALLBACK)


async def test_a_forged_token_is_refused(
    scripted: ScriptedProvider, http_client: httpx.AsyncClient, rsa_key: SigningKey
) -> None:
    attempt = SignInAttempt.start("lab", "/admin/")
    claims = scripted.claims(nonce=attempt.nonce)
    provider = provider_of(scripted, http_client)
    # Signed by a key the provider does not publish, under the provider's kid.
    forger = SigningKey.rsa(rsa_key.kid)
    scripted.id_token = forger.sign(claims)
    with pytest.raises(AuthenticationFailed, match="invalid"):
        await provider.claims("code-1", attempt, CALLBACK)
    # No signature, and HMAC keyed with something public.
    scripted.id_token = jwt.encode(claims, "", algorithm="none")
    with pytest.raises(AuthenticationFailed, match="only public-key signatures"):
        await provider.claims("code-1", attempt, CALLBACK)
    scripted.id_token = jwt.encode(claims, "x" * 32, algorithm="HS256")
    with pytest.raises(AuthenticationFailed, match="only public-key signatures"):
        await provider.claims("code-1", attempt, CALLBACK)


async def test_userinfo_of_another_person_is_refused(
    scripted: ScriptedProvider, http_client: httpx.AsyncClient, rsa_key: SigningKey
) -> None:
    attempt = SignInAttempt.start("lab", "/admin/")
    scripted.id_token = rsa_key.sign(scripted.claims(nonce=attempt.nonce))
    scripted.userinfo = {"sub": "someone-else", "preferred_username": "admin"}

    with pytest.raises(AuthenticationFailed, match="another person"):
        await provider_of(scripted, http_client).claims("code-1", attempt, CALLBACK)


async def test_a_code_the_provider_refuses_says_so(
    scripted: ScriptedProvider, http_client: httpx.AsyncClient
) -> None:
    scripted.token_status = 400
    scripted.token_error = {"error": "invalid_grant", "error_description": "code already used"}
    attempt = SignInAttempt.start("lab", "/admin/")

    with pytest.raises(AuthenticationFailed, match="invalid_grant: code already used"):
        await provider_of(scripted, http_client).claims("code-1", attempt, CALLBACK)


async def test_a_provider_that_is_down_or_wrong_is_unavailable(
    scripted: ScriptedProvider, http_client: httpx.AsyncClient
) -> None:
    attempt = SignInAttempt.start("lab", "/admin/")
    down = SsoProviderSettings(
        name="lab", issuer="http://127.0.0.1:9/realm", client_id="c", client_secret="s"
    )
    with pytest.raises(UpstreamUnavailable, match="cannot fetch"):
        await SsoProvider(down, http_client, KeySets(http_client)).authorization_url(
            attempt, CALLBACK
        )
    scripted.discovery_issuer = "http://127.0.0.1:1/other"
    with pytest.raises(UpstreamError, match="names the issuer"):
        await provider_of(scripted, http_client).authorization_url(attempt, CALLBACK)
    scripted.discovery_issuer = None
    scripted.token_status = 502
    scripted.token_error = {"oops": True}
    with pytest.raises(UpstreamUnavailable, match="answered 502"):
        await provider_of(scripted, http_client).claims("code-1", attempt, CALLBACK)


def test_an_attempt_survives_its_cookie_and_expires() -> None:
    attempt = SignInAttempt.start("lab", "/admin/project/x/")
    assert SignInAttempt.from_payload(attempt.to_payload()) == attempt
    expired = {**attempt.to_payload(), "e": int(time.time()) - 1}
    assert SignInAttempt.from_payload(expired) is None
    assert SignInAttempt.from_payload({**attempt.to_payload(), "s": ""}) is None
