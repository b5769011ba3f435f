"""`packyard user unbind`: an account whose provider now names its person by
another `sub` (a new client, a renamed provider entry) is bound again at the
next sign-in, and only by a sign-in under its own name."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import select
from sqlalchemy.orm import Session

from packyard.auth.identity import Identity
from packyard.auth.sso.person import Person
from packyard.cli import main
from packyard.db.accounts import User
from packyard.db.audit import AuditEvent
from packyard.errors import AuthenticationFailed
from packyard.publish import accounts, directory_accounts
from packyard.publish.audit import Origin
from packyard.settings import DirectoryGroupSettings
from tests.builders import LocalStore, make_local_store

GROUPS = DirectoryGroupSettings()
OPERATOR = Identity(kind="cli", name="tests", is_admin=True)


@pytest.fixture
def store(tmp_path: Path) -> LocalStore:
    """alice signed in once with `lab`, as sub-1; bob is a local account."""
    local = make_local_store(tmp_path / "data")
    with local.sessions.begin() as session:
        sign_in(session, Person("lab", "sub-1", "alice"))
        accounts.add_user(session, "bob", None, actor=OPERATOR)
    return local


def sign_in(session: Session, person: Person) -> Identity:
    return directory_accounts.sign_in(
        session,
        person,
        GROUPS,
        adopt_local_users=False,
        origin=Origin(),
    )


def packyard(tmp_path: Path, *args: str) -> Result:
    runner = CliRunner(env={"PACKYARD_CONFIG": None, "PACKYARD_DATABASE_URL": None})
    return runner.invoke(main, [*args, "--data-dir", str(tmp_path / "data")])


def test_an_unbound_account_is_bound_to_the_next_sign_in_under_its_name(
    tmp_path: Path, store: LocalStore
) -> None:
    with store.sessions.begin() as session, pytest.raises(AuthenticationFailed):
        sign_in(session, Person("lab", "sub-2", "alice"))  # another person of lab

    result = packyard(tmp_path, "user", "unbind", "alice")
    assert result.exit_code == 0, result.output
    assert "next sign-in with lab" in result.output

    with store.sessions.begin() as session:
        identity = sign_in(session, Person("lab", "sub-2", "alice"))
        user = session.scalars(select(User).where(User.name == "alice")).one()
        assert identity.user_id == user.id
        assert user.subject == "sub-2"
        actions = list(session.scalars(select(AuditEvent.action).order_by(AuditEvent.id)))
        assert actions[-2:] == ["user-unbind", "user-bind"]
    with store.sessions.begin() as session, pytest.raises(AuthenticationFailed):
        sign_in(session, Person("lab", "sub-1", "alice"))  # the old sub is nobody now


def test_unbind_can_move_the_account_to_a_renamed_provider(
    tmp_path: Path, store: LocalStore
) -> None:
    result = packyard(tmp_path, "user", "unbind", "alice", "--provider", "campus")
    assert result.exit_code == 0, result.output

    with store.sessions.begin() as session, pytest.raises(AuthenticationFailed):
        sign_in(session, Person("lab", "sub-1", "alice"))
    with store.sessions.begin() as session:
        sign_in(session, Person("campus", "c-9", "alice"))
        user = session.scalars(select(User).where(User.name == "alice")).one()
        assert (user.directory, user.subject) == ("campus", "c-9")


def test_a_local_or_unknown_account_cannot_be_unbound(tmp_path: Path, store: LocalStore) -> None:
    local = packyard(tmp_path, "user", "unbind", "bob")
    assert local.exit_code != 0
    assert "local account" in local.output
    unknown = packyard(tmp_path, "user", "unbind", "zed")
    assert unknown.exit_code != 0
    assert "no user named 'zed'" in unknown.output
