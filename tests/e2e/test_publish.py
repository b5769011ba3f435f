"""Publishing end to end: a real server, real twine, uv and hatch, then pip and uv
install what they uploaded; and every kind of bad upload, refused with its
message and leaving nothing stored.

One server per backend, SQLite, then PostgreSQL, then PostgreSQL with the
blobs in an S3 bucket (the issue: "runs the database tests and the upload
end-to-end tests against both"; `tests/e2e/backends.py`), each for the
whole module, with a 1 MiB file limit (from a configuration file) so that
"too large" is cheap to test; users and tokens are made with the `packyard
user` and `packyard token` commands, as an operator would, on the same
database as the server (`PACKYARD_DATABASE_URL`).
"""

from __future__ import annotations

import base64
import hashlib
import random
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import requests
from twine.commands.upload import skip_upload
from twine.package import PackageFile

from tests.builders import build_sdist, build_wheel, metadata_text
from tests.e2e.backends import (
    POSTGRESQL,
    POSTGRESQL_S3,
    SQLITE,
    backend_environment,
    stored_keys,
)
from tests.e2e.clients import installed, pip_install, run, uv_install
from tests.e2e.servers import BIN, PackyardProcess, clean_environment, packyard
from tests.unit.publish.test_multipart import encode, twine_form

pytestmark = pytest.mark.e2e
LIMIT = 1024 * 1024
SIMPLE_JSON = "application/vnd.pypi.simple.v1+json"


@dataclass
class Site:
    server: PackyardProcess
    tokens: dict[str, str]
    root: Path

    @property
    def upload_url(self) -> str:
        return self.server.url + "/legacy/"

    def cli(self, *args: str, stdin: str | None = None) -> str:
        env = clean_environment(**self.server.environment)
        result = packyard(*args, "--data-dir", str(self.server.data_dir), env=env, input=stdin)
        assert result.returncode == 0, result.stdout + result.stderr
        return result.stdout

    def token(self, user: str, *options: str) -> str:
        return self.cli("token", "create", user, *options).strip().splitlines()[-1]

    def dists(self, name: str) -> Path:
        directory = self.root / name
        directory.mkdir()
        return directory

    def stored(self) -> list[str]:
        """Every blob and temporary file on disk, or every object (staging ones
        included) in the bucket."""
        in_bucket = stored_keys(self.server.environment, "files")
        if in_bucket is not None:
            return in_bucket
        files = self.server.data_dir / "files"
        return sorted(str(p.relative_to(files)) for p in files.rglob("*") if p.is_file())

    def post(
        self,
        path: Path,
        *,
        token: str | None = None,
        content: bytes | None = None,
        filename: str | None = None,
        **changes: str | None,
    ) -> httpx.Response:
        """A twine-shaped upload of `path`; `content` and `filename` replace its
        bytes and its name in the request."""
        data = path.read_bytes() if content is None else content
        part = (filename or path.name, data, "application/octet-stream")
        content_type, body = encode(twine_form(path, **changes), part)
        headers = {"content-type": content_type.decode()}
        auth = ("__token__", token if token is not None else self.tokens["alice"])
        return httpx.post(self.upload_url, content=body, headers=headers, auth=auth, timeout=60)


@pytest.fixture(scope="module", params=[SQLITE, POSTGRESQL, POSTGRESQL_S3])
def site(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Site]:
    """The running site, on SQLite in its data directory, then on an empty
    database of the session's PostgreSQL server, then on such a database and
    a bucket of the session's SeaweedFS."""
    root = tmp_path_factory.mktemp(f"publish-{request.param}")
    with (
        backend_environment(request, request.param) as environment,
        running_site(root, environment) as site,
    ):
        yield site


@contextmanager
def running_site(root: Path, environment: dict[str, str]) -> Iterator[Site]:
    """A started server in `root` with alice's and bob's tokens (and a revoked one);
    `environment` puts its state elsewhere than the data directory (`backends.py`)."""
    config = root / "packyard.toml"
    config.write_text(f"[upload]\nmax_file_size = {LIMIT}\n")
    server = PackyardProcess(root / "data")
    server.environment.update(environment)
    server.environment["PACKYARD_CONFIG"] = str(config)
    site = Site(server, {}, root)
    site.cli("init")
    site.cli("user", "add", "alice", "--password-stdin", stdin="correct horse battery\n")
    site.cli("user", "add", "bob")
    site.tokens["alice"] = site.token("alice")
    site.tokens["alice-other"] = site.token("alice", "--project", "other-project")
    site.tokens["bob"] = site.token("bob")
    revoked = site.token("alice")
    site.cli("token", "revoke", revoked[:12])
    site.tokens["revoked"] = revoked
    with server:
        yield site


