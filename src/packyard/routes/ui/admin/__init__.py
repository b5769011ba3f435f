"""The browser's admin side: sign-in, "My account", project admin, site admin, groups,
the lifecycle of names (deleting a project, releasing a name) and upstream policies.

    routes = admin_routes(sessions, store, authenticators, secret)
    middleware = [Middleware(ViewerMiddleware, sessions=sessions, secret=secret)]

Every page works without JavaScript: plain forms, POST-redirect-GET with a
one-time message. Sessions are signed cookies re-checked against the
database on every request (`sessions.py`); every POST is CSRF-checked
(`csrf.py`). The rules are the services' (`publish/*`, `auth/permissions`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from sqlalchemy.orm import Session, sessionmaker
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from packyard.auth.identity import Identity
from packyard.auth.sso.provider import SsoProvider
from packyard.routes.ui.admin.account import PAGE as ACCOUNT
from packyard.routes.ui.admin.account import AccountPages
from packyard.routes.ui.admin.auth import Authenticate, SignIn
from packyard.routes.ui.admin.dashboard import DASHBOARD, DashboardPage
from packyard.routes.ui.admin.group_admin import GROUPS, GroupPages
from packyard.routes.ui.admin.lifecycle_admin import RELEASE, LifecyclePages
from packyard.routes.ui.admin.pages import AdminSite, Endpoint, Handler
from packyard.routes.ui.admin.policy_admin import POLICIES, PolicyPages
from packyard.routes.ui.admin.project_admin import ProjectAdminPages, page_path
from packyard.routes.ui.admin.sessions import (
    COOKIE,
    Secret,
    SessionResolver,
    Viewer,
    load_secret,
)
from packyard.routes.ui.admin.site_admin import DELETIONS, NAMES, USERS, SiteAdminPages
from packyard.routes.ui.admin.sso import Directory, SsoPages
from packyard.routes.ui.assets import StaticAssets
from packyard.routes.ui.templating import Templates
from packyard.settings import AttestationRequirement, DirectoryGroupSettings, UpstreamSettings
from packyard.storage.base import BlobStore

__all__ = ["SessionIdentities", "SignInSettings", "ViewerMiddleware", "admin_routes", "load_secret"]


@dataclass(frozen=True, slots=True)
class SignInSettings:
    """How people sign in to the pages: `[[auth.sso]]` providers, `local_passwords`,
    and the directory (`[auth.directory_groups]`, `[auth.ldap]`) their groups come from."""

    providers: Sequence[SsoProvider] = ()
    local_passwords: bool = True
    groups: DirectoryGroupSettings = field(default_factory=DirectoryGroupSettings)
    directory: Directory | None = None
    directory_timeout: float = 5.0


def admin_routes(
    sessions: sessionmaker[Session],
    store: BlobStore,
    authenticators: Authenticate,
    secret: Secret,
    *,
    secure_cookies: bool = False,
    templates: Templates | None = None,
    attestations_default: AttestationRequirement = "none",
    sign_in: SignInSettings | None = None,
    fallback_group: str | None = None,
    upstreams: Sequence[UpstreamSettings] = (),
) -> list[BaseRoute]:
    """The routes under `/admin/`.

    Args:
        sessions: the store's database sessions.
        store: the in-house blob store (deletions remove blobs from it).
        authenticators: checks passwords (`auth.authenticate.Authenticators`).
        secret: signs cookies (`load_secret`, or a function that calls it on
            first use); the same in every worker and replica.
        secure_cookies: `Secure` cookies even on plain HTTP (TLS ends at a proxy).
        templates: the site's templates (`routes.ui.templating`); None: the defaults.
        attestations_default: the configured `[attestations] require`, shown
            beside a project's own.
        sign_in: the providers people sign in with, and whether passwords may
            (`SignInSettings`); None: passwords only.
        fallback_group: `[auth.succession] fallback_group`, who takes over the
            projects of a user disabled or retired on the users page.
        upstreams: the configured `[[upstreams]]`, whose rules the policies page changes.
    """
    ways = sign_in or SignInSettings()
    site = AdminSite(
        templates or Templates(StaticAssets()),
        sessions,
        SessionResolver(sessions, secret, secure_cookies),
    )
    password_sign_in = SignIn(
        site, authenticators, [p.name for p in ways.providers], ways.local_passwords
    )
    sso = SsoPages(
        site,
        password_sign_in,
        ways.providers,
        ways.groups,
        ways.directory,
        ways.directory_timeout,
    )
    account = AccountPages(site)
    project = ProjectAdminPages(site, store, attestations_default)
    admin = SiteAdminPages(site, fallback_group)
    groups = GroupPages(site)
    lifecycle = LifecyclePages(site, store)
    policies = PolicyPages(site, upstreams)

    def get(path: str, endpoint: Endpoint) -> Route:
        return Route(path, endpoint, methods=["GET", "HEAD"])

    def post(path: str, endpoint: Endpoint) -> Route:
        return Route(path, endpoint, methods=["POST"])

    def back(path: str) -> Callable[[Request], str]:
        return lambda request: path

    project_page = "/admin/project/{name}/"
    return [
        get("/admin/sign-in", password_sign_in.form),
        post("/admin/sign-in", password_sign_in.submit),
        post("/admin/sign-out", password_sign_in.sign_out),
        get("/admin/sso/{provider}/start", sso.start),
        get("/admin/sso/{provider}/callback", sso.callback),
        get("/admin/", site.page(_home(site))),
        get(ACCOUNT, site.page(account.show)),
        post(ACCOUNT + "/tokens", site.action(account.create_token, back=back(ACCOUNT))),
        post(
            ACCOUNT + "/tokens/{id:int}/revoke",
            site.action(account.revoke_token, back=back(ACCOUNT)),
        ),
        post(
            ACCOUNT + "/handovers/{id:int}/dismiss",
            site.action(account.dismiss_handover, back=back(ACCOUNT)),
        ),
        get(project_page, site.page(project.show)),
        post(project_page + "yank", site.action(project.yank, back=page_path)),
        post(project_page + "unyank", site.action(project.unyank, back=page_path)),
        post(project_page + "roles", site.action(project.add_role, back=page_path)),
        post(project_page + "roles/remove", site.action(project.remove_role, back=page_path)),
        post(
            project_page + "attestations",
            site.action(project.set_attestations, back=page_path, admin=True),
        ),
        get(project_page + "delete", site.page(project.confirm_delete, admin=True)),
        post(project_page + "delete", site.action(project.delete, back=page_path, admin=True)),
        get(
            project_page + "delete-project",
            site.page(lifecycle.confirm_project_deletion, admin=True),
        ),
        post(
            project_page + "delete-project",
            site.action(lifecycle.delete_project, back=_confirm_path, admin=True),
        ),
        get(USERS, site.page(admin.users, admin=True)),
        post(USERS, site.action(admin.add_user, back=back(USERS), admin=True)),
        post(
            USERS + "/{name}/disable", site.action(admin.disable_user, back=back(USERS), admin=True)
        ),
        post(
            USERS + "/{name}/retire", site.action(admin.retire_user, back=back(USERS), admin=True)
        ),
        post(
            USERS + "/{name}/enable", site.action(admin.enable_user, back=back(USERS), admin=True)
        ),
        post(
            USERS + "/{name}/password",
            site.action(admin.reset_password, back=back(USERS), admin=True),
        ),
        get(GROUPS, site.page(groups.show, admin=True)),
        post(GROUPS, site.action(groups.create, back=back(GROUPS), admin=True)),
        post(GROUPS + "/{name}/delete", site.action(groups.delete, back=back(GROUPS), admin=True)),
        post(
            GROUPS + "/{name}/members",
            site.action(groups.add_member, back=back(GROUPS), admin=True),
        ),
        post(
            GROUPS + "/{name}/members/remove",
            site.action(groups.remove_member, back=back(GROUPS), admin=True),
        ),
        get(NAMES, site.page(admin.names, admin=True)),
        post(NAMES, site.action(admin.allow, back=back(NAMES), admin=True)),
        get(RELEASE, site.page(lifecycle.confirm_release, admin=True)),
        post(RELEASE, site.action(lifecycle.release, back=back(NAMES), admin=True)),
        post(NAMES + "/{name}/disallow", site.action(admin.disallow, back=back(NAMES), admin=True)),
        get(DELETIONS, site.page(admin.deletions, admin=True)),
        get(DELETIONS + "/confirm", site.page(admin.start_deletion, admin=True)),
        get("/admin/audit", site.page(admin.audit, admin=True)),
        get(POLICIES, site.page(policies.show, admin=True)),
        post(POLICIES + "/rules", site.action(policies.add_rule, back=back(POLICIES), admin=True)),
        post(
            POLICIES + "/rules/remove",
            site.action(policies.remove_rule, back=back(POLICIES), admin=True),
        ),
        post(
            POLICIES + "/cooldown",
            site.action(policies.set_cooldown, back=back(POLICIES), admin=True),
        ),
        post(
            POLICIES + "/exemptions", site.action(policies.exempt, back=back(POLICIES), admin=True)
        ),
        post(
            POLICIES + "/exemptions/remove",
            site.action(policies.unexempt, back=back(POLICIES), admin=True),
        ),
        get(DASHBOARD, site.page(DashboardPage(site).show, admin=True)),
    ]


def _confirm_path(request: Request) -> str:
    """Back to a project's deletion confirmation page (a mistyped confirmation)."""
    return page_path(request) + "delete-project"


