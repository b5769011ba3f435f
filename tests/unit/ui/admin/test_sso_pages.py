"""Signing in with the organisation's provider through the pages
(`routes/ui/admin/sso.py`, `auth.py`), against a provider whose answers the
tests choose (tests/unit/auth/sso_server.py): the redirect with state, nonce and
PKCE in a signed cookie; a good answer signs in; every answer that does not
belong to this browser's attempt, or carries a bad token, is refused with a page
that says so; a provider that is down leaves the password form; and
`local_passwords = false` turns passwords off on the form and on Basic."""

from __future__ import annotations

import base64
import hashlib
import shutil
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

import httpx
import pytest
from sqlalchemy import select
from starlette.middleware import Middleware

from packyard.app import create_app
from packyard.auth.authenticate import Authenticators
from packyard.auth.identity import Identity
from packyard.auth.jwks import KeySets
from packyard.auth.sso.attempt import SignInAttempt
from packyard.auth.sso.provider import SsoProvider
from packyard.db.accounts import Group, User
from packyard.errors import AuthenticationFailed
from packyard.publish import accounts
from packyard.repository.local import LocalRepository
from packyard.routes.files import FilesRoute
from packyard.routes.ui.admin import SignInSettings, ViewerMiddleware, admin_routes
from packyard.routes.ui.admin.auth import PASSWORDS_OFF
from packyard.routes.ui.admin.csrf import CsrfProtection
from packyard.routes.ui.admin.sessions import SessionData, SigningKeys, unsign
from packyard.routes.ui.admin.sso import ATTEMPT_COOKIE
from packyard.settings import AuthSettings, DirectoryGroupSettings, SsoProviderSettings
from tests.builders import LocalStore, make_local_store
from tests.unit.auth.jwks_server import SigningKey
from tests.unit.auth.sso_server import CLIENT_ID, CLIENT_SECRET, ScriptedProvider

pytestmark = pytest.mark.anyio
OPERATOR = Identity(kind="cli", name="tests", is_admin=True)
SECRET = b"test-secret-0123456789abcdef0123"
ROOT_PASSWORD = "root-secret-pw"
BASE = "http://index.test"
CALLBACK = f"{BASE}/admin/sso/lab/callback"
GROUPS = DirectoryGroupSettings(map={"acc-controls": "acc-controls"})


@pytest.fixture(scope="module")
def key() -> SigningKey:
    return SigningKey.rsa("rsa-1")


@pytest.fixture
def provider(key: SigningKey) -> Iterator[ScriptedProvider]:
    with ScriptedProvider() as scripted:
        scripted.publish(key)
        yield scripted


@dataclass
class Site:
    """The admin pages with the providers `lab` and `other` (both the scripted
    one) and `down` (nothing listens there); no user yet."""

    app: httpx.ASGITransport
    store: LocalStore
    provider: ScriptedProvider
    key: SigningKey

    def client(self, base_url: str = BASE) -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=self.app, base_url=base_url)

    def answer(self, **claims: Any) -> None:
        """The ID token the provider's token endpoint gives next."""
        self.provider.id_token = self.key.sign(self.provider.claims(**claims))

    def users(self) -> list[str]:
        with self.store.sessions() as session:
            return sorted(session.scalars(select(User.name)))


@asynccontextmanager
async def running_site(
    database_url: str, tmp_path: Path, provider: ScriptedProvider, key: SigningKey, passwords: bool
) -> AsyncIterator[Site]:
    store = make_local_store(tmp_path / "store", database_url)
    chain = LocalRepository(store.sessions, store.store)
    async with httpx.AsyncClient(trust_env=False, timeout=5) as http:
        key_sets = KeySets(http)

        def sso(name: str, issuer: str) -> SsoProvider:
            settings = SsoProviderSettings(
                name=name,
                issuer=issuer,
                client_id=CLIENT_ID,
                client_secret=CLIENT_SECRET,
                timeout_seconds=2,
            )
            return SsoProvider(settings, http, key_sets)

        ways = SignInSettings(
            providers=[
                sso("lab", provider.issuer),
                sso("other", provider.issuer),
                sso("down", "http://127.0.0.1:9/realm"),
            ],
            local_passwords=passwords,
            groups=GROUPS,
        )
        authenticators = Authenticators(
            store.sessions, AuthSettings(local_passwords=passwords), http
        )
        routes = admin_routes(store.sessions, store.store, authenticators, SECRET, sign_in=ways)
        middleware = [Middleware(ViewerMiddleware, sessions=store.sessions, secret=SECRET)]
        app = create_app(chain, FilesRoute(chain), routes=routes, middleware=middleware)
        yield Site(httpx.ASGITransport(app=app), store, provider, key)
    await chain.aclose()
    store.engine.dispose()


