"""Accounts the directory keeps (`publish/directory_accounts.py`), on SQLite and
PostgreSQL: made at a first sign-in, bound by the provider's `sub` (never by a
name), groups that follow the directory while hand-made memberships stay, admin
rights from the directory's admins group; and `person_from_claims`, which turns
verified claims into a person or a refusal."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from packyard.auth.identity import Identity
from packyard.auth.sso.person import MAX_GROUPS, Person, person_from_claims
from packyard.db.accounts import Group, GroupMember, User
from packyard.db.audit import AuditEvent
from packyard.errors import AuthenticationFailed
from packyard.publish import accounts, directory_accounts
from packyard.publish.audit import Origin
from packyard.publish.directory_accounts import packyard_groups
from packyard.settings import DirectoryGroupSettings, SsoProviderSettings
from tests.builders import LocalStore, make_local_store

OPERATOR = Identity(kind="cli", name="ops", is_admin=True)
BROWSER = Origin(client_ip="127.0.0.1", user_agent="test-browser")
GROUPS = DirectoryGroupSettings(
    map={"Accelerator Controls": "acc-controls", "Beam Ops": "Beam-Ops "},
    include=("team-*",),
    admins="packyard-admins",
)
ALICE = Person(
    provider="lab",
    subject="sub-alice",
    username="alice",
    email="alice@lab.example",
    full_name="Alice Liddell",
    groups=frozenset({"Accelerator Controls"}),
    manager="bob",
)


@pytest.fixture
def local(tmp_path: Path, database_url: str) -> Iterator[LocalStore]:
    store = make_local_store(tmp_path, database_url)
    yield store
    store.engine.dispose()


def sign_in(
    local: LocalStore,
    person: Person,
    settings: DirectoryGroupSettings = GROUPS,
    *,
    adopt: bool = False,
) -> Identity:
    with local.sessions.begin() as session:
        return directory_accounts.sign_in(
            session, person, settings, adopt_local_users=adopt, origin=BROWSER
        )


def user(local: LocalStore, name: str) -> User:
    with local.sessions() as session:
        return session.scalars(select(User).where(User.name == name)).one()


def memberships(local: LocalStore, name: str) -> dict[str, str]:
    """The user's groups -> the source of each membership."""
    with local.sessions() as session:
        rows = session.execute(
            select(Group.name, GroupMember.source)
            .join(GroupMember, GroupMember.group_id == Group.id)
            .join(User, User.id == GroupMember.user_id)
            .where(User.name == name)
        )
        return {group: source for group, source in rows}


def events(local: LocalStore, *actions: str) -> list[tuple[str, str, dict[str, Any]]]:
    """(action, actor, detail) of the audit events of `actions`, oldest first."""
    with local.sessions() as session:
        rows = session.scalars(
            select(AuditEvent).where(AuditEvent.action.in_(actions)).order_by(AuditEvent.id)
        )
        return [(row.action, row.actor, json.loads(row.detail)) for row in rows]


def directory_status(local: LocalStore, name: str) -> directory_accounts.DirectoryStatus | None:
    with local.sessions() as session:
        return directory_accounts.directory_status(session, name)


def as_user(session: Session, name: str) -> User:
    return session.scalars(select(User).where(User.name == name)).one()


def test_a_first_sign_in_makes_the_account_from_the_claims(local: LocalStore) -> None:
    before = datetime.now(UTC)
    identity = sign_in(local, ALICE)

    made = user(local, "alice")
    assert identity == Identity(
        kind="user",
        name="alice",
        user_id=made.id,
        is_admin=False,
        groups=frozenset({"acc-controls"}),
    )
    assert (made.directory, made.subject) == ("lab", "sub-alice")
    assert (made.email, made.full_name, made.manager) == (
        "alice@lab.example",
        "Alice Liddell",
        "bob",
    )
    assert made.password_hash is None
    assert not made.disabled
    assert not made.is_admin
    assert not made.groups_stale
    assert made.last_sign_in_at is not None
    assert before <= made.last_sign_in_at <= datetime.now(UTC)
    assert made.directory_checked_at is not None
    added = events(local, "user-add")
    assert added == [("user-add", "sso:lab", {"user": "alice", "via": "directory"})]
    with local.sessions() as session:
        event = session.scalars(select(AuditEvent).where(AuditEvent.action == "user-add")).one()
    assert (event.client_ip, event.user_agent) == ("127.0.0.1", "test-browser")


