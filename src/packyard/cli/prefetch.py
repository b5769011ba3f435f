"""`packyard prefetch`: fill a running server's cache with a dependency closure.

The closure is resolved by pip itself, against the running server: `pip
install --dry-run --report` with `--index-url <server>/simple/`. Every page
and `.metadata` file pip reads on the way goes through the server, which
caches it (`CacheRepository`). The report then names each distribution pip
chose, with its URL on this server and its sha256; each one is downloaded in
full (with a progress bar) and checked, which makes the server cache the
file. A later install, even with the upstream down, finds everything there.

Why pip and not our own resolver: pip is the installer CI uses, so it picks
exactly the files CI will ask for (markers, `--python-version`, `--platform`,
yanks, `Requires-Python`), and a dry run downloads no wheel whose metadata
the server offers (PEP 658).

pip must be importable by this Python, 22.2 or newer (`--dry-run` and
`--report`); the pip that `python3 -m venv` bundles is enough. Older pips
(23.2, bundled with Python 3.11, among them) refuse `--platform` and
`--python-version` without `--target`, even for a dry run, which installs
nothing: so a `--target` in a temporary directory, never written to, goes
with them.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
import httpx
from packaging.version import Version

from packyard.cli import settings_from, state_options

if TYPE_CHECKING:  # click's progress bar type, for the annotation only
    from click._termui_impl import ProgressBar


MIN_PIP = Version("22.2")  # --dry-run and --report


@dataclass(frozen=True, slots=True)
class Planned:
    """One distribution of the closure: what pip chose and where it is."""

    name: str
    version: str
    url: str
    sha256: str | None


@click.command()
@state_options
@click.option(
    "-r",
    "--requirement",
    "requirement_files",
    multiple=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="A requirements file; repeat for several.",
)
@click.argument("names", nargs=-1)
@click.option("--python-version", help="Resolve for this Python (e.g. 3.11), not this one.")
@click.option("--platform", "platforms", multiple=True, help="A wheel platform tag; repeatable.")
@click.option(
    "--index-url",
    help="The running server's simple index (default: http://<host>:<port>/simple/ "
    "from the configuration).",
)
def prefetch(
    config_file: Path | None,
    data_dir: Path | None,
    requirement_files: tuple[Path, ...],
    names: tuple[str, ...],
    python_version: str | None,
    platforms: tuple[str, ...],
    index_url: str | None,
) -> None:
    """Cache every file that installing the requirements needs, through a running server.

    NAMES are requirements too (`attrs`, `'httpx>=0.27'`). With
    --python-version or --platform only wheels are considered, as pip requires.
    """
    if not requirement_files and not names:
        raise click.UsageError("give requirements: -r FILE and/or NAME ...")
    check_pip()
    if index_url is None:
        settings = settings_from(config_file, data_dir=data_dir)
        # A server listening on every interface is reached on the loopback.
        wildcard = settings.host in ("0.0.0.0", "::", "")  # noqa: S104 - compared, not bound
        host = "127.0.0.1" if wildcard else settings.host
        index_url = f"http://{host}:{settings.port}/simple/"
    index_url = index_url if index_url.endswith("/") else index_url + "/"
    click.echo(f"Resolving through {index_url} ...")
    planned = resolve(index_url, requirement_files, names, python_version, platforms)
    failures = fetch_all(planned)
    total = len(planned) - len(failures)
    click.echo(f"{total} of {len(planned)} distributions are in the server's cache.")
    if failures:
        for problem in failures:
            click.echo(f"error: {problem}", err=True)
        sys.exit(1)


def check_pip() -> None:
    """Refuse early, saying what to do, when this Python's pip cannot resolve for us.

    Raises:
        click.ClickException: pip is missing or older than `MIN_PIP`.
    """
    upgrade = f"{sys.executable} -m pip install --upgrade 'pip>={MIN_PIP}'"
    try:
        found = Version(importlib.metadata.version("pip"))
    except importlib.metadata.PackageNotFoundError:
        raise click.ClickException(
            f"packyard prefetch resolves with pip, which {sys.executable} does not have: "
            f"install it with `{sys.executable} -m ensurepip`, then `{upgrade}` if it is "
            "older."
        ) from None
    if found < MIN_PIP:
        raise click.ClickException(
            f"packyard prefetch needs pip {MIN_PIP} or newer (for --dry-run --report); "
            f"{sys.executable} has pip {found}. Upgrade it: `{upgrade}` (add --index-url "
            "with this server's /simple/ URL where PyPI cannot be reached)."
        )


def resolve(
    index_url: str,
    requirement_files: Sequence[Path],
    names: Sequence[str],
    python_version: str | None,
    platforms: Sequence[str],
) -> list[Planned]:
    """The closure pip would install, from `pip install --dry-run --report`.

    Raises:
        click.ClickException: pip failed (its own message is shown).
    """
    with tempfile.TemporaryDirectory(prefix="packyard-prefetch-") as temp:
        report = Path(temp) / "report.json"
        target = Path(temp) / "target"
        argv = pip_argv(
            index_url, report, requirement_files, names, python_version, platforms, target
        )
        # --isolated: no pip configuration or PIP_* variable may point pip elsewhere.
        result = subprocess.run(argv, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise click.ClickException(f"pip could not resolve the requirements:\n{result.stderr}")
        return parse_report(json.loads(report.read_text(encoding="utf-8")))


def pip_argv(
    index_url: str,
    report: Path,
    requirement_files: Sequence[Path],
    names: Sequence[str],
    python_version: str | None,
    platforms: Sequence[str],
    target: Path,
) -> list[str]:
    """The pip command line of `resolve`; `target` is an empty directory pip is
    named for a foreign platform (older pips want one even for a dry run) and
    never writes to."""
    argv = [sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed"]
    argv += ["--isolated", "--no-cache-dir", "--disable-pip-version-check", "--quiet"]
    argv += ["--report", str(report), "--index-url", index_url]
    if python_version or platforms:
        # pip accepts a foreign target only when it need not build sdists.
        argv += ["--only-binary=:all:", "--target", str(target)]
    if python_version:
        argv += ["--python-version", python_version]
    for platform in platforms:
        argv += ["--platform", platform]
    for path in requirement_files:
        argv += ["-r", str(path)]
    return [*argv, *names]


def parse_report(report: dict[str, Any]) -> list[Planned]:
    """The distributions of a pip installation report (pip's `--report` format v1)."""
    planned = []
    for item in report.get("install", []):
        info = item.get("download_info", {})
        hashes = info.get("archive_info", {}).get("hashes", {})
        metadata = item.get("metadata", {})
        planned.append(
            Planned(
                name=str(metadata.get("name", "?")),
                version=str(metadata.get("version", "?")),
                url=str(info.get("url", "")),
                sha256=hashes.get("sha256"),
            )
        )
    return planned


def fetch_all(planned: Sequence[Planned]) -> list[str]:
    """Download each distribution in full, with a progress bar; the problems found."""
    problems = []
    with httpx.Client(timeout=httpx.Timeout(300.0, connect=10.0), trust_env=False) as client:
        for item in planned:
            problem = fetch(client, item)
            if problem is not None:
                problems.append(problem)
    return problems


def fetch(client: httpx.Client, item: Planned) -> str | None:
    """Stream one file from the server and check its sha256; a problem or None."""
    label = f"{item.name} {item.version}"
    if not item.url.startswith(("http://", "https://")):
        return f"{label}: not on the index ({item.url or 'no URL'}), not cached"
    digest = hashlib.sha256()
    try:
        with client.stream("GET", item.url, headers={"Accept-Encoding": "identity"}) as response:
            if response.status_code != 200:
                return f"{label}: HTTP {response.status_code} for {item.url}"
            length = int(response.headers.get("Content-Length", "0")) or None
            bar: ProgressBar[int]
            with click.progressbar(length=length, label=label.ljust(32)) as bar:
                for chunk in response.iter_raw():
                    digest.update(chunk)
                    bar.update(len(chunk))
    except httpx.HTTPError as exc:
        return f"{label}: {exc}"
    if item.sha256 is not None and digest.hexdigest() != item.sha256:
        return f"{label}: the server sent bytes whose sha256 does not match the index"
    return None
