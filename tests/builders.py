"""Build real wheels and sdists for tests, with the standard library only.

    build_wheel(dir, "acme-core", "1.0", requires_dist=("attrs>=23",))
        -> dir/acme_core-1.0-py3-none-any.whl
    build_sdist(dir, "acme-core", "1.0") -> dir/acme_core-1.0.tar.gz

The files are valid for pip and uv (METADATA, WHEEL and a RECORD with hashes)
and byte-for-byte reproducible: the same arguments give the same sha256.
`metadata` replaces the generated METADATA/PKG-INFO text, to build files
whose metadata disagrees with their name; `extra_files` adds archive members
(paths relative to the archive root, or to the sdist's top directory).

`make_local_store(dir)` gives a migrated SQLite database and a blob store,
for tests of the in-house store; `make_local_store(dir, database_url=url)` with
the `database_url` fixture runs the test on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import io
import tarfile
import zipfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import anyio
from packaging.utils import canonicalize_name
from packaging.version import Version
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session, sessionmaker

from packyard.db.engine import create_database_engine, migrate, session_factory_for
from packyard.db.models import Project
from packyard.db.serial import bump_serial
from packyard.dists.filenames import parse_filename
from packyard.dists.metadata import read_core_metadata
from packyard.publish.recording import file_row, store_bytes
from packyard.storage.filesystem import FilesystemBlobStore

ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)  # the earliest time a zip can record: reproducible output


def dist_stem(name: str, version: str) -> str:
    """`{normalised name with _}-{normalised version}`, the PEP 427/625 spelling."""
    return f"{canonicalize_name(name).replace('-', '_')}-{Version(version)}"


def metadata_text(
    name: str,
    version: str,
    *,
    requires_dist: Iterable[str] = (),
    requires_python: str | None = None,
    summary: str | None = "A package built for packyard's tests",
    description: str | None = None,
    project_urls: Iterable[tuple[str, str]] = (),
) -> str:
    """Core metadata 2.1 in its email-header form (`project_urls`: (label, URL) pairs)."""
    lines = ["Metadata-Version: 2.1", f"Name: {name}", f"Version: {version}"]
    if summary is not None:
        lines.append(f"Summary: {summary}")
    if requires_python is not None:
        lines.append(f"Requires-Python: {requires_python}")
    lines.extend(f"Requires-Dist: {requirement}" for requirement in requires_dist)
    lines.extend(f"Project-URL: {label}, {url}" for label, url in project_urls)
    if description is not None:
        lines.extend(["Description-Content-Type: text/markdown", "", description])
    return "\n".join(lines) + "\n"


def build_wheel(
    directory: Path,
    name: str,
    version: str,
    *,
    requires_dist: Iterable[str] = (),
    requires_python: str | None = None,
    summary: str | None = "A package built for packyard's tests",
    description: str | None = None,
    extra_files: Mapping[str, bytes] | None = None,
    metadata: str | None = None,
    python_tag: str = "py3",
    project_urls: Iterable[tuple[str, str]] = (),
) -> Path:
    """Write a pure-Python wheel `{stem}-{python_tag}-none-any.whl` into `directory`."""
    stem = dist_stem(name, version)
    package = canonicalize_name(name).replace("-", "_")
    dist_info = f"{stem}.dist-info"
    if metadata is None:
        metadata = metadata_text(
            name,
            version,
            requires_dist=requires_dist,
            requires_python=requires_python,
            summary=summary,
            description=description,
            project_urls=project_urls,
        )
    tag = f"{python_tag}-none-any"
    members = {
        f"{package}/__init__.py": f'__version__ = "{version}"\n'.encode(),
        **(extra_files or {}),
        f"{dist_info}/METADATA": metadata.encode(),
        f"{dist_info}/WHEEL": (
            f"Wheel-Version: 1.0\nGenerator: packyard-tests\nRoot-Is-Purelib: true\nTag: {tag}\n"
        ).encode(),
    }
    members[f"{dist_info}/RECORD"] = _record(members, f"{dist_info}/RECORD")
    path = Path(directory) / f"{stem}-{tag}.whl"
    _write_zip(path, members)
    return path


def build_sdist(
    directory: Path,
    name: str,
    version: str,
    *,
    requires_dist: Iterable[str] = (),
    requires_python: str | None = None,
    summary: str | None = "A package built for packyard's tests",
    extra_files: Mapping[str, bytes] | None = None,
    metadata: str | None = None,
    zip_format: bool = False,
) -> Path:
    """Write a PEP 625 sdist `{stem}.tar.gz` (or `.zip`) with `{stem}/PKG-INFO` into `directory`."""
    stem = dist_stem(name, version)
    if metadata is None:
        metadata = metadata_text(
            name,
            version,
            requires_dist=requires_dist,
            requires_python=requires_python,
            summary=summary,
        )
    package = canonicalize_name(name).replace("-", "_")
    members = {
        f"{stem}/PKG-INFO": metadata.encode(),
        f"{stem}/pyproject.toml": f'[project]\nname = "{name}"\nversion = "{version}"\n'.encode(),
        f"{stem}/src/{package}/__init__.py": f'__version__ = "{version}"\n'.encode(),
        **{f"{stem}/{member}": data for member, data in (extra_files or {}).items()},
    }
    if zip_format:
        path = Path(directory) / f"{stem}.zip"
        _write_zip(path, members)
    else:
        path = Path(directory) / f"{stem}.tar.gz"
        _write_tar_gz(path, members)
    return path


def _record(members: Mapping[str, bytes], record_name: str) -> bytes:
    lines = []
    for member, data in members.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        lines.append(f"{member},sha256={digest},{len(data)}")
    lines.append(f"{record_name},,")
    return ("\n".join(lines) + "\n").encode()


def _write_zip(path: Path, members: Mapping[str, bytes]) -> None:
    with zipfile.ZipFile(path, "w") as archive:
        for member, data in members.items():
            info = zipfile.ZipInfo(member, date_time=ZIP_EPOCH)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            archive.writestr(info, data)


def _write_tar_gz(path: Path, members: Mapping[str, bytes]) -> None:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as archive:
        for member, data in members.items():
            info = tarfile.TarInfo(member)
            info.size = len(data)
            info.mode = 0o644
            archive.addfile(info, io.BytesIO(data))
    # gzip with mtime 0, so that equal inputs give equal bytes.
    path.write_bytes(gzip.compress(buffer.getvalue(), mtime=0))


@dataclass(frozen=True)
class LocalStore:
    """A migrated database and a filesystem blob store."""

    engine: Engine
    sessions: sessionmaker[Session]
    store: FilesystemBlobStore

    def blob_files(self) -> list[Path]:
        """Every file in the blob store, temporary files included."""
        return sorted(path for path in self.store.root.rglob("*") if path.is_file())


def make_local_store(directory: Path, database_url: str | None = None) -> LocalStore:
    """Migrate `database_url` (default: SQLite in `directory/packyard.db`) and create
    the blob store `directory/files`."""
    directory.mkdir(parents=True, exist_ok=True)
    engine = create_database_engine(database_url or f"sqlite:///{directory / 'packyard.db'}")
    migrate(engine)
    return LocalStore(engine, session_factory_for(engine), FilesystemBlobStore(directory / "files"))


def build_metadata_bomb_wheel(
    directory: Path, name: str, version: str, size: int = 200 * 1024 * 1024
) -> Path:
    """A wheel whose METADATA inflates to `size` zero bytes (about 1/200 of that on disk)."""
    stem = dist_stem(name, version)
    path = Path(directory) / f"{stem}-py3-none-any.whl"
    zeros = bytes(1024 * 1024)
    # Level 1: zeros still shrink ~200x, at a third of the default level's time.
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
        archive.writestr(f"{stem}.dist-info/WHEEL", b"Wheel-Version: 1.0\n")
        with archive.open(f"{stem}.dist-info/METADATA", "w", force_zip64=True) as member:
            for start in range(0, size, len(zeros)):
                member.write(zeros[: size - start])
    return path


async def store_unchecked(local: LocalStore, path: Path) -> None:
    """Store `path` as imports did before they applied the upload's rules: stores
    may still hold such files (a `javascript:` project URL, say), which pages
    must show safely."""
    dist = parse_filename(path.name)
    core = read_core_metadata(path, dist)
    content = await anyio.Path(path).read_bytes()
    blobs = [await store_bytes(local.store, dist.filename, content)]
    if dist.packagetype == "bdist_wheel":
        blobs.append(await store_bytes(local.store, f"{dist.filename}.metadata", core.content))
    now = datetime.now(UTC)
    with local.sessions.begin() as session:
        bump_serial(session)
        project = session.scalar(select(Project).where(Project.name == dist.name))
        if project is None:
            project = Project(name=dist.name, display_name=core.name, created_at=now)
        session.add(file_row(project, dist, core, blobs, now))
