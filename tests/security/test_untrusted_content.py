"""Untrusted content has bounded cost: READMEs and archives from uploaders.

An uploader (or whoever hands an operator a directory to import) sends a
huge README, or archives made to hurt whoever unpacks them: members that
climb out of the tree (`../`, absolute paths, symlinks and hardlinks
outside), a second METADATA or PKG-INFO that the installer would read
instead of the one the index shows, and bombs that inflate to thousands of
times their size. Each is refused at upload, with a message the uploader
sees, and on `packyard import`, against a real server and real twine.
"""

from __future__ import annotations

import hashlib
import io
import shutil
import sqlite3
import stat
import tarfile
import warnings
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.builders import build_sdist, build_wheel, metadata_text
from tests.e2e.clients import run
from tests.e2e.servers import BIN, PackyardProcess, clean_environment, init_store, packyard
from tests.unit.publish.test_multipart import encode, twine_form

pytestmark = pytest.mark.e2e
MIB = 1024 * 1024


def other_metadata(name: str) -> str:
    """A second METADATA/PKG-INFO, what an installer would read instead of the first."""
    return metadata_text(name, "1.0", requires_dist=["evil-dependency"])


@dataclass
class Site:
    server: PackyardProcess
    token: str
    root: Path

    def dists(self, name: str) -> Path:
        directory = self.root / name
        directory.mkdir()
        return directory

    def upload(self, path: Path) -> httpx.Response:
        """A twine-shaped upload of `path`."""
        content_type, body = encode(
            twine_form(path), (path.name, path.read_bytes(), "application/octet-stream")
        )
        return httpx.post(
            self.server.url + "/legacy/",
            content=body,
            headers={"content-type": content_type.decode()},
            auth=("__token__", self.token),
            timeout=60,
        )


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    root = tmp_path_factory.mktemp("untrusted")
    server = PackyardProcess(root / "data")
    server.init()
    data = ["--data-dir", str(server.data_dir)]
    assert packyard("user", "add", "alice", *data).returncode == 0
    token = packyard("token", "create", "alice", *data).stdout.strip().splitlines()[-1]
    with server:
        yield Site(server, token, root)


# --- hostile archives ----------------------------------------------------------


