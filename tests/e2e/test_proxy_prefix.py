"""packyard under a URL prefix, behind a real nginx (docs/operations.md, "Behind a reverse proxy").

nginx listens on 127.0.0.1 and proxies `/pypi/` to packyard, stripping the
prefix; packyard's `public_url` is `http://127.0.0.1:<nginx>/pypi/`. Through
nginx only: twine uploads to `/pypi/legacy/`, pip installs from
`/pypi/simple/`, every link of every page reachable from the home page and
the admin pages stays under `/pypi/`, the admin sign-in redirects there, and
no page or redirect reflects a `Host` header the client made up.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import httpx
import pytest

from tests.builders import build_wheel
from tests.e2e.clients import installed, pip_install
from tests.e2e.servers import BIN, PYTHON, ServerProcess, clean_environment, free_port, packyard

PREFIX = "/pypi/"
NGINX = shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/usr/local/sbin")

pytestmark = pytest.mark.skipif(
    NGINX is None, reason="nginx is not installed (scripts/test.sh apt-get installs it)"
)

# The location of docs/operations.md's server block, without TLS and the cache,
# and with nginx's default `Host` (the upstream's address, `$proxy_host`) rather
# than the browser's: packyard must take its own address from `public_url`, not
# `Host` (the admin forms' Origin check included).
NGINX_CONF = """worker_processes 1;
daemon off;
user root;
pid {state}/nginx.pid;
error_log stderr warn;
events {{ worker_connections 256; }}
http {{
    access_log off;
    client_body_temp_path {state}/body;
    proxy_temp_path {state}/proxy;
    fastcgi_temp_path {state}/fastcgi;
    uwsgi_temp_path {state}/uwsgi;
    scgi_temp_path {state}/scgi;
    server {{
        listen 127.0.0.1:{port};
        client_max_body_size 0;
        location /pypi/ {{
            proxy_pass http://127.0.0.1:{upstream}/;
            proxy_set_header Host $proxy_host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto $scheme;
            proxy_request_buffering off;
        }}
    }}
}}
"""


@dataclass
class Site:
    public_url: str
    data_dir: Path
    token: str

    def url(self, path: str) -> str:
        return self.public_url + path.lstrip("/")


class Links(HTMLParser):
    """Every `href`, `src` and `action` of a page."""

    def __init__(self) -> None:
        super().__init__()
        self.found: list[tuple[str, str]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if name in ("href", "src", "action") and value is not None:
                self.found.append((tag, value))


def links(page: str) -> list[tuple[str, str]]:
    parser = Links()
    parser.feed(page)
    return parser.found


def cli(data_dir: Path, *args: str, stdin: str | None = None) -> str:
    result = packyard(*args, "--data-dir", str(data_dir), input=stdin)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    root = tmp_path_factory.mktemp("prefix")
    data_dir, state = root / "data", root / "nginx"
    state.mkdir()
    proxy_port, packyard_port = free_port(), free_port()
    public_url = f"http://127.0.0.1:{proxy_port}{PREFIX}"
    config = root / "packyard.toml"
    config.write_text(f'public_url = "{public_url}"\n')
    cli(data_dir, "init")
    cli(data_dir, "user", "add", "alice", "--admin", "--password-stdin", stdin="alice-password\n")
    token = cli(data_dir, "token", "create", "alice").strip().splitlines()[-1]
    argv = [PYTHON, "-m", "packyard", "serve", "--config", str(config), "--data-dir"]
    argv += [str(data_dir), "--port", str(packyard_port), "--upstream", "none"]
    conf = NGINX_CONF.format(state=state, port=proxy_port, upstream=packyard_port)
    (state / "nginx.conf").write_text(conf)
    nginx = [str(NGINX), "-e", "stderr", "-p", str(state), "-c", str(state / "nginx.conf")]
    proxy = ServerProcess(nginx, proxy_port, root / "nginx.log", PREFIX + "healthz")
    with (
        ServerProcess(argv, packyard_port, root / "packyard.log", "/healthz"),
        proxy,
    ):
        yield Site(public_url, data_dir, token)


@pytest.fixture(scope="module")
def published(site: Site, tmp_path_factory: pytest.TempPathFactory) -> str:
    """acme-prefixed 1.0, uploaded by twine through the proxy; its upload's output."""
    wheel = build_wheel(tmp_path_factory.mktemp("dists"), "acme-prefixed", "1.0")
    argv = [str(BIN / "twine"), "upload", "--non-interactive", "--disable-progress-bar"]
    argv += ["--repository-url", site.url("legacy/"), "-u", "__token__", "-p", site.token]
    result = subprocess.run(
        [*argv, str(wheel)],
        capture_output=True,
        text=True,
        env=clean_environment(),
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout + result.stderr


def test_twine_uploads_and_pip_installs_through_the_prefix(
    site: Site, published: str, tmp_path: Path
) -> None:
    result = pip_install(site.url("simple/"), tmp_path / "pip", "acme-prefixed==1.0")
    assert result.returncode == 0, result.stdout + result.stderr
    assert installed(tmp_path / "pip") == {"acme-prefixed": "1.0"}
    page = httpx.get(
        site.url("simple/acme-prefixed/"),
        headers={"Accept": "application/vnd.pypi.simple.v1+json"},
    ).json()
    file_urls = [urljoin(site.url("simple/acme-prefixed/"), file["url"]) for file in page["files"]]
    assert file_urls
    assert all(url.startswith(site.url("files/")) for url in file_urls), file_urls


def test_redirects_stay_under_the_prefix(site: Site) -> None:
    # The project's name normalised, and the sign-in for a page that needs it.
    moved = httpx.get(site.url("simple/Acme_Prefixed/"))
    assert moved.status_code == 301
    assert moved.headers["location"] == PREFIX + "simple/acme-prefixed/"
    sign_in = httpx.get(site.url("admin/"))
    assert sign_in.status_code in (302, 303, 307)
    assert sign_in.headers["location"].startswith(PREFIX + "admin/sign-in?next=")


def test_admin_sign_in_and_every_page_link_stays_under_the_prefix(
    site: Site, published: str
) -> None:
    own = urlsplit(site.public_url)
    with httpx.Client(follow_redirects=True) as browser:
        # As a browser does: the admin home sends to the form, whose fields are posted
        # to its action, with the session cookie it set.
        form = browser.get(site.url("admin/"))
        assert form.status_code == 200
        assert str(form.url).startswith(site.url("admin/sign-in?next="))
        fields = dict(re.findall(r'<input type="hidden" name="(\w+)" value="([^"]*)"', form.text))
        action = re.search(r'<form class="admin-form" method="post" action="([^"]+)"', form.text)
        assert action is not None, form.text
        assert action[1] == PREFIX + "admin/sign-in"
        signed_in = browser.post(
            urljoin(str(form.url), action[1]),
            data=fields | {"username": "alice", "password": "alice-password"},
            headers={"Origin": f"{own.scheme}://{own.netloc}"},
        )
        assert signed_in.status_code == 200, signed_in.text
        assert str(signed_in.url) == site.url("admin/")
        cookie = next(iter(browser.cookies.jar))
        assert cookie.path == PREFIX

        # Every page reachable from the home page and the admin pages, by their links.
        queue, seen, broken = [site.public_url, site.url("admin/")], set[str](), []
        while queue and len(seen) < 60:
            url = queue.pop(0)
            if url in seen:
                continue
            seen.add(url)
            answer = browser.get(url)
            if answer.status_code >= 400:
                broken.append(f"{url}: {answer.status_code}")
            if not answer.headers.get("content-type", "").startswith("text/html"):
                continue
            for tag, link in links(answer.text):
                target = urljoin(str(answer.url), link)
                parts = urlsplit(target)
                if parts.scheme not in ("http", "https") or parts.netloc != own.netloc:
                    continue  # another site (a project's home page), mailto:, data:
                assert parts.path.startswith(PREFIX), f"{url}: <{tag}> {link}"
                if tag == "a" and "sign-out" not in parts.path:
                    queue.append(target.split("#", 1)[0])
        assert not broken, broken
        assert site.url("project/acme-prefixed/") in seen
        assert len(seen) > 5, seen


def test_the_install_hint_names_the_public_url(site: Site, published: str) -> None:
    page = httpx.get(site.url("project/acme-prefixed/")).text
    assert site.url("simple/") in page


def test_no_page_or_redirect_reflects_the_host_header(site: Site, published: str) -> None:
    forged = {"Host": "evil.example", "X-Forwarded-Host": "evil.example"}
    for path in ("", "project/acme-prefixed/", "search?q=acme", "admin/sign-in", "simple/"):
        answer = httpx.get(site.url(path), headers=forged)
        assert answer.status_code == 200, path
        assert "evil.example" not in answer.text, path
    for path in ("simple/Acme_Prefixed/", "admin/", "admin"):
        answer = httpx.get(site.url(path), headers=forged)
        assert "evil.example" not in answer.headers.get("location", ""), path