def test_the_same_sub_finds_the_same_account_under_its_first_name(local: LocalStore) -> None:
    first = sign_in(local, ALICE)
    with local.sessions.begin() as session:
        as_user(session, "alice").last_sign_in_at = datetime.now(UTC) - timedelta(days=3)

    # She was renamed at the provider: the account is hers by `sub`, and keeps its name.
    renamed = Person(
        provider="lab",
        subject="sub-alice",
        username="alice.smith",
        email="alice.smith@lab.example",
        full_name="Alice Smith",
        groups=ALICE.groups,
    )
    again = sign_in(local, renamed)

    assert again.name == "alice"
    assert again.user_id == first.user_id
    with local.sessions() as session:
        assert session.scalars(select(User.name)).all() == ["alice"]
    account = user(local, "alice")
    assert (account.email, account.full_name) == ("alice.smith@lab.example", "Alice Smith")
    assert account.manager == "bob"  # not said this time: kept
    assert account.last_sign_in_at is not None
    assert account.last_sign_in_at > datetime.now(UTC) - timedelta(minutes=1)
    assert [action for action, _, _ in events(local, "user-add")] == ["user-add"]


@pytest.mark.parametrize(
    ("provider", "subject"),
    [("lab", "sub-mallory"), ("other", "sub-alice")],
    ids=["another-sub-of-the-same-provider", "another-provider"],
)
def test_a_name_bound_to_another_person_is_refused(
    local: LocalStore, provider: str, subject: str
) -> None:
    sign_in(local, ALICE)
    impostor = Person(
        provider=provider,
        subject=subject,
        username="alice",
        email="mallory@evil.example",
        groups=frozenset({"packyard-admins"}),
    )

    with pytest.raises(AuthenticationFailed, match="belongs to another person of lab"):
        sign_in(local, impostor)

    account = user(local, "alice")
    assert (account.directory, account.subject) == ("lab", "sub-alice")
    assert account.email == "alice@lab.example"
    assert not account.is_admin
    assert memberships(local, "alice") == {"acc-controls": "directory"}
    with local.sessions() as session:
        assert session.scalars(select(User.name)).all() == ["alice"]
    assert events(local, "user-admin-grant", "user-adopt") == []


def test_a_local_account_is_taken_over_only_when_adoption_is_allowed(local: LocalStore) -> None:
    with local.sessions.begin() as session:
        accounts.add_user(session, "carol", "carol-local-pw", actor=OPERATOR)
        local_id = as_user(session, "carol").id
    carol = Person(
        provider="lab",
        subject="sub-carol",
        username="carol",
        email="c@lab.example",
        groups=frozenset(),
    )

    with pytest.raises(AuthenticationFailed, match="A local account named 'carol' exists here"):
        sign_in(local, carol)
    refused = user(local, "carol")
    assert (refused.directory, refused.subject, refused.email) == (None, None, None)
    assert refused.last_sign_in_at is None
    assert directory_status(local, "carol") is None  # a local account
    assert directory_status(local, "nobody") is None

    identity = sign_in(local, carol, adopt=True)

    assert identity.user_id == local_id
    adopted = user(local, "carol")
    assert (adopted.directory, adopted.subject) == ("lab", "sub-carol")
    assert adopted.email == "c@lab.example"
    assert adopted.password_hash is not None  # the account is taken over as it is
    status = directory_status(local, "carol")
    assert status is not None
    assert (status.provider, status.stale) == ("lab", False)
    assert events(local, "user-adopt") == [("user-adopt", "sso:lab", {"user": "carol"})]
    # Bound now: later sign-ins find it by `sub`, adoption allowed or not.
    assert sign_in(local, carol).user_id == local_id
    assert len(events(local, "user-adopt")) == 1