def _home(site: AdminSite) -> Handler:
    async def home(request: Request, viewer: Viewer, form: FormData) -> Response:
        """GET /admin/: links to the pages this viewer may use."""
        return site.render(request, "admin/home.html", viewer, {})

    return home


class ViewerMiddleware:
    """Puts the signed-in user (or None) in `request.state.viewer` for the public
    pages' header ("Signed in as …", "Manage this project"). Only requests that
    carry a session cookie cost a database read."""

    def __init__(self, app: ASGIApp, sessions: sessionmaker[Session], secret: Secret) -> None:
        self._app = app
        self._resolver = SessionResolver(sessions, secret)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            viewer = await self._resolver.viewer(Request(scope))
            scope.setdefault("state", {})["viewer"] = viewer
        await self._app(scope, receive, send)


class SessionIdentities:
    """The signed-in user behind a request's session cookie, for the read guard
    (`routes/read_auth.py`): a browser session counts as credentials. Only
    requests that carry the cookie cost a database read."""

    def __init__(self, sessions: sessionmaker[Session], secret: Secret) -> None:
        self._resolver = SessionResolver(sessions, secret)
        self._marker = COOKIE.encode() + b"="

    async def identity(self, scope: Scope) -> Identity | None:
        """The user as stored now, or None (no cookie, expired, user disabled)."""
        cookies = [value for key, value in scope["headers"] if key == b"cookie"]
        if not any(self._marker in value for value in cookies):
            return None
        viewer = await self._resolver.viewer(Request(scope))
        return viewer.identity if viewer is not None else None
