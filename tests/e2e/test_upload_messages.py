"""A refused upload's message on the publisher's screen: twine, pdm and hatch, no flags.

These three print the HTTP status line of a refusal, not its body (twine shows
the body only with `--verbose`); packyard writes the message into the reason
phrase, as PyPI does (`reason_phrase.py`). Each refusal the issue names is
made with each real client, and its message must be in what the client
printed. The body stays the message, and other paths keep the standard phrase.

One server for the module (SQLite), with a 1 MiB file limit and a JSON
upstream that has the public project `public-lib`.
"""

from __future__ import annotations

import random
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from tests.builders import build_wheel, metadata_text
from tests.e2e.clients import run
from tests.e2e.json_upstream import JsonUpstreamProcess, write_manifest
from tests.e2e.servers import BIN, PYTHON, PackyardProcess, clean_environment, packyard
from tests.unit.publish.test_multipart import encode, twine_form

pytestmark = pytest.mark.e2e
LIMIT = 1024 * 1024
CLIENTS = ("twine", "pdm", "hatch")


@dataclass
class Site:
    server: PackyardProcess
    tokens: dict[str, str]
    root: Path

    @property
    def upload_url(self) -> str:
        return self.server.url + "/legacy/"


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    root = tmp_path_factory.mktemp("upload-messages")
    public = root / "public"
    public.mkdir()
    write_manifest(
        root / "upstream",
        [(build_wheel(public, "public-lib", "1.0"), datetime(2024, 1, 10, tzinfo=UTC))],
    )
    config = root / "packyard.toml"
    config.write_text(f"[upload]\nmax_file_size = {LIMIT}\n")
    with JsonUpstreamProcess(root / "upstream") as upstream:
        server = PackyardProcess(root / "data", upstreams=[upstream.index_url])
        server.environment["PACKYARD_CONFIG"] = str(config)
        env = clean_environment(**server.environment)
        data = ["--data-dir", str(server.data_dir)]

        def cli(*args: str) -> str:
            result = packyard(*args, *data, env=env)
            assert result.returncode == 0, result.stdout + result.stderr
            return result.stdout.strip().splitlines()[-1]

        cli("init")
        cli("user", "add", "alice")
        cli("user", "add", "bob")
        tokens = {
            "alice": cli("token", "create", "alice"),
            "alice-other": cli("token", "create", "alice", "--project", "other-project"),
            "bob": cli("token", "create", "bob"),
        }
        with server:
            site = Site(server, tokens, root)
            first = build_wheel(site_dir(site, "owned"), "acme-msg", "1.0")
            code, output = upload(site, "twine", first, "alice")  # alice owns acme-msg now
            assert code == 0, output
            yield site


def site_dir(site: Site, name: str) -> Path:
    directory = site.root / name
    directory.mkdir(parents=True)
    return directory


def upload(site: Site, client: str, wheel: Path, user: str) -> tuple[int, str]:
    """Upload `wheel` with the real `client` as `user`'s token; its exit code and
    everything it printed, white space collapsed (the clients wrap long lines)."""
    token = site.tokens[user]
    if client == "twine":
        argv = [str(BIN / "twine"), "upload", "--non-interactive", "--disable-progress-bar"]
        argv += ["--repository-url", site.upload_url, "-u", "__token__", "-p", token, str(wheel)]
        result = run(argv)
    elif client == "hatch":
        argv = [str(BIN / "hatch"), "publish", "--no-prompt", "-r", site.upload_url]
        result = run([*argv, "-u", "__token__", "-a", token, str(wheel)])
    else:
        result = pdm_publish(site, wheel, token)
    return result.returncode, " ".join((result.stdout + result.stderr).split())


def pdm_publish(site: Site, wheel: Path, token: str) -> subprocess.CompletedProcess[str]:
    """`pdm publish --no-build` of the one file in `wheel`'s folder, from a bare project."""
    project = site.root / "pdm-project"  # apart from the files: pdm uploads all of `-d`
    project.mkdir(exist_ok=True)
    (project / "pyproject.toml").write_text('[project]\nname = "acme-msg"\nversion = "0"\n')
    argv = [str(BIN / "pdm"), "publish", "-p", str(project), "--no-build"]
    argv += ["-d", str(wheel.parent), "-r", site.upload_url, "-u", "__token__", "-P", token]
    env = clean_environment(
        HOME=str(site.root / "pdm-home"),  # its logs and caches, not the user's
        PDM_USE_VENV="false",
        PDM_CHECK_UPDATE="false",
        PDM_PYTHON=PYTHON,
    )
    return subprocess.run(argv, capture_output=True, text=True, env=env, timeout=180, check=False)


