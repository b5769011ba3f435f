"""Item 12: cross-site requests, README images and the Host header.

A page on another site, opened by someone who holds credentials for packyard
(a session cookie, Basic credentials the browser cached), makes the browser
send requests to `/legacy/` and `/api/v1/`: they are refused with a clear 403,
while the clients these URLs are for (real twine; scripts without `Origin`)
and this site's own pages keep working. Pages load images from this server
only unless the configuration lists more hosts. A forged `Host` header is
never reflected in a page or a redirect; `public_url` is what absolute URLs use.
"""

from __future__ import annotations

import base64
import re
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.builders import build_wheel
from tests.e2e.servers import BIN, PackyardProcess, clean_environment, init_store, packyard
from tests.unit.publish.test_multipart import encode, twine_form

pytestmark = pytest.mark.e2e

PASSWORD = "alice-password-2"
EVIL = "http://evil.example"
PUBLIC_URL = "https://pypi.example.org/"
IMAGE_HOST = "https://img.shields.io"
BROWSER = {"Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"}
# Ways a browser shows that another site's page sent the request.
FOREIGN = [
    {"Origin": EVIL},
    {"Origin": "null"},
    {"Sec-Fetch-Site": "cross-site"},
    {"Referer": EVIL + "/attack.html"},
]
# Pages and redirects that could be built from the Host header.
HOST_PATHS = [
    "/",
    "/search?q=acme",
    "/project/acme-twine/",
    "/project/Acme_Twine/",
    "/project/acme-twine/1.0",
    "/project/acme-twine/1.0/details",
    "/project/no-such-project/",
    "/admin",
    "/admin/",
    "/admin/sign-in",
    "/legacy",
    "/api/v1/docs",
    "/api/v1/openapi.json",
    "/api/v1/tokens/",
    "/simple",
    "/simple/Acme_Twine/",
    "/nowhere",
]


@dataclass
class Site:
    server: PackyardProcess
    token: str
    root: Path

    @property
    def url(self) -> str:
        return self.server.url

    def basic(self) -> dict[str, str]:
        return _basic("__token__", self.token)


def _basic(user: str, password: str) -> dict[str, str]:
    pair = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {pair}"}


def _start(root: Path, config: str) -> tuple[PackyardProcess, str]:
    """A server in `root` with alice, and a token of hers (made through the API)."""
    data = root / "data"
    init_store(data)
    result = packyard("user", "add", "alice", "--password-stdin", "--data-dir", str(data),
                      input=PASSWORD + "\n")  # fmt: skip
    assert result.returncode == 0, result.stderr
    (root / "packyard.toml").write_text(config)
    server = PackyardProcess(data)
    server.environment["PACKYARD_CONFIG"] = str(root / "packyard.toml")
    server.start()
    made = httpx.post(server.url + "/api/v1/tokens", json={}, headers=_basic("alice", PASSWORD))
    assert made.status_code == 201, made.text
    return server, made.json()["token"]


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    root = tmp_path_factory.mktemp("cross-site")
    server, token = _start(root, "")
    try:
        yield Site(server, token, root)
    finally:
        server.stop()


@pytest.fixture(scope="module")
def public_site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    root = tmp_path_factory.mktemp("public-url")
    config = f'public_url = "{PUBLIC_URL}"\n[browser]\nimage_hosts = ["{IMAGE_HOST}"]\n'
    server, token = _start(root, config)
    try:
        yield Site(server, token, root)
    finally:
        server.stop()


def _upload(site: Site, wheel: Path, headers: dict[str, str]) -> httpx.Response:
    """A twine-shaped upload of `wheel` with alice's token and `headers`."""
    content_type, body = encode(
        twine_form(wheel), (wheel.name, wheel.read_bytes(), "application/octet-stream")
    )
    headers = {"Content-Type": content_type.decode(), **site.basic(), **headers}
    return httpx.post(site.url + "/legacy/", content=body, headers=headers, timeout=60)


def _signed_in(site: Site) -> httpx.Client:
    client = httpx.Client(base_url=site.url, headers=BROWSER, timeout=30)
    form = client.get("/admin/sign-in")
    found = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
    assert found is not None, form.text
    fields = {"csrf_token": found.group(1), "username": "alice", "password": PASSWORD}
    assert client.post("/admin/sign-in", data=fields).status_code == 303
    return client


@pytest.mark.parametrize("foreign", FOREIGN, ids=lambda h: next(iter(h)))
def test_an_upload_from_another_site_is_refused(site: Site, foreign: dict[str, str]) -> None:
    directory = site.root / f"foreign-{len(list(site.root.iterdir()))}"
    directory.mkdir()
    wheel = build_wheel(directory, "acme-foreign", "1.0")
    answer = _upload(site, wheel, foreign)
    assert answer.status_code == 403, answer.text
    assert answer.text.startswith("Cross-site request refused")
    assert "another site's page" in answer.text
    assert httpx.get(site.url + "/simple/acme-foreign/").status_code == 404