def test_a_disabled_account_is_refused(local: LocalStore) -> None:
    sign_in(local, ALICE)
    with local.sessions.begin() as session:
        accounts.disable_user(session, "alice", actor=OPERATOR)
    signed_in_at = user(local, "alice").last_sign_in_at

    with pytest.raises(AuthenticationFailed, match="'alice' is disabled here"):
        sign_in(local, ALICE)

    assert user(local, "alice").last_sign_in_at == signed_in_at


@pytest.mark.parametrize(
    ("names", "expected"),
    [
        (set(), set()),
        ({"Accelerator Controls"}, {"acc-controls"}),
        ({"Beam Ops"}, {"beam-ops"}),  # a mapped name is stripped and lower-cased
        ({"team-a", "Team-B", "team-"}, {"team-a", "team-b"}),  # globs ignore case
        ({"TEAM-A"}, {"team-a"}),  # an included name is lower-cased
        ({"team-a b", "team-$", "team-" + "x" * 100}, set()),  # not valid group names
        ({"accelerator controls", "Accelerator"}, set()),  # `map` is exact
        ({"packyard-admins", "everyone"}, set()),  # neither mapped nor included
    ],
)
def test_packyard_groups(names: set[str], expected: set[str]) -> None:
    assert packyard_groups(names, GROUPS) == expected


def test_packyard_groups_skips_an_invalid_map_target_and_map_wins_over_include() -> None:
    settings = DirectoryGroupSettings(
        map={"Ops Team": "ops team", "team-x": "x-men", "Empty": "  "}, include=("team-*",)
    )
    assert packyard_groups(["Ops Team", "team-x", "Empty", "team-y"], settings) == {
        "x-men",
        "team-y",
    }
    assert packyard_groups(["anything"], DirectoryGroupSettings()) == frozenset()


def test_directory_groups_become_packyard_groups_made_as_needed(local: LocalStore) -> None:
    with local.sessions.begin() as session:
        accounts.create_group(session, "acc-controls", actor=OPERATOR)
    person = Person(
        provider="lab",
        subject="sub-alice",
        username="alice",
        groups=frozenset({"Accelerator Controls", "team-a", "team-a b", "Unmapped"}),
    )

    identity = sign_in(local, person)

    assert identity.groups == {"acc-controls", "team-a"}
    assert memberships(local, "alice") == {"acc-controls": "directory", "team-a": "directory"}
    with local.sessions() as session:
        sources = {
            name: source for name, source in session.execute(select(Group.name, Group.source))
        }
    assert sources == {"acc-controls": "local", "team-a": "directory"}
    assert events(local, "group-add", "group-member-add") == [
        ("group-add", "cli:ops", {"group": "acc-controls"}),
        (
            "group-member-add",
            "sso:lab",
            {"group": "acc-controls", "user": "alice", "via": "directory"},
        ),
        ("group-add", "sso:lab", {"group": "team-a", "via": "directory"}),
        ("group-member-add", "sso:lab", {"group": "team-a", "user": "alice", "via": "directory"}),
    ]


def test_directory_memberships_follow_it_and_hand_made_ones_stay(local: LocalStore) -> None:
    sign_in(local, ALICE)
    with local.sessions.begin() as session:
        for group in ("devs", "team-b"):
            accounts.create_group(session, group, actor=OPERATOR)
            accounts.add_member(session, group, "alice", actor=OPERATOR)

    # The directory lists team-b too: the admin's membership stays theirs.
    listed = frozenset({"Accelerator Controls", "team-a", "team-b"})
    assert sign_in(local, Person("lab", "sub-alice", "alice", groups=listed)).groups == {
        "acc-controls",
        "team-a",
        "team-b",
        "devs",
    }
    assert memberships(local, "alice") == {
        "acc-controls": "directory",
        "team-a": "directory",
        "team-b": "local",
        "devs": "local",
    }

    # The directory drops everything: only what it made goes.
    identity = sign_in(local, Person("lab", "sub-alice", "alice", groups=frozenset()))

    assert identity.groups == {"team-b", "devs"}
    assert memberships(local, "alice") == {"team-b": "local", "devs": "local"}
    removed = events(local, "group-member-remove")
    assert sorted(detail["group"] for _, _, detail in removed) == ["acc-controls", "team-a"]
    assert {(actor, detail["via"]) for _, actor, detail in removed} == {("sso:lab", "directory")}
    with local.sessions() as session:  # the groups themselves stay
        assert set(session.scalars(select(Group.name))) == {
            "acc-controls",
            "team-a",
            "team-b",
            "devs",
        }


