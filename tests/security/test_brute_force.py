"""Item 6 of the hardening: guessing passwords is slowed down, and a flood of made-up
passwords cannot make the server queue argon2 work.

Two real `packyard serve` processes share one database (SQLite, then PostgreSQL),
as two replicas do: failures counted by one count for the other. Each attacker
connects from an address of its own on the loopback network (127.0.0.x), so
that the per-address limits are those of real clients.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import httpx
import pytest

from tests.e2e.servers import PackyardProcess, clean_environment, init_store, packyard
from tests.postgres import PostgresServer

pytestmark = pytest.mark.e2e
PASSWORDS = {"alice": "alice-secret-pw", "bob": "bob-secret-pw", "carol": "carol-secret-pw"}
PER_ACCOUNT, PER_ADDRESS, WINDOW = 5, 12, 120
TOKEN_FIELD = re.compile(r'name="csrf_token" value="([^"]*)"')


@dataclass
class Replicas:
    a: PackyardProcess
    b: PackyardProcess


def client(
    server: PackyardProcess, address: str, auth: tuple[str, str] | None = None
) -> httpx.Client:
    """A client of `server` whose connections come from `address` (127.0.0.x)."""
    transport = httpx.HTTPTransport(local_address=address)
    return httpx.Client(base_url=server.url, transport=transport, auth=auth, timeout=60)


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def database(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """The `database_url` fixture's two databases, once for the module's servers each."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path_factory.mktemp('sqlite') / 'packyard.db'}"
        return
    server: PostgresServer = request.getfixturevalue("postgres_server")
    with server.database() as url:
        yield url


@pytest.fixture(scope="module")
def replicas(tmp_path_factory: pytest.TempPathFactory, database: str) -> Iterator[Replicas]:
    """Two servers on one database, reading with credentials, with small limits: one
    password check at a time and one waiting."""
    root = tmp_path_factory.mktemp("brute")
    env = clean_environment(PACKYARD_DATABASE_URL=database)
    init_store(root / "a", env=env)
    for name, password in PASSWORDS.items():
        added = packyard(
            "user", "add", name, "--password-stdin", "--data-dir", str(root / "a"),
            env=env, input=password + "\n",
        )  # fmt: skip
        assert added.returncode == 0, added.stderr
    config = root / "packyard.toml"
    config.write_text(
        "[auth]\nread_requires_auth = true\n"
        f"max_failed_sign_ins_per_account = {PER_ACCOUNT}\n"
        f"max_failed_sign_ins_per_address = {PER_ADDRESS}\n"
        f"failed_sign_in_window_seconds = {WINDOW}\n"
        "password_check_threads = 1\npassword_check_queue = 1\n"
    )
    servers = [PackyardProcess(root / name, database_url=database) for name in ("a", "b")]
    for server in servers:
        server.argv += ["--config", str(config)]
    with servers[0], servers[1]:
        yield Replicas(*servers)


def form_sign_in(server: PackyardProcess, address: str, user: str, password: str) -> httpx.Response:
    """The admin sign-in form, as a browser submits it."""
    with client(server, address) as browser:
        form = browser.get("/admin/sign-in")
        token = TOKEN_FIELD.search(form.text)
        assert token is not None, form.text
        data = {"csrf_token": token.group(1), "username": user, "password": password}
        return browser.post("/admin/sign-in", data=data)


def sign_in(
    server: PackyardProcess, address: str, how: str, user: str, password: str
) -> httpx.Response:
    """One sign-in by `how`: Basic on `simple`, `api` or `legacy`, or the admin `form`."""
    if how == "form":
        return form_sign_in(server, address, user, password)
    with client(server, address, auth=(user, password)) as http:
        if how == "simple":
            return http.get("/simple/")
        if how == "api":
            return http.get("/api/v1/tokens")
        return http.post("/legacy/", data={":action": "file_upload"})


def attempt(server: PackyardProcess, address: str, how: str, user: str, password: str) -> int:
    """The status of one sign-in (`sign_in`)."""
    return sign_in(server, address, how, user, password).status_code


def checks(server: PackyardProcess) -> dict[str, float]:
    """The server's `packyard_password_checks_total` by outcome."""
    text = httpx.get(server.url + "/metrics", auth=("bob", PASSWORDS["bob"]), timeout=30).text
    found = re.findall(r'packyard_password_checks_total\{outcome="(\w+)"\} ([0-9.e+]+)', text)
    return {outcome: float(value) for outcome, value in found}