def upload_tool(*argv: str) -> tuple[int, str]:
    result = run(list(argv))
    return result.returncode, result.stdout + result.stderr


def twine(site: Site, *files: Path) -> tuple[int, str]:
    argv = [str(BIN / "twine"), "upload", "--non-interactive", "--disable-progress-bar"]
    argv += ["--repository-url", site.upload_url, "-u", "__token__", "-p", site.tokens["alice"]]
    return upload_tool(*argv, "--verbose", *map(str, files))


def test_twine_uploads_and_pip_and_uv_install(site: Site, tmp_path: Path) -> None:
    dists = site.dists("twine")
    wheel = build_wheel(dists, "acme-twine", "1.0", requires_python=">=3.8")
    sdist = build_sdist(dists, "acme-twine", "1.0")

    first = twine(site, wheel, sdist)
    again = twine(site, wheel, sdist)  # the identical files: 200, nothing changes

    assert first[0] == 0, first[1]
    assert again[0] == 0, again[1]
    pip = pip_install(site.server.index_url, tmp_path / "pip", "acme-twine==1.0")
    uv = uv_install(site.server.index_url, tmp_path / "uv", "acme-twine==1.0")
    assert pip.returncode == 0, pip.stdout + pip.stderr
    assert uv.returncode == 0, uv.stdout + uv.stderr
    assert installed(tmp_path / "pip") == installed(tmp_path / "uv") == {"acme-twine": "1.0"}


def test_twine_reports_other_bytes_under_a_used_name_and_would_skip_them(site: Site) -> None:
    first, second = site.dists("reuse-a"), site.dists("reuse-b")
    original = build_wheel(first, "acme-reuse", "1.0")
    changed = build_wheel(second, "acme-reuse", "1.0", summary="Other bytes, same name")
    assert twine(site, original)[0] == 0

    refused = twine(site, changed)

    assert refused[0] != 0
    assert "File already exists" in refused[1]
    # twine >= 6.1 allows --skip-existing only for pypi.org itself; its decision
    # is still this function, run here on this server's real answer (§2.19).
    response = requests.post(
        site.upload_url,
        files={"content": (changed.name, changed.read_bytes())},
        data=twine_form(changed),
        auth=("__token__", site.tokens["alice"]),
        timeout=60,
    )
    package = PackageFile.from_filename(str(changed), comment=None)
    assert response.status_code == 400
    assert skip_upload(response, skip_existing=True, package=package)


def test_uv_publish_with_check_url_uploads_once(site: Site, tmp_path: Path) -> None:
    dists = site.dists("uv")
    build_wheel(dists, "acme-uv", "1.0")
    build_sdist(dists, "acme-uv", "1.0")
    argv = [
        str(BIN / "uv"),
        "publish",
        "--no-config",
        "--publish-url",
        site.upload_url,
        "--check-url",
        site.server.index_url,
        "--token",
        site.tokens["alice"],
        str(dists / "*"),
    ]

    first = upload_tool(*argv)
    assert first[0] == 0, first[1]
    # No wait: uv's check reads the index page, which shows the server's own write.
    second = upload_tool(*argv)

    assert second[0] == 0, second[1]
    assert "already exists" in second[1].lower() or "skipping" in second[1].lower()
    target = tmp_path / "uv-target"
    result = uv_install(site.server.index_url, target, "acme-uv")
    assert result.returncode == 0, result.stdout + result.stderr
    assert installed(target) == {"acme-uv": "1.0"}


def test_hatch_publish_uploads(site: Site, tmp_path: Path) -> None:
    dists = site.dists("hatch")
    wheel = build_wheel(dists, "acme-hatch", "2.0")
    sdist = build_sdist(dists, "acme-hatch", "2.0")
    argv = [str(BIN / "hatch"), "publish", "--no-prompt", "-r", site.upload_url]
    argv += ["-u", "__token__", "-a", site.tokens["alice"], str(wheel), str(sdist)]

    code, output = upload_tool(*argv)

    assert code == 0, output
    result = pip_install(site.server.index_url, tmp_path / "pip", "acme-hatch==2.0")
    assert result.returncode == 0, result.stdout + result.stderr