def refused_wheel(site: Site, case: str, client: str) -> tuple[Path, str, str]:
    """The wheel of `case`, the user whose token uploads it, and the message expected."""
    folder = site_dir(site, f"{case}-{client}")
    version = f"{CLIENTS.index(client) + 2}.0"
    if case == "duplicate file":
        wheel = build_wheel(folder, "acme-msg", "1.0", summary=f"other bytes, by {client}")
        return wheel, "alice", "File already exists ('acme_msg-1.0-py3-none-any.whl'"
    if case == "public name":
        wheel = build_wheel(folder, "public-lib", "9.0")
        return wheel, "alice", "The name 'public-lib' is already used by a public project"
    if case == "not an owner":
        wheel = build_wheel(folder, "acme-msg", version)
        return wheel, "bob", "The user 'bob' isn't allowed to upload to project 'acme-msg'."
    if case == "token scope":
        wheel = build_wheel(folder, "acme-msg", version)
        expected = "The given token isn't allowed to upload to project 'acme-msg'."
        return wheel, "alice-other", expected
    if case == "too large":
        noise = random.Random(1).randbytes(LIMIT + 1)
        wheel = build_wheel(folder, "acme-msg", version, extra_files={"acme_msg/noise": noise})
        return wheel, "alice", "File too large. Limit for project 'acme-msg' is 1 MB."
    assert case == "bad metadata"
    metadata = metadata_text("acme-msg", version) + "Classifier: Framework :: No Such Thing\n"
    wheel = build_wheel(folder, "acme-msg", version, metadata=metadata)
    return wheel, "alice", "'Framework :: No Such Thing' is not a valid classifier."


CASES = ("duplicate file", "public name", "not an owner", "token scope", "too large")


@pytest.mark.parametrize("client", CLIENTS)
@pytest.mark.parametrize("case", [*CASES, "bad metadata"])
def test_the_client_shows_why_an_upload_was_refused(site: Site, client: str, case: str) -> None:
    wheel, user, expected = refused_wheel(site, case, client)

    code, output = upload(site, client, wheel, user)

    assert code != 0, output
    assert expected in output, output


def test_the_duplicate_file_message_links_to_this_servers_help(site: Site) -> None:
    wheel = build_wheel(site_dir(site, "help"), "acme-msg", "1.0", summary="other bytes")

    code, output = upload(site, "twine", wheel, "alice")
    help_page = httpx.get(site.server.url + "/help/")

    assert code != 0
    assert "See /help/#file-name-reuse for more information." in output, output
    assert "pypi.org" not in output
    assert help_page.status_code == 200
    assert 'id="file-name-reuse"' in help_page.text


def test_the_reason_phrase_is_one_line_of_ascii_and_the_body_is_unchanged(site: Site) -> None:
    """A message with line breaks and non-ASCII characters (a name the guard refuses
    in Cyrillic) reaches the status line as one line of printable ASCII; the body
    keeps it whole."""
    folder = site_dir(site, "cyrillic")
    wheel = build_wheel(folder, "acme-msg", "7.0")
    content_type, body = encode(
        twine_form(wheel, name="аcme-msg"), (wheel.name, wheel.read_bytes(), None)
    )
    response = httpx.post(
        site.upload_url,
        content=body,
        headers={"content-type": content_type.decode()},
        auth=("__token__", site.tokens["alice"]),
    )

    assert response.status_code == 400
    message = response.text.rstrip("\n")
    assert response.reason_phrase != "Bad Request"
    assert response.reason_phrase.isascii()
    assert response.reason_phrase.isprintable()
    assert "\\u0430cme-msg" in response.reason_phrase, response.reason_phrase
    assert "аcme-msg" in message  # the body as it was, UTF-8
    assert "x-packyard-reason-phrase" not in response.headers


def test_other_paths_keep_the_standard_reason_phrase(site: Site) -> None:
    missing = httpx.get(site.server.url + "/simple/no-such-project/")
    refused = httpx.get(site.upload_url)

    assert (missing.status_code, missing.reason_phrase) == (404, "Not Found")
    assert refused.status_code == 405
    assert refused.reason_phrase.startswith("Method not allowed: upload files with POST")
