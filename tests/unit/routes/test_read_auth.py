"""Reading with credentials: the 401 challenge pip needs, the credential cache,
private caching, the caller in the request context, and what stays open."""

from __future__ import annotations

import base64
from pathlib import Path

import httpx
import pytest
from typing_extensions import override

from packyard.app import create_app
from packyard.auth.identity import Identity
from packyard.compose import build_app, prepare_state
from packyard.errors import AuthenticationFailed, UpstreamUnavailable
from packyard.model import ProjectDetail, RequestContext, Resource
from packyard.routes.files import FilesRoute
from packyard.routes.read_auth import CredentialCache, read_guard
from packyard.settings import Settings
from tests.unit.fakes import MemoryRepository

CHALLENGE = 'Basic realm="packyard"'
WHEEL = "acme_core-1.0-py3-none-any.whl"


def basic(user: str, password: str) -> dict[str, str]:
    pair = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {pair}"}


ALICE = basic("alice", "right")


class CountingAuthenticators:
    """Accepts alice's password only; counts every check."""

    def __init__(self) -> None:
        self.checks = 0
        self.down = False

    async def authenticate(self, authorization: str | None, client: str | None = None) -> Identity:
        self.checks += 1
        if self.down:
            raise UpstreamUnavailable("ci.example", "the issuer's keys could not be fetched")
        if authorization != ALICE["Authorization"]:
            raise AuthenticationFailed("Invalid username or password.")
        return Identity(kind="user", name="alice", user_id=1)


class RecordingRepository(MemoryRepository):
    """Remembers the request context of each page and file asked for."""

    def __init__(self) -> None:
        super().__init__("local", {"acme-core": {WHEEL: b"wheel bytes"}})
        self.contexts: list[RequestContext] = []

    @override
    async def get_project(self, name: str, ctx: RequestContext) -> ProjectDetail:
        self.contexts.append(ctx)
        return await super().get_project(name, ctx)

    @override
    async def get_file(self, name: str, filename: str, ctx: RequestContext) -> Resource:
        self.contexts.append(ctx)
        return await super().get_file(name, filename, ctx)


@pytest.fixture
def authenticators() -> CountingAuthenticators:
    return CountingAuthenticators()


@pytest.fixture
def chain() -> RecordingRepository:
    return RecordingRepository()


@pytest.fixture
def client(chain: RecordingRepository, authenticators: CountingAuthenticators) -> httpx.AsyncClient:
    guard = read_guard(authenticators, cache_seconds=60.0)
    app = create_app(chain, files_app=FilesRoute(chain), read_guard=guard)
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://index.test")


READ_PATHS = [
    "/simple/",
    "/simple/acme-core/",
    f"/files/acme-core/{WHEEL}",
    "/snapshot/2020-01-01/simple/",
    f"/snapshot/2020-01-01/files/acme-core/{WHEEL}",
]


@pytest.mark.anyio
@pytest.mark.parametrize("path", READ_PATHS)
@pytest.mark.parametrize("headers", [{}, basic("alice", "wrong")])
async def test_reads_without_valid_credentials_get_the_basic_challenge(
    client: httpx.AsyncClient, chain: RecordingRepository, path: str, headers: dict[str, str]
) -> None:
    for method in ("GET", "HEAD"):
        answer = await client.request(method, path, headers=headers)
        assert answer.status_code == 401
        assert answer.headers["www-authenticate"] == CHALLENGE
        assert answer.headers["cache-control"] == "no-store"
    assert chain.contexts == []


@pytest.mark.anyio
@pytest.mark.parametrize("path", READ_PATHS)
async def test_authenticated_reads_are_served_privately(
    client: httpx.AsyncClient, path: str
) -> None:
    answer = await client.get(path, headers=ALICE)
    assert answer.status_code == 200
    cache_control = answer.headers["cache-control"]
    assert "private" in cache_control
    assert "public" not in cache_control


@pytest.mark.anyio
async def test_the_caller_is_in_the_request_context(
    client: httpx.AsyncClient, chain: RecordingRepository
) -> None:
    await client.get("/simple/acme-core/", headers=ALICE)
    await client.get(f"/files/acme-core/{WHEEL}", headers=ALICE)
    assert [ctx.identity for ctx in chain.contexts] == ["user:alice", "user:alice"]


