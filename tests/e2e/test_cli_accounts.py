"""`packyard user|group|token|owner` as an operator runs them, checked against the
authenticators reading the same database."""

from __future__ import annotations

import base64
import re
import subprocess
from pathlib import Path

import anyio
import httpx
import pytest

from packyard.auth.authenticate import Authenticators
from packyard.auth.identity import Identity
from packyard.db.engine import create_database_engine, session_factory_for
from packyard.errors import AuthenticationFailed
from packyard.settings import AuthSettings
from tests.builders import build_wheel
from tests.e2e.servers import init_store, packyard

pytestmark = pytest.mark.e2e


def run(data_dir: Path, *args: str, input: str | None = None) -> subprocess.CompletedProcess[str]:
    """Run a command that must succeed."""
    result = packyard(*args, "--data-dir", str(data_dir), input=input)
    assert result.returncode == 0, result.stderr
    return result


def authenticate(data_dir: Path, header: str) -> Identity:
    """What the server would make of `header`, on the CLI's database."""
    engine = create_database_engine(f"sqlite:///{data_dir / 'packyard.db'}")

    async def check() -> Identity:
        async with httpx.AsyncClient(trust_env=False) as client:
            authenticators = Authenticators(session_factory_for(engine), AuthSettings(), client)
            return await authenticators.authenticate(header)

    try:
        return anyio.run(check)
    finally:
        engine.dispose()


def basic(user: str, secret: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{secret}".encode()).decode()


def test_users_and_groups_from_the_command_line(tmp_path: Path) -> None:
    data = tmp_path / "data"
    init_store(data)

    added = run(data, "user", "add", "Alice", "--password-stdin", input="alice-password\nrest\n")
    run(data, "user", "add", "root", "--admin", "--password-stdin", input="root-password\n")
    run(data, "group", "create", "devs")
    run(data, "group", "add", "devs", "alice")

    assert added.stdout.strip() == "Added user 'alice'."
    identity = authenticate(data, basic("alice", "alice-password"))
    assert (identity.kind, identity.name, identity.groups) == ("user", "alice", frozenset({"devs"}))
    assert authenticate(data, basic("root", "root-password")).is_admin
    users = run(data, "user", "list").stdout.splitlines()
    assert users[0].split() == ["NAME", "ADMIN", "STATUS", "PASSWORD", "GROUPS"]
    assert users[1].split() == ["alice", "no", "active", "yes", "devs"]
    assert users[2].split() == ["root", "yes", "active", "yes", "-"]
    assert run(data, "group", "list").stdout.splitlines()[1].split() == ["devs", "alice"]

    again = packyard("user", "add", "alice", "--data-dir", str(data))
    no_password = packyard("user", "add", "bob", "--password-stdin", "--data-dir", str(data))
    assert (again.returncode, again.stderr) == (1, "error: A user named 'alice' already exists.\n")
    assert no_password.returncode == 2
    assert "standard input has no password" in no_password.stderr

    run(data, "user", "disable", "alice")
    with pytest.raises(AuthenticationFailed, match="disabled"):
        authenticate(data, basic("alice", "alice-password"))


def test_tokens_from_the_command_line(tmp_path: Path) -> None:
    data = tmp_path / "data"
    init_store(data)
    run(data, "user", "add", "alice")

    created = run(
        data,
        "token",
        "create",
        "alice",
        "--project",
        "Acme_Tools",
        "--expires",
        "7",
        "--description",
        "release job",
    )

    token = created.stdout.splitlines()[-1]
    assert re.fullmatch(r"pky_[A-Za-z0-9_-]{43}", token)
    identity = authenticate(data, basic("__token__", token))
    assert (identity.kind, identity.projects) == ("token", frozenset({"acme-tools"}))
    listing = run(data, "token", "list", "alice").stdout
    assert token[:12] in listing
    assert "release job" in listing
    assert token not in listing

    revoked = run(data, "token", "revoke", token[:12])
    assert token[:12] in revoked.stdout
    with pytest.raises(AuthenticationFailed, match="was revoked"):
        authenticate(data, f"Bearer {token}")
    missing = packyard("token", "revoke", "pky_nothing", "--data-dir", str(data))
    assert missing.returncode == 1
    assert missing.stderr.startswith("error: There is no token 'pky_nothing'")


def test_owners_from_the_command_line(tmp_path: Path) -> None:
    data, dists = tmp_path / "data", tmp_path / "dists"
    dists.mkdir()
    build_wheel(dists, "acme-tools", "1.0")
    init_store(data)
    run(data, "import", "--upstream", "none", str(dists))
    run(data, "user", "add", "alice")
    run(data, "group", "create", "devs")

    assert run(data, "owner", "orphaned").stdout == "acme-tools\n"
    run(data, "owner", "add", "Acme_Tools", "--user", "alice")
    run(data, "owner", "add", "acme-tools", "--group", "devs", "--role", "maintainer")
    roles = run(data, "owner", "list", "acme-tools").stdout.splitlines()
    assert [line.split()[:3] for line in roles] == [
        ["ROLE", "KIND", "NAME"],
        ["owner", "user", "alice"],
        ["maintainer", "group", "devs"],
    ]
    assert run(data, "owner", "orphaned").stdout == ""

    # The operator is an admin: it may remove even the last owner.
    run(data, "owner", "remove", "acme-tools", "--user", "alice")
    assert run(data, "owner", "orphaned").stdout == "acme-tools\n"
