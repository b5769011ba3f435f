"""The session secret (shared through the database), cookie signatures and the `next` check."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from sqlalchemy.orm import sessionmaker
from starlette.requests import Request

from packyard.routes.ui.admin.auth import safe_next
from packyard.routes.ui.admin.sessions import (
    COOKIE,
    LEGACY_SECRET_FILE,
    SessionData,
    SessionResolver,
    derive_key,
    load_secret,
    sign,
    unsign,
)
from tests.builders import make_local_store


def test_secret_is_made_once_in_the_database_and_shared_by_every_replica(
    tmp_path: Path, database_url: str
) -> None:
    first = load_secret(make_local_store(tmp_path / "a", database_url).sessions)
    assert len(first) >= 40
    # Another replica: its own engine and an empty data directory of its own.
    other = make_local_store(tmp_path / "b", database_url).sessions
    assert load_secret(other, data_dir=tmp_path / "b") == first
    assert list((tmp_path / "b").glob(LEGACY_SECRET_FILE)) == []


def test_an_older_installations_secret_file_is_adopted(tmp_path: Path) -> None:
    (tmp_path / LEGACY_SECRET_FILE).write_text("kept-from-before\n")
    sessions = make_local_store(tmp_path).sessions
    assert load_secret(sessions, data_dir=tmp_path) == b"kept-from-before"
    assert load_secret(sessions) == b"kept-from-before"  # now in the database


def test_configured_secret_wins(tmp_path: Path) -> None:
    sessions = make_local_store(tmp_path).sessions
    assert load_secret(sessions, "from-settings") == b"from-settings"
    assert load_secret(sessions) != b"from-settings"


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
