"""Item 1: with `read_requires_auth`, nothing that reveals the repository is open.

An anonymous client of a real `packyard serve` tries every kind of page (the
web pages and their fragments, the index, the API, routes that do not exist
yet); each is refused (401 with the Basic challenge, or a browser sent to the
sign-in page) without packyard asking the upstream anything, while a user's
password, a token or a browser session are let in. `/metrics` has its own
setting: open, a bearer token, or an address of its own; it never shows the
credentials of an upstream's URL.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.builders import build_wheel
from tests.e2e.servers import PackyardProcess, free_port, init_store, packyard
from tests.security.recording_upstream import PROJECT, RecordingUpstream

pytestmark = pytest.mark.e2e

PASSWORD = "alice-password-1"
SECRET = "acme-secret"
SUMMARY = "Top secret summary of the in-house package"
README = "The in-house README nobody outside may read"
WHEEL = "acme_secret-1.0-py3-none-any.whl"
UPSTREAM_PASSWORD = "upstream-pass-9f3k"
BROWSER = {"Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"}
PIP_ACCEPT = {
    "Accept": "application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html; "
    "q=0.1, text/html; q=0.01"
}
# Pages that show the repository, in-house and upstream, and routes to come.
PAGES = [
    "/",
    "/search?q=acme",
    f"/project/{SECRET}/",
    f"/project/{SECRET}/1.0/",
    f"/project/{SECRET}/1.0/details?partial=1",
    f"/project/{SECRET}/1.0/details",
    f"/project/{PROJECT}/",
    "/admin/",
    "/api/v1/openapi.json",
    "/api/v1/docs",
    "/advisories/PYSEC-2024-1",
    "/osv/v1/query",
    "/anything-added-later",
]
INDEX = [
    "/simple/",
    f"/simple/{SECRET}/",
    f"/simple/{PROJECT}/",
    f"/files/{SECRET}/{WHEEL}",
    "/snapshot/2030-01-01/simple/",
    # PEP 740 provenance is fetched by tools beside the files: the challenge, as for them.
    f"/integrity/{SECRET}/1.0/{WHEEL}/provenance",
]
# What a signed-in reader gets with 200.
READABLE = ["/", "/search?q=acme", f"/project/{SECRET}/", f"/project/{SECRET}/1.0/details"]
READABLE += ["/simple/", f"/simple/{SECRET}/", f"/files/{SECRET}/{WHEEL}"]


@dataclass
class PrivateSite:
    server: PackyardProcess
    upstream: RecordingUpstream
    token: str

    @property
    def url(self) -> str:
        return self.server.url


def _cli(data: Path, *args: str, input: str | None = None) -> str:
    result = packyard(*args, "--data-dir", str(data), input=input)
    assert result.returncode == 0, result.stderr
    return result.stdout


def _basic(user: str, password: str) -> dict[str, str]:
    pair = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {pair}"}


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrivateSite]:
    root = tmp_path_factory.mktemp("read-auth")
    data = root / "data"
    dists = root / "dists"
    dists.mkdir()
    build_wheel(dists, SECRET, "1.0", summary=SUMMARY, description=README)
    init_store(data)
    _cli(data, "import", "--upstream", "none", str(dists))
    _cli(data, "user", "add", "alice", "--password-stdin", input=PASSWORD + "\n")
    with RecordingUpstream(root, "mirror", UPSTREAM_PASSWORD) as upstream:
        config = root / "packyard.toml"
        config.write_text("[auth]\nread_requires_auth = true\n")
        server = PackyardProcess(data, upstreams=[upstream.index_url_with_credentials])
        server.environment["PACKYARD_CONFIG"] = str(config)
        with server:
            made = httpx.post(
                server.url + "/api/v1/tokens", json={}, headers=_basic("alice", PASSWORD)
            )
            assert made.status_code == 201, made.text
            yield PrivateSite(server, upstream, made.json()["token"])


def _signed_in(site: PrivateSite) -> httpx.Client:
    """A client holding a browser session of alice's, made through the sign-in form."""
    client = httpx.Client(base_url=site.url, headers=BROWSER, timeout=30)
    form = client.get("/admin/sign-in")
    assert form.status_code == 200
    found = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
    assert found is not None, form.text
    fields = {"csrf_token": found.group(1), "username": "alice", "password": PASSWORD}
    answer = client.post("/admin/sign-in", data=fields)
    assert answer.status_code == 303, answer.text
    return client


