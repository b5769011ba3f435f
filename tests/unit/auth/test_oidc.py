"""CI ID tokens against a real JWKS endpoint: what is accepted, what is refused and why."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import serialization

from packyard.auth.oidc import OidcVerifier
from packyard.errors import AuthenticationFailed, UpstreamUnavailable
from packyard.settings import OidcIssuerSettings
from tests.e2e.servers import free_port
from tests.unit.auth.jwks_server import JwksServer, SigningKey

pytestmark = pytest.mark.anyio


def settings_for(issuer: JwksServer, **overrides: Any) -> OidcIssuerSettings:
    values: dict[str, Any] = {
        "issuer": issuer.issuer,
        "audience": "packyard",
        "projects": {"acme/*": ("Acme_Tools", "acme-cli"), "other/*": ("other-lib",)},
    }
    values.update(overrides)
    return OidcIssuerSettings(**values)


def verifier(
    issuer: JwksServer,
    client: httpx.AsyncClient,
    *,
    min_refresh: float = 30.0,
    clock: Callable[[], float] = time.monotonic,
    **overrides: Any,
) -> OidcVerifier:
    settings = settings_for(issuer, **overrides)
    return OidcVerifier([settings], client, min_refresh=min_refresh, clock=clock)


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def forged(header: dict[str, Any], claims: dict[str, Any], secret: bytes | None) -> str:
    """A JWT built by hand: HS256 over `secret`, or no signature at all (`secret` None)."""
    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims).encode())}"
    signature = (
        b"" if secret is None else hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    )
    return f"{signing_input}.{b64(signature)}"


async def test_a_valid_rs256_token_gives_a_ci_identity_with_its_projects(
    issuer: JwksServer, rsa_key: SigningKey, http_client: httpx.AsyncClient
) -> None:
    identity = await verifier(issuer, http_client).authenticate(rsa_key.sign(issuer.claims()))

    assert identity.kind == "ci"
    assert identity.name == issuer.issuer.removeprefix("http://") + "/acme/tools"
    assert identity.projects == frozenset({"acme-tools", "acme-cli"})
    assert identity.user_id is None
    assert not identity.is_admin
    assert identity.claims["ref"] == "main"
    assert identity.actor == f"ci:{identity.name}"


async def test_an_es256_key_without_alg_in_the_jwks_verifies_through_jwks_url(
    issuer: JwksServer, ec_key: SigningKey, http_client: httpx.AsyncClient
) -> None:
    oidc = verifier(issuer, http_client, jwks_url=issuer.jwks_url)

    identity = await oidc.authenticate(ec_key.sign(issuer.claims(project_path="other/lib")))

    assert identity.projects == frozenset({"other-lib"})
    assert issuer.requests == ["/jwks"]  # no discovery when jwks_url is configured


async def test_the_jwks_is_fetched_once_and_cached(
    issuer: JwksServer, rsa_key: SigningKey, ec_key: SigningKey, http_client: httpx.AsyncClient
) -> None:
    oidc = verifier(issuer, http_client)

    await oidc.authenticate(rsa_key.sign(issuer.claims()))
    await oidc.authenticate(ec_key.sign(issuer.claims()))

    assert issuer.requests == ["/.well-known/openid-configuration", "/jwks"]


@pytest.mark.parametrize(
    ("claims", "message"),
    [
        ({"aud": "someone-else"}, "audience must be 'packyard'"),
        ({"exp": int(time.time()) - 3600, "iat": int(time.time()) - 7200}, "has expired"),
        ({"nbf": int(time.time()) + 3600}, "not valid yet"),
        ({"iat": int(time.time()) + 3600}, "not valid yet"),
        ({"exp": None}, "exp"),
        ({"project_path": None}, "no 'project_path' claim"),
        ({"project_path": "stranger/repo"}, "may not publish any project"),
    ],
)
async def test_tokens_with_bad_claims_are_refused(
    issuer: JwksServer,
    rsa_key: SigningKey,
    http_client: httpx.AsyncClient,
    claims: dict[str, Any],
    message: str,
) -> None:
    token = rsa_key.sign(issuer.claims(**claims))

    with pytest.raises(AuthenticationFailed, match=message):
        await verifier(issuer, http_client).authenticate(token)


async def test_a_token_of_an_issuer_not_configured_is_refused_without_fetching(
    issuer: JwksServer, rsa_key: SigningKey, http_client: httpx.AsyncClient
) -> None:
    token = rsa_key.sign(issuer.claims(iss="https://gitlab.evil.example"))

    with pytest.raises(AuthenticationFailed, match=r"issuer 'https://gitlab\.evil\.example'"):
        await verifier(issuer, http_client).authenticate(token)
    assert issuer.requests == []


async def test_a_token_signed_by_a_key_not_in_the_jwks_is_refused_after_one_refresh(
    issuer: JwksServer, rsa_key: SigningKey, http_client: httpx.AsyncClient
) -> None:
    now = [1000.0]
    oidc = verifier(issuer, http_client, clock=lambda: now[0])
    await oidc.authenticate(rsa_key.sign(issuer.claims()))
    stranger = SigningKey.ec("ghost")
    now[0] += 31  # past min_refresh: an unknown kid may refetch the keys

    for _ in range(2):
        with pytest.raises(AuthenticationFailed, match="key 'ghost'"):
            await oidc.authenticate(stranger.sign(issuer.claims()))

    # The first unknown kid refetched the keys; the second came within
    # min_refresh and did not: made-up kids cannot make us hammer the issuer.
    assert issuer.requests.count("/jwks") == 2


async def test_a_rotated_key_is_picked_up_on_its_first_token(
    issuer: JwksServer, rsa_key: SigningKey, http_client: httpx.AsyncClient
) -> None:
    oidc = verifier(issuer, http_client, min_refresh=0)
    await oidc.authenticate(rsa_key.sign(issuer.claims()))
    rotated = SigningKey.ec("ec-2")
    issuer.publish(rotated)

    identity = await oidc.authenticate(rotated.sign(issuer.claims()))

    assert identity.kind == "ci"
    assert issuer.requests.count("/jwks") == 2


async def test_alg_none_is_refused(issuer: JwksServer, http_client: httpx.AsyncClient) -> None:
    token = forged({"alg": "none", "typ": "JWT", "kid": "rsa-1"}, issuer.claims(), None)

    with pytest.raises(AuthenticationFailed, match="'none'"):
        await verifier(issuer, http_client).authenticate(token)


async def test_hs256_signed_with_the_public_key_is_refused(
    issuer: JwksServer, rsa_key: SigningKey, http_client: httpx.AsyncClient
) -> None:
    """Algorithm confusion: an HMAC 'signature' made with the issuer's public key."""
    public_pem = rsa_key.private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    token = forged({"alg": "HS256", "typ": "JWT", "kid": "rsa-1"}, issuer.claims(), public_pem)

    with pytest.raises(AuthenticationFailed, match="'HS256'"):
        await verifier(issuer, http_client).authenticate(token)


