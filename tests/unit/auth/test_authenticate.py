"""Authenticators end to end over a real database: each kind of credential, each refusal."""

from __future__ import annotations

import base64
import shutil
from pathlib import Path

import httpx
import pytest
from argon2 import PasswordHasher
from sqlalchemy import select

from packyard.auth.authenticate import NO_CREDENTIALS, Authenticators
from packyard.auth.identity import Identity
from packyard.db.accounts import User
from packyard.errors import AuthenticationFailed
from packyard.publish import accounts
from packyard.settings import AuthSettings, OidcIssuerSettings
from tests.builders import LocalStore, make_local_store
from tests.unit.auth.jwks_server import JwksServer, SigningKey

pytestmark = pytest.mark.anyio

OPERATOR = Identity(kind="cli", name="tests", is_admin=True)


def basic(user: str, secret: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{secret}".encode()).decode()


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The accounts database, built once: argon2 hashes take a while on purpose."""
    directory = tmp_path_factory.mktemp("template")
    local = make_local_store(directory)
    with local.sessions.begin() as session:
        accounts.add_user(session, "alice", "alice-password", actor=OPERATOR)
        accounts.add_user(session, "root", "root-password", admin=True, actor=OPERATOR)
        accounts.add_user(session, "robot", None, actor=OPERATOR)
        accounts.create_group(session, "platform", actor=OPERATOR)
        accounts.add_member(session, "platform", "alice", actor=OPERATOR)
    local.engine.dispose()  # closes the last connection: the WAL is merged into the file
    return directory / "packyard.db"


@pytest.fixture
def local(tmp_path: Path, template: Path) -> LocalStore:
    """A copy of the template database for this test alone."""
    shutil.copyfile(template, tmp_path / "packyard.db")
    return make_local_store(tmp_path)


@pytest.fixture
def authenticators(local: LocalStore, http_client: httpx.AsyncClient) -> Authenticators:
    return Authenticators(local.sessions, AuthSettings(), http_client)


def new_token(local: LocalStore, user: str, projects: tuple[str, ...] = ()) -> str:
    with local.sessions.begin() as session:
        plaintext, _ = accounts.create_token(session, user, projects, actor=OPERATOR)
    return plaintext


@pytest.mark.parametrize("header", [None, "", "   "])
async def test_no_credentials_are_refused_with_warehouses_message(
    authenticators: Authenticators, header: str | None
) -> None:
    with pytest.raises(AuthenticationFailed) as refused:
        await authenticators.authenticate(header)
    assert refused.value.message == NO_CREDENTIALS
    assert refused.value.message.startswith(
        "Invalid or non-existent authentication information. See "
    )


async def test_a_user_signs_in_with_name_and_password(authenticators: Authenticators) -> None:
    identity = await authenticators.authenticate(basic("Alice", "alice-password"))

    assert identity.kind == "user"
    assert identity.name == "alice"
    assert identity.user_id is not None
    assert identity.groups == frozenset({"platform"})
    assert identity.projects is None
    assert not identity.is_admin
    assert (await authenticators.authenticate(basic("root", "root-password"))).is_admin


@pytest.mark.parametrize(
    ("user", "password"),
    [("alice", "wrong-password"), ("nobody", "alice-password"), ("robot", "any-password")],
)
async def test_wrong_names_and_passwords_get_one_message(
    authenticators: Authenticators, user: str, password: str
) -> None:
    with pytest.raises(AuthenticationFailed, match=r"^Invalid username or password\.$"):
        await authenticators.authenticate(basic(user, password))


async def test_a_disabled_user_cannot_sign_in(
    local: LocalStore, authenticators: Authenticators
) -> None:
    with local.sessions.begin() as session:
        accounts.disable_user(session, "alice", actor=OPERATOR)

    with pytest.raises(AuthenticationFailed, match=r"The user 'alice' is disabled\."):
        await authenticators.authenticate(basic("alice", "alice-password"))


async def test_an_old_hash_is_replaced_at_the_next_sign_in(
    local: LocalStore, authenticators: Authenticators
) -> None:
    weak = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1).hash("alice-password")
    with local.sessions.begin() as session:
        session.scalars(select(User).where(User.name == "alice")).one().password_hash = weak

    await authenticators.authenticate(basic("alice", "alice-password"))

    with local.sessions() as session:
        stored = session.scalars(select(User).where(User.name == "alice")).one().password_hash
    assert stored is not None
    assert stored != weak
    assert stored.startswith("$argon2id$v=19$m=65536,t=3,p=4$")


@pytest.mark.parametrize("form", ["basic", "bearer", "token"])
async def test_an_api_token_gives_a_token_identity_limited_to_its_projects(
    local: LocalStore, authenticators: Authenticators, form: str
) -> None:
    token = new_token(local, "alice", ("Acme_Tools",))
    header = basic("__token__", token) if form == "basic" else f"{form} {token}"

    identity = await authenticators.authenticate(header)

    assert identity.kind == "token"
    assert identity.name == "alice"
    assert identity.projects == frozenset({"acme-tools"})
    assert identity.groups == frozenset({"platform"})
    assert identity.token_prefix == token[:12]
    assert identity.actor == f"token:alice/{token[:12]}"


async def test_an_unscoped_token_carries_its_users_rights(
    local: LocalStore, authenticators: Authenticators
) -> None:
    identity = await authenticators.authenticate(f"Bearer {new_token(local, 'root')}")

    assert identity.projects is None
    assert identity.is_admin


async def test_a_revoked_token_is_refused(
    local: LocalStore, authenticators: Authenticators
) -> None:
    token = new_token(local, "alice")
    with local.sessions.begin() as session:
        accounts.revoke_token(session, token[:12], actor=OPERATOR)

    with pytest.raises(AuthenticationFailed, match="was revoked"):
        await authenticators.authenticate(basic("__token__", token))


async def test_a_ci_token_is_refused_when_no_issuer_is_configured(
    authenticators: Authenticators,
) -> None:
    with pytest.raises(AuthenticationFailed, match="no CI issuer is configured"):
        await authenticators.authenticate("Bearer aaa.bbb.ccc")


async def test_a_ci_token_in_basic_auth_gives_a_ci_identity(
    local: LocalStore, http_client: httpx.AsyncClient, issuer: JwksServer, rsa_key: SigningKey
) -> None:
    oidc = OidcIssuerSettings(
        issuer=issuer.issuer, audience="packyard", projects={"acme/*": ("acme-tools",)}
    )
    authenticators = Authenticators(local.sessions, AuthSettings(oidc=(oidc,)), http_client)

    identity = await authenticators.authenticate(basic("__token__", rsa_key.sign(issuer.claims())))

    assert identity.kind == "ci"
    assert identity.projects == frozenset({"acme-tools"})


async def test_a_malformed_header_is_an_authentication_failure(
    authenticators: Authenticators,
) -> None:
    with pytest.raises(AuthenticationFailed, match="Malformed Basic"):
        await authenticators.authenticate("Basic %%%")
