"""The standard auditors, real `uv audit` and real `pip-audit`, with packyard as their OSV service.

One packyard holds in-house wheels under real names and old versions
(jinja2 2.10, django 3.2.0, requests 2.19.0, and `acme-audited`, which no
record names) and the PyPA snapshot's records of those projects. A uv
project locked against packyard's index, and a requirements file, are
audited through `/osv/`: each auditor must report exactly the snapshot's
records that affect each pinned version. A second process on the same data,
`--role index` with `read_requires_auth`, refuses anonymous auditors and
answers those that bring credentials in the service URL.

Every client runs with a proxy that leads nowhere for anything but
127.0.0.1: a request to osv.dev or PyPI would fail the audit.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import yaml

from packyard.advisories.records import read_record
from tests.advisory_data import SNAPSHOT
from tests.builders import build_wheel
from tests.e2e.servers import BIN, PackyardProcess, clean_environment, packyard

pytestmark = pytest.mark.e2e

# shared/ lies beside the checkout (here and in CI); the data is used as it is.
PINNED = {"jinja2": "2.10", "django": "3.2.0", "requests": "2.19.0", "acme-audited": "1.0"}
PASSWORD = "auditor-password-7"
# Nothing but 127.0.0.1 is reachable: anything else goes to a closed port.
NO_WAY_OUT = "http://127.0.0.1:9"
OFFLINE = {
    "HTTP_PROXY": NO_WAY_OUT,
    "HTTPS_PROXY": NO_WAY_OUT,
    "ALL_PROXY": NO_WAY_OUT,
    "NO_PROXY": "127.0.0.1",
}


@dataclass(frozen=True)
class AuditSite:
    open: PackyardProcess
    private: PackyardProcess  # the same data: `--role index`, reading requires credentials
    root: Path
    token: str  # an API token of the user `auditor`


def expected_ids(project: str, version: str) -> set[str]:
    """The snapshot's records in force that affect `version` of `project`."""
    found = set()
    for path in (SNAPSHOT / project).glob("*.yaml"):
        record = read_record(yaml.safe_load(path.read_bytes()))
        if record.withdrawn is None and record.affects(project, version):
            found.add(record.id)
    return found


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AuditSite]:
    root = tmp_path_factory.mktemp("osv-audit")
    dists = root / "dists"
    dists.mkdir()
    for name, version in PINNED.items():
        build_wheel(dists, name, version)
    records = root / "vulns"
    for project in PINNED:
        if (SNAPSHOT / project).is_dir():
            shutil.copytree(SNAPSHOT / project, records / project)
    data = root / "data"
    config = root / "private.toml"
    config.write_text("[auth]\nread_requires_auth = true\n")
    private = PackyardProcess(data)
    private.argv += ["--role", "index"]
    private.environment["PACKYARD_CONFIG"] = str(config)
    # The open server makes the store; the private one starts while the CLI fills it
    # (both follow the store's serial, as replicas do).
    with PackyardProcess(data) as open_site, ThreadPoolExecutor(1) as starter:
        started = starter.submit(private.start)
        try:
            for args in (
                ("import", "--upstream", "none", str(dists)),
                ("advisories", "import", str(records)),
            ):
                done = packyard(*args, "--data-dir", str(data))
                assert done.returncode == 0, done.stdout + done.stderr
            add = ("user", "add", "auditor", "--password-stdin", "--data-dir", str(data))
            done = packyard(*add, input=PASSWORD + "\n")
            assert done.returncode == 0, done.stderr
            started.result()
            made = httpx.post(open_site.url + "/api/v1/tokens", json={}, auth=("auditor", PASSWORD))
            assert made.status_code == 201, made.text
            yield AuditSite(open_site, private, root, made.json()["token"])
        finally:
            wait([started])  # a start still under way would outlive the stop
            private.stop()


def locked_project(site: AuditSite) -> Path:
    """A uv project pinning `PINNED`, locked against packyard's index (once per module)."""
    project = site.root / "project"
    if (project / "uv.lock").exists():
        return project
    project.mkdir()
    pins = ", ".join(f'"{name}=={version}"' for name, version in PINNED.items())
    (project / "pyproject.toml").write_text(
        f'[project]\nname = "audited"\nversion = "0.1.0"\nrequires-python = ">=3.8"\n'
        f"dependencies = [{pins}]\n"
    )
    done = uv(site, project, "lock", "--default-index", site.open.index_url)
    assert done.returncode == 0, done.stderr
    return project


def uv(site: AuditSite, project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "uv"), *args],
        cwd=project,
        capture_output=True,
        text=True,
        env=clean_environment(UV_CACHE_DIR=str(site.root / "uv-cache"), **OFFLINE),
        timeout=180,
        check=False,
    )


def uv_audit(site: AuditSite, service_url: str) -> subprocess.CompletedProcess[str]:
    """`uv audit` of the locked project (`--frozen`: the lock as it is), against `service_url`."""
    project = locked_project(site)
    # A cache of its own per run: uv keeps the records it fetched for 10 minutes.
    shutil.rmtree(site.root / "uv-cache", ignore_errors=True)
    return uv(site, project, "audit", "--frozen", "--service-url", service_url)


