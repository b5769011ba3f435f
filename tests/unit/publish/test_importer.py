"""`import_directory`: every good file added once, every bad one reported, nothing half-done."""

from __future__ import annotations

import hashlib
import json
import zipfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select, update

from packyard.auth.identity import Identity
from packyard.db.audit import AuditEvent
from packyard.db.models import File, Project
from packyard.db.serial import read_serial
from packyard.errors import NotFound
from packyard.publish.accounts import add_user, create_group
from packyard.publish.importer import (
    IMPORTER,
    ImportResult,
    ImportRules,
    find_distributions,
    import_directory,
)
from packyard.publish.name_guard import NameGuard
from packyard.publish.ownership import list_roles
from packyard.settings import UploadSettings
from packyard.storage.base import blob_key
from tests.builders import (
    LocalStore,
    build_metadata_bomb_wheel,
    build_sdist,
    build_wheel,
    make_local_store,
    metadata_text,
)
from tests.unit.fakes import MemoryRepository


@pytest.fixture
def local(tmp_path: Path, database_url: str) -> LocalStore:
    return make_local_store(tmp_path / "data", database_url)


@pytest.fixture
def dists(tmp_path: Path) -> Path:
    directory = tmp_path / "dists"
    directory.mkdir()
    return directory


def count(local: LocalStore, table: type[Project] | type[File]) -> int:
    with local.sessions() as session:
        return session.scalar(select(func.count()).select_from(table)) or 0


def serial(local: LocalStore) -> int:
    with local.sessions() as session:
        return read_serial(session)


async def run(local: LocalStore, directory: Path) -> list[ImportResult]:
    seen: list[ImportResult] = []
    await import_directory(directory, local.sessions, local.store, seen.append)
    return seen


@pytest.mark.anyio
async def test_wheels_and_sdists_are_added_with_their_metadata(
    local: LocalStore, dists: Path
) -> None:
    wheel = build_wheel(dists, "Acme.Core", "1.0", requires_python=">=3.9", summary="Core")
    (dists / "nested").mkdir()
    build_sdist(dists / "nested", "acme-core", "1.0")
    before = datetime.now(UTC)

    report = await import_directory(dists, local.sessions, local.store)

    assert [r.path.name for r in report.added] == [
        "acme_core-1.0-py3-none-any.whl",
        "acme_core-1.0.tar.gz",
    ]
    assert report.ok
    assert not report.skipped
    with local.sessions() as session:
        project = session.scalars(select(Project)).one()
        rows = {row.filename: row for row in session.scalars(select(File))}
    assert (project.name, project.display_name) == ("acme-core", "Acme.Core")
    row = rows[wheel.name]
    data = wheel.read_bytes()
    assert (row.sha256, row.size) == (hashlib.sha256(data).hexdigest(), len(data))
    assert row.blake2_256 == hashlib.blake2b(data, digest_size=32).hexdigest()
    assert (row.version, row.packagetype, row.python_version) == ("1.0", "bdist_wheel", "py3")
    assert (row.requires_python, row.summary, row.yanked) == (">=3.9", "Core", False)
    assert before <= row.upload_time <= datetime.now(UTC)
    assert local.store.local_path(row.blob_key).read_bytes() == data
    with zipfile.ZipFile(wheel) as archive:
        metadata = archive.read("acme_core-1.0.dist-info/METADATA")
    assert row.metadata_sha256 == hashlib.sha256(metadata).hexdigest()
    assert row.metadata_blob_key == blob_key(row.metadata_sha256, f"{wheel.name}.metadata")
    assert local.store.local_path(row.metadata_blob_key).read_bytes() == metadata
    sdist_row = rows["acme_core-1.0.tar.gz"]
    assert (sdist_row.python_version, sdist_row.metadata_sha256) == ("source", None)
    assert serial(local) == 2


