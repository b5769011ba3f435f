"""The person a provider signed in, as packyard names them.

The user name is the `user_claim` (default `preferred_username`), lower-cased,
with `@<strip_domain>` taken off its end; it must then be a valid packyard user
name, or the sign-in is refused with a message saying which claim to change:
a name is never made up, so that two people can never share one.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from packyard.errors import AuthenticationFailed
from packyard.publish.accounts import ACCOUNT_NAME
from packyard.settings import SsoProviderSettings

MAX_GROUPS = 1000  # a token listing more is cut here (Entra ID sends at most 200)


@dataclass(frozen=True, slots=True)
class Person:
    """Who signed in: the provider's `sub` is what binds them to their account."""

    provider: str
    subject: str
    username: str
    email: str | None = None
    full_name: str | None = None
    # Directory group names; None: not known (no groups claim, directory down).
    groups: frozenset[str] | None = None
    manager: str | None = None
    # The directory (LDAP) could not be asked: `groups` is None for that reason.
    directory_down: bool = False
    # The groups the provider's own claim named (None: it has no groups claim),
    # before LDAP's were added.
    claimed_groups: frozenset[str] | None = None

    def with_groups(self, groups: frozenset[str], manager: str | None) -> Person:
        """This person with the groups (added to the token's) and manager LDAP knows."""
        return replace(
            self, groups=(self.groups or frozenset()) | groups, manager=self.manager or manager
        )


def person_from_claims(settings: SsoProviderSettings, claims: Mapping[str, Any]) -> Person:
    """The person verified claims describe.

    Raises:
        AuthenticationFailed: the user claim is missing or no valid user name.
    """
    raw = claims.get(settings.user_claim)
    if not isinstance(raw, str) or not raw.strip():
        raise AuthenticationFailed(
            f"{settings.name} did not say who you are: its answer has no "
            f"{settings.user_claim!r} claim. An admin must add it to the provider's "
            "client, or set user_claim to a claim it sends."
        )
    username = raw.strip().lower()
    if settings.strip_domain and username.endswith("@" + settings.strip_domain.lower()):
        username = username[: -len(settings.strip_domain) - 1]
    if not ACCOUNT_NAME.fullmatch(username):
        raise AuthenticationFailed(
            f"{settings.name}'s {settings.user_claim} {raw!r} is not a user name packyard "
            "accepts (letters, digits, '.', '_', '-'; at most 100). An admin must set "
            "user_claim (or strip_domain) to fit."
        )
    groups = _groups(claims, settings.groups_claim)
    return Person(
        provider=settings.name,
        subject=str(claims["sub"]),
        username=username,
        email=_text(claims.get(settings.email_claim)),
        full_name=_text(claims.get(settings.full_name_claim)),
        groups=groups,
        claimed_groups=groups,
        manager=_manager(claims, settings.manager_claim),
    )


def _text(value: object) -> str | None:
    return value.strip()[:500] or None if isinstance(value, str) else None


def _groups(claims: Mapping[str, Any], claim: str | None) -> frozenset[str] | None:
    if claim is None or claim not in claims:
        return None
    value = claims[claim]
    values = value if isinstance(value, list) else [value]
    return frozenset(item for item in values[:MAX_GROUPS] if isinstance(item, str) and item)


def _manager(claims: Mapping[str, Any], claim: str | None) -> str | None:
    name = _text(claims.get(claim)) if claim is not None else None
    name = name.lower() if name is not None else None
    return name if name is not None and ACCOUNT_NAME.fullmatch(name) else None
