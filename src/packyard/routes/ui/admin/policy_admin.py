"""`/admin/policies`: the curation of the upstreams at runtime (admins only).

Everything `packyard policy` does, as forms: allow and deny globs, the
cool-down override and the cool-down exemptions of each configured upstream.
The upstream travels in the form, never in the path: an upstream without a
name is labelled by its URL, slashes included.

The rules are `publish/policies.py`'s and `publish/cooldown_exemptions.py`'s,
which check again that the viewer is an admin; each change commits with its
audit event and a serial bump, so every replica applies it on its next request.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy.orm import Session
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import Response

from packyard.errors import InvalidRequest
from packyard.publish import cooldown_exemptions, policies
from packyard.routes.ui.admin.pages import AdminSite, Flash, field, origin_of
from packyard.routes.ui.admin.sessions import Viewer
from packyard.settings import UpstreamSettings

POLICIES = "/admin/policies"


class PolicyPages:
    """The policies page and its forms."""

    def __init__(self, site: AdminSite, upstreams: Sequence[UpstreamSettings]) -> None:
        """`upstreams`: the configured ones, in priority order (`[[upstreams]]`)."""
        self._site = site
        self._upstreams = tuple(upstreams)

    async def show(self, request: Request, viewer: Viewer, form: FormData) -> Response:
        """GET /admin/policies: every upstream's cool-down, rules and exemptions."""

        def read(session: Session) -> list[policies.UpstreamPolicy]:
            return policies.list_rules(session, self._upstreams)

        context = {"policies": await self._site.run(read), "kinds": policies.RULE_KINDS}
        return self._site.render(request, "admin/policies.html", viewer, context)

    async def add_rule(self, request: Request, viewer: Viewer, form: FormData) -> Response:
        """POST /admin/policies/rules: an allow or deny glob for an upstream."""
        upstream, kind, glob = field(form, "upstream"), field(form, "kind"), field(form, "glob")

        def add(session: Session) -> tuple[policies.PolicyRule, bool]:
            return policies.add_rule(
                session,
                viewer.identity,
                upstream,
                kind,
                glob,
                upstreams=self._upstreams,
                origin=origin_of(request),
            )

        rule, created = await self._site.run(add)
        state = "Added" if created else "Already present:"
        return self._done(request, f"{state} {rule.kind} '{rule.glob}' on {rule.upstream}.")

    async def remove_rule(self, request: Request, viewer: Viewer, form: FormData) -> Response:
        """POST /admin/policies/rules/remove: a stored glob (configured ones stay)."""
        upstream, kind, glob = field(form, "upstream"), field(form, "kind"), field(form, "glob")

        def remove(session: Session) -> policies.PolicyRule:
            return policies.remove_rule(
                session,
                viewer.identity,
                upstream,
                kind,
                glob,
                upstreams=self._upstreams,
                origin=origin_of(request),
            )

        rule = await self._site.run(remove)
        return self._done(request, f"Removed {rule.kind} '{rule.glob}' from {rule.upstream}.")

    async def set_cooldown(self, request: Request, viewer: Viewer, form: FormData) -> Response:
        """POST /admin/policies/cooldown: override the cool-down in days, or go back
        to the configured one with `days=default`."""
        upstream, days = field(form, "upstream"), _days(field(form, "days"))

        def change(session: Session) -> policies.Cooldown:
            return policies.set_cooldown(
                session,
                viewer.identity,
                upstream,
                days,
                upstreams=self._upstreams,
                origin=origin_of(request),
            )

        cooldown = await self._site.run(change)
        source = "the configured one" if cooldown.origin == "config" else "set here"
        message = f"The cool-down of {cooldown.upstream} is {cooldown.days:g} days ({source})."
        return self._done(request, message)

    async def exempt(self, request: Request, viewer: Viewer, form: FormData) -> Response:
        """POST /admin/policies/exemptions: a project skips its upstream's cool-down,
        for the reason given (required)."""
        upstream, project = field(form, "upstream"), field(form, "project")

        def add(session: Session) -> tuple[policies.Exemption, bool]:
            return cooldown_exemptions.exempt(
                session,
                viewer.identity,
                upstream,
                project,
                field(form, "reason"),
                upstreams=self._upstreams,
                origin=origin_of(request),
            )

        exemption, created = await self._site.run(add)
        state = "is exempted" if created else "was exempted already; its reason is replaced"
        message = f"'{exemption.project}' of {exemption.upstream} {state}."
        return self._done(request, message)

    async def unexempt(self, request: Request, viewer: Viewer, form: FormData) -> Response:
        """POST /admin/policies/exemptions/remove: held back by the cool-down again."""
        upstream, project = field(form, "upstream"), field(form, "project")

        def remove(session: Session) -> policies.Exemption:
            return cooldown_exemptions.unexempt(
                session,
                viewer.identity,
                upstream,
                project,
                upstreams=self._upstreams,
                origin=origin_of(request),
            )

        exemption = await self._site.run(remove)
        message = f"'{exemption.project}' of {exemption.upstream} waits for the cool-down again."
        return self._done(request, message)

    def _done(self, request: Request, message: str) -> Response:
        return self._site.redirect(request, POLICIES, Flash("ok", message))


def _days(text: str) -> float | None:
    """None for "default", else the number of days (its range is the service's check).

    Raises:
        InvalidRequest: neither "default" nor a number.
    """
    if text.lower() == "default":
        return None
    try:
        return float(text)
    except ValueError:
        raise InvalidRequest(
            f"{text!r} is not a number of days: give one (0 for none), or reset to the default."
        ) from None