def _shows_nothing(answer: httpx.Response, *, names: bool = True) -> None:
    """No summary, README or (unless the client named it itself) project name."""
    for secret in (SUMMARY, README, *((PROJECT, "acme") if names else ())):
        assert secret not in answer.text


@pytest.mark.parametrize("path", PAGES + INDEX)
def test_an_api_client_without_credentials_gets_the_challenge(site: PrivateSite, path: str) -> None:
    for method in ("GET", "HEAD", "POST"):
        answer = httpx.request(method, site.url + path, timeout=30)
        assert answer.status_code == 401, (method, path, answer.text)
        assert answer.headers["www-authenticate"] == 'Basic realm="packyard"'
        assert answer.headers["cache-control"] == "no-store"
        _shows_nothing(answer)


@pytest.mark.parametrize("path", PAGES)
def test_a_browser_without_a_session_is_sent_to_the_sign_in_page(
    site: PrivateSite, path: str
) -> None:
    answer = httpx.get(site.url + path, headers=BROWSER, timeout=30)
    assert answer.status_code == 303, answer.text
    location = answer.headers["location"]
    assert location.startswith("/admin/sign-in?next=/")
    next_path = httpx.URL(location).params["next"]
    assert next_path == path
    _shows_nothing(answer, names=False)


@pytest.mark.parametrize("path", INDEX)
def test_installers_always_get_the_challenge_even_accepting_html(
    site: PrivateSite, path: str
) -> None:
    for headers in (PIP_ACCEPT, BROWSER):
        answer = httpx.get(site.url + path, headers=headers, timeout=30)
        assert answer.status_code == 401
        assert answer.headers["www-authenticate"] == 'Basic realm="packyard"'


def test_wrong_credentials_and_a_forged_session_are_refused(site: PrivateSite) -> None:
    for headers in (_basic("alice", "wrong"), _basic("__token__", "pyd_forged")):
        answer = httpx.get(site.url + f"/project/{SECRET}/", headers=headers, timeout=30)
        assert answer.status_code == 401
        _shows_nothing(answer)
    forged = {"Cookie": "packyard_session=eyJ1aWQiOjF9.forged", **BROWSER}
    answer = httpx.get(site.url + f"/project/{SECRET}/", headers=forged, timeout=30)
    assert answer.status_code == 303
    _shows_nothing(answer, names=False)


def test_what_stays_open_reveals_nothing(site: PrivateSite) -> None:
    assert httpx.get(site.url + "/healthz").status_code == 200
    assert httpx.get(site.url + "/readyz").status_code == 200
    sign_in = httpx.get(site.url + "/admin/sign-in", headers=BROWSER)
    assert sign_in.status_code == 200
    _shows_nothing(sign_in)
    stylesheet = re.search(r'href="(/static/[^"]+\.css)"', sign_in.text)
    assert stylesheet is not None
    assert httpx.get(site.url + stylesheet.group(1)).status_code == 200


@pytest.mark.parametrize(
    "credentials",
    [lambda site: _basic("alice", PASSWORD), lambda site: _basic("__token__", site.token)],
    ids=["password", "token"],
)
def test_a_password_or_a_token_reads_every_page(site: PrivateSite, credentials: object) -> None:
    headers = credentials(site)  # type: ignore[operator]
    for path in READABLE:
        answer = httpx.get(site.url + path, headers={**BROWSER, **headers}, timeout=30)
        assert answer.status_code == 200, (path, answer.text)
        assert "public" not in answer.headers.get("cache-control", "")
    page = httpx.get(site.url + f"/project/{SECRET}/1.0/details", headers=headers, timeout=30)
    assert README in page.text


