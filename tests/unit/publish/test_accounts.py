"""Users, groups and tokens as the services manage them: validation, conflicts, audit."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from packyard.auth.identity import Identity
from packyard.auth.passwords import verify_password
from packyard.auth.tokens import hash_token
from packyard.db.accounts import ApiToken, User
from packyard.db.audit import AuditEvent
from packyard.errors import Conflict, InvalidName, InvalidRequest, NotFound
from packyard.publish import accounts
from tests.builders import LocalStore, make_local_store

OPERATOR = Identity(kind="cli", name="ops", is_admin=True)


@pytest.fixture
def local(tmp_path: Path) -> LocalStore:
    return make_local_store(tmp_path)


def audit(session: Session) -> list[tuple[str, str, dict[str, object]]]:
    rows = session.scalars(select(AuditEvent).order_by(AuditEvent.id))
    return [(row.actor, row.action, json.loads(row.detail)) for row in rows]


def test_a_user_is_stored_lower_case_with_an_argon2_hash(local: LocalStore) -> None:
    with local.sessions.begin() as session:
        accounts.add_user(session, "Alice.Smith", "long-enough", admin=True, actor=OPERATOR)
    with local.sessions() as session:
        user = session.scalars(select(User)).one()
        assert (user.name, user.is_admin, user.disabled) == ("alice.smith", True, False)
        assert verify_password(user.password_hash, "long-enough")
        assert audit(session) == [("cli:ops", "user-add", {"user": "alice.smith", "admin": True})]


@pytest.mark.parametrize(
    "name", ["", "-alice", "alice-", "__token__", "al ice", "ålice", "a" * 101]
)
def test_bad_user_and_group_names_are_refused(local: LocalStore, name: str) -> None:
    with local.sessions() as session:
        with pytest.raises(InvalidRequest, match="is not a valid user name"):
            accounts.add_user(session, name, None, actor=OPERATOR)
        with pytest.raises(InvalidRequest, match="is not a valid group name"):
            accounts.create_group(session, name, actor=OPERATOR)


@pytest.mark.parametrize(
    ("password", "message"), [("short", "at least 8"), ("two\nlines-long", "line breaks")]
)
def test_weak_or_odd_passwords_are_refused(local: LocalStore, password: str, message: str) -> None:
    with local.sessions() as session, pytest.raises(InvalidRequest, match=message):
        accounts.add_user(session, "alice", password, actor=OPERATOR)


def test_duplicates_conflict(local: LocalStore) -> None:
    with local.sessions.begin() as session:
        accounts.add_user(session, "alice", None, actor=OPERATOR)
        accounts.create_group(session, "devs", actor=OPERATOR)
        accounts.add_member(session, "devs", "alice", actor=OPERATOR)
    with local.sessions() as session:
        with pytest.raises(Conflict, match="user named 'alice' already exists"):
            accounts.add_user(session, "ALICE", None, actor=OPERATOR)
        with pytest.raises(Conflict, match="group named 'devs' already exists"):
            accounts.create_group(session, "Devs", actor=OPERATOR)
        with pytest.raises(Conflict, match="in group 'devs' already"):
            accounts.add_member(session, "devs", "alice", actor=OPERATOR)


def test_users_and_groups_are_listed_with_their_members(local: LocalStore) -> None:
    with local.sessions.begin() as session:
        accounts.add_user(session, "bob", None, actor=OPERATOR)
        accounts.add_user(session, "alice", None, actor=OPERATOR)
        accounts.create_group(session, "devs", actor=OPERATOR)
        accounts.create_group(session, "ops", actor=OPERATOR)
        accounts.add_member(session, "devs", "bob", actor=OPERATOR)
        accounts.add_member(session, "devs", "alice", actor=OPERATOR)
        accounts.add_member(session, "ops", "bob", actor=OPERATOR)
    with local.sessions.begin() as session:
        accounts.remove_member(session, "ops", "bob", actor=OPERATOR)
        accounts.disable_user(session, "bob", actor=OPERATOR)
    with local.sessions() as session:
        users = accounts.list_users(session)
        assert [(u.name, u.disabled, u.groups, u.has_password) for u in users] == [
            ("alice", False, ("devs",), False),
            ("bob", True, ("devs",), False),
        ]
        groups = accounts.list_groups(session)
        assert [(g.name, g.members) for g in groups] == [("devs", ("alice", "bob")), ("ops", ())]
        with pytest.raises(NotFound, match="not in group 'ops'"):
            accounts.remove_member(session, "ops", "bob", actor=OPERATOR)
        with pytest.raises(Conflict, match="disabled already"):
            accounts.disable_user(session, "bob", actor=OPERATOR)
        with pytest.raises(NotFound, match="no user named 'carol'"):
            accounts.disable_user(session, "carol", actor=OPERATOR)
        assert [action for _, action, _ in audit(session)][-2:] == [
            "group-member-remove",
            "user-disable",
        ]


def test_a_token_is_created_scoped_and_expiring(local: LocalStore) -> None:
    with local.sessions.begin() as session:
        accounts.add_user(session, "alice", None, actor=OPERATOR)
        plaintext, _ = accounts.create_token(
            session, "alice", ["Acme_Tools", "acme-tools", "B.C"], 30, "CI", actor=OPERATOR
        )
    with local.sessions() as session:
        stored = session.scalars(select(ApiToken)).one()
        assert stored.token_hash == hash_token(plaintext)
        assert stored.expires_at is not None
        assert abs(stored.expires_at - (stored.created_at + timedelta(days=30))) < timedelta(1)
        (summary,) = accounts.list_tokens(session, "alice")
        assert summary.projects == ("acme-tools", "b-c")
        assert (summary.prefix, summary.description, summary.user) == (
            plaintext[:12],
            "CI",
            "alice",
        )
        actor, action, detail = audit(session)[-1]
        assert (actor, action, detail["token"]) == ("cli:ops", "token-create", plaintext[:12])
        assert plaintext not in json.dumps(audit(session))


def test_bad_token_requests_are_refused(local: LocalStore) -> None:
    with local.sessions.begin() as session:
        accounts.add_user(session, "alice", None, actor=OPERATOR)
        accounts.add_user(session, "gone", None, actor=OPERATOR)
        accounts.disable_user(session, "gone", actor=OPERATOR)
    with local.sessions() as session:
        with pytest.raises(InvalidName):
            accounts.create_token(session, "alice", ["not a name!"], actor=OPERATOR)
        for days in (0, -1, 3651):
            with pytest.raises(InvalidRequest, match="1 to 3650 days"):
                accounts.create_token(session, "alice", (), days, actor=OPERATOR)
        with pytest.raises(InvalidRequest, match="disabled"):
            accounts.create_token(session, "gone", actor=OPERATOR)
        with pytest.raises(NotFound):
            accounts.create_token(session, "nobody", actor=OPERATOR)
        with pytest.raises(NotFound):
            accounts.list_tokens(session, "nobody")


def test_tokens_are_revoked_by_prefix_or_number_once(local: LocalStore) -> None:
    with local.sessions.begin() as session:
        accounts.add_user(session, "alice", None, actor=OPERATOR)
        first, _ = accounts.create_token(session, "alice", actor=OPERATOR)
        _, second = accounts.create_token(session, "alice", actor=OPERATOR)
    with local.sessions.begin() as session:
        accounts.revoke_token(session, first[:12], actor=OPERATOR)
        accounts.revoke_token(session, str(second.id), actor=OPERATOR)
    with local.sessions() as session:
        assert all(t.revoked_at is not None for t in accounts.list_tokens(session))
        with pytest.raises(Conflict, match="revoked already"):
            accounts.revoke_token(session, first[:12], actor=OPERATOR)
        with pytest.raises(NotFound, match="no token 'pky_nothing'"):
            accounts.revoke_token(session, "pky_nothing", actor=OPERATOR)


def test_a_prefix_shared_by_two_tokens_must_be_revoked_by_number(local: LocalStore) -> None:
    with local.sessions.begin() as session:
        accounts.add_user(session, "alice", None, actor=OPERATOR)
        _, one = accounts.create_token(session, "alice", actor=OPERATOR)
        _, two = accounts.create_token(session, "alice", actor=OPERATOR)
        two.prefix = one.prefix  # 48 random bits rarely collide; the rule must hold anyway
    with local.sessions() as session, pytest.raises(Conflict, match="revoke one by number"):
        accounts.revoke_token(session, one.prefix, actor=OPERATOR)


def test_list_tokens_shows_every_users_tokens_oldest_first(local: LocalStore) -> None:
    with local.sessions.begin() as session:
        accounts.add_user(session, "alice", None, actor=OPERATOR)
        accounts.add_user(session, "bob", None, actor=OPERATOR)
        accounts.create_token(session, "bob", actor=OPERATOR)
        accounts.create_token(session, "alice", actor=OPERATOR)
    with local.sessions() as session:
        summaries = accounts.list_tokens(session)
        assert [t.user for t in summaries] == ["bob", "alice"]
        assert all(t.created_at <= datetime.now(UTC) for t in summaries)
        assert [t.user for t in accounts.list_tokens(session, "Alice")] == ["alice"]
