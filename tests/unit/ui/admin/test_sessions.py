"""The session secret, cookie signatures and the `next` check (no database)."""

from __future__ import annotations

import stat
import time
from pathlib import Path

import pytest
from sqlalchemy.orm import sessionmaker
from starlette.requests import Request

from packyard.routes.ui.admin.auth import safe_next
from packyard.routes.ui.admin.sessions import (
    COOKIE,
    SECRET_FILE,
    SessionData,
    SessionResolver,
    derive_key,
    load_secret,
    sign,
    unsign,
)


def test_secret_is_made_once_with_mode_0600_and_shared(tmp_path: Path) -> None:
    first = load_secret(tmp_path / "data")
    assert len(first) >= 40
    path = tmp_path / "data" / SECRET_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_secret(tmp_path / "data") == first  # another worker, or a restart
    assert [p.name for p in path.parent.iterdir()] == [SECRET_FILE]  # no temporary left


def test_configured_secret_wins(tmp_path: Path) -> None:
    assert load_secret(tmp_path, "from-settings") == b"from-settings"
    assert not (tmp_path / SECRET_FILE).exists()


def test_signature_covers_the_payload() -> None:
    expiry = int(time.time()) + 60
    value = sign(b"k", {"uid": 1, "exp": expiry})
    assert unsign(b"k", value) == {"uid": 1, "exp": expiry}
    body, _, mac = value.partition(".")
    forged = sign(b"other", {"uid": 2})
    assert unsign(b"k", forged) is None
    assert unsign(b"k", forged.partition(".")[0] + "." + mac) is None
    assert unsign(b"other", value) is None
    assert unsign(b"k", body) is None
    assert unsign(b"k", "") is None


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("/admin/account", "/admin/account"),
        ("/project/a/?x=1", "/project/a/?x=1"),
        ("//evil.example/", "/admin/"),
        ("/\\evil.example/", "/admin/"),
        ("https://evil.example/", "/admin/"),
        ("/admin/\r\nSet-Cookie: x", "/admin/"),
        ("", "/admin/"),
        (None, "/admin/"),
    ],
)
def test_next_stays_on_this_site(value: str | None, expected: str) -> None:
    assert safe_next(value) == expected


def request_with_cookie(value: str) -> Request:
    headers = [(b"cookie", f"{COOKIE}={value}".encode())]
    return Request({"type": "http", "method": "GET", "path": "/", "headers": headers})


def test_an_expired_or_foreign_session_cookie_is_ignored() -> None:
    resolver = SessionResolver(sessionmaker(), b"secret")
    key = derive_key(b"secret", "session")
    now = int(time.time())
    fresh = {"sid": "s", "uid": 1, "pwf": "f", "exp": now + 60}
    assert resolver.read(request_with_cookie(sign(key, fresh))) == SessionData(
        "s", 1, "f", now + 60
    )
    assert resolver.read(request_with_cookie(sign(key, {**fresh, "exp": now - 1}))) is None
    assert resolver.read(request_with_cookie(sign(key, {**fresh, "pwf": None}))) is None
    other = derive_key(b"another secret", "session")
    assert resolver.read(request_with_cookie(sign(other, fresh))) is None