@pytest.fixture(scope="module")
def migrated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated SQLite database, copied by each test (migrating costs 0.3 s a test)."""
    path = tmp_path_factory.mktemp("migrated") / "packyard.db"
    make_local_store(path.parent, f"sqlite:///{path}").engine.dispose()
    return path


def sqlite_copy(migrated: Path, tmp_path: Path) -> str:
    copy = tmp_path / "packyard.db"
    shutil.copyfile(migrated, copy)
    return f"sqlite:///{copy}"


@pytest.fixture
async def site(
    tmp_path: Path, migrated: Path, provider: ScriptedProvider, key: SigningKey
) -> AsyncIterator[Site]:
    """On SQLite; the whole sign-in runs on PostgreSQL too (`any_db_site`)."""
    url = sqlite_copy(migrated, tmp_path)
    async with running_site(url, tmp_path, provider, key, passwords=True) as running:
        yield running


@pytest.fixture
async def any_db_site(
    tmp_path: Path, database_url: str, provider: ScriptedProvider, key: SigningKey
) -> AsyncIterator[Site]:
    async with running_site(database_url, tmp_path, provider, key, passwords=True) as running:
        yield running


@pytest.fixture
async def no_passwords(
    tmp_path: Path, migrated: Path, provider: ScriptedProvider, key: SigningKey
) -> AsyncIterator[Site]:
    url = sqlite_copy(migrated, tmp_path)
    async with running_site(url, tmp_path, provider, key, passwords=False) as running:
        yield running


@dataclass(frozen=True)
class Started:
    """A sign-in started at the provider: where the browser was sent."""

    response: httpx.Response
    query: dict[str, str]

    @property
    def state(self) -> str:
        return self.query["state"]

    @property
    def nonce(self) -> str:
        return self.query["nonce"]


async def start(client: httpx.AsyncClient, name: str = "lab", next_path: str = "") -> Started:
    path = f"/admin/sso/{name}/start"
    response = await client.get(path + (f"?next={quote(next_path, safe='')}" if next_path else ""))
    assert response.status_code == 303, response.text
    query = {
        key: values[0]
        for key, values in parse_qs(urlsplit(response.headers["location"]).query).items()
    }
    return Started(response, query)


def attempt_in(client: httpx.AsyncClient) -> SignInAttempt:
    """The attempt the browser's cookie holds (signed by the server)."""
    payload = unsign(SigningKeys(SECRET)("sso attempt"), client.cookies[ATTEMPT_COOKIE])
    assert payload is not None
    attempt = SignInAttempt.from_payload(payload)
    assert attempt is not None
    return attempt


def cookie_headers(response: httpx.Response, name: str) -> list[str]:
    return [
        value for value in response.headers.get_list("set-cookie") if value.startswith(name + "=")
    ]


async def signed_in(client: httpx.AsyncClient) -> bool:
    """Whether the browser's session opens the account page (else: to the sign-in page)."""
    page = await client.get("/admin/account")
    assert page.status_code in (200, 303), page.text
    return page.status_code == 200


async def test_the_sign_in_page_offers_each_provider_beside_the_password_form(site: Site) -> None:
    async with site.client() as client:
        page = await client.get("/admin/sign-in?next=/admin/account")

    assert page.status_code == 200
    for name in ("lab", "other", "down"):
        assert (
            f'href="/admin/sso/{name}/start?next=/admin/account">Sign in with {name}</a>'
            in page.text
        )
    assert 'type="password"' in page.text
    assert "Or with a packyard account:" in page.text