def _add_to_wheel(wheel: Path, add: Callable[[zipfile.ZipFile, str], None]) -> Path:
    dist_info = next(
        name.split("/")[0]
        for name in zipfile.ZipFile(wheel).namelist()
        if name.split("/")[0].endswith(".dist-info")
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zipfile warns about duplicate names: the point
        with zipfile.ZipFile(wheel, "a", zipfile.ZIP_DEFLATED) as archive:
            add(archive, dist_info)
    return wheel


def _symlink(archive: zipfile.ZipFile, name: str, target: str) -> None:
    info = zipfile.ZipInfo(name)
    info.create_system = 3  # Unix: the mode below is read
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    archive.writestr(info, target)


WHEELS: dict[str, tuple[Callable[[zipfile.ZipFile, str], None], str]] = {
    "dotdot-wheel": (
        lambda a, _: a.writestr("../../evil.pth", "import os"),
        "escapes the archive's directory",
    ),
    "absolute-wheel": (
        lambda a, _: a.writestr("/etc/evil.pth", "import os"),
        "escapes the archive's directory",
    ),
    "symlink-wheel": (
        lambda a, _: _symlink(a, "pkg/passwd", "../../../../etc/passwd"),
        "points outside the archive",
    ),
    "twice-metadata-wheel": (
        lambda a, d: a.writestr(f"{d}/METADATA", other_metadata("twice-metadata-wheel")),
        "occurs more than once",
    ),
    "bomb-wheel": (
        lambda a, _: a.writestr("data/zeros.bin", bytes(64 * MIB)),
        "a zip or tar bomb",
    ),
}


def _rebuild_sdist(sdist: Path, add: Callable[[tarfile.TarFile, str], None]) -> Path:
    stem = sdist.name.removesuffix(".tar.gz")
    original = sdist.with_suffix(".orig")
    shutil.move(sdist, original)
    with tarfile.open(original, "r:gz") as source, tarfile.open(sdist, "w:gz") as target:
        for member in source:
            target.addfile(member, source.extractfile(member) if member.isfile() else None)
        add(target, stem)
    original.unlink()
    return sdist


def _zeros(archive: tarfile.TarFile, stem: str) -> None:
    info = tarfile.TarInfo(f"{stem}/zeros.bin")
    info.size = 64 * MIB
    archive.addfile(info, io.BytesIO(bytes(info.size)))


def _file(archive: tarfile.TarFile, name: str, content: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(content)
    archive.addfile(info, io.BytesIO(content))


def _link(archive: tarfile.TarFile, name: str, target: str, kind: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = target
    archive.addfile(info)


SDISTS: dict[str, tuple[Callable[[tarfile.TarFile, str], None], str]] = {
    "dotdot-sdist": (lambda a, s: _file(a, f"{s}/../../evil.py", b"x"), "escapes"),
    "symlink-sdist": (
        lambda a, s: _link(a, f"{s}/passwd", "../../etc/passwd", tarfile.SYMTYPE),
        "refused",
    ),
    "hardlink-sdist": (
        lambda a, s: _link(a, f"{s}/shadow", "/etc/shadow", tarfile.LNKTYPE),
        "refused",
    ),
    "twice-pkg-info-sdist": (
        lambda a, s: _file(a, f"{s}/PKG-INFO", other_metadata("twice-pkg-info-sdist").encode()),
        "occurs more than once",
    ),
    "bomb-sdist": (_zeros, "a zip or tar bomb"),
}


def hostile_files(directory: Path) -> dict[Path, str]:
    """Each hostile wheel and sdist in `directory`, with the reason it must be refused for."""
    directory.mkdir()
    files = {}
    for name, (add_zip, reason) in WHEELS.items():
        files[_add_to_wheel(build_wheel(directory, name, "1.0"), add_zip)] = reason
    for name, (add_tar, reason) in SDISTS.items():
        files[_rebuild_sdist(build_sdist(directory, name, "1.0"), add_tar)] = reason
    return files


def test_hostile_archives_are_refused_at_upload(site: Site) -> None:
    for path, reason in hostile_files(site.root / "uploads").items():
        response = site.upload(path)
        assert response.status_code == 400, (path.name, response.text)
        assert response.text.startswith("Invalid distribution file"), response.text
        assert reason in response.text, (path.name, response.text)
        project = path.name.split("-")[0].replace("_", "-")
        assert httpx.get(f"{site.server.index_url}{project}/").status_code == 404


def test_hostile_archives_are_refused_on_import(tmp_path: Path) -> None:
    files = hostile_files(tmp_path / "dists")
    init_store(tmp_path / "data")
    result = packyard(
        "import", "--data-dir", str(tmp_path / "data"), "--upstream", "none",
        str(tmp_path / "dists"),
    )  # fmt: skip
    assert result.returncode == 1
    assert result.stdout.strip().endswith(f"0 added, 0 already present, {len(files)} refused")
    errors = [line for line in result.stderr.splitlines() if line.startswith("refused: ")]
    for path, reason in files.items():
        (line,) = [line for line in errors if path.name in line]
        assert reason in line, line


# --- READMEs ---------------------------------------------------------------------


def test_a_10_mib_description_is_refused_with_a_message_on_twines_screen(site: Site) -> None:
    dists = site.root / "huge-readme"
    dists.mkdir()
    wheel = build_wheel(dists, "huge-readme", "1.0", description="word " * (2 * MIB))
    argv = [str(BIN / "twine"), "upload", "--non-interactive", "--disable-progress-bar"]
    argv += ["--repository-url", site.server.url + "/legacy/", "-u", "__token__"]
    result = run([*argv, "-p", site.token, "--verbose", str(wheel)])
    assert result.returncode != 0
    screen = result.stdout + result.stderr
    assert "The description is over the 4 MiB limit" in screen, screen[-2000:]
    assert httpx.get(site.server.index_url + "huge-readme/").status_code == 404


def test_a_large_description_is_refused_on_import(tmp_path: Path) -> None:
    dists = tmp_path / "dists"
    dists.mkdir()
    build_wheel(dists, "large-readme", "1.0", description="word " * MIB)  # 5 MiB
    init_store(tmp_path / "data")
    result = packyard(
        "import", "--data-dir", str(tmp_path / "data"), "--upstream", "none", str(dists),
        env=clean_environment(),
    )  # fmt: skip
    assert result.returncode == 1
    assert "The description is 5.0 MiB, over the 4 MiB limit" in result.stderr


# --- README rendering: once per file, paid by the publisher --------------------------


def kept_readme(site: Site, file_sha256: str) -> str | None:
    """The README the server keeps for a file, read from its database."""
    with sqlite3.connect(site.server.data_dir / "packyard.db") as db:
        row = db.execute(
            "SELECT html FROM rendered_readmes WHERE file_sha256 = ?", (file_sha256,)
        ).fetchone()
    return None if row is None else str(row[0])


def test_a_readme_is_rendered_at_upload_not_on_the_first_anonymous_view(site: Site) -> None:
    readme = "# Rendered once\n\n" + "A paragraph with *emphasis*.\n\n" * 2000
    wheel = build_wheel(
        site.dists("readme"),
        "acme-rendered",
        "1.0",
        description=readme,
    )
    digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
    assert site.upload(wheel).status_code == 200
    # Before anyone looked: the HTML is already kept, for every replica.
    html = kept_readme(site, digest)
    assert html is not None
    assert ">Rendered once<" in html
    assert "<em>emphasis</em>" in html
    page = httpx.get(f"{site.server.url}/project/acme-rendered/1.0/details")
    assert page.status_code == 200
    assert "<em>emphasis</em>" in page.text