@pytest.mark.anyio
async def test_importing_twice_adds_nothing_new(local: LocalStore, dists: Path) -> None:
    build_wheel(dists, "acme", "1.0")
    build_sdist(dists, "acme", "1.0")
    await import_directory(dists, local.sessions, local.store)
    blobs = local.blob_files()

    again = await import_directory(dists, local.sessions, local.store)

    assert not again.added
    assert again.ok
    assert [r.line for r in again.skipped] == [
        "acme-1.0-py3-none-any.whl: already present",
        "acme-1.0.tar.gz: already present",
    ]
    assert (count(local, File), serial(local), local.blob_files()) == (2, 2, blobs)


@pytest.mark.anyio
async def test_other_bytes_under_a_stored_filename_are_refused_as_an_upload_is(
    local: LocalStore, dists: Path, tmp_path: Path
) -> None:
    build_wheel(dists, "acme", "1.0", summary="first")
    await import_directory(dists, local.sessions, local.store)
    build_wheel(dists, "acme", "1.0", summary="second")  # same name, other bytes
    blobs = local.blob_files()

    report = await import_directory(dists, local.sessions, local.store)

    (refused,) = report.refused
    assert refused.line.startswith(
        "acme-1.0-py3-none-any.whl: File already exists ('acme-1.0-py3-none-any.whl', "
        "with blake2_256 hash "
    )
    assert not report.ok
    assert (count(local, File), local.blob_files()) == (1, blobs)


@pytest.mark.anyio
async def test_the_same_bytes_under_another_filename_are_refused_as_an_upload_is(
    local: LocalStore, dists: Path
) -> None:
    wheel = build_wheel(dists, "acme", "1.0")
    await import_directory(dists, local.sessions, local.store)
    wheel.rename(dists / "ACME-1.0-py3-none-any.whl")

    report = await import_directory(dists, local.sessions, local.store)

    (refused,) = report.refused
    assert refused.line.startswith(
        "ACME-1.0-py3-none-any.whl: File already exists ('ACME-1.0-py3-none-any.whl', "
    )


@pytest.mark.anyio
async def test_bad_files_are_reported_one_line_each_and_nothing_is_stored(
    local: LocalStore, dists: Path, tmp_path: Path
) -> None:
    (dists / "broken-1.0-py3-none-any.whl").write_bytes(b"this is not a zip file")
    renamed = build_wheel(tmp_path, "real-name", "1.0")
    renamed.rename(dists / "other_name-1.0-py3-none-any.whl")
    build_wheel(dists, "acme", "1.0", metadata=metadata_text("acme", "2.0"))
    build_sdist(dists, "hostile", "1.0").rename(dists / "host\x01ile-1.0.tar.gz")
    build_metadata_bomb_wheel(dists, "acme", "1.0")  # replaces the mismatched one
    build_sdist(dists, "zeta", "1.0", metadata=metadata_text("zeta", "2.0"))

    report = await import_directory(dists, local.sessions, local.store)

    assert not report.added
    assert not report.ok
    reasons = {result.path.name: result.line for result in report.refused}
    assert len(reasons) == 5
    expected = {
        "acme-1.0-py3-none-any.whl": "a zip or tar bomb",
        "broken-1.0-py3-none-any.whl": "The archive cannot be read",
        "host\x01ile-1.0.tar.gz": "it may not contain",
        "other_name-1.0-py3-none-any.whl": "real_name-1.0.dist-info directory does not match",
        "zeta-1.0.tar.gz": "The metadata version '2.0' does not match the filename",
    }
    for filename, reason in expected.items():
        assert reason in reasons[filename]
        assert repr(filename)[1:-1] in reasons[filename]  # printable, on one line
        assert "\n" not in reasons[filename]
    assert (count(local, Project), count(local, File), serial(local)) == (0, 0, 0)
    assert local.blob_files() == []


@pytest.mark.anyio
async def test_a_refused_transaction_removes_the_blobs_it_wrote(
    local: LocalStore, dists: Path, tmp_path: Path
) -> None:
    build_wheel(tmp_path, "acme", "1.0")
    await import_directory(tmp_path, local.sessions, local.store)
    with local.sessions.begin() as session:
        session.execute(update(Project).values(status="archived"))
    blobs = local.blob_files()
    build_wheel(dists, "acme", "2.0")

    report = await import_directory(dists, local.sessions, local.store)

    (refused,) = report.refused
    assert "Project 'acme' is archived: it accepts no new files (PEP 792)." in refused.line
    assert (count(local, File), local.blob_files()) == (1, blobs)


