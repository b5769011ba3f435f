"""Browser sessions: a signed cookie with an expiry, re-checked against the database.

The cookie holds no secret and no rights, only who signed in and when:

    base64url(JSON {"sid", "uid", "pwf", "exp"}) "." base64url(HMAC-SHA256)

- `sid`: 128 random bits, new at every sign-in (no session fixation); the
  CSRF token is derived from it (`csrf.py`);
- `uid`: the user's id, or null for a visitor who has not signed in yet (the
  sign-in form needs a CSRF token too);
- `pwf`: a keyed fingerprint of the user's password hash, so that a new
  password ends every session made with the old one;
- `exp`: a Unix time after which the cookie is refused, whatever the browser does.

On every request the user is read again (`SessionResolver.viewer`): a
disabled, deleted or re-passworded user's cookie stops working at once, and
admin rights are the stored ones. A signed-in session also has a row in
`browser_sessions` (keyed by the sha256 of its `sid`), made at sign-in and
deleted at sign-out: a copy of the cookie taken earlier (a stolen cookie, a
shared computer) stops working at sign-out in every worker and replica,
however long its `exp` still runs. Rows past their `exp` are removed at the
next sign-in.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import anyio.to_thread
from sqlalchemy import delete
from sqlalchemy.orm import Session, selectinload, sessionmaker
from starlette.requests import Request
from starlette.responses import Response

from packyard.auth.identity import Identity
from packyard.db.accounts import User
from packyard.db.secrets import shared_secret
from packyard.db.sign_ins import BrowserSession

COOKIE = "packyard_session"
SESSION_SECONDS = 12 * 3600
VISITOR_SECONDS = 2 * 3600
SECRET_NAME = "session-secret"  # noqa: S105 (the secret's name in the database)
LEGACY_SECRET_FILE = "session-secret"  # noqa: S105 (where versions before 0.2 kept it)
_VIEWER_KEY = "packyard.viewer"


@dataclass(frozen=True, slots=True)
class SessionData:
    """What a session cookie says; `uid` None: a visitor who has not signed in."""

    sid: str
    uid: int | None
    pwf: str | None
    exp: int


@dataclass(frozen=True, slots=True)
class Viewer:
    """The signed-in user as stored now, and their session."""

    identity: Identity
    session: SessionData

    @property
    def name(self) -> str:
        return self.identity.name

    @property
    def is_admin(self) -> bool:
        return self.identity.is_admin


def load_secret(
    sessions: sessionmaker[Session], configured: str | None = None, data_dir: Path | None = None
) -> bytes:
    """The key that signs session cookies: `configured` (the `browser.session_secret`
    setting) if given, else the database's shared secret, made by the first
    replica that needed it, so that every worker, replica and restart shares it.

    A `<data_dir>/session-secret` file, where earlier versions kept the key, is
    adopted as the database's secret when it has none yet: signed-in people
    stay signed in across the upgrade.

    Raises:
        sqlalchemy.exc.SQLAlchemyError: the database cannot be read or written.
    """
    if configured:
        return configured.encode()
    legacy = data_dir / LEGACY_SECRET_FILE if data_dir is not None else None
    initial = legacy.read_text().strip() if legacy is not None and legacy.is_file() else None
    return shared_secret(sessions, SECRET_NAME, initial).encode()


def derive_key(secret: bytes, purpose: str) -> bytes:
    """A key of its own for each use of the secret (cookie signature, CSRF, flash)."""
    return hmac.new(secret, f"packyard {purpose} v1".encode(), hashlib.sha256).digest()


Secret = bytes | Callable[[], bytes]
"""The signing secret, or how to read it on first use (`load_secret` with its arguments)."""


class SigningKeys:
    """The keys derived from one secret, one per purpose.

    A secret given as a function is read on first use, not at start: a replica
    started before its database is migrated (`serve --no-migrate`) must come up
    and report not ready, not fail because the secret's table is missing.
    """

    def __init__(self, secret: Secret) -> None:
        self._secret = secret
        self._keys: dict[str, bytes] = {}

    def __call__(self, purpose: str) -> bytes:
        key = self._keys.get(purpose)
        if key is None:
            secret = self._secret if isinstance(self._secret, bytes) else self._secret()
            self._secret = secret  # read once
            key = self._keys[purpose] = derive_key(secret, purpose)
        return key


def sign(key: bytes, payload: dict[str, object]) -> str:
    """`payload` as compact JSON, base64url-encoded, with its HMAC-SHA256."""
    body = _b64(json.dumps(payload, separators=(",", ":"), sort_keys=True).encode())
    return body + "." + _b64(hmac.new(key, body.encode(), hashlib.sha256).digest())


def unsign(key: bytes, value: str) -> dict[str, object] | None:
    """The payload of a value made by `sign` with `key`, or None if it was not."""
    body, _, mac = value.partition(".")
    expected = _b64(hmac.new(key, body.encode(), hashlib.sha256).digest())
    if not mac or not hmac.compare_digest(mac, expected):
        return None
    try:
        payload = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    except (binascii.Error, ValueError):
        return None
    return payload if isinstance(payload, dict) else None


class SessionResolver:
    """Reads, checks and writes the session cookie; finds the signed-in user."""

    def __init__(
        self, sessions: sessionmaker[Session], secret: Secret, secure_cookies: bool = False
    ) -> None:
        """`secure_cookies`: mark cookies `Secure` even on plain-HTTP requests (for a
        TLS-terminating proxy that does not pass the scheme on)."""
        self._sessions = sessions
        self.keys = SigningKeys(secret)
        self.secure_cookies = secure_cookies

    def read(self, request: Request) -> SessionData | None:
        """The request's unexpired, correctly signed session, or None."""
        raw = request.cookies.get(COOKIE)
        payload = unsign(self.keys("session"), raw) if raw else None
        if payload is None:
            return None
        sid, uid, pwf, exp = (payload.get(k) for k in ("sid", "uid", "pwf", "exp"))
        if not isinstance(sid, str) or not isinstance(exp, int) or exp < time.time():
            return None
        if uid is not None and not (isinstance(uid, int) and isinstance(pwf, str)):
            return None
        return SessionData(sid, uid, pwf if isinstance(pwf, str) else None, exp)

    async def viewer(self, request: Request) -> Viewer | None:
        """The signed-in user of this request, checked against the database (once per
        request): None without a session, or when the user is gone, disabled or has
        a new password since signing in."""
        if _VIEWER_KEY in request.scope:
            cached: Viewer | None = request.scope[_VIEWER_KEY]
            return cached
        data = self.read(request)
        found = None
        if data is not None and data.uid is not None:
            found = await anyio.to_thread.run_sync(self._identity, data)
        viewer = Viewer(found, data) if found is not None and data is not None else None
        request.scope[_VIEWER_KEY] = viewer
        return viewer

    def visitor(self) -> SessionData:
        """A new session for someone who has not signed in (carries the sign-in CSRF token)."""
        return SessionData(secrets.token_urlsafe(16), None, None, _now() + VISITOR_SECONDS)

    def signed_in(self, user: Identity, password_hash: str | None) -> SessionData:
        """A new session (new `sid`) for `user`, who has just signed in."""
        assert user.user_id is not None
        fingerprint = self._fingerprint(password_hash)
        return SessionData(
            secrets.token_urlsafe(16), user.user_id, fingerprint, _now() + SESSION_SECONDS
        )

    def begin(self, data: SessionData) -> None:
        """Record a new signed-in session (`signed_in`), without which its cookie is
        refused; sessions of anyone that are past their time are removed."""
        assert data.uid is not None
        now = datetime.now(UTC)
        with self._sessions.begin() as session:
            session.execute(delete(BrowserSession).where(BrowserSession.expires_at <= now))
            session.add(
                BrowserSession(
                    id=_session_key(data.sid),
                    user_id=data.uid,
                    created_at=now,
                    expires_at=datetime.fromtimestamp(data.exp, UTC),
                )
            )

    def end(self, data: SessionData) -> None:
        """Forget a session: its cookie, and every copy of it, is refused from now on."""
        key = _session_key(data.sid)
        with self._sessions.begin() as session:
            session.execute(delete(BrowserSession).where(BrowserSession.id == key))

    def password_hash(self, user_id: int) -> str | None:
        """The stored password hash of a user (to fingerprint a new session)."""
        with self._sessions() as session:
            user = session.get(User, user_id)
            return user.password_hash if user is not None else None

    def store(self, request: Request, response: Response, data: SessionData) -> None:
        """Set the session cookie on `response`: HttpOnly, SameSite=Lax, whole site,
        `Secure` on HTTPS (or when the settings say so)."""
        value = sign(
            self.keys("session"),
            {"sid": data.sid, "uid": data.uid, "pwf": data.pwf, "exp": data.exp},
        )
        response.set_cookie(
            COOKIE,
            value,
            max_age=max(0, data.exp - _now()),
            path=_site_path(request),
            secure=self.is_secure(request),
            httponly=True,
            samesite="lax",
        )

    def clear(self, request: Request, response: Response) -> None:
        """Remove the session cookie."""
        response.delete_cookie(
            COOKIE,
            path=_site_path(request),
            secure=self.is_secure(request),
            httponly=True,
            samesite="lax",
        )

    def is_secure(self, request: Request) -> bool:
        return self.secure_cookies or request.url.scheme == "https"

    def _fingerprint(self, password_hash: str | None) -> str:
        digest = hmac.new(
            self.keys("password fingerprint"), (password_hash or "").encode(), hashlib.sha256
        )
        return digest.hexdigest()[:32]

    def _identity(self, data: SessionData) -> Identity | None:
        with self._sessions() as session:
            user = session.get(User, data.uid, options=[selectinload(User.groups)])
            if user is None or user.disabled or data.pwf is None:
                return None
            if not hmac.compare_digest(self._fingerprint(user.password_hash), data.pwf):
                return None
            stored = session.get(BrowserSession, _session_key(data.sid))
            if stored is None or stored.user_id != user.id:
                return None  # signed out (or made before sessions were recorded)
            return Identity(
                kind="user",
                name=user.name,
                user_id=user.id,
                is_admin=user.is_admin,
                groups=frozenset(group.name for group in user.groups),
            )


def _session_key(sid: str) -> str:
    """The row id of a session: the sha256 of its `sid`, which the database never sees."""
    return hashlib.sha256(sid.encode()).hexdigest()


def _site_path(request: Request) -> str:
    """The cookie's path: the whole site (the header shows who is signed in)."""
    return str(request.scope.get("root_path", "")).rstrip("/") + "/"


def _now() -> int:
    return int(time.time())


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()