async def test_start_sends_the_browser_to_the_provider_with_state_nonce_and_s256(
    site: Site,
) -> None:
    async with site.client() as client:
        started = await start(client, next_path="/admin/account")
        attempt = attempt_in(client)

    location = started.response.headers["location"]
    assert location.startswith(site.provider.issuer + "/auth?")
    assert started.query["response_type"] == "code"
    assert started.query["client_id"] == CLIENT_ID
    assert started.query["redirect_uri"] == CALLBACK
    assert started.query["scope"] == "openid profile email"
    assert started.query["code_challenge_method"] == "S256"
    assert (attempt.state, attempt.nonce) == (started.state, started.nonce)
    assert len(started.state) >= 43
    assert started.state != started.nonce
    digest = hashlib.sha256(attempt.verifier.encode()).digest()
    assert started.query["code_challenge"] == base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
    assert attempt.verifier not in location  # only its hash goes to the provider
    assert (attempt.provider, attempt.next) == ("lab", "/admin/account")
    assert attempt.expires > time.time() + 500
    [cookie] = cookie_headers(started.response, ATTEMPT_COOKIE)
    attributes = [part.strip().lower() for part in cookie.split(";")]
    assert "httponly" in attributes
    assert "path=/admin/sso/" in attributes
    assert "samesite=lax" in attributes
    assert "secure" not in attributes  # plain HTTP
    assert "max-age=600" in attributes


async def test_the_attempt_cookie_is_secure_over_https(site: Site) -> None:
    async with site.client("https://index.test") as client:
        started = await start(client)
    [cookie] = cookie_headers(started.response, ATTEMPT_COOKIE)
    assert "secure" in [part.strip().lower() for part in cookie.split(";")]
    assert started.query["redirect_uri"] == "https://index.test/admin/sso/lab/callback"


async def test_a_good_answer_signs_in_and_the_attempt_is_used_up(any_db_site: Site) -> None:
    site = any_db_site
    async with site.client() as client:
        started = await start(client, next_path="/admin/account")
        verifier = attempt_in(client).verifier
        site.answer(nonce=started.nonce)
        callback = f"/admin/sso/lab/callback?code=code-1&state={started.state}"

        response = await client.get(callback)

        assert response.status_code == 303, response.text
        assert response.headers["location"] == "/admin/account"
        assert cookie_headers(response, "packyard_session")
        [forgotten] = cookie_headers(response, ATTEMPT_COOKIE)
        assert "max-age=0" in forgotten.lower()
        assert ATTEMPT_COOKIE not in client.cookies
        account = await client.get("/admin/account")
        assert account.status_code == 200
        assert "alice" in account.text
        # The code was exchanged with this attempt's verifier and redirect URI.
        [exchange] = site.provider.token_requests
        assert exchange["code"] == ["code-1"]
        assert exchange["code_verifier"] == [verifier]
        assert exchange["redirect_uri"] == [CALLBACK]

        # The same answer again (a replay, or the back button): nothing to match it.
        replayed = await client.get(callback)
        assert replayed.status_code == 400
        assert "was not started in this browser" in replayed.text
        assert len(site.provider.token_requests) == 1

    with site.store.sessions() as session:
        alice = session.scalars(select(User).where(User.name == "alice")).one()
        assert (alice.directory, alice.subject) == ("lab", "f3b1c2d4-alice")
        assert (alice.email, alice.full_name) == ("alice@lab.example", "Alice Liddell")
        assert alice.last_sign_in_at is not None
        assert alice.password_hash is None
        assert [group.name for group in alice.groups] == ["acc-controls"]
        assert session.scalars(select(Group.source)).all() == ["directory"]


async def test_an_answer_with_a_forged_state_is_refused(site: Site) -> None:
    async with site.client() as client:
        started = await start(client)
        site.answer(nonce=started.nonce)

        response = await client.get("/admin/sso/lab/callback?code=code-1&state=forged-state")

        assert response.status_code == 400
        assert "was not started in this browser" in response.text
        assert 'type="password"' in response.text  # the sign-in page, to start again
        assert site.provider.token_requests == []  # the code was never exchanged
        assert ATTEMPT_COOKIE not in client.cookies  # the attempt is spent
        assert not await signed_in(client)
        # Nor does a right state help once the attempt is gone.
        late = await client.get(f"/admin/sso/lab/callback?code=code-1&state={started.state}")
        assert late.status_code == 400
    assert site.users() == []