def test_a_burst_of_wrong_passwords_for_one_account_is_refused_with_429(
    replicas: Replicas,
) -> None:
    ways = ["simple", "api", "legacy", "form", "simple"]
    failed = {"simple": 401, "api": 401, "legacy": 403, "form": 401}
    for number, how in enumerate(ways):
        server = (replicas.a, replicas.b)[number % 2]  # failures add up across replicas
        assert attempt(server, "127.0.0.2", how, "alice", f"guess-{number}") == failed[how]

    for server, how in ((replicas.a, "simple"), (replicas.b, "api"), (replicas.a, "legacy")):
        response = sign_in(server, "127.0.0.2", how, "alice", "guess-again")
        assert response.status_code == 429, (how, response.text)
        assert 0 < int(response.headers["retry-after"]) <= WINDOW
        assert "Too many failed sign-ins for the user 'alice'" in response.text
    locked = sign_in(replicas.b, "127.0.0.2", "form", "alice", "guess-again")
    assert locked.status_code == 429
    assert "retry-after" in locked.headers
    # The account is locked wherever the guesses come from, right password or not...
    assert attempt(replicas.b, "127.0.0.3", "simple", "alice", PASSWORDS["alice"]) == 429
    # ...but another account still signs in, from the guesser's address too.
    assert attempt(replicas.a, "127.0.0.2", "simple", "bob", PASSWORDS["bob"]) == 200


def test_guessing_many_accounts_from_one_address_is_refused_with_429(replicas: Replicas) -> None:
    for number in range(PER_ADDRESS):
        server = (replicas.a, replicas.b)[number % 2]
        assert attempt(server, "127.0.0.4", "simple", f"user{number}", "a-guess-pw") == 401

    refused = sign_in(replicas.b, "127.0.0.4", "simple", "bob", PASSWORDS["bob"])
    assert refused.status_code == 429
    assert "from your address" in refused.text
    assert int(refused.headers["retry-after"]) > 0
    assert attempt(replicas.b, "127.0.0.5", "simple", "bob", PASSWORDS["bob"]) == 200


def test_a_repeated_wrong_password_is_refused_without_hashing(replicas: Replicas) -> None:
    before = checks(replicas.a)
    for _ in range(4):
        assert attempt(replicas.a, "127.0.0.6", "simple", "carol", "always-wrong") == 401
    after = checks(replicas.a)

    assert after.get("wrong", 0) - before.get("wrong", 0) == 1  # one argon2 check only
    assert after.get("remembered", 0) - before.get("remembered", 0) == 3
    assert attempt(replicas.a, "127.0.0.6", "simple", "carol", PASSWORDS["carol"]) == 200


def test_a_flood_of_made_up_passwords_is_not_queued(replicas: Replicas) -> None:
    """Each flooder has an address and a user name of its own (no limit applies): only
    the pool's one running and one waiting check are admitted at a time."""
    flooders = 24
    # Bob's password is checked once, then remembered by the read path's credential cache.
    assert attempt(replicas.a, "127.0.0.7", "simple", "bob", PASSWORDS["bob"]) == 200
    before = checks(replicas.a)
    ready = threading.Barrier(flooders + 1)

    def flood(number: int) -> httpx.Response:
        with client(replicas.a, f"127.0.1.{number + 1}") as http:
            assert http.get("/healthz").status_code == 200  # connected before the burst
            ready.wait()
            return http.get("/simple/", auth=(f"flooder{number}", "made-up-password"))

    with ThreadPoolExecutor(flooders) as pool:
        answers = [pool.submit(flood, number) for number in range(flooders)]
        ready.wait()
        with client(replicas.a, "127.0.0.7", auth=("bob", PASSWORDS["bob"])) as http:
            good = http.get("/simple/")
        statuses = [answer.result().status_code for answer in answers]
    after = checks(replicas.a)

    assert good.status_code == 200  # a known good credential never waits for the pool
    assert set(statuses) <= {401, 503}
    busy = statuses.count(503)
    assert busy >= flooders // 2, statuses
    assert all(
        answer.result().headers["retry-after"] == "1"
        for answer in answers
        if answer.result().status_code == 503
    )
    assert after.get("busy", 0) - before.get("busy", 0) == busy
    assert after.get("wrong", 0) - before.get("wrong", 0) == statuses.count(401)