def test_unknown_groups_change_no_membership_and_are_marked_stale(local: LocalStore) -> None:
    known = frozenset({"Accelerator Controls", "packyard-admins"})
    sign_in(local, Person("lab", "sub-alice", "alice", groups=known))
    checked_at = user(local, "alice").directory_checked_at
    with local.sessions.begin() as session:
        accounts.create_group(session, "devs", actor=OPERATOR)
        accounts.add_member(session, "devs", "alice", actor=OPERATOR)
    before = events(local, "group-member-add", "group-member-remove", "user-admin-revoke")

    # The directory is down: groups not known, e-mail still from the token.
    down = Person(
        "lab", "sub-alice", "alice", email="new@lab.example", groups=None, directory_down=True
    )
    identity = sign_in(local, down)

    assert identity.groups == {"acc-controls", "devs"}
    assert identity.is_admin
    assert memberships(local, "alice") == {"acc-controls": "directory", "devs": "local"}
    account = user(local, "alice")
    assert account.groups_stale
    assert account.directory_checked_at == checked_at
    assert account.email == "new@lab.example"
    after = events(local, "group-member-add", "group-member-remove", "user-admin-revoke")
    assert after == before

    status = directory_status(local, "alice")
    assert status is not None
    assert (status.provider, status.checked_at, status.stale) == ("lab", checked_at, True)

    # Known again: no longer stale.
    sign_in(local, ALICE)
    assert not user(local, "alice").groups_stale

    # Nothing keeps groups (no groups claim, no LDAP): none taken, none stale.
    assert sign_in(local, Person("lab", "sub-alice", "alice", groups=None)).groups == {
        "acc-controls",
        "devs",
    }
    assert not user(local, "alice").groups_stale

    # A first sign-in with the directory down: an account without groups, stale.
    dana = Person("lab", "sub-dana", "dana", groups=None, directory_down=True)
    assert sign_in(local, dana).groups == frozenset()
    made = user(local, "dana")
    assert made.groups_stale
    assert made.directory_checked_at is None


def test_the_admins_group_grants_and_revokes_admin_rights(local: LocalStore) -> None:
    admins = frozenset({"packyard-admins", "Accelerator Controls"})
    granted = sign_in(local, Person("lab", "sub-bob", "bob", groups=admins))
    assert granted.is_admin
    assert user(local, "bob").is_admin

    # Unknown groups take nothing away.
    assert sign_in(local, Person("lab", "sub-bob", "bob", groups=None)).is_admin

    revoked = sign_in(local, Person("lab", "sub-bob", "bob", groups=frozenset()))
    assert not revoked.is_admin
    assert not user(local, "bob").is_admin
    assert events(local, "user-admin-grant", "user-admin-revoke") == [
        ("user-admin-grant", "sso:lab", {"user": "bob", "via": "directory"}),
        ("user-admin-revoke", "sso:lab", {"user": "bob", "via": "directory"}),
    ]

    # Without an admins group, admin rights are left to admins.
    unset = DirectoryGroupSettings(map={"Accelerator Controls": "acc-controls"})
    with local.sessions.begin() as session:
        as_user(session, "bob").is_admin = True
    assert sign_in(local, Person("lab", "sub-bob", "bob", groups=frozenset()), unset).is_admin
    assert len(events(local, "user-admin-grant", "user-admin-revoke")) == 2


# person_from_claims: pure, no database.

LAB = SsoProviderSettings(name="lab", issuer="http://127.0.0.1:9/realm", client_id="packyard")


def claims(**overrides: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "sub": "sub-alice",
        "preferred_username": "Alice",
        "email": "alice@lab.example",
        "name": "Alice Liddell",
        "groups": ["Accelerator Controls", "everyone"],
    }
    values.update(overrides)
    return {key: value for key, value in values.items() if value is not None}