async def test_the_header_alg_cannot_choose_another_algorithm_than_the_keys(
    issuer: JwksServer, rsa_key: SigningKey, http_client: httpx.AsyncClient
) -> None:
    impostor = SigningKey("rsa-1", "ES256", SigningKey.ec("x").private)

    with pytest.raises(AuthenticationFailed, match="Invalid CI token"):
        await verifier(issuer, http_client).authenticate(impostor.sign(issuer.claims()))


async def test_symmetric_keys_in_the_jwks_are_never_used(
    issuer: JwksServer, http_client: httpx.AsyncClient
) -> None:
    secret = b"shared-secret-that-is-long-enough-for-hs256"
    issuer.keys.append({"kty": "oct", "kid": "hmac", "k": b64(secret), "alg": "HS256"})
    token = forged({"alg": "HS256", "typ": "JWT", "kid": "hmac"}, issuer.claims(), secret)

    with pytest.raises(AuthenticationFailed, match="'HS256'"):
        await verifier(issuer, http_client).authenticate(token)


@pytest.mark.parametrize(
    ("ref", "accepted"), [("main", True), ("release/2.0", True), ("feature/x", False)]
)
async def test_refs_limit_which_pipelines_may_publish(
    issuer: JwksServer,
    rsa_key: SigningKey,
    http_client: httpx.AsyncClient,
    ref: str,
    accepted: bool,
) -> None:
    oidc = verifier(issuer, http_client, refs=("main", "release/*"))
    token = rsa_key.sign(issuer.claims(ref=ref))

    if accepted:
        assert (await oidc.authenticate(token)).kind == "ci"
    else:
        with pytest.raises(AuthenticationFailed, match="ref 'feature/x' may not publish"):
            await oidc.authenticate(token)


async def test_the_project_claim_is_configurable(
    issuer: JwksServer, rsa_key: SigningKey, http_client: httpx.AsyncClient
) -> None:
    oidc = verifier(
        issuer, http_client, project_claim="repository", projects={"acme/tools": ("acme-tools",)}
    )

    identity = await oidc.authenticate(rsa_key.sign(issuer.claims(repository="acme/tools")))

    assert identity.name.endswith("/acme/tools")
    assert identity.projects == frozenset({"acme-tools"})


async def test_an_unreachable_issuer_is_reported_as_unavailable(
    rsa_key: SigningKey, http_client: httpx.AsyncClient
) -> None:
    settings = OidcIssuerSettings(
        issuer="https://ci.example",
        audience="packyard",
        jwks_url=f"http://127.0.0.1:{free_port()}/jwks",
        projects={"*": ("acme-tools",)},
    )
    now = int(time.time())
    claims = {"iss": "https://ci.example", "aud": "packyard", "iat": now, "exp": now + 60}

    with pytest.raises(UpstreamUnavailable, match="cannot fetch"):
        await OidcVerifier([settings], http_client).authenticate(rsa_key.sign(claims))


async def test_a_malformed_token_is_refused(
    issuer: JwksServer, http_client: httpx.AsyncClient
) -> None:
    with pytest.raises(AuthenticationFailed, match="Malformed CI token"):
        await verifier(issuer, http_client).authenticate("not.a.jwt")