@pytest.mark.anyio
async def test_health_stays_open(client: httpx.AsyncClient) -> None:
    assert (await client.get("/healthz")).status_code == 200


@pytest.mark.anyio
async def test_a_successful_check_is_remembered_and_a_failure_is_not(
    client: httpx.AsyncClient, authenticators: CountingAuthenticators
) -> None:
    for _ in range(3):
        assert (await client.get("/simple/", headers=ALICE)).status_code == 200
    assert authenticators.checks == 1
    for _ in range(2):
        wrong = await client.get("/simple/", headers=basic("alice", "wrong"))
        assert wrong.status_code == 401
    assert authenticators.checks == 3


@pytest.mark.anyio
async def test_an_issuer_that_is_down_is_a_503_not_a_challenge(
    client: httpx.AsyncClient, authenticators: CountingAuthenticators
) -> None:
    authenticators.down = True
    answer = await client.get("/simple/", headers={"Authorization": "Bearer a.b.c"})
    assert answer.status_code == 503
    assert "www-authenticate" not in answer.headers


def test_the_cache_forgets_after_its_ttl() -> None:
    now = [100.0]
    cache = CredentialCache(ttl=60.0, clock=lambda: now[0])
    alice = Identity(kind="user", name="alice")
    cache.put(b"Basic abc", alice)
    now[0] = 159.0
    assert cache.get(b"Basic abc") is alice
    assert cache.get(b"Basic abd") is None
    now[0] = 160.0
    assert cache.get(b"Basic abc") is None


def test_the_cache_is_bounded_least_recently_used_first() -> None:
    cache = CredentialCache(ttl=60.0, max_entries=2)
    identities = {key: Identity(kind="user", name=key.decode()) for key in (b"a", b"b", b"c")}
    cache.put(b"a", identities[b"a"])
    cache.put(b"b", identities[b"b"])
    assert cache.get(b"a") is identities[b"a"]  # now b is the least recently used
    cache.put(b"c", identities[b"c"])
    assert cache.get(b"b") is None
    assert cache.get(b"a") is identities[b"a"]
    assert cache.get(b"c") is identities[b"c"]


def test_a_ttl_of_zero_remembers_nothing() -> None:
    cache = CredentialCache(ttl=0.0)
    cache.put(b"Basic abc", Identity(kind="user", name="alice"))
    assert cache.get(b"Basic abc") is None


@pytest.mark.anyio
@pytest.mark.parametrize("private", [True, False])
async def test_the_built_app_guards_reads_only_when_configured(
    tmp_path: Path, private: bool
) -> None:
    settings = Settings.model_validate(
        {
            "data_dir": str(tmp_path),
            "upstreams": [],
            "auth": {"read_requires_auth": private},
            "telemetry": {"events": False, "metrics": False},
        }
    )
    prepare_state(settings).dispose()
    app = build_app(settings)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://index.test") as client:
        answer = await client.get("/simple/")
        assert answer.status_code == (401 if private else 200)
        assert (await client.get("/healthz")).status_code == 200
        api = await client.get("/api/v1/users")
        assert (api.status_code, api.headers["www-authenticate"]) == (401, CHALLENGE)
        # Deny by default: the API's document too, with the setting on.
        openapi = await client.get("/api/v1/openapi.json")
        assert openapi.status_code == (401 if private else 200)


@pytest.mark.anyio
async def test_shutdown_closes_the_shared_clients(chain: RecordingRepository) -> None:
    oidc_client = httpx.AsyncClient()
    app = create_app(chain, on_shutdown=[oidc_client.aclose])
    messages = [{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}]
    sent: list[str] = []

    async def receive() -> dict[str, str]:
        return messages.pop(0)

    async def send(message: dict[str, str]) -> None:
        sent.append(message["type"])

    await app({"type": "lifespan", "asgi": {"version": "3.0"}}, receive, send)  # type: ignore[arg-type]
    assert sent == ["lifespan.startup.complete", "lifespan.shutdown.complete"]
    assert oidc_client.is_closed