@pytest.mark.anyio
async def test_progress_is_reported_per_file_in_order(local: LocalStore, dists: Path) -> None:
    build_wheel(dists, "acme", "1.0")
    build_wheel(dists, "acme", "2.0")
    (dists / "notes.txt").write_text("not a distribution")
    seen = await run(local, dists)
    assert [(r.path.name, r.outcome) for r in seen] == [
        ("acme-1.0-py3-none-any.whl", "added"),
        ("acme-2.0-py3-none-any.whl", "added"),
    ]
    assert find_distributions(dists) == [r.path for r in seen]


@pytest.mark.anyio
async def test_upload_times_are_recent_and_in_utc(local: LocalStore, dists: Path) -> None:
    build_sdist(dists, "acme", "1.0")
    await run(local, dists)
    with local.sessions() as session:
        upload_time = session.scalars(select(File.upload_time)).one()
    assert datetime.now(UTC) - upload_time < timedelta(minutes=1)


# --- the upload's rules -------------------------------------------------------------


def audit(local: LocalStore) -> list[tuple[str, str, str, str | None, dict[str, object]]]:
    """(actor, action, outcome, filename, detail) of every audit event, oldest first."""
    with local.sessions() as session:
        rows = session.scalars(select(AuditEvent).order_by(AuditEvent.id))
        return [(e.actor, e.action, e.outcome, e.filename, json.loads(e.detail)) for e in rows]


@pytest.mark.anyio
async def test_a_file_over_max_file_size_is_refused_with_the_uploads_message(
    local: LocalStore, dists: Path
) -> None:
    wheel = build_wheel(dists, "acme", "1.0", extra_files={"acme/blob.bin": bytes(4096)})
    limits = UploadSettings(max_file_size=wheel.stat().st_size - 1)

    report = await import_directory(
        dists, local.sessions, local.store, rules=ImportRules(limits=limits)
    )

    (refused,) = report.refused
    limit = f"{limits.max_file_size / 1024**2:g}"
    assert refused.line == (
        f"{wheel.name}: File too large. Limit for project 'acme' is {limit} MB. "
        "An administrator can raise it with the upload.max_file_size setting."
    )
    assert (count(local, File), local.blob_files()) == (0, [])


@pytest.mark.parametrize(
    ("metadata", "message"),
    [
        (
            metadata_text("acme", "1.0", project_urls=[("Home", "javascript:alert(1)")]),
            "'javascript:alert(1)' is not a valid url",
        ),
        (
            metadata_text("acme", "1.0") + "Classifier: Made Up :: Nonsense\n",
            "'Made Up :: Nonsense' is not a valid classifier.",
        ),
        (
            metadata_text("acme", "1.0", requires_dist=["evil @ https://example.org/x.whl"]),
            "Can't have direct dependency: evil @ https://example.org/x.whl",
        ),
    ],
)
@pytest.mark.anyio
async def test_metadata_an_upload_would_refuse_is_refused(
    local: LocalStore, dists: Path, metadata: str, message: str
) -> None:
    wheel = build_wheel(dists, "acme", "1.0", metadata=metadata)

    report = await import_directory(dists, local.sessions, local.store)

    (refused,) = report.refused
    assert refused.line.startswith(f"{wheel.name}: {message}"), refused.line
    assert count(local, File) == 0


@pytest.mark.anyio
async def test_unknown_values_are_dropped_as_twine_drops_them(
    local: LocalStore, dists: Path
) -> None:
    metadata = metadata_text("acme", "1.0") + "Home-page: UNKNOWN\nAuthor-email: UNKNOWN\n"
    build_wheel(dists, "acme", "1.0", metadata=metadata)
    assert (await import_directory(dists, local.sessions, local.store)).ok


