"""A CI ID token uploads to one release; on SQLite and PostgreSQL."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from packyard.auth.ci_replay import claim_upload
from packyard.auth.identity import Identity
from packyard.errors import PermissionDenied
from tests.builders import make_local_store


def ci(jti: str | None, issuer: str = "https://gitlab.example") -> Identity:
    claims = {"iss": issuer, "exp": int(time.time()) + 300, "jti": jti}
    return Identity(kind="ci", name="ci", projects=frozenset({"acme"}), claims=claims)


def test_a_token_uploads_more_files_of_its_release_and_nothing_else(
    tmp_path: Path, database_url: str
) -> None:
    sessions = make_local_store(tmp_path, database_url).sessions
    for _ in range(2):
        with sessions.begin() as session:
            claim_upload(session, ci("job-1"), "acme", "1.0")
    with sessions.begin() as session, pytest.raises(PermissionDenied, match=r"acme 1\.0"):
        claim_upload(session, ci("job-1"), "acme", "2.0")
    with sessions.begin() as session:
        claim_upload(session, ci("job-1", issuer="https://other.example"), "acme", "2.0")
        claim_upload(session, Identity(kind="user", name="alice"), "acme", "3.0")  # not CI


def test_a_token_without_jti_may_not_upload(tmp_path: Path) -> None:
    sessions = make_local_store(tmp_path).sessions
    with sessions.begin() as session, pytest.raises(PermissionDenied, match="no 'jti' claim"):
        claim_upload(session, ci(None), "acme", "1.0")
