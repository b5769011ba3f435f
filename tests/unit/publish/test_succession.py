"""No orphans: the projects a leaver owned alone go to a successor, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from packyard.auth.identity import Identity
from packyard.db.accounts import User
from packyard.db.audit import AuditEvent
from packyard.db.handovers import Handover
from packyard.db.models import Project
from packyard.errors import InvalidRequest, NotFound
from packyard.publish import accounts, ownership, succession
from packyard.publish.audit import COMMAND_LINE
from packyard.publish.succession import HandoverResult
from tests.builders import LocalStore, make_local_store

OPERATOR = Identity(kind="cli", name="ops", is_admin=True)
# project -> its owners (`group:` for a group); alice is the leaver.
OWNERS = {
    "solo": ["alice"],
    "co-owned": ["alice", "bob"],
    "with-group": ["alice", "group:devs"],
    "lonely-group": ["alice", "group:alices"],
    "group-only": ["group:alices"],
    "bobs": ["bob"],
}


@pytest.fixture
def local(tmp_path: Path, database_url: str) -> LocalStore:
    """alice (manager: mgr) owns the projects of OWNERS; carol maintains solo;
    group devs is bob, group alices is alice alone, group ops is carol."""
    local = make_local_store(tmp_path, database_url)
    with local.sessions.begin() as session:
        for name in ("alice", "bob", "carol", "mgr"):
            accounts.add_user(session, name, None, actor=OPERATOR)
        for group, member in (("devs", "bob"), ("alices", "alice"), ("ops", "carol")):
            accounts.create_group(session, group, actor=OPERATOR)
            accounts.add_member(session, group, member, actor=OPERATOR)
        _user(session, "alice").manager = "mgr"
        for project, owners in OWNERS.items():
            session.add(Project(name=project, display_name=project, created_at=datetime.now(UTC)))
            session.flush()
            for owner in owners:
                kind, _, name = owner.rpartition(":")
                if kind == "group":
                    ownership.add_role(session, OPERATOR, project, "owner", group=name)
                else:
                    ownership.add_role(session, OPERATOR, project, "owner", user=name)
        ownership.add_role(session, OPERATOR, "solo", "maintainer", user="carol")
    return local


def _user(session: Session, name: str) -> User:
    return session.scalars(select(User).where(User.name == name)).one()


def disable(local: LocalStore, name: str, fallback: str | None = None) -> list[HandoverResult]:
    with local.sessions.begin() as session:
        return succession.disable(
            session, name, fallback_group=fallback, actor=OPERATOR, origin=COMMAND_LINE
        )


def retire(local: LocalStore, name: str, to: str | None) -> list[HandoverResult]:
    with local.sessions.begin() as session:
        return succession.retire(
            session, name, to=to, fallback_group="ops", actor=OPERATOR, origin=COMMAND_LINE
        )


def owners(local: LocalStore, project: str) -> list[str]:
    with local.sessions() as session:
        roles = ownership.list_roles(session, project)
    return sorted(
        (r.name if r.kind == "user" else f"group:{r.name}") + (" (disabled)" * r.disabled)
        for r in roles
        if r.role == "owner"
    )


def events(local: LocalStore, action: str) -> list[tuple[str | None, dict[str, object]]]:
    with local.sessions() as session:
        rows = session.scalars(
            select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.id)
        )
        return [(row.project_name, json.loads(row.detail)) for row in rows]


def set_manager(local: LocalStore, manager: str | None) -> None:
    with local.sessions.begin() as session:
        _user(session, "alice").manager = manager


def test_projects_owned_alone_go_to_the_manager_and_the_rest_stay(local: LocalStore) -> None:
    results = disable(local, "alice")
    assert results == [
        HandoverResult("lonely-group", to_user="mgr"),
        HandoverResult("solo", to_user="mgr"),
    ]
    # alice's own row is kept for the record; the other owners are untouched.
    assert owners(local, "solo") == ["alice (disabled)", "mgr"]
    assert owners(local, "co-owned") == ["alice (disabled)", "bob"]
    assert owners(local, "with-group") == ["alice (disabled)", "group:devs"]
    assert owners(local, "group-only") == ["group:alices"]
    assert events(local, "project-handover") == [
        (
            project,
            {"from_user": "alice", "to": "mgr", "reason": "disabled", "via": "manager"},
        )
        for project in ("lonely-group", "solo")
    ]
    with local.sessions() as session:
        rows = session.scalars(select(Handover).order_by(Handover.project_name))
        assert [(h.project_name, h.to_user, h.to_group, h.reason, h.actor) for h in rows] == [
            ("lonely-group", "mgr", None, "disabled", "cli:ops"),
            ("solo", "mgr", None, "disabled", "cli:ops"),
        ]
        assert "solo" not in ownership.orphaned_projects(session)


@pytest.mark.parametrize("manager", [None, "nobody", "bob-disabled", "alice"])
def test_without_a_manager_who_can_take_them_the_fallback_group_does(
    local: LocalStore, manager: str | None
) -> None:
    if manager == "bob-disabled":
        disable(local, "bob")
        manager = "bob"
    set_manager(local, manager)
    results = disable(local, "alice", fallback="ops")
    assert HandoverResult("solo", to_group="ops") in results
    assert owners(local, "solo") == ["alice (disabled)", "group:ops"]
    assert events(local, "project-handover")[-1][1]["via"] == "fallback-group"


@pytest.mark.parametrize(
    ("fallback", "why"),
    [
        (None, "'alice' has no manager known, and no [auth.succession] fallback_group is set"),
        ("nope", "'alice' has no manager known, and the fallback group 'nope' does not exist"),
        ("alices", "'alice' has no manager known, and the fallback group 'alices' has no enabled"),
    ],
)
def test_with_no_successor_the_project_stays_orphaned_and_that_is_audited(
    local: LocalStore, fallback: str | None, why: str
) -> None:
    set_manager(local, None)
    results = disable(local, "alice", fallback=fallback)
    assert [(r.project, r.successor) for r in results] == [("lonely-group", None), ("solo", None)]
    assert all(r.why is not None and r.why.startswith(why) for r in results)
    assert owners(local, "solo") == ["alice (disabled)"]
    orphaned = events(local, "project-orphaned")
    assert [project for project, _ in orphaned] == ["lonely-group", "solo"]
    assert orphaned[0][1]["reason"] == "disabled"
    assert str(orphaned[0][1]["why"]).startswith(why)
    with local.sessions() as session:
        assert session.scalars(select(Handover)).all() == []
        assert "solo" in ownership.orphaned_projects(session)


def test_a_user_with_nothing_left_alone_hands_nothing_over(local: LocalStore) -> None:
    with local.sessions.begin() as session:
        ownership.add_role(session, OPERATOR, "bobs", "owner", user="carol")
    assert disable(local, "bob") == []
    assert events(local, "project-handover") == events(local, "project-orphaned") == []


def test_an_inactive_user_keeps_their_account_and_role(local: LocalStore) -> None:
    with local.sessions.begin() as session:
        alice = _user(session, "alice")
        results = succession.hand_over(
            session,
            alice,
            reason="inactive",
            fallback_group=None,
            actor=OPERATOR,
            origin=COMMAND_LINE,
        )
        assert [r.successor for r in results] == ["mgr", "mgr"]
        assert not alice.disabled
    assert owners(local, "solo") == ["alice", "mgr"]
    with local.sessions.begin() as session:  # once handed over, never again
        again = succession.hand_over(
            session,
            _user(session, "alice"),
            reason="inactive",
            fallback_group=None,
            actor=OPERATOR,
            origin=COMMAND_LINE,
        )
        assert again == []


def test_retire_to_a_named_user_promotes_their_maintainer_role(local: LocalStore) -> None:
    results = retire(local, "alice", "carol")
    assert [(r.project, r.successor) for r in results] == [
        ("lonely-group", "carol"),
        ("solo", "carol"),
    ]
    assert owners(local, "solo") == ["alice (disabled)", "carol"]
    with local.sessions() as session:
        solo = ownership.list_roles(session, "solo")
        assert [(r.role, r.name) for r in solo] == [("owner", "alice"), ("owner", "carol")]
        assert _user(session, "alice").disabled
    assert events(local, "user-disable")[-1][1] == {"user": "alice"}
    assert events(local, "user-retire") == [
        (
            None,
            {
                "user": "alice",
                "to": "carol",
                "projects": {"lonely-group": "carol", "solo": "carol"},
            },
        )
    ]
    assert {detail["reason"] for _, detail in events(local, "project-handover")} == {"retired"}


def test_retire_to_a_group_and_a_disabled_user_can_be_retired(local: LocalStore) -> None:
    disable(local, "alice")  # to mgr, as in the first test
    with local.sessions.begin() as session:
        ownership.remove_role(session, OPERATOR, "solo", user="mgr")
    results = retire(local, "alice", "group:devs")
    assert results == [HandoverResult("solo", to_group="devs")]
    assert owners(local, "solo") == ["alice (disabled)", "group:devs"]
    assert len(events(local, "user-disable")) == 1


def test_retire_without_a_successor_uses_the_manager_then_the_fallback(local: LocalStore) -> None:
    set_manager(local, "nobody")
    results = retire(local, "alice", None)
    assert {r.successor for r in results} == {"group:ops"}


@pytest.mark.parametrize(
    ("name", "to", "error", "message"),
    [
        ("alice", "alice", InvalidRequest, "'alice' cannot be their own successor"),
        ("alice", "user:Alice", InvalidRequest, "'alice' cannot be their own successor"),
        ("alice", "nobody", NotFound, "There is no user or group named 'nobody'."),
        ("alice", "group:nobody", NotFound, "There is no group named 'nobody'."),
        ("alice", "group:alices", InvalidRequest, "The group 'alices' has no enabled member"),
        ("nobody", "bob", NotFound, "There is no user named 'nobody'."),
    ],
)
def test_retire_refuses_a_successor_who_cannot_take_over(
    local: LocalStore, name: str, to: str, error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message.replace("(", r"\(")):
        retire(local, name, to)
    with local.sessions() as session:
        assert not _user(session, "alice").disabled


def test_retire_refuses_a_disabled_successor(local: LocalStore) -> None:
    disable(local, "bob")
    with pytest.raises(InvalidRequest, match="The user 'bob' is disabled"):
        retire(local, "alice", "bob")


def test_notices_reach_the_successor_and_group_members_until_dismissed(
    local: LocalStore,
) -> None:
    retire(local, "alice", "group:ops")
    with local.sessions.begin() as session:
        accounts.add_member(session, "ops", "bob", actor=OPERATOR)
    with local.sessions() as session:
        for reader in ("carol", "bob"):
            seen = succession.notices(session, reader)
            assert [(n.project, n.from_user, n.group, n.reason) for n in seen] == [
                ("solo", "alice", "ops", "retired"),
                ("lonely-group", "alice", "ops", "retired"),
            ]
        assert succession.notices(session, "mgr") == []
        first = succession.notices(session, "carol")[0]
    with local.sessions.begin() as session, pytest.raises(NotFound, match="no such notice"):
        succession.dismiss(session, "mgr", first.id)
    with local.sessions.begin() as session:
        succession.dismiss(session, "bob", first.id)
        succession.dismiss(session, "bob", first.id)  # twice: nothing more
    with local.sessions() as session:
        assert [n.project for n in succession.notices(session, "carol")] == ["lonely-group"]


def test_direct_notices_are_the_successors_only(local: LocalStore) -> None:
    disable(local, "alice")
    with local.sessions() as session:
        assert {n.project for n in succession.notices(session, "MGR")} == {"solo", "lonely-group"}
        assert all(n.group is None for n in succession.notices(session, "mgr"))
        assert succession.notices(session, "bob") == []


def test_an_unknown_reason_is_refused(local: LocalStore) -> None:
    with local.sessions() as session, pytest.raises(InvalidRequest, match="Unknown hand-over"):
        succession.hand_over(
            session,
            _user(session, "alice"),
            reason="bored",
            fallback_group=None,
            actor=OPERATOR,
            origin=COMMAND_LINE,
        )