@pytest.mark.parametrize("foreign", FOREIGN, ids=lambda h: next(iter(h)))
def test_the_api_refuses_another_site_with_basic_credentials(
    site: Site, foreign: dict[str, str]
) -> None:
    before = httpx.get(site.url + "/api/v1/tokens", headers=site.basic()).json()
    answer = httpx.post(site.url + "/api/v1/tokens", json={}, headers={**site.basic(), **foreign})
    assert answer.status_code == 403
    assert answer.json()["detail"].startswith("Cross-site request refused")
    assert httpx.get(site.url + "/api/v1/tokens", headers=site.basic()).json() == before


def test_the_api_refuses_another_site_with_a_session_cookie(site: Site) -> None:
    browser = _signed_in(site)
    try:
        for method in ("GET", "POST", "DELETE"):
            answer = browser.request(method, "/api/v1/tokens", headers={"Origin": EVIL})
            assert answer.status_code == 403, (method, answer.text)
            assert "Cross-site request refused" in answer.json()["detail"]
        upload = browser.post("/legacy/", headers={"Origin": EVIL}, content=b"x")
        assert upload.status_code == 403
    finally:
        browser.close()


def test_this_site_and_clients_that_are_not_browsers_are_served(site: Site) -> None:
    for headers in ({}, {"Origin": site.url}, {"Sec-Fetch-Site": "same-origin"}):
        answer = httpx.post(
            site.url + "/api/v1/tokens", json={}, headers={**site.basic(), **headers}
        )
        assert answer.status_code == 201, (headers, answer.text)
    # A link from elsewhere to the API's docs opens (a GET without Origin).
    docs = httpx.get(site.url + "/api/v1/docs", headers={"Sec-Fetch-Site": "cross-site"})
    assert docs.status_code == 200
    directory = site.root / "same-site"
    directory.mkdir()
    wheel = build_wheel(directory, "acme-same", "1.0")
    assert _upload(site, wheel, {"Origin": site.url}).status_code == 200


def test_twine_uploads(site: Site) -> None:
    directory = site.root / "twine"
    directory.mkdir()
    wheel = build_wheel(
        directory, "acme-twine", "1.0", description="![x](https://img.example/x.png)"
    )
    argv = [str(BIN / "twine"), "upload", "--non-interactive", "--disable-progress-bar"]
    argv += ["--repository-url", site.url + "/legacy/", "-u", "__token__", "-p", site.token]
    result = subprocess.run(
        [*argv, str(wheel)], capture_output=True, text=True, env=clean_environment(),
        timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert httpx.get(site.url + "/simple/acme-twine/").status_code == 200


def _img_src(answer: httpx.Response) -> str:
    policy = answer.headers["content-security-policy"]
    found = re.search(r"img-src ([^;]*)", policy)
    assert found is not None, policy
    return found.group(1).strip()


def test_pages_load_images_from_this_server_only(site: Site, public_site: Site) -> None:
    for path in ("/", "/project/acme-twine/1.0/details", "/admin/sign-in"):
        answer = httpx.get(site.url + path, headers=BROWSER)
        assert answer.status_code == 200
        assert _img_src(answer) == "'self' data:"
    fragment = httpx.get(site.url + "/project/acme-twine/1.0/details?partial=1")
    assert _img_src(fragment) == "'self' data:"
    listed = httpx.get(public_site.url + "/", headers=BROWSER)
    assert _img_src(listed) == f"'self' data: {IMAGE_HOST}"


def _reflected(answer: httpx.Response) -> list[str]:
    found = [f"body: {answer.text[:200]}"] if "evil.example" in answer.text else []
    return found + [f"{k}: {v}" for k, v in answer.headers.items() if "evil.example" in v]


@pytest.mark.parametrize("path", HOST_PATHS)
def test_a_forged_host_is_never_reflected(site: Site, path: str) -> None:
    for headers in ({}, BROWSER):
        answer = httpx.get(site.url + path, headers={"Host": "evil.example", **headers})
        assert answer.status_code < 500, answer.text
        assert _reflected(answer) == [], (path, answer.status_code)
        location = answer.headers.get("location")
        if location is not None:
            assert location.startswith("/"), location
            assert not location.startswith("//"), location


def test_public_url_is_what_absolute_urls_use(public_site: Site) -> None:
    evil = {"Host": "evil.example", **BROWSER}
    home = httpx.get(public_site.url + "/", headers=evil)
    assert f"{PUBLIC_URL}simple/" in home.text
    assert _reflected(home) == []
    redirect = httpx.get(public_site.url + "/admin", headers=evil)
    assert redirect.status_code in (307, 308)
    assert redirect.headers["location"] == PUBLIC_URL + "admin/"
    for path in HOST_PATHS:
        assert _reflected(httpx.get(public_site.url + path, headers=evil)) == [], path
    # Its own origin may use the API from a page of the site.
    own = {"Origin": PUBLIC_URL.rstrip("/"), **public_site.basic()}
    assert httpx.post(public_site.url + "/api/v1/tokens", json={}, headers=own).status_code == 201
