"""In-house requirements checked against the advisories, end to end: real twine
uploads wheels whose Requires-Dist pin real vulnerable releases (django 3.2.0,
requests 2.19.0) to a real server, `packyard advisories import` brings the
PyPA snapshot's records of those projects, and the findings are read where
people read them: twine's output, the admin API and its audit log.

twine prints a successful upload's answer only with `--verbose` (STANDARDS
§2.3), uv only with `-vv`, pdm and hatch never: the warning is there. With
`[advisories] refuse_uploads = true` the upload is refused, and twine prints
the message without `--verbose` (it is the reason phrase).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.advisory_data import SNAPSHOT
from tests.builders import build_wheel
from tests.e2e.clients import run
from tests.e2e.servers import BIN, PackyardProcess, clean_environment, packyard

pytestmark = pytest.mark.e2e

# shared/ lies beside the checkout (here and in CI); the data is used as it is.
DJANGO_WARNING = (
    "Warning: requirement 'django==3.2.0' admits only versions of django with known "
    "vulnerabilities (PYSEC-2021-109, PYSEC-2021-439,"
)


@dataclass
class Site:
    server: PackyardProcess
    root: Path
    tokens: dict[str, str]

    def cli(self, *args: str, stdin: str | None = None) -> str:
        env = clean_environment(**self.server.environment)
        result = packyard(*args, "--data-dir", str(self.server.data_dir), env=env, input=stdin)
        assert result.returncode == 0, result.stdout + result.stderr
        return result.stdout

    def import_records(self, project: str) -> str:
        return self.cli("advisories", "import", str(SNAPSHOT / project))

    def twine(self, wheel: Path, *options: str) -> tuple[int, str]:
        argv = [str(BIN / "twine"), "upload", "--non-interactive", "--disable-progress-bar"]
        argv += ["--repository-url", self.server.url + "/legacy/", "-u", "__token__"]
        result = run([*argv, "-p", self.tokens["root"], *options, str(wheel)])
        # twine (rich) wraps lines and indents them: compare words, not lines.
        return result.returncode, " ".join((result.stdout + result.stderr).split())

    def wheel(self, name: str, version: str, *requires: str) -> Path:
        directory = self.root / f"{name}-{version}"
        directory.mkdir()
        return build_wheel(directory, name, version, requires_dist=requires)

    def api(self, path: str, **params: str) -> Any:
        answer = httpx.get(
            f"{self.server.url}/api/v1{path}",
            params=params,
            auth=("__token__", self.tokens["root"]),
            timeout=30,
        )
        assert answer.status_code == 200, answer.text
        return answer.json()

    def findings(self, project: str, version: str) -> dict[str, list[str]]:
        answer = self.api(f"/projects/{project}/releases/{version}/findings")
        return {item["requirement"]: item["advisory_ids"] for item in answer["findings"]}

    def finding_events(self, project: str) -> list[dict[str, Any]]:
        page = self.api("/audit", action="dependency-finding", project=project)
        events: list[dict[str, Any]] = page["events"]
        return events


@contextmanager
def running_site(root: Path, config: str = "") -> Iterator[Site]:
    """A started server (SQLite) with an admin, `root`, who has a token, and the
    snapshot's django records imported. (Each command is a process that takes
    seconds to start on a busy machine: there are few.)"""
    (root / "packyard.toml").write_text(config)
    server = PackyardProcess(root / "data")
    server.environment["PACKYARD_CONFIG"] = str(root / "packyard.toml")
    site = Site(server, root, {})
    site.cli("migrate")  # makes the store
    site.cli("user", "add", "root", "--admin")
    site.tokens["root"] = site.cli("token", "create", "root").strip().splitlines()[-1]
    site.import_records("django")
    with server:
        yield site


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    with running_site(tmp_path_factory.mktemp("findings")) as site:
        yield site


def test_twine_shows_the_warning_of_an_upload_that_requires_a_vulnerable_release(
    site: Site,
) -> None:
    wheel = site.wheel("acme-app", "1.0", "django==3.2.0", "django-filter>=2.0")

    code, output = site.twine(wheel, "--verbose")

    assert code == 0, output
    assert f"Uploaded {wheel.name} to acme-app 1.0." in output
    assert DJANGO_WARNING in output
    found = site.findings("acme-app", "1.0")
    assert list(found) == ["django==3.2.0"]
    assert len(found["django==3.2.0"]) == 25
    (event,) = site.api("/audit", action="upload", project="acme-app")["events"]
    assert event["detail"]["dependency_findings"][0]["requirement"] == "django==3.2.0"


def test_uv_publish_shows_the_warning_only_in_its_trace_output(site: Site) -> None:
    argv = [
        str(BIN / "uv"),
        "publish",
        "--no-config",
        "--publish-url",
        site.server.url + "/legacy/",
    ]
    argv += ["--username", "__token__", "--password", site.tokens["root"]]
    outputs = []
    for number, verbosity in enumerate(["-v", "-vv"]):
        wheel = site.wheel(f"acme-uv-{number}", "1.0", "django==3.2.0")
        result = run([*argv, verbosity, str(wheel)])
        assert result.returncode == 0, result.stdout + result.stderr
        outputs.append(result.stdout + result.stderr)
    assert "Warning: requirement 'django==3.2.0'" not in outputs[0]
    assert "Warning: requirement 'django==3.2.0'" in outputs[1]


def test_an_import_flags_a_release_uploaded_before_once(site: Site) -> None:
    wheel = site.wheel("acme-lib", "2.0", "requests==2.19.0")
    code, output = site.twine(wheel, "--verbose")
    assert code == 0, output
    assert "Warning" not in output  # requests has no records here yet
    assert site.findings("acme-lib", "2.0") == {}

    site.import_records("requests")

    assert site.findings("acme-lib", "2.0") == {
        "requests==2.19.0": ["PYSEC-2018-28", "PYSEC-2023-74"]
    }
    (event,) = site.finding_events("acme-lib")
    assert event["version"] == "2.0"
    assert event["actor"].startswith("cli:")
    assert event["detail"]["requirement"] == "requests==2.19.0"
    assert event["detail"]["new_advisory_ids"] == ["PYSEC-2018-28", "PYSEC-2023-74"]

    site.import_records("requests")  # the same records again: nothing new to say
    assert len(site.finding_events("acme-lib")) == 1


def test_refuse_uploads_refuses_and_twine_prints_why(tmp_path: Path) -> None:
    config = "[advisories]\nrefuse_uploads = true\n"
    with running_site(tmp_path, config) as strict:
        wheel = strict.wheel("acme-app", "1.0", "django==3.2.0")

        code, output = strict.twine(wheel)  # no --verbose: the reason phrase is shown

        assert code != 0
        assert "400" in output
        assert "requirement 'django==3.2.0' admits only versions of django" in output
        assert "PYSEC-2021-109" in output
        assert "this index refuses such uploads" in output
        page = httpx.get(strict.server.url + "/simple/acme-app/", timeout=30)
        assert page.status_code == 404
        fixed = strict.wheel("acme-app", "1.1", "django>=4.2.16")
        assert strict.twine(fixed)[0] == 0