async def test_an_answer_without_the_attempt_cookie_is_refused(site: Site) -> None:
    async with site.client() as browser:
        started = await start(browser)
    site.answer(nonce=started.nonce)
    # Login CSRF: the attacker's own answer, opened in another browser.
    async with site.client() as victim:
        response = await victim.get(f"/admin/sso/lab/callback?code=code-1&state={started.state}")
        assert response.status_code == 400
        assert not await signed_in(victim)
    assert site.provider.token_requests == []
    assert site.users() == []


async def test_an_attempt_is_good_only_for_its_own_provider(site: Site) -> None:
    async with site.client() as client:
        started = await start(client, "lab")
        site.answer(nonce=started.nonce)
        response = await client.get(f"/admin/sso/other/callback?code=code-1&state={started.state}")
        assert response.status_code == 400
    assert site.provider.token_requests == []


async def test_a_provider_that_declines_says_so_in_its_words(site: Site) -> None:
    async with site.client() as client:
        started = await start(client)
        declined = await client.get(
            "/admin/sso/lab/callback?error=access_denied"
            f"&error_description=The+user+denied+consent&state={started.state}"
        )
        assert declined.status_code == 401
        assert "lab did not sign you in: The user denied consent." in declined.text
        assert ATTEMPT_COOKIE not in client.cookies

        started = await start(client)
        bare = await client.get(
            f"/admin/sso/lab/callback?error=access_denied&state={started.state}"
        )
        assert bare.status_code == 401
        assert "lab did not sign you in: access_denied." in bare.text

        started = await start(client)
        no_code = await client.get(f"/admin/sso/lab/callback?state={started.state}")
        assert no_code.status_code == 400
        assert "lab sent no sign-in code." in no_code.text
        assert not await signed_in(client)
    assert site.provider.token_requests == []
    assert site.users() == []


@pytest.mark.parametrize(
    ("claims", "forger", "message"),
    [
        ({"exp": int(time.time()) - 3600, "iat": int(time.time()) - 7200}, False, "has expired"),
        ({"aud": "another-client"}, False, "is not meant for this server"),
        ({}, True, "is invalid"),
        ({"nonce": "another-sign-in"}, False, "belongs to another sign-in"),
    ],
    ids=["expired", "wrong-audience", "forged", "replayed-token"],
)
async def test_a_bad_id_token_is_refused_and_signs_nobody_in(
    site: Site, claims: dict[str, Any], forger: bool, message: str
) -> None:
    async with site.client() as client:
        started = await start(client, next_path="/admin/account")
        good = site.provider.claims(nonce=started.nonce)
        signer = SigningKey.rsa(site.key.kid) if forger else site.key  # same kid, other key
        site.provider.id_token = signer.sign({**good, **claims})

        response = await client.get(f"/admin/sso/lab/callback?code=code-1&state={started.state}")

        assert response.status_code == 401
        assert message in response.text
        assert "location" not in response.headers
        assert ATTEMPT_COOKIE not in client.cookies
        assert not await signed_in(client)
    assert site.users() == []


async def test_a_name_of_a_local_account_is_refused_without_adoption(site: Site) -> None:
    with site.store.sessions.begin() as session:
        accounts.add_user(session, "alice", None, actor=OPERATOR)
    async with site.client() as client:
        started = await start(client)
        site.answer(nonce=started.nonce)
        response = await client.get(f"/admin/sso/lab/callback?code=code-1&state={started.state}")

        assert response.status_code == 403
        assert "A local account named &#39;alice&#39; exists here" in response.text
        assert not await signed_in(client)
    with site.store.sessions() as session:
        alice = session.scalars(select(User).where(User.name == "alice")).one()
        assert (alice.directory, alice.subject) == (None, None)


