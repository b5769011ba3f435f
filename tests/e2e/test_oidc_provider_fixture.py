"""The test OpenID Connect provider (`tests/oidc_provider`) does what the sign-in
tests rely on: a real authorization code flow with PKCE S256, state and nonce,
login then consent pages, RS256 ID tokens verified against its JWKS, directory
claims in the ID token and at userinfo, directory changes seen by the next
sign-in, and a restart on the same port with the same signing key.

It drives the flow with httpx alone, as a browser would (cookies, forms, CSRF).
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from html.parser import HTMLParser
from typing import Any
from urllib.parse import parse_qs, urljoin, urlsplit

import httpx
import jwt
import pytest

from tests.oidc_provider import OidcProvider, OidcUser, running_oidc_provider

pytestmark = pytest.mark.e2e

CLIENT_ID = "packyard-test"
CLIENT_SECRET = "client-secret-1"
REDIRECT_URI = "http://127.0.0.1:9/sso/callback"
SCOPES = "openid profile email groups"
ALICE = OidcUser(
    "alice", "alice-pw", "alice@lab.example", "Alice Able", ["dev", "lab-a"], manager="carol"
)
BOB = OidcUser("bob", "bob-pw", "bob@lab.example", "Bob Baker", [])


@pytest.fixture(scope="module")
def provider(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OidcProvider]:
    with running_oidc_provider(tmp_path_factory.mktemp("oidc")) as running:
        running.add_client(CLIENT_ID, CLIENT_SECRET, [REDIRECT_URI])
        yield running


class _Forms(HTMLParser):
    """The `<form>`s of a page: action and their named inputs' values."""

    def __init__(self) -> None:
        super().__init__()
        self.forms: list[tuple[str, dict[str, str]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {name: value or "" for name, value in attrs}
        if tag == "form":
            self.forms.append((values.get("action", ""), {}))
        elif tag == "input" and "name" in values and self.forms:
            self.forms[-1][1][values["name"]] = values.get("value", "")


def _form(page: httpx.Response) -> tuple[str, dict[str, str]]:
    parser = _Forms()
    parser.feed(page.text)
    assert len(parser.forms) == 1, page.text
    action, fields = parser.forms[0]
    return urljoin(str(page.url), action), fields


@dataclass
class SignIn:
    id_token: dict[str, Any]
    userinfo: dict[str, Any]
    access_token: str
    pages: list[str]  # "login", "consent": what the person was shown


def sign_in(
    provider: OidcProvider, browser: httpx.Client, user: OidcUser, *, verifier: str | None = None
) -> SignIn:
    """One authorization code flow with PKCE, through the login and consent
    pages when the provider shows them; the ID token verified as an RP does."""
    discovery = provider.discovery()
    code_verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(code_verifier.encode()).digest())
    state, nonce = secrets.token_urlsafe(16), secrets.token_urlsafe(16)
    page = browser.get(
        discovery["authorization_endpoint"],
        params={
            "response_type": "code",
            "client_id": CLIENT_ID,
            "redirect_uri": REDIRECT_URI,
            "scope": SCOPES,
            "state": state,
            "nonce": nonce,
            "code_challenge": challenge.rstrip(b"=").decode(),
            "code_challenge_method": "S256",
        },
    )
    pages: list[str] = []
    while not page.headers.get("location", "").startswith(REDIRECT_URI):
        if page.is_redirect:
            page = browser.get(urljoin(str(page.url), page.headers["location"]))
            continue
        assert page.status_code == 200, page.text
        action, fields = _form(page)
        if "password" in fields:
            pages.append("login")
            fields.update(username=user.username, password=user.password)
        else:
            pages.append("consent")
            fields["allow"] = "Authorize"
        page = browser.post(action, data=fields, headers={"Referer": str(page.url)})
        assert page.is_redirect, f"{pages[-1]} page refused: {page.text}"
    answer = parse_qs(urlsplit(page.headers["location"]).query)
    assert answer["state"] == [state]

    with httpx.Client(trust_env=False) as http:
        tokens = http.post(
            discovery["token_endpoint"],
            data={
                "grant_type": "authorization_code",
                "code": answer["code"][0],
                "redirect_uri": REDIRECT_URI,
                "code_verifier": verifier or code_verifier,
            },
            auth=(CLIENT_ID, CLIENT_SECRET),
        )
        assert tokens.status_code == 200, tokens.text
        keys = jwt.PyJWKSet.from_dict(http.get(discovery["jwks_uri"]).json())
        id_token = tokens.json()["id_token"]
        key = keys[jwt.get_unverified_header(id_token)["kid"]]
        claims = jwt.decode(
            id_token, key, algorithms=["RS256"], audience=CLIENT_ID, issuer=provider.issuer
        )
        assert claims["nonce"] == nonce
        userinfo = http.get(
            discovery["userinfo_endpoint"],
            headers={"Authorization": f"Bearer {tokens.json()['access_token']}"},
        )
        assert userinfo.status_code == 200, userinfo.text
    return SignIn(claims, userinfo.json(), tokens.json()["access_token"], pages)


def browser() -> httpx.Client:
    return httpx.Client(trust_env=False, follow_redirects=False)


def test_discovery(provider: OidcProvider) -> None:
    document = provider.discovery()
    assert document["issuer"] == provider.issuer
    assert "S256" in document["code_challenge_methods_supported"]
    assert "RS256" in document["id_token_signing_alg_values_supported"]
    assert "code" in document["response_types_supported"]


def test_code_flow_and_directory_changes(provider: OidcProvider) -> None:
    provider.add_user(ALICE)
    with browser() as first:
        signed_in = sign_in(provider, first, ALICE)
        assert signed_in.pages == ["login", "consent"]
        for claims in (signed_in.id_token, signed_in.userinfo):
            assert claims["sub"] == ALICE.subject
            assert claims["preferred_username"] == "alice"
            assert claims["name"] == "Alice Able"
            assert claims["email"] == "alice@lab.example"
            assert claims["groups"] == ["dev", "lab-a"]
            assert claims["manager"] == "carol"

        # Still signed in at the provider, consent given: straight back, new groups.
        provider.set_groups("alice", ["ops"])
        again = sign_in(provider, first, ALICE)
        assert again.pages == []
        assert again.id_token["groups"] == again.userinfo["groups"] == ["ops"]

    with browser() as second:  # another browser: login again, consent remembered
        provider.set_manager("alice", None)
        third = sign_in(provider, second, ALICE)
        assert third.pages == ["login"]
        assert "manager" not in third.userinfo
        assert third.userinfo["sub"] == ALICE.subject


def test_user_without_groups(provider: OidcProvider) -> None:
    provider.add_user(BOB)
    with browser() as session:
        signed_in = sign_in(provider, session, BOB)
    assert signed_in.userinfo["groups"] == []
    assert "manager" not in signed_in.userinfo


def test_wrong_code_verifier_refused(provider: OidcProvider) -> None:
    provider.add_user(BOB)
    with browser() as session, pytest.raises(AssertionError, match="invalid_grant"):
        sign_in(provider, session, BOB, verifier=secrets.token_urlsafe(48))


def test_removed_user_cannot_sign_in(provider: OidcProvider) -> None:
    removed = OidcUser("dave", "dave-pw", "dave@lab.example", "Dave Doe", ["dev"])
    provider.add_user(removed)
    with browser() as session:
        signed_in = sign_in(provider, session, removed)
        provider.remove_user("dave")
        userinfo = session.get(
            provider.discovery()["userinfo_endpoint"],
            headers={"Authorization": f"Bearer {signed_in.access_token}"},
        )
        assert userinfo.status_code == 401
        login = session.get(f"{provider.url}/accounts/login/")
        _, fields = _form(login)
        fields.update(username="dave", password="dave-pw")
        refused = session.post(f"{provider.url}/accounts/login/", data=fields)
    assert refused.status_code == 200
    assert 'id="login-error"' in refused.text


def test_restart_on_the_same_port_with_the_same_key(provider: OidcProvider) -> None:
    issuer = provider.issuer
    keys = httpx.get(provider.discovery()["jwks_uri"], trust_env=False).json()
    provider.stop()
    with pytest.raises(httpx.ConnectError):
        httpx.get(provider.discovery_url, trust_env=False)
    provider.start()
    assert provider.issuer == issuer
    assert httpx.get(provider.discovery()["jwks_uri"], trust_env=False).json() == keys
    provider.add_user(BOB)
    with browser() as session:
        assert sign_in(provider, session, BOB).userinfo["email"] == "bob@lab.example"