def reported_by_uv(output: str) -> dict[str, set[str]]:
    """`uv audit`'s text report: `<name> <version> has N known vulnerabilities:`,
    then `- <id>: <summary>` lines."""
    found: dict[str, set[str]] = {}
    current: set[str] | None = None
    for line in output.splitlines():
        header = re.match(r"(\S+) (\S+) has \d+ known vulnerabilit", line)
        if header:
            current = found.setdefault(f"{header[1]} {header[2]}", set())
        entry = re.match(r"- ([A-Z][A-Za-z0-9]*-[\w.:-]+):", line)
        if entry and current is not None:
            current.add(entry[1])
    return found


def pip_audit(site: AuditSite, query_url: str) -> subprocess.CompletedProcess[str]:
    """`pip-audit` of pinned requirements (`--no-deps --disable-pip`: no resolution,
    so nothing asks PyPI), against the OSV query URL `query_url`."""
    requirements = site.root / "requirements.txt"
    requirements.write_text("".join(f"{name}=={version}\n" for name, version in PINNED.items()))
    return subprocess.run(
        [
            str(BIN / "pip-audit"),
            *("--vulnerability-service", "osv", "--osv-url", query_url),
            *("--requirement", str(requirements), "--no-deps", "--disable-pip"),
            *("--format", "json", "--progress-spinner", "off"),
            *("--cache-dir", str(site.root / "pip-audit-cache")),
        ],
        capture_output=True,
        text=True,
        env=clean_environment(**OFFLINE),
        timeout=180,
        check=False,
    )


def with_credentials(url: str, user: str, password: str) -> str:
    return url.replace("http://", f"http://{user}:{password}@", 1)


def test_uv_audit_reports_the_imported_advisories(site: AuditSite) -> None:
    # The trailing slash matters: uv resolves `v1/querybatch` against this URL.
    audited = uv_audit(site, site.open.url + "/osv/")
    assert audited.returncode == 1, audited.stdout + audited.stderr  # 1: vulnerabilities found
    reported = reported_by_uv(audited.stdout)
    expected = {
        f"{name} {version}": expected_ids(name, version)
        for name, version in PINNED.items()
        if (SNAPSHOT / name).is_dir()
    }
    assert reported == expected
    assert {"PYSEC-2019-217", "PYSEC-2021-66"} == reported["jinja2 2.10"]
    assert "PYSEC-2021-7" in reported["django 3.2.0"]
    assert "acme-audited" not in audited.stdout
    assert f"Found {sum(map(len, expected.values()))} known vulnerabilities" in audited.stderr


def test_pip_audit_reports_the_imported_advisories_with_their_aliases(site: AuditSite) -> None:
    audited = pip_audit(site, site.open.url + "/osv/v1/query")
    assert audited.returncode == 1, audited.stdout + audited.stderr  # 1: vulnerabilities found
    report = {dep["name"]: dep for dep in json.loads(audited.stdout)["dependencies"]}
    for name, version in PINNED.items():
        ids = {vuln["id"] for vuln in report[name]["vulns"]}
        assert ids == (expected_ids(name, version) if (SNAPSHOT / name).is_dir() else set())
    jinja2 = {vuln["id"]: vuln for vuln in report["jinja2"]["vulns"]}
    assert "CVE-2019-10906" in jinja2["PYSEC-2019-217"]["aliases"]
    assert jinja2["PYSEC-2019-217"]["fix_versions"] == ["2.10.1"]


def test_anonymous_auditors_are_refused_when_reading_requires_credentials(
    site: AuditSite,
) -> None:
    batch = {"queries": [{"package": {"name": "jinja2", "ecosystem": "PyPI"}, "version": "2.10"}]}
    anonymous = httpx.post(site.private.url + "/osv/v1/querybatch", json=batch)
    assert anonymous.status_code == 401
    assert anonymous.headers["www-authenticate"] == 'Basic realm="packyard"'
    assert "PYSEC" not in anonymous.text
    refused = uv_audit(site, site.private.url + "/osv/")
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert "401 Unauthorized" in refused.stderr
    assert "PYSEC" not in refused.stdout
    refused = pip_audit(site, site.private.url + "/osv/v1/query")
    assert refused.returncode == 1
    assert "401" in refused.stderr
    assert "PYSEC" not in refused.stdout


def test_auditors_with_a_password_or_a_token_are_answered_by_an_index_replica(
    site: AuditSite,
) -> None:
    audited = uv_audit(site, with_credentials(site.private.url + "/osv/", "auditor", PASSWORD))
    assert audited.returncode == 1, audited.stdout + audited.stderr
    assert reported_by_uv(audited.stdout)["jinja2 2.10"] == {"PYSEC-2019-217", "PYSEC-2021-66"}
    # An API token, as the password of `__token__`.
    query_url = with_credentials(site.private.url + "/osv/v1/query", "__token__", site.token)
    audited = pip_audit(site, query_url)
    assert audited.returncode == 1, audited.stdout + audited.stderr
    report = {dep["name"]: dep for dep in json.loads(audited.stdout)["dependencies"]}
    assert {vuln["id"] for vuln in report["jinja2"]["vulns"]} == {
        "PYSEC-2019-217",
        "PYSEC-2021-66",
    }
    # The replica serves the index role only: the web pages are another's.
    assert httpx.get(site.private.url + "/", auth=("auditor", PASSWORD)).status_code == 404