async def test_a_provider_that_is_down_leaves_the_password_form(site: Site) -> None:
    async with site.client() as client:
        response = await client.get("/admin/sso/down/start?next=/admin/account")

        assert response.status_code == 503
        assert response.headers["retry-after"] == "30"
        assert "Signing in with down is not possible right now" in response.text
        assert 'type="password"' in response.text
        assert 'name="next" value="/admin/account"' in response.text
        assert not cookie_headers(response, ATTEMPT_COOKIE)

        # Down between the start and the answer: the token endpoint fails.
        started = await start(client)
        site.provider.token_status = 502
        site.provider.token_error = {"oops": True}
        late = await client.get(f"/admin/sso/lab/callback?code=code-1&state={started.state}")
        assert late.status_code == 503
        assert late.headers["retry-after"] == "30"
        assert "Signing in with lab is not possible right now" in late.text
        assert ATTEMPT_COOKIE not in client.cookies

        # The password form still works.
        form = await client.get("/admin/sign-in")
        assert form.status_code == 200


async def test_an_unknown_provider_is_not_found(site: Site) -> None:
    async with site.client() as client:
        for step in ("start", "callback?code=c&state=s"):
            response = await client.get(f"/admin/sso/nope/{step}")
            assert response.status_code == 404
            assert "There is no sign-in provider named &#39;nope&#39; here." in response.text


@pytest.mark.parametrize("target", ["//evil.example", "/\\evil.example", "https://evil.example/"])
async def test_a_next_off_this_site_is_not_followed(site: Site, target: str) -> None:
    async with site.client() as client:
        page = await client.get("/admin/sign-in", params={"next": target})
        assert 'href="/admin/sso/lab/start?next=/admin/"' in page.text

        started = await start(client, next_path=target)
        assert attempt_in(client).next == "/admin/"
        site.answer(nonce=started.nonce)
        response = await client.get(f"/admin/sso/lab/callback?code=code-1&state={started.state}")

        assert response.status_code == 303
        assert response.headers["location"] == "/admin/"


def csrf_token(client: httpx.AsyncClient) -> str:
    """The CSRF token of the browser's visitor session, as a form of this site would carry."""
    keys = SigningKeys(SECRET)
    payload = unsign(keys("session"), client.cookies["packyard_session"])
    assert payload is not None
    sid, exp = payload["sid"], payload["exp"]
    assert isinstance(sid, str)
    assert isinstance(exp, int)
    return CsrfProtection(keys).token(SessionData(sid, None, None, exp))


async def test_with_local_passwords_off_only_the_provider_signs_people_in(
    no_passwords: Site,
) -> None:
    site = no_passwords
    with site.store.sessions.begin() as session:
        accounts.add_user(session, "root", ROOT_PASSWORD, admin=True, actor=OPERATOR)
    async with site.client() as client:
        page = await client.get("/admin/sign-in")
        assert page.status_code == 200
        assert "Sign in with lab" in page.text
        assert 'type="password"' not in page.text
        assert "People sign in with the organisation's account." in page.text

        form = {"csrf_token": csrf_token(client), "username": "root", "password": ROOT_PASSWORD}
        posted = await client.post("/admin/sign-in", data=form)
        assert posted.status_code == 403
        assert PASSWORDS_OFF.replace("'", "&#39;") in posted.text
        assert not await signed_in(client)

        # The provider still signs people in.
        started = await start(client)
        site.answer(nonce=started.nonce)
        response = await client.get(f"/admin/sso/lab/callback?code=code-1&state={started.state}")
        assert response.status_code == 303

    with site.store.sessions.begin() as session:
        token, _ = accounts.create_token(session, "root", actor=OPERATOR)
    async with httpx.AsyncClient(trust_env=False) as http:
        authenticators = Authenticators(
            site.store.sessions, AuthSettings(local_passwords=False), http
        )
        basic = base64.b64encode(f"root:{ROOT_PASSWORD}".encode()).decode()
        with pytest.raises(AuthenticationFailed, match="Passwords are turned off here"):
            await authenticators.authenticate(f"Basic {basic}")
        for header in (
            f"Bearer {token}",
            "Basic " + base64.b64encode(f"__token__:{token}".encode()).decode(),
        ):
            identity = await authenticators.authenticate(header)
            assert (identity.kind, identity.name) == ("token", "root")
