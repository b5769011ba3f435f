"""API tokens: their form, how they are stored, and each reason a token is refused."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from packyard.auth.identity import Identity
from packyard.auth.tokens import LAST_USED_GRANULARITY, generate_token, hash_token, verify_token
from packyard.db.accounts import ApiToken
from packyard.errors import AuthenticationFailed, InvalidRequest
from packyard.publish import accounts
from tests.builders import LocalStore, make_local_store

OPERATOR = Identity(kind="cli", name="tests", is_admin=True)


@pytest.fixture
def local(tmp_path: Path) -> LocalStore:
    local = make_local_store(tmp_path)
    with local.sessions.begin() as session:
        accounts.add_user(session, "alice", None, actor=OPERATOR)
    return local


def new_token(
    local: LocalStore, projects: tuple[str, ...] = (), expires_days: int | None = None
) -> str:
    with local.sessions.begin() as session:
        plaintext, _ = accounts.create_token(
            session, "alice", projects, expires_days, actor=OPERATOR
        )
    return plaintext


def test_a_token_is_pky_and_43_url_safe_characters() -> None:
    token = generate_token()

    assert re.fullmatch(r"pky_[A-Za-z0-9_-]{43}", token)
    assert generate_token() != token
    assert hash_token(token) == hash_token(token)
    assert re.fullmatch(r"[0-9a-f]{64}", hash_token(token))


def test_only_the_hash_and_a_short_prefix_are_stored(local: LocalStore) -> None:
    token = new_token(local)

    with local.sessions() as session:
        stored = session.scalars(select(ApiToken)).one()
    assert stored.token_hash == hash_token(token)
    assert stored.prefix == token[:12]
    assert token not in (stored.token_hash, stored.prefix, stored.description)


def test_a_valid_token_is_found_with_its_user_and_scopes(local: LocalStore) -> None:
    token = new_token(local, projects=("Acme_Tools",))

    with local.sessions() as session:
        stored = verify_token(session, token)
        assert stored.user.name == "alice"
        assert [scope.project_name for scope in stored.scopes] == ["acme-tools"]


def test_an_unknown_token_is_refused(local: LocalStore) -> None:
    with local.sessions() as session, pytest.raises(AuthenticationFailed, match="does not know"):
        verify_token(session, generate_token())


def test_a_revoked_token_is_refused(local: LocalStore) -> None:
    token = new_token(local)
    with local.sessions.begin() as session:
        accounts.revoke_token(session, token[:12], actor=OPERATOR)

    with local.sessions() as session, pytest.raises(AuthenticationFailed, match="was revoked"):
        verify_token(session, token)


def test_an_expired_token_is_refused(local: LocalStore) -> None:
    token = new_token(local, expires_days=1)
    later = datetime.now(UTC) + timedelta(days=1, seconds=1)

    with local.sessions() as session:
        verify_token(session, token)
        with pytest.raises(AuthenticationFailed, match="expired on"):
            verify_token(session, token, now=later)


def test_the_token_of_a_disabled_user_is_refused(local: LocalStore) -> None:
    token = new_token(local)
    with local.sessions.begin() as session:
        accounts.disable_user(session, "alice", actor=OPERATOR)

    with local.sessions() as session, pytest.raises(AuthenticationFailed, match="disabled"):
        verify_token(session, token)


def test_last_use_is_written_at_most_once_a_minute(local: LocalStore) -> None:
    token = new_token(local)
    start = datetime.now(UTC)

    with local.sessions() as session:
        assert verify_token(session, token, now=start).last_used_at == start
        session.commit()
        soon = start + LAST_USED_GRANULARITY - timedelta(seconds=1)
        verify_token(session, token, now=soon)
        assert not session.dirty  # a read that changes nothing writes nothing
        later = start + LAST_USED_GRANULARITY
        assert verify_token(session, token, now=later).last_used_at == later


def _as_token(local: LocalStore, token: str) -> Identity:
    """The identity of someone signed in with `token` (the actor of what they create)."""
    with local.sessions() as session:
        stored = verify_token(session, token)
        return Identity(kind="token", name="alice", user_id=stored.user_id, token_id=stored.id)


def test_a_child_token_reaches_only_what_its_parent_reaches(local: LocalStore) -> None:
    parent = new_token(local, projects=("acme-tools", "acme-core"))
    actor = _as_token(local, parent)

    with local.sessions.begin() as session:
        with pytest.raises(InvalidRequest, match="cannot reach other-thing"):
            accounts.create_token(session, "alice", ["acme-core", "other-thing"], actor=actor)
        _, narrower = accounts.create_token(session, "alice", ["acme-core"], actor=actor)
        _, same = accounts.create_token(session, "alice", actor=actor)
        assert [scope.project_name for scope in narrower.scopes] == ["acme-core"]
        assert sorted(scope.project_name for scope in same.scopes) == ["acme-core", "acme-tools"]
        assert same.parent_id is not None


def test_a_child_token_dies_when_its_parent_expires_or_is_revoked(local: LocalStore) -> None:
    parent = new_token(local, expires_days=2)
    with local.sessions.begin() as session:
        with pytest.raises(InvalidRequest, match="cannot outlive"):
            accounts.create_token(session, "alice", (), 3, actor=_as_token(local, parent))
        child, row = accounts.create_token(session, "alice", actor=_as_token(local, parent))
        row.expires_at = None  # as if made before expiries were bounded: the chain still holds
    later = datetime.now(UTC) + timedelta(days=2, seconds=1)

    with local.sessions() as session:
        assert verify_token(session, child).parent_id is not None
        with pytest.raises(AuthenticationFailed, match=r"created with the token .* expired on"):
            verify_token(session, child, now=later)
    with local.sessions.begin() as session:
        accounts.revoke_token(session, parent[:12], actor=OPERATOR)
    with local.sessions() as session, pytest.raises(AuthenticationFailed, match="was revoked"):
        verify_token(session, child)
