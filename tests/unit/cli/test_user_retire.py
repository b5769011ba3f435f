"""`packyard user disable` and `packyard user retire`, as an operator runs them (click's
runner): the projects a user owned alone are handed over and listed."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import select

from packyard.auth.identity import Identity
from packyard.cli import main
from packyard.db.accounts import User
from packyard.db.audit import AuditEvent
from packyard.db.models import Project
from packyard.publish import accounts, ownership
from tests.builders import LocalStore, make_local_store

OPERATOR = Identity(kind="cli", name="tests", is_admin=True)


@pytest.fixture
def store(tmp_path: Path) -> LocalStore:
    """alice (manager: mgr) owns solo alone; bob and alice own shared; group ops is carol.
    The configuration names ops as the fallback group."""
    local = make_local_store(tmp_path / "data")
    with local.sessions.begin() as session:
        for name in ("alice", "bob", "carol", "mgr"):
            accounts.add_user(session, name, None, actor=OPERATOR)
        accounts.create_group(session, "ops", actor=OPERATOR)
        accounts.add_member(session, "ops", "carol", actor=OPERATOR)
        session.scalars(select(User).where(User.name == "alice")).one().manager = "mgr"
        for project in ("solo", "shared"):
            session.add(Project(name=project, display_name=project, created_at=datetime.now(UTC)))
        session.flush()
        ownership.add_role(session, OPERATOR, "solo", "owner", user="alice")
        ownership.add_role(session, OPERATOR, "shared", "owner", user="alice")
        ownership.add_role(session, OPERATOR, "shared", "owner", user="bob")
    (tmp_path / "packyard.toml").write_text('[auth.succession]\nfallback_group = "ops"\n')
    return local


def packyard(tmp_path: Path, *args: str) -> Result:
    runner = CliRunner(env={"PACKYARD_CONFIG": None, "PACKYARD_DATABASE_URL": None})
    config = ["--config", str(tmp_path / "packyard.toml"), "--data-dir", str(tmp_path / "data")]
    return runner.invoke(main, [*args, *config])


def owners(store: LocalStore, project: str) -> list[str]:
    with store.sessions() as session:
        return sorted(r.name for r in ownership.list_roles(session, project) if r.role == "owner")


def test_disabling_hands_the_projects_owned_alone_to_the_manager(
    tmp_path: Path, store: LocalStore
) -> None:
    result = packyard(tmp_path, "user", "disable", "Alice")
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == ["Disabled user 'alice'.", "solo: handed over to mgr"]
    assert owners(store, "solo") == ["alice", "mgr"]
    assert owners(store, "shared") == ["alice", "bob"]


def test_retire_to_a_user_or_a_group(tmp_path: Path, store: LocalStore) -> None:
    to_bob = packyard(tmp_path, "user", "retire", "alice", "--to", "bob")
    assert to_bob.exit_code == 0, to_bob.output
    assert to_bob.stdout.splitlines() == ["Retired user 'alice'.", "solo: handed over to bob"]
    with store.sessions.begin() as session:
        ownership.remove_role(session, OPERATOR, "solo", user="bob")
    to_ops = packyard(tmp_path, "user", "retire", "alice", "--to", "group:ops")
    assert to_ops.exit_code == 0, to_ops.output
    assert to_ops.stdout.splitlines()[1:] == ["solo: handed over to group:ops"]
    assert owners(store, "solo") == ["alice", "ops"]
    with store.sessions() as session:
        retired = session.scalars(select(AuditEvent).where(AuditEvent.action == "user-retire"))
        assert [json.loads(e.detail)["to"] for e in retired] == ["bob", "group:ops"]


def test_retire_without_a_successor_falls_back_to_the_configured_group(
    tmp_path: Path, store: LocalStore
) -> None:
    with store.sessions.begin() as session:
        session.scalars(select(User).where(User.name == "alice")).one().manager = None
    result = packyard(tmp_path, "user", "retire", "alice")
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[1:] == ["solo: handed over to group:ops"]


def test_projects_with_no_successor_are_listed_as_orphaned(
    tmp_path: Path, store: LocalStore
) -> None:
    (tmp_path / "packyard.toml").write_text("")
    with store.sessions.begin() as session:
        session.scalars(select(User).where(User.name == "alice")).one().manager = "gone"
    result = packyard(tmp_path, "user", "disable", "alice")
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[1] == (
        "solo: no owner now (their manager 'gone' is not a user here, and no "
        "[auth.succession] fallback_group is set); name one with "
        "`packyard owner add solo --user NAME`"
    )
    nothing = packyard(tmp_path, "user", "disable", "carol")
    assert nothing.stdout.splitlines()[1] == "No project was left without an owner."


@pytest.mark.parametrize(
    ("to", "message"),
    [
        ("alice", "error: 'alice' cannot be their own successor"),
        ("nobody", "error: There is no user or group named 'nobody'. Looked in the store at"),
    ],
)
def test_retire_to_oneself_or_to_no_one_known_is_refused(
    tmp_path: Path, store: LocalStore, to: str, message: str
) -> None:
    result = packyard(tmp_path, "user", "retire", "alice", "--to", to)
    assert result.exit_code == 1
    assert result.stderr.startswith(message)
    with store.sessions() as session:
        assert not session.scalars(select(User).where(User.name == "alice")).one().disabled
