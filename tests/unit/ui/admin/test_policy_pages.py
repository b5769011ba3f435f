"""The upstream policies page (`/admin/policies`), over SQLite and PostgreSQL.

The admin fixture's upstreams (`conftest.UPSTREAMS`): `mirror`, configured with
a deny rule `Evil_*` and a 2-day cool-down, and an unnamed one labelled by its URL.
"""

from __future__ import annotations

import json

import httpx
import pytest
from sqlalchemy import select

from packyard.db.audit import AuditEvent
from packyard.db.policies import CooldownExemption, UpstreamRule
from packyard.publish import policies
from tests.unit.ui.admin.conftest import UPSTREAMS, Admin, csrf_token, post_form, sign_in

pytestmark = pytest.mark.anyio
PAGE = "/admin/policies"
OTHER = "http://127.0.0.1:9/other/simple/"


def events(admin: Admin, action: str) -> list[AuditEvent]:
    with admin.store.sessions() as session:
        return list(session.scalars(select(AuditEvent).where(AuditEvent.action == action)))


def upstream_policy(admin: Admin, label: str) -> policies.UpstreamPolicy:
    with admin.store.sessions() as session:
        found = policies.list_rules(session, UPSTREAMS)
    return next(policy for policy in found if policy.upstream == label)


async def submit(client: httpx.AsyncClient, action: str, form: dict[str, str]) -> str:
    """Post `form` from the policies page; the text of the page it leads back to."""
    response = await post_form(client, PAGE, PAGE + action, form)
    assert response.status_code == 303, response.text
    assert response.headers["location"] == PAGE
    return (await client.get(PAGE)).text


async def test_the_page_shows_each_upstream_with_its_origins(admin: Admin) -> None:
    async with admin.client() as client:
        await sign_in(client, "root")
        assert 'href="/admin/policies"' in (await client.get("/admin/")).text
        page = (await client.get(PAGE)).text
    assert '<h2 id="upstream-1">mirror</h2>' in page
    assert f'<h2 id="upstream-2">{OTHER}</h2>' in page
    assert "<code>evil-*</code>" in page  # the configured rule, normalised
    assert "<strong>2 days</strong>" in page
    assert "Remove the deny rule" not in page  # a configured rule is changed in the file
    assert 'aria-label="Remove the' not in page


async def test_admin_adds_and_removes_a_deny_rule(admin: Admin) -> None:
    async with admin.client() as client:
        await sign_in(client, "root")
        page = await submit(
            client, "/rules", {"upstream": "mirror", "kind": "deny", "glob": "Bad_*"}
        )
        assert "Added deny &#39;bad-*&#39; on mirror." in page
        assert 'aria-label="Remove the deny rule bad-* of mirror"' in page
        (rule,) = [r for r in upstream_policy(admin, "mirror").rules if r.origin == "database"]
        assert (rule.kind, rule.glob, rule.by) == ("deny", "bad-*", "user:root")
        (added,) = events(admin, "policy-deny")
        assert added.actor == "user:root"
        assert json.loads(added.detail)["glob"] == "bad-*"

        form = {"upstream": "mirror", "kind": "deny", "glob": "bad-*"}
        page = await submit(client, "/rules/remove", form)
        assert "Removed deny &#39;bad-*&#39; from mirror." in page
    with admin.store.sessions() as session:
        assert session.scalars(select(UpstreamRule)).all() == []
    (removed,) = events(admin, "policy-remove")
    assert removed.actor == "user:root"


async def test_an_unnamed_upstream_is_changed_by_its_url(admin: Admin) -> None:
    async with admin.client() as client:
        await sign_in(client, "root")
        page = await submit(
            client, "/rules", {"upstream": OTHER, "kind": "allow", "glob": "acme-*"}
        )
    assert f"Added allow &#39;acme-*&#39; on {OTHER}." in page
    assert [rule.glob for rule in upstream_policy(admin, OTHER).rules] == ["acme-*"]


@pytest.mark.parametrize(
    ("form", "message"),
    [
        ({"upstream": "mirror", "kind": "deny", "glob": "bad glob!"}, "not a valid name glob"),
        ({"upstream": "mirror", "kind": "deny", "glob": ""}, "not a valid name glob"),
        ({"upstream": "mirror", "kind": "block", "glob": "x-*"}, "is &#39;allow&#39; or &#39;deny"),
        (
            {"upstream": "pypi", "kind": "deny", "glob": "x-*"},
            "the configured upstreams are &#39;mirror&#39;",
        ),
    ],
)
async def test_a_bad_rule_is_refused_with_a_message(
    admin: Admin, form: dict[str, str], message: str
) -> None:
    async with admin.client() as client:
        await sign_in(client, "root")
        page = await submit(client, "/rules", form)
    assert message in page
    assert "notice--error" in page
    with admin.store.sessions() as session:
        assert session.scalars(select(UpstreamRule)).all() == []


async def test_a_configured_rule_cannot_be_removed_here(admin: Admin) -> None:
    async with admin.client() as client:
        await sign_in(client, "root")
        form = {"upstream": "mirror", "kind": "deny", "glob": "evil-*"}
        page = await submit(client, "/rules/remove", form)
        assert "comes from the configuration file" in page
        missing = await submit(client, "/rules/remove", {**form, "glob": "nope-*"})
        assert "has no stored deny rule" in missing
    assert events(admin, "policy-remove") == []


