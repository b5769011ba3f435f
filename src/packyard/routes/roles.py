"""Roles: a process may serve one part of packyard (`packyard serve --role`).

A large site scales each part on its own behind one load balancer: index
replicas for the installers' traffic, an upload replica for publishing, a
browser replica for people (docs/operations.md). Each process answers
what its role serves, plus the operations endpoints every process has; any
other path is a 404 that names the role, so a misrouted request is obvious
in the load balancer's configuration, not a mystery.
"""

from __future__ import annotations

from typing import Final

from starlette.types import ASGIApp, Receive, Scope, Send

from packyard.errors import NotFound
from packyard.routes.asgi import send_response
from packyard.routes.errors import error_parts
from packyard.routes.simple import local_path
from packyard.settings import Role

OPERATIONS: Final = ("/healthz", "/readyz", "/metrics")
# Path prefixes by role; the browser serves every path the others do not.
PREFIXES: Final[dict[Role, tuple[str, ...]]] = {
    # The OSV API answers auditors (`uv audit`, `pip-audit`): tools, like installers.
    "index": ("/simple/", "/files/", "/snapshot/", "/osv/"),
    "upload": ("/legacy/", "/api/"),
}
_SERVES: Final[dict[Role, str]] = {
    "index": "the index (/simple/, /files/, /snapshot/) and the OSV API (/osv/)",
    "upload": "uploads and the API (/legacy/, /api/)",
    "browser": "the web pages (/, /search, /project/, /admin/)",
}


def role_of(path: str) -> Role:
    """The role that serves `path` (an operations path: "all")."""
    if path in OPERATIONS:
        return "all"
    # `/simple` and `/legacy` without their slash redirect within their role.
    slashed = path + "/"
    for role, prefixes in PREFIXES.items():
        if path.startswith(prefixes) or slashed in prefixes:
            return role
    return "browser"


def serves(role: Role, path: str) -> bool:
    """Whether a process of `role` answers `path`."""
    owner = role_of(path)
    return role == "all" or owner in ("all", role)


class RoleGate:
    """Answers 404, naming the role, to the paths another role serves."""

    def __init__(self, app: ASGIApp, role: Role) -> None:
        self._app = app
        self._role = role

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            path = local_path(scope)
            if not serves(self._role, path):
                await self._refuse(scope, send, path)
                return
        await self._app(scope, receive, send)

    async def _refuse(self, scope: Scope, send: Send, path: str) -> None:
        owner = role_of(path)
        message = (
            f"This packyard process serves the {self._role} role only: {_SERVES[self._role]}. "
            f"{path} belongs to the {owner} role; check the load balancer's routes."
        )
        status, headers, body = error_parts(NotFound(message))
        await send_response(send, status, headers, body, head=scope["method"] == "HEAD")