def test_credentials_and_rights_are_checked(site: Site) -> None:
    dists = site.dists("auth")
    wheel = build_wheel(dists, "acme-auth", "1.0")
    assert site.post(wheel).status_code == 200  # alice owns acme-auth now
    sdist = build_sdist(dists, "acme-auth", "1.0")
    before = site.stored()
    content_type, body = encode(twine_form(sdist), (sdist.name, sdist.read_bytes(), None))
    headers = {"content-type": content_type.decode()}

    anonymous = httpx.post(site.upload_url, content=body, headers=headers)
    wrong = httpx.post(
        site.upload_url, content=body, headers=headers, auth=("alice", "not the password")
    )
    answers = {
        "anonymous": anonymous,
        "wrong password": wrong,
        "revoked": site.post(sdist, token=site.tokens["revoked"]),
        "scoped": site.post(sdist, token=site.tokens["alice-other"]),
        "non-owner": site.post(sdist, token=site.tokens["bob"]),
    }

    assert {what: r.status_code for what, r in answers.items()} == dict.fromkeys(answers, 403)
    assert answers["scoped"].text.startswith(
        "The given token isn't allowed to upload to project 'acme-auth'."
    )
    assert answers["non-owner"].text.startswith(
        "The user 'bob' isn't allowed to upload to project 'acme-auth'."
    )
    assert site.stored() == before


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("corrupt zip", "Invalid distribution file"),
        (
            "metadata disagrees",
            "Invalid distribution file 'acme_bad-1.0-py3-none-any.whl'. The metadata version "
            "'9.0' does not match the filename.",
        ),
        ("hostile filename", "Cannot upload a file with '/' or '\\' in the name."),
        ("digest mismatch", "The digest supplied does not match"),
        ("too large", "File too large. Limit for project 'acme-bad' is 1 MB."),
        ("metadata version 3.0", "'3.0' is not a valid metadata version"),
        ("no content part", "Upload payload does not have a file."),
        (
            "not PEP 625",
            "Filename 'Acme.Bad-1.0.tar.gz' is invalid, should be 'acme_bad-1.0.tar.gz'.",
        ),
    ],
)
def test_bad_uploads_are_refused_and_store_nothing(site: Site, case: str, message: str) -> None:
    dists = site.root / f"bad-{case.replace(' ', '-')}"
    dists.mkdir()
    response = bad_upload(site, dists, case)

    assert response.status_code == 400, response.text
    assert response.text.startswith(message), response.text
    assert not [name for name in site.stored() if "acme_bad" in name.lower() or ".tmp" in name]
    listing = httpx.get(site.server.index_url + "acme-bad/")
    assert listing.status_code == 404


def bad_upload(site: Site, dists: Path, case: str) -> httpx.Response:
    wheel = build_wheel(dists, "acme-bad", "1.0")
    if case == "corrupt zip":
        corrupt = b"PK\x03\x04" + bytes(200)
        return site.post(wheel, content=corrupt, **_digests(corrupt))
    if case == "metadata disagrees":
        (dists / "other").mkdir()
        lying = build_wheel(
            dists / "other", "acme-bad", "1.0", metadata=metadata_text("acme-bad", "9.0")
        )
        return site.post(lying, version="1.0")
    if case == "hostile filename":
        return site.post(wheel, filename="..\\..\\" + wheel.name)
    if case == "digest mismatch":
        return site.post(wheel, sha256_digest="0" * 64)
    if case == "too large":
        noise = random.Random(1).randbytes(LIMIT + 1)
        (dists / "big").mkdir()
        big = build_wheel(dists / "big", "acme-bad", "1.0", extra_files={"acme_bad/n": noise})
        return site.post(big)
    if case == "metadata version 3.0":
        return site.post(wheel, metadata_version="3.0")
    if case == "no content part":
        content_type, body = encode(twine_form(wheel), None)
        headers = {"content-type": content_type.decode()}
        return httpx.post(
            site.upload_url, content=body, headers=headers, auth=("__token__", site.tokens["alice"])
        )
    assert case == "not PEP 625"
    sdist = build_sdist(dists, "acme-bad", "1.0")
    return site.post(sdist.rename(sdist.with_name("Acme.Bad-1.0.tar.gz")), name="Acme.Bad")