async def test_admin_overrides_the_cooldown_and_resets_it(admin: Admin) -> None:
    async with admin.client() as client:
        await sign_in(client, "root")
        page = await submit(client, "/cooldown", {"upstream": "mirror", "days": "0.5"})
        assert "The cool-down of mirror is 0.5 days (set here)." in page
        assert "the configuration says 2" in page
        assert upstream_policy(admin, "mirror").cooldown.days == 0.5

        page = await submit(client, "/cooldown", {"upstream": "mirror", "days": "default"})
        assert "The cool-down of mirror is 2 days (the configured one)." in page
    cooldown = upstream_policy(admin, "mirror").cooldown
    assert (cooldown.days, cooldown.origin) == (2, "config")
    assert [json.loads(e.detail)["days"] for e in events(admin, "policy-cooldown")] == [0.5, None]


@pytest.mark.parametrize(
    ("form", "message"),
    [
        ({"upstream": "mirror", "days": "soon"}, "is not a number of days"),
        ({"upstream": "mirror", "days": "-1"}, "A cool-down is 0 to 3650 days"),
        ({"upstream": "mirror", "days": "nan"}, "A cool-down is 0 to 3650 days"),
        ({"upstream": "nowhere", "days": "1"}, "Unknown upstream &#39;nowhere&#39;"),
    ],
)
async def test_a_bad_cooldown_is_refused_with_a_message(
    admin: Admin, form: dict[str, str], message: str
) -> None:
    async with admin.client() as client:
        await sign_in(client, "root")
        page = await submit(client, "/cooldown", form)
    assert message in page
    assert upstream_policy(admin, "mirror").cooldown.origin == "config"
    assert events(admin, "policy-cooldown") == []


async def test_admin_exempts_a_project_with_a_reason_and_takes_it_back(admin: Admin) -> None:
    async with admin.client() as client:
        await sign_in(client, "root")
        form = {"upstream": "mirror", "project": "Public_Lib", "reason": "fix for CVE-2026-1"}
        page = await submit(client, "/exemptions", form)
        assert "&#39;public-lib&#39; of mirror is exempted." in page
        assert "fix for CVE-2026-1" in page
        (exempted,) = events(admin, "policy-exempt")
        assert exempted.actor == "user:root"
        assert exempted.project_name == "public-lib"

        page = await submit(
            client, "/exemptions/remove", {"upstream": "mirror", "project": "public-lib"}
        )
        assert "&#39;public-lib&#39; of mirror waits for the cool-down again." in page
    with admin.store.sessions() as session:
        assert session.scalars(select(CooldownExemption)).all() == []
    assert len(events(admin, "policy-unexempt")) == 1


@pytest.mark.parametrize(
    ("form", "message"),
    [
        ({"upstream": "mirror", "project": "public-lib", "reason": "  "}, "a reason is required"),
        ({"upstream": "mirror", "project": "public-lib"}, "a reason is required"),
        ({"upstream": "pypi", "project": "public-lib", "reason": "r"}, "Unknown upstream"),
        ({"upstream": "mirror", "project": "not a name", "reason": "r"}, "is invalid"),
    ],
)
async def test_a_bad_exemption_is_refused_with_a_message(
    admin: Admin, form: dict[str, str], message: str
) -> None:
    async with admin.client() as client:
        await sign_in(client, "root")
        page = await submit(client, "/exemptions", form)
    assert message in page
    with admin.store.sessions() as session:
        assert session.scalars(select(CooldownExemption)).all() == []


FORMS = {
    "/rules": {"upstream": "mirror", "kind": "deny", "glob": "x-*"},
    "/rules/remove": {"upstream": "mirror", "kind": "deny", "glob": "x-*"},
    "/cooldown": {"upstream": "mirror", "days": "9"},
    "/exemptions": {"upstream": "mirror", "project": "x", "reason": "r"},
    "/exemptions/remove": {"upstream": "mirror", "project": "x"},
}


async def test_a_normal_user_is_refused_everything(admin: Admin) -> None:
    async with admin.client() as client:
        await sign_in(client, "alice")
        assert (await client.get(PAGE)).status_code == 403
        assert 'href="/admin/policies"' not in (await client.get("/admin/")).text
        for action, form in FORMS.items():
            response = await post_form(client, "/admin/account", PAGE + action, form)
            assert response.status_code == 403, action
    assert upstream_policy(admin, "mirror").cooldown.origin == "config"
    assert upstream_policy(admin, "mirror").rules[-1].origin == "config"


async def test_a_form_without_its_csrf_token_is_refused(admin: Admin) -> None:
    async with admin.client() as client:
        await sign_in(client, "root")
        await csrf_token(client, PAGE)
        for action, form in FORMS.items():
            assert (await client.post(PAGE + action, data=form)).status_code == 403, action
            forged = {**form, "csrf_token": "forged"}
            assert (await client.post(PAGE + action, data=forged)).status_code == 403, action
    assert events(admin, "policy-deny") == []
    assert events(admin, "policy-cooldown") == []