@pytest.mark.anyio
async def test_a_sdist_name_an_upload_would_refuse_is_refused(
    local: LocalStore, dists: Path
) -> None:
    build_sdist(dists, "acme-core", "1.0").rename(dists / "acme-core-1.0.tar.gz")  # pre-PEP 625

    (refused,) = (await import_directory(dists, local.sessions, local.store)).refused

    assert refused.line == (
        "acme-core-1.0.tar.gz: Filename 'acme-core-1.0.tar.gz' is invalid, "
        "should be 'acme_core-1.0.tar.gz'."
    )


@pytest.mark.anyio
async def test_imports_and_refusals_are_audited_as_the_operator(
    local: LocalStore, dists: Path
) -> None:
    build_wheel(dists, "acme", "1.0")
    (dists / "broken-1.0-py3-none-any.whl").write_bytes(b"not a zip")
    operator = Identity(kind="cli", name="root", is_admin=True)

    await import_directory(dists, local.sessions, local.store, rules=ImportRules(actor=operator))

    events = audit(local)
    assert [event[:4] for event in events] == [
        ("cli:root", "project-claim", "ok", None),
        ("cli:root", "import", "ok", "acme-1.0-py3-none-any.whl"),
        ("cli:root", "import", "refused", "broken-1.0-py3-none-any.whl"),
    ]
    assert events[0][4]["owner"] is None
    assert set(events[1][4]) == {"sha256", "size"}
    assert "The archive cannot be read" in str(events[2][4]["reason"])


@pytest.mark.parametrize("spec", ["alice", "user:alice", "group:devs", "devs"])
@pytest.mark.anyio
async def test_the_owner_given_owns_each_new_project(
    local: LocalStore, dists: Path, spec: str
) -> None:
    with local.sessions.begin() as session:
        add_user(session, "alice", None, actor=IMPORTER)
        create_group(session, "devs", actor=IMPORTER)
    build_wheel(dists, "acme", "1.0")
    build_wheel(dists, "acme", "2.0")

    report = await import_directory(
        dists, local.sessions, local.store, rules=ImportRules(owner=spec)
    )

    assert [r.created for r in report.added] == ["acme", None]
    with local.sessions() as session:
        roles = list_roles(session, "acme")
    member = spec.rpartition(":")[2]
    assert [(r.role, r.kind, r.name) for r in roles] == [
        ("owner", "group" if member == "devs" else "user", member)
    ]


@pytest.mark.anyio
async def test_an_owner_who_is_not_there_stops_the_import_before_any_file(
    local: LocalStore, dists: Path
) -> None:
    build_wheel(dists, "acme", "1.0")
    with pytest.raises(NotFound, match="There is no user or group named 'nobody'"):
        await import_directory(
            dists, local.sessions, local.store, rules=ImportRules(owner="nobody")
        )
    assert count(local, Project) == 0


@pytest.mark.anyio
async def test_allow_public_names_takes_a_public_name_audited_but_never_a_stdlib_one(
    local: LocalStore, dists: Path
) -> None:
    build_wheel(dists, "requests", "99.0")
    build_wheel(dists, "asyncio", "9.0")
    guard = NameGuard(local.sessions, [MemoryRepository("pypi", {"requests": {}})])

    refused = await import_directory(dists, local.sessions, local.store, name_guard=guard)
    assert [r.path.name for r in refused.refused] == [
        "asyncio-9.0-py3-none-any.whl",
        "requests-99.0-py3-none-any.whl",
    ]

    report = await import_directory(
        dists,
        local.sessions,
        local.store,
        name_guard=guard,
        rules=ImportRules(allow_public_names=True),
    )

    (added,) = report.added
    assert added.line.startswith(
        "requests-99.0-py3-none-any.whl: imported with --allow-public-names although: "
        "The name 'requests' is already used by a public project on pypi"
    )
    (stdlib,) = report.refused
    assert "Standard Library" in stdlib.line
    overrides = [event for event in audit(local) if event[1] == "name-guard-override"]
    assert [(e[0], e[2], e[4]["reason"]) for e in overrides] == [
        ("cli:import", "ok", added.line.split("although: ", 1)[1])
    ]
