"""Curation rules changed at runtime: admins only, validated, audited, with a serial bump;
on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from packyard.auth.identity import Identity
from packyard.db.accounts import User
from packyard.db.audit import AuditEvent
from packyard.db.policies import UpstreamCooldown, UpstreamRule
from packyard.db.serial import read_serial
from packyard.errors import InvalidRequest, NotFound, PermissionDenied
from packyard.publish import accounts
from packyard.publish.cooldown_exemptions import exempt, unexempt
from packyard.publish.policies import (
    add_rule,
    list_rules,
    remove_rule,
    set_cooldown,
)
from packyard.settings import UpstreamSettings
from tests.builders import LocalStore, make_local_store

OPERATOR = Identity(kind="cli", name="root", is_admin=True)
PYPI = UpstreamSettings(url="https://pypi.test/simple/", name="pypi", deny=("Evil_*",))
MIRROR = UpstreamSettings(url="https://mirror.test/simple/", cooldown_days=7)
UPSTREAMS = (PYPI, MIRROR)


@pytest.fixture
def local(tmp_path: Path, database_url: str) -> LocalStore:
    """alice is an admin, bob is not."""
    local = make_local_store(tmp_path, database_url)
    with local.sessions.begin() as session:
        accounts.add_user(session, "alice", None, admin=True, actor=OPERATOR)
        accounts.add_user(session, "bob", None, actor=OPERATOR)
    return local


def user(session: Session, name: str, projects: frozenset[str] | None = None) -> Identity:
    found = session.scalars(select(User).where(User.name == name)).one()
    return Identity(
        kind="user", name=name, user_id=found.id, is_admin=found.is_admin, projects=projects
    )


def serial(local: LocalStore) -> int:
    with local.sessions() as session:
        return read_serial(session)


def events(local: LocalStore) -> list[tuple[str, str, dict[str, object]]]:
    with local.sessions() as session:
        rows = session.scalars(select(AuditEvent).order_by(AuditEvent.id)).all()
        return [
            (row.action, row.outcome, json.loads(row.detail))
            for row in rows
            if row.action.startswith("policy-")
        ]


def stored_rules(local: LocalStore) -> list[tuple[str, str, str, str]]:
    with local.sessions() as session:
        rows = session.scalars(select(UpstreamRule).order_by(UpstreamRule.id)).all()
        return [(row.upstream, row.kind, row.glob, row.added_by) for row in rows]


def test_an_admin_adds_a_rule_stored_normalised_audited_and_with_a_serial_bump(
    local: LocalStore,
) -> None:
    before = serial(local)
    with local.sessions.begin() as session:
        rule, created = add_rule(
            session, user(session, "alice"), "pypi", "deny", "Public_Lib.*", upstreams=UPSTREAMS
        )

    assert (rule.upstream, rule.kind, rule.glob, rule.origin, created) == (
        "pypi",
        "deny",
        "public-lib-*",
        "database",
        True,
    )
    assert stored_rules(local) == [("pypi", "deny", "public-lib-*", "user:alice")]
    assert serial(local) == before + 1
    assert events(local) == [
        ("policy-deny", "ok", {"upstream": "pypi", "glob": "public-lib-*", "new": True})
    ]


def test_adding_a_stored_rule_again_changes_nothing(local: LocalStore) -> None:
    with local.sessions.begin() as session:
        add_rule(session, OPERATOR, "pypi", "allow", "acme-*", upstreams=UPSTREAMS)
    before = serial(local)
    with local.sessions.begin() as session:
        _, created = add_rule(session, OPERATOR, "pypi", "allow", "ACME_*", upstreams=UPSTREAMS)

    assert created is False
    assert serial(local) == before
    assert stored_rules(local) == [("pypi", "allow", "acme-*", "cli:root")]


def test_an_upstream_is_named_by_its_label_or_its_url(local: LocalStore) -> None:
    with local.sessions.begin() as session:
        by_url, _ = add_rule(
            session, OPERATOR, "https://pypi.test/simple", "deny", "x", upstreams=UPSTREAMS
        )
        unnamed, _ = add_rule(session, OPERATOR, MIRROR.label, "deny", "y", upstreams=UPSTREAMS)
    assert by_url.upstream == "pypi"
    assert unnamed.upstream == "https://mirror.test/simple/"


def test_an_unknown_upstream_is_refused_naming_the_configured_ones(local: LocalStore) -> None:
    with local.sessions.begin() as session, pytest.raises(InvalidRequest) as refused:
        add_rule(session, OPERATOR, "pypy", "deny", "x", upstreams=UPSTREAMS)
    assert "'pypy'" in refused.value.message
    assert "'pypi', 'https://mirror.test/simple/'" in refused.value.message
    with local.sessions.begin() as session, pytest.raises(InvalidRequest, match="no upstream"):
        set_cooldown(session, OPERATOR, "pypi", 1, upstreams=())
    assert stored_rules(local) == []


@pytest.mark.parametrize(
    "glob", ["", "  ", "acme/*", "acme-[", "a]b", "[]", "ü*", "a b", "x" * 256]
)
def test_a_bad_glob_is_refused(local: LocalStore, glob: str) -> None:
    with local.sessions.begin() as session, pytest.raises(InvalidRequest, match="not a valid"):
        add_rule(session, OPERATOR, "pypi", "deny", glob, upstreams=UPSTREAMS)


@pytest.mark.parametrize(
    ("glob", "stored"),
    [("*", "*"), ("torch?", "torch?"), ("Py[A-C]_*", "py[a-c]-*"), ("[!x]y", "[!x]y")],
)
def test_good_globs_are_kept_normalised(local: LocalStore, glob: str, stored: str) -> None:
    with local.sessions.begin() as session:
        rule, _ = add_rule(session, OPERATOR, "pypi", "allow", glob, upstreams=UPSTREAMS)
    assert rule.glob == stored


def test_a_rule_kind_is_allow_or_deny(local: LocalStore) -> None:
    with local.sessions.begin() as session, pytest.raises(InvalidRequest, match="'block'"):
        add_rule(session, OPERATOR, "pypi", "block", "x", upstreams=UPSTREAMS)


@pytest.mark.parametrize("credential", ["not-admin", "scoped-admin-token"])
def test_only_an_unrestricted_admin_may_change_rules(local: LocalStore, credential: str) -> None:
    with local.sessions() as session:
        who = (
            user(session, "bob")
            if credential == "not-admin"
            else user(session, "alice", projects=frozenset({"acme-tools"}))
        )
    before = serial(local)
    changes: list[Callable[[Session], object]] = [
        lambda s: add_rule(s, who, "pypi", "deny", "x", upstreams=UPSTREAMS),
        lambda s: remove_rule(s, who, "pypi", "deny", "x", upstreams=UPSTREAMS),
        lambda s: set_cooldown(s, who, "pypi", 3, upstreams=UPSTREAMS),
    ]
    for change in changes:
        with local.sessions.begin() as session, pytest.raises(PermissionDenied, match="admin"):
            change(session)
    assert (stored_rules(local), serial(local)) == ([], before)


def test_removing_a_rule_deletes_it_with_a_serial_bump(local: LocalStore) -> None:
    with local.sessions.begin() as session:
        add_rule(session, OPERATOR, "pypi", "deny", "public-*", upstreams=UPSTREAMS)
    before = serial(local)
    with local.sessions.begin() as session:
        removed = remove_rule(session, OPERATOR, "pypi", "deny", "Public_*", upstreams=UPSTREAMS)

    assert (removed.upstream, removed.kind, removed.glob) == ("pypi", "deny", "public-*")
    assert stored_rules(local) == []
    assert serial(local) == before + 1
    assert events(local)[-1] == (
        "policy-remove",
        "ok",
        {"upstream": "pypi", "kind": "deny", "glob": "public-*"},
    )


def test_removing_a_missing_or_configured_rule_says_why(local: LocalStore) -> None:
    with local.sessions.begin() as session, pytest.raises(NotFound, match="no stored allow"):
        remove_rule(session, OPERATOR, "pypi", "allow", "public-*", upstreams=UPSTREAMS)
    with (
        local.sessions.begin() as session,
        pytest.raises(InvalidRequest, match="configuration file"),
    ):
        remove_rule(session, OPERATOR, "pypi", "deny", "evil-*", upstreams=UPSTREAMS)


def test_rules_of_an_upstream_no_longer_configured_are_listed_and_removable(
    local: LocalStore,
) -> None:
    with local.sessions.begin() as session:
        add_rule(session, OPERATOR, "pypi", "deny", "old-*", upstreams=UPSTREAMS)
        set_cooldown(session, OPERATOR, "pypi", 2, upstreams=UPSTREAMS)
    renamed = (MIRROR,)  # "pypi" left the configuration
    with local.sessions() as session:
        listed = list_rules(session, renamed)
    orphan = listed[-1]
    assert (orphan.upstream, orphan.configured) == ("pypi", False)
    assert [rule.glob for rule in orphan.rules] == ["old-*"]
    assert orphan.cooldown.days == 2

    with local.sessions.begin() as session:
        remove_rule(session, OPERATOR, "pypi", "deny", "old-*", upstreams=renamed)
    assert stored_rules(local) == []


def test_a_cool_down_override_and_its_reset_to_the_configuration(local: LocalStore) -> None:
    start = serial(local)
    with local.sessions.begin() as session:
        set_to_zero = set_cooldown(session, OPERATOR, MIRROR.label, 0, upstreams=UPSTREAMS)
    with local.sessions.begin() as session:
        again = set_cooldown(session, OPERATOR, MIRROR.label, 0.0, upstreams=UPSTREAMS)
    with local.sessions.begin() as session:
        reset = set_cooldown(session, OPERATOR, MIRROR.label, None, upstreams=UPSTREAMS)

    assert (set_to_zero.days, set_to_zero.origin, set_to_zero.by) == (0, "database", "cli:root")
    assert (again.days, again.origin) == (0, "database")
    assert (reset.days, reset.origin, reset.configured_days) == (7, "config", 7)
    assert serial(local) == start + 2  # setting the same value again is no change
    with local.sessions() as session:
        row = session.get(UpstreamCooldown, MIRROR.label)
        assert row is not None
        assert (row.days, row.set_by) == (None, "cli:root")
    assert [detail["days"] for _, _, detail in events(local)] == [0, 0.0, None]


@pytest.mark.parametrize("days", [-1, 3651, float("nan"), float("inf")])
def test_a_cool_down_out_of_range_is_refused(local: LocalStore, days: float) -> None:
    with local.sessions.begin() as session, pytest.raises(InvalidRequest, match="0 to 3650"):
        set_cooldown(session, OPERATOR, "pypi", days, upstreams=UPSTREAMS)


def test_list_shows_configured_and_stored_rules_by_origin(local: LocalStore) -> None:
    with local.sessions.begin() as session:
        add_rule(session, OPERATOR, "pypi", "deny", "torch", upstreams=UPSTREAMS)
        add_rule(session, OPERATOR, "pypi", "allow", "acme-*", upstreams=UPSTREAMS)
        set_cooldown(session, OPERATOR, "pypi", 1.5, upstreams=UPSTREAMS)
    with local.sessions() as session:
        pypi, mirror = list_rules(session, UPSTREAMS)

    assert [(r.kind, r.glob, r.origin, r.by) for r in pypi.rules] == [
        ("deny", "evil-*", "config", None),
        ("deny", "torch", "database", "cli:root"),
        ("allow", "acme-*", "database", "cli:root"),
    ]
    assert (pypi.cooldown.days, pypi.cooldown.origin, pypi.cooldown.configured_days) == (
        1.5,
        "database",
        0,
    )
    assert (mirror.upstream, mirror.configured, mirror.rules) == (MIRROR.label, True, ())
    assert (mirror.cooldown.days, mirror.cooldown.origin) == (7, "config")


def test_exemptions_are_listed_per_upstream_and_kept_for_an_unconfigured_one(
    local: LocalStore,
) -> None:
    with local.sessions.begin() as session:
        exempt(session, OPERATOR, MIRROR.url, "Fix_Lib", "an urgent fix", upstreams=UPSTREAMS)
        exempt(session, OPERATOR, "pypi", "other-lib", "trusted", upstreams=UPSTREAMS)
    with local.sessions() as session:
        listed = list_rules(session, UPSTREAMS)
    assert [[e.project for e in p.exemptions] for p in listed] == [["other-lib"], ["fix-lib"]]
    assert listed[1].exemptions[0].reason == "an urgent fix"

    renamed = (MIRROR,)  # "pypi" left the configuration: its exemption applies to nothing
    with local.sessions() as session:
        orphan = list_rules(session, renamed)[-1]
    assert (orphan.upstream, orphan.configured) == ("pypi", False)
    assert [e.project for e in orphan.exemptions] == ["other-lib"]
    with local.sessions.begin() as session:
        unexempt(session, OPERATOR, "pypi", "other-lib", upstreams=renamed)
    with local.sessions() as session, pytest.raises(NotFound, match="no cool-down exemption"):
        unexempt(session, OPERATOR, "pypi", "other-lib", upstreams=UPSTREAMS)


def test_only_an_admin_may_exempt_and_a_refusal_changes_nothing(local: LocalStore) -> None:
    before = serial(local)
    with local.sessions() as session, pytest.raises(PermissionDenied, match="only an admin"):
        exempt(session, user(session, "bob"), "pypi", "x", "why not", upstreams=UPSTREAMS)
    with local.sessions() as session, pytest.raises(InvalidRequest, match="is invalid"):
        exempt(session, OPERATOR, "pypi", "not a name!", "r", upstreams=UPSTREAMS)
    assert serial(local) == before
