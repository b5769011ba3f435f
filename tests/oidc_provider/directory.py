"""The provider's directory: users (with groups and manager) and clients, read
from the JSON file the fixture rewrites (`OidcProvider`, `__init__.py`).

The file is the source of truth, so a test changes the directory in a few
microseconds, even while the provider is stopped. Every request first brings
Django's users and django-oidc-provider's clients in line with it (only when its
bytes changed), so a change is seen by the next sign-in, as with a real directory.
Claims are read from the file's users at token and userinfo time.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import transaction
from django.http import HttpRequest, HttpResponse
from django.utils.translation import gettext_lazy as _
from oidc_provider.lib.claims import ScopeClaims
from oidc_provider.models import Client, ResponseType

logger = logging.getLogger(__name__)

_lock = threading.Lock()
_synced: bytes | None = None
_users: dict[str, dict[str, Any]] = {}


def _read() -> bytes:
    try:
        return settings.DIRECTORY_FILE.read_bytes()  # type: ignore[no-any-return]
    except FileNotFoundError:
        return b"{}"


def sync_directory() -> None:
    """Bring the database's users and clients in line with the directory file."""
    global _synced, _users
    if _read() == _synced:
        return
    with _lock:
        data = _read()
        if data == _synced:
            return
        directory = json.loads(data)
        users: dict[str, dict[str, Any]] = directory.get("users", {})
        clients: dict[str, dict[str, Any]] = directory.get("clients", {})
        with transaction.atomic():
            _sync_users(users)
            _sync_clients(clients)
        _users = users
        _synced = data
        logger.info("directory: %d users, %d clients", len(users), len(clients))


def _sync_users(users: dict[str, dict[str, Any]]) -> None:
    model = get_user_model()
    existing = {user.username: user for user in model.objects.all()}
    for username, entry in users.items():
        user = existing.pop(username, None) or model(username=username)
        changed = user.pk is None or user.email != entry["email"]
        user.email = entry["email"]
        # Only a new password is set: a new hash would end the user's sessions.
        if not user.check_password(entry["password"]):
            user.set_password(entry["password"])
            changed = True
        if changed:
            user.save()
    # Their codes, tokens, consents go with them, and their sessions end.
    model.objects.filter(username__in=existing).delete()


def _sync_clients(clients: dict[str, dict[str, Any]]) -> None:
    code = ResponseType.objects.get(value="code")
    existing = {client.client_id: client for client in Client.objects.all()}
    for client_id, entry in clients.items():
        client = existing.pop(client_id, None) or Client(client_id=client_id)
        client.name = client_id
        client.client_secret = entry["secret"]
        # A public client (no secret) is always asked for consent by the library.
        client.client_type = "confidential" if entry["secret"] else "public"
        client.jwt_alg = "RS256"
        client.require_consent = True
        client.reuse_consent = True
        client.redirect_uris = entry["redirect_uris"]
        client.save()
        client.response_types.set([code])
    Client.objects.filter(client_id__in=existing).delete()


class DirectorySyncMiddleware:
    """Syncs the directory before each request reaches a view."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        sync_directory()
        return self.get_response(request)


def _entry(username: str) -> dict[str, Any]:
    return _users.get(username, {})


def userinfo(claims: dict[str, Any], user: Any) -> dict[str, Any]:
    """OIDC_USERINFO: the standard claims, and `groups` and `manager` for
    `DirectoryScopeClaims`, from the user's directory entry."""
    entry = _entry(user.username)
    claims["name"] = entry.get("name")
    claims["preferred_username"] = user.username
    claims["email"] = entry.get("email")
    claims["email_verified"] = True
    claims["groups"] = list(entry.get("groups", []))
    claims["manager"] = entry.get("manager")
    return claims


def subject(user: Any) -> str:
    """OIDC_IDTOKEN_SUB_GENERATOR: the directory's stable subject, which outlives
    the database row (a user removed and added again keeps it)."""
    return str(_entry(user.username).get("subject") or user.pk)


class DirectoryScopeClaims(ScopeClaims):  # type: ignore[misc]
    """OIDC_EXTRA_SCOPE_CLAIMS: `groups` for the `groups` scope, `manager` (left
    out when there is none) with the standard claims of `profile`."""

    info_groups = (_("Groups"), _("The groups you belong to in the directory."))

    def scope_groups(self) -> dict[str, Any]:
        return {"groups": self.userinfo["groups"]}

    def scope_profile(self) -> dict[str, Any]:
        return {"manager": self.userinfo["manager"]}
