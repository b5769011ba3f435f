"""Who is making a request, once their credentials have been checked.

The contract between the authenticators (which build an `Identity`) and the
services that decide what it may do (uploads, yanks, ownership, admin).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Protocol

IdentityKind = Literal["user", "token", "ci", "cli"]


@dataclass(frozen=True, slots=True)
class Identity:
    """An authenticated caller.

    - `user`: signed in with a password (browser session or Basic user:password);
    - `token`: an API token of `user_name`, maybe limited to `projects`;
    - `ci`: a CI job's ID token (OIDC), limited to the `projects` its claims map to;
    - `cli`: the operator at the server's own command line (trusted, admin).
    """

    kind: IdentityKind
    name: str
    user_id: int | None = None
    is_admin: bool = False
    groups: frozenset[str] = frozenset()
    # None: not limited by the credential (a user's own rights apply);
    # a set: only these normalised project names, whatever the user's rights.
    projects: frozenset[str] | None = None
    token_id: int | None = None
    token_prefix: str | None = None
    claims: dict[str, object] = field(default_factory=dict, compare=False)

    @property
    def actor(self) -> str:
        """How the audit trail names this caller, e.g. `token:alice/pky_ab12cd`."""
        if self.kind == "token":
            return f"token:{self.name}/{self.token_prefix}"
        return f"{self.kind}:{self.name}"

    def may_touch(self, project: str) -> bool:
        """False when the credential itself is limited to other projects."""
        return self.projects is None or project in self.projects


class Authenticator(Protocol):
    """Turns an `Authorization` header value into an identity.

    Returns None when the header is not of a kind this authenticator handles
    (so the next one can try).

    Raises:
        AuthenticationFailed: the credentials are of its kind but wrong,
            expired, revoked, or belong to a disabled user.
    """

    async def authenticate(self, authorization: str) -> Identity | None: ...