def test_a_person_from_good_claims() -> None:
    assert person_from_claims(LAB, claims()) == Person(
        provider="lab",
        subject="sub-alice",
        username="alice",
        email="alice@lab.example",
        full_name="Alice Liddell",
        groups=frozenset({"Accelerator Controls", "everyone"}),
        manager=None,
        claimed_groups=frozenset({"Accelerator Controls", "everyone"}),
    )


@pytest.mark.parametrize("value", [None, "", "   ", 42, ["alice"]])
def test_a_missing_user_claim_is_refused(value: object) -> None:
    with pytest.raises(AuthenticationFailed, match="has no 'preferred_username' claim"):
        person_from_claims(LAB, claims(preferred_username=value))


def test_another_user_claim_is_read_when_configured() -> None:
    settings = LAB.model_copy(update={"user_claim": "uid"})
    assert person_from_claims(settings, claims(uid="a.liddell")).username == "a.liddell"
    with pytest.raises(AuthenticationFailed, match="has no 'uid' claim"):
        person_from_claims(settings, claims())


@pytest.mark.parametrize(
    "name",
    [
        "*)(uid=*",
        "admin)(|(uid=*",
        "*",
        "alice\\",
        "alice\x00",
        "al ice",
        "alice@lab.example",  # no strip_domain
        "-alice",
        "a" * 101,
        "ålice",
    ],
)
def test_a_name_that_is_no_user_name_is_refused(name: str) -> None:
    with pytest.raises(AuthenticationFailed, match="is not a user name packyard accepts"):
        person_from_claims(LAB, claims(preferred_username=name))


def test_strip_domain_takes_only_that_domain_off() -> None:
    entra = LAB.model_copy(update={"strip_domain": "Lab.Example"})
    assert person_from_claims(entra, claims(preferred_username="Alice@LAB.example")).username == (
        "alice"
    )
    assert person_from_claims(entra, claims(preferred_username="bob")).username == "bob"
    for other in ("alice@other.example", "alice@sub.lab.example.evil", "@lab.example"):
        with pytest.raises(AuthenticationFailed, match="not a user name"):
            person_from_claims(entra, claims(preferred_username=other))


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("Accelerator Controls", {"Accelerator Controls"}),  # one group, not a list
        (42, set()),
        ({"not": "a list"}, set()),
        (["team-a", 7, None, "", ["nested"], "team-b"], {"team-a", "team-b"}),
        ([], set()),
    ],
)
def test_a_groups_claim_that_is_not_a_list_of_names(value: object, expected: set[str]) -> None:
    assert person_from_claims(LAB, claims(groups=value)).groups == frozenset(expected)


def test_groups_are_unknown_without_the_claim_or_its_setting() -> None:
    assert person_from_claims(LAB, claims(groups=None)).groups is None
    no_claim = LAB.model_copy(update={"groups_claim": None})
    assert person_from_claims(no_claim, claims()).groups is None


def test_a_long_groups_claim_is_cut() -> None:
    many = [f"g{number}" for number in range(MAX_GROUPS + 50)]
    groups = person_from_claims(LAB, claims(groups=many)).groups
    assert groups is not None
    assert len(groups) == MAX_GROUPS


@pytest.mark.parametrize(
    ("value", "expected"),
    [("Bob", "bob"), ("  carol  ", "carol"), ("bob smith", None), ("*)(uid=*", None), (3, None)],
)
def test_the_manager_claim(value: object, expected: str | None) -> None:
    settings = LAB.model_copy(update={"manager_claim": "manager"})
    assert person_from_claims(settings, claims(manager=value)).manager == expected
    # Not configured: the claim is not read.
    assert person_from_claims(LAB, claims(manager=value)).manager is None


def test_blank_or_odd_e_mail_and_name_are_unknown() -> None:
    person = person_from_claims(LAB, claims(email="  ", name=["Alice"], sub=12345))
    assert (person.email, person.full_name) == (None, None)
    assert person.subject == "12345"
    long_name = person_from_claims(LAB, claims(name="x" * 600)).full_name
    assert long_name == "x" * 500
