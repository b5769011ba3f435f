"""Item 5 of the hardening: a token made with a token cannot outlive or outreach its
parent and dies with it; signing out ends the session on the server.

Against a real `packyard serve` on SQLite and on PostgreSQL, as an attacker who
holds a leaked token, or a copy of a session cookie, would use them.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import httpx
import pytest

from tests.e2e.servers import PackyardProcess, clean_environment, init_store, packyard

pytestmark = pytest.mark.e2e
PASSWORD = "alice-secret-pw"
TOKEN_FIELD = re.compile(r'name="csrf_token" value="([^"]*)"')


@pytest.fixture
def server(tmp_path: Path, database_url: str) -> Iterator[PackyardProcess]:
    """A server whose database has the user alice (password `PASSWORD`)."""
    data = tmp_path / "data"
    env = clean_environment(PACKYARD_DATABASE_URL=database_url)
    init_store(data, env=env)
    added = packyard(
        "user", "add", "alice", "--password-stdin", "--data-dir", str(data),
        env=env, input=PASSWORD + "\n",
    )  # fmt: skip
    assert added.returncode == 0, added.stderr
    with PackyardProcess(data, database_url=database_url) as running:
        yield running


def _api(server: PackyardProcess, auth: httpx.Auth | str) -> httpx.Client:
    """A client of the admin API, signed in with a password (`httpx.BasicAuth`) or a token."""
    headers = {"Authorization": f"Bearer {auth}"} if isinstance(auth, str) else {}
    return httpx.Client(
        base_url=server.url + "/api/v1",
        auth=auth if not isinstance(auth, str) else None,
        headers=headers,
        timeout=30,
    )


def test_a_token_made_with_a_token_neither_outlives_nor_outlasts_it(
    server: PackyardProcess,
) -> None:
    with _api(server, httpx.BasicAuth("alice", PASSWORD)) as alice:
        made = alice.post("/tokens", json={"expires_days": 2, "description": "parent"})
        assert made.status_code == 201, made.text
        parent = made.json()
    with _api(server, parent["token"]) as leaked:
        # A longer life than the parent's is refused, with what to ask for instead.
        longer = leaked.post("/tokens", json={"expires_days": 3650})
        assert longer.status_code == 400, longer.text
        assert "cannot outlive" in longer.json()["detail"]
        assert "at most 1 day," in longer.json()["detail"]
        # Without an expiry the child expires with its parent, not never.
        child = leaked.post("/tokens", json={"description": "child"})
        assert child.status_code == 201, child.text
        expires = datetime.fromisoformat(child.json()["expires_at"])
        assert expires == datetime.fromisoformat(parent["expires_at"])
    with _api(server, child.json()["token"]) as descendant:
        grandchild = descendant.post("/tokens", json={"expires_days": 1})
        assert grandchild.status_code == 201, grandchild.text
        assert descendant.get("/tokens").status_code == 200

    # The owner revokes the leaked parent: everything made with it dies with it.
    with _api(server, httpx.BasicAuth("alice", PASSWORD)) as alice:
        assert alice.delete(f"/tokens/{parent['id']}").status_code == 200
        listed = {t["id"]: t for t in alice.get("/tokens").json()}
        assert listed[child.json()["id"]]["revoked_at"] is None  # only the parent's row changed
    for token in (child.json()["token"], grandchild.json()["token"]):
        with _api(server, token) as descendant:
            refused = descendant.get("/tokens")
            assert refused.status_code == 401, refused.text
            assert f"created with the token {parent['prefix']}" in refused.json()["detail"]
            assert "revoked" in refused.json()["detail"]
        upload = httpx.post(
            server.url + "/legacy/",
            auth=("__token__", token),
            data={":action": "file_upload"},
            timeout=30,
        )
        assert upload.status_code == 403
        assert "revoked" in upload.text


def test_a_session_cookie_copied_before_sign_out_is_refused_after(
    server: PackyardProcess,
) -> None:
    with httpx.Client(base_url=server.url, timeout=30) as browser:
        form = browser.get("/admin/sign-in")
        token = TOKEN_FIELD.search(form.text)
        assert token is not None, form.text
        signed_in = browser.post(
            "/admin/sign-in",
            data={"csrf_token": token.group(1), "username": "alice", "password": PASSWORD},
        )
        assert signed_in.status_code == 303, signed_in.text
        stolen = dict(browser.cookies)  # what an attacker copies from the browser
        home = browser.get("/admin/")
        assert home.status_code == 200
        found = TOKEN_FIELD.search(home.text)
        assert found is not None
        signed_out = browser.post("/admin/sign-out", data={"csrf_token": found.group(1)})
        assert signed_out.status_code == 303

    with httpx.Client(base_url=server.url, cookies=stolen, timeout=30) as attacker:
        replayed = attacker.get("/admin/account")
        assert replayed.status_code == 303
        assert replayed.headers["location"].startswith("/admin/sign-in")
        assert "alice" not in attacker.get("/admin/sign-in").text