def _digests(data: bytes) -> dict[str, str | None]:
    return {
        "sha256_digest": hashlib.sha256(data).hexdigest(),
        "blake2_256_digest": hashlib.blake2b(data, digest_size=32).hexdigest(),
    }


def test_an_upload_cut_off_half_way_stores_nothing(site: Site) -> None:
    dists = site.dists("cut")
    wheel = build_wheel(
        dists, "acme-cut", "1.0", extra_files={"acme_cut/n": random.Random(2).randbytes(200_000)}
    )
    content_type, body = encode(twine_form(wheel), (wheel.name, wheel.read_bytes(), None))
    token = site.tokens["alice"]
    credentials = base64.b64encode(f"__token__:{token}".encode()).decode()
    head = (
        f"POST /legacy/ HTTP/1.1\r\nHost: 127.0.0.1:{site.server.port}\r\n"
        f"Authorization: Basic {credentials}\r\nContent-Type: {content_type.decode()}\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode()
    with socket.create_connection(("127.0.0.1", site.server.port), timeout=10) as sock:
        sock.sendall(head + body[: len(body) // 2])
        time.sleep(0.5)  # the server has streamed the first half into a temporary file

    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(".tmp" in name for name in site.stored()):
        time.sleep(0.1)
    assert not [name for name in site.stored() if "acme_cut" in name or ".tmp" in name]
    assert httpx.get(site.server.index_url + "acme-cut/").status_code == 404
    assert httpx.get(site.server.url + "/healthz").status_code == 200


def test_of_concurrent_uploads_of_one_filename_exactly_one_succeeds(site: Site) -> None:
    assert site.post(build_sdist(site.dists("race-setup"), "acme-race", "1.0")).status_code == 200
    wheels = [
        build_wheel(site.dists(f"race-{n}"), "acme-race", "2.0", summary=f"variant {n}")
        for n in range(6)
    ]
    statuses: list[tuple[int, str]] = []

    def attempt(path: Path) -> None:
        response = site.post(path)
        statuses.append((response.status_code, response.text))

    threads = [threading.Thread(target=attempt, args=(wheel,)) for wheel in wheels]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)

    assert sorted(code for code, _ in statuses) == [200] + [400] * 5, statuses
    assert all(text.startswith("File already exists") for code, text in statuses if code == 400)
    page = httpx.get(site.server.index_url + "acme-race/").text
    assert page.count("acme_race-2.0-py3-none-any.whl") >= 1


def test_every_write_is_served_by_the_very_next_request(site: Site) -> None:
    """Read-your-writes (DESIGN §3): an upload, then at once, with no sleep, the
    page and the file; a yank, then at once the page. Each round trips in a few
    milliseconds, far inside the 0.5 s in which PostgreSQL used to hide a write."""
    alice = ("__token__", site.tokens["alice"])
    for round_ in range(8):
        version = f"1.{round_}"
        wheel = build_wheel(site.dists(f"ryw-{round_}"), "acme-ryw", version)
        assert site.post(wheel).status_code == 200
        page = httpx.get(site.server.index_url + "acme-ryw/")
        assert wheel.name in page.text, f"round {round_}: the upload is not on the page yet"
        file = httpx.get(f"{site.server.url}/files/acme-ryw/{wheel.name}")
        assert file.status_code == 200
        yank = httpx.put(
            f"{site.server.url}/api/v1/projects/acme-ryw/releases/{version}/yank",
            json={"reason": "superseded"},
            auth=alice,
        )
        assert yank.status_code == 200, yank.text
        page = httpx.get(site.server.index_url + "acme-ryw/?format=" + SIMPLE_JSON)
        yanked = {f["filename"]: f["yanked"] for f in page.json()["files"]}
        assert yanked[wheel.name] == "superseded", f"round {round_}: the yank is not served yet"


def test_the_server_and_the_cli_keep_their_data_in_the_database_given(site: Site) -> None:
    """On PostgreSQL no SQLite file appears: `PACKYARD_DATABASE_URL` reached the
    server and every `packyard` command. With a bucket, no blob is on disk."""
    on_postgresql = "PACKYARD_DATABASE_URL" in site.server.environment
    assert (site.server.data_dir / "packyard.db").exists() != on_postgresql
    in_bucket = stored_keys(site.server.environment, "files")
    on_disk = site.server.data_dir / "files"
    if in_bucket is not None:
        assert any(key.endswith(".whl") for key in in_bucket)
        assert not (on_disk.exists() and any(on_disk.rglob("*.whl")))