def test_a_browser_session_reads_every_page_and_downloads(site: PrivateSite) -> None:
    browser = _signed_in(site)
    try:
        for path in READABLE:
            answer = browser.get(path)
            assert answer.status_code == 200, (path, answer.text)
        assert SUMMARY in browser.get(f"/project/{SECRET}/").text
    finally:
        browser.close()


def test_anonymous_project_pages_never_reach_the_upstream(site: PrivateSite) -> None:
    before = site.upstream.requests()
    for path in (f"/project/{PROJECT}/", f"/project/{PROJECT}/1.0/details?partial=1"):
        assert httpx.get(site.url + path, headers=BROWSER, timeout=30).status_code == 303
        assert httpx.get(site.url + path, timeout=30).status_code == 401
    assert httpx.get(site.url + f"/simple/{PROJECT}/", timeout=30).status_code == 401
    assert site.upstream.requests() == before
    # The same page for alice is fetched from the upstream (so the count above means it).
    alice = _basic("alice", PASSWORD)
    answer = httpx.get(site.url + f"/project/{PROJECT}/", headers=alice, timeout=30)
    assert answer.status_code == 200, answer.text
    assert f"/simple/{PROJECT}/" in site.upstream.requests()


def test_open_metrics_never_name_the_upstream_credentials(site: PrivateSite) -> None:
    alice = _basic("alice", PASSWORD)
    assert httpx.get(site.url + f"/simple/{PROJECT}/", headers=alice).status_code == 200
    metrics = httpx.get(site.url + "/metrics", timeout=30)
    assert metrics.status_code == 200  # the default: open, by its own setting
    assert f"127.0.0.1:{site.upstream.port}" in metrics.text  # the upstream is labelled
    assert UPSTREAM_PASSWORD not in metrics.text
    assert "mirror:" not in metrics.text
    assert "mirror@" not in metrics.text


def _metrics_server(root: Path, telemetry: str) -> PackyardProcess:
    config = root / "packyard.toml"
    config.write_text(f"[auth]\nread_requires_auth = true\n[telemetry]\n{telemetry}")
    server = PackyardProcess(root / "data")
    server.environment["PACKYARD_CONFIG"] = str(config)
    return server


def test_metrics_behind_a_token(tmp_path: Path) -> None:
    token_file = tmp_path / "metrics-token"
    token_file.write_text("scrape-token-5b1c\n")
    with _metrics_server(tmp_path, f'metrics_token_file = "{token_file}"\n') as server:
        url = server.url + "/metrics"
        for headers in ({}, {"Authorization": "Bearer wrong"}, _basic("x", "scrape-token-5b1c")):
            answer = httpx.get(url, headers=headers)
            assert answer.status_code == 401
            assert answer.headers["www-authenticate"] == 'Bearer realm="packyard metrics"'
            assert "packyard_http_requests" not in answer.text
        answer = httpx.get(url, headers={"Authorization": "Bearer scrape-token-5b1c"})
        assert answer.status_code == 200
        assert "packyard_http_requests_total" in answer.text


def test_metrics_on_an_address_of_their_own(tmp_path: Path) -> None:
    port = free_port()
    with _metrics_server(tmp_path, f'metrics_listen = "127.0.0.1:{port}"\n') as server:
        # The main port: like any other private path, and no metrics even signed in.
        assert httpx.get(server.url + "/metrics").status_code == 401
        assert httpx.get(server.url + "/metrics", headers=BROWSER).status_code == 303
        answer = httpx.get(f"http://127.0.0.1:{port}/metrics")
        assert answer.status_code == 200
        assert "packyard_http_requests_total" in answer.text
        assert httpx.get(f"http://127.0.0.1:{port}/simple/").status_code == 404
