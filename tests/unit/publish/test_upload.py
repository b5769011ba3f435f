"""The upload service on a real database (SQLite and PostgreSQL) and blob store.

Forms are the ones twine sends (built by twine's own code), streamed through
`read_multipart` exactly as the HTTP route does.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from pathlib import Path

import anyio
import pytest
from sqlalchemy import func, select

from packyard.auth.identity import Identity
from packyard.db.audit import AuditEvent
from packyard.db.governance import DeletedFile, ProjectRole
from packyard.db.models import File, Project
from packyard.db.serial import read_serial
from packyard.errors import (
    Conflict,
    InvalidDistribution,
    InvalidRequest,
    PackyardError,
    PermissionDenied,
)
from packyard.publish.accounts import add_user
from packyard.publish.audit import Origin
from packyard.publish.upload import UploadResult, UploadService
from packyard.settings import UploadSettings
from tests.builders import LocalStore, build_sdist, build_wheel, make_local_store, metadata_text
from tests.unit.publish.test_multipart import encode, receiver, twine_form

ORIGIN = Origin(client_ip="127.0.0.1", user_agent="twine/6 test")
OPERATOR = Identity(kind="cli", name="root", is_admin=True)


class Guard:
    """A name guard: refuses the names in `refused`, remembers what it was asked."""

    def __init__(self, *refused: str) -> None:
        self.refused = set(refused)
        self.asked: list[str] = []

    async def check(self, name: str) -> None:
        self.asked.append(name)
        if name in self.refused:
            raise InvalidRequest(f"The name {name!r} isn't allowed.")


class SnatchingGuard(Guard):
    """Lets the name pass, and creates the project meanwhile: another uploader won."""

    def __init__(self, local: LocalStore) -> None:
        super().__init__()
        self.local = local

    async def check(self, name: str) -> None:
        await super().check(name)
        with self.local.sessions.begin() as session:
            session.add(Project(name="acme-core", display_name=name, created_at=datetime.now(UTC)))


@pytest.fixture
def local(tmp_path: Path, database_url: str) -> LocalStore:
    return make_local_store(tmp_path / "data", database_url)


@pytest.fixture
def dists(tmp_path: Path) -> Path:
    (tmp_path / "dists").mkdir()
    return tmp_path / "dists"


def service(local: LocalStore, guard: Guard | None = None) -> UploadService:
    return UploadService(local.sessions, local.store, guard or Guard(), UploadSettings())


def user(local: LocalStore, name: str) -> Identity:
    with local.sessions.begin() as session:
        row = add_user(session, name, None, actor=OPERATOR)
        session.flush()
        return Identity(kind="user", name=name, user_id=row.id)


async def upload(
    uploads: UploadService,
    identity: Identity,
    path: Path,
    content: bytes | None = None,
    **changes: str | None,
) -> UploadResult:
    """Upload `path` with twine's form; `content` replaces its bytes (digests follow)."""
    data = content if content is not None else await anyio.Path(path).read_bytes()
    if content is not None:
        changes["sha256_digest"] = hashlib.sha256(data).hexdigest()
        changes["blake2_256_digest"] = hashlib.blake2b(data, digest_size=32).hexdigest()
    form = (path.name, data, "application/octet-stream")
    content_type, body = encode(twine_form(path, **changes), form)
    return await uploads.receive_upload(identity, content_type, receiver(body), ORIGIN)


def rows(local: LocalStore, table: type[File] | type[Project] | type[ProjectRole]) -> int:
    with local.sessions() as session:
        return session.scalar(select(func.count()).select_from(table)) or 0


def serial(local: LocalStore) -> int:
    with local.sessions() as session:
        return read_serial(session)


def audit(local: LocalStore) -> list[tuple[str, str, str, str | None, str]]:
    with local.sessions() as session:
        events = session.scalars(select(AuditEvent).order_by(AuditEvent.id)).all()
    return [
        (e.actor, e.action, e.outcome, e.filename, json.loads(e.detail).get("reason", ""))
        for e in events
        if e.action in ("upload", "project-claim")
    ]


@pytest.mark.anyio
async def test_a_first_upload_creates_the_project_owned_by_its_uploader(
    local: LocalStore, dists: Path
) -> None:
    alice = user(local, "alice")
    wheel = build_wheel(dists, "Acme.Core", "1.0", requires_python=">=3.9", summary="Core")
    guard = Guard()
    before = serial(local)

    result = await upload(service(local, guard), alice, wheel)

    assert result == UploadResult("added", "acme-core", "1.0", wheel.name)
    assert guard.asked == ["Acme.Core"]
    data = wheel.read_bytes()
    with local.sessions() as session:
        project = session.scalars(select(Project)).one()
        row = session.scalars(select(File)).one()
        role = session.scalars(select(ProjectRole)).one()
    assert (project.name, project.display_name) == ("acme-core", "Acme.Core")
    assert (row.filename, row.version, row.python_version) == (wheel.name, "1.0", "py3")
    assert (row.sha256, row.size) == (hashlib.sha256(data).hexdigest(), len(data))
    assert (row.requires_python, row.summary) == (">=3.9", "Core")
    assert row.metadata_sha256 is not None
    assert (role.role, role.user_id) == ("owner", alice.user_id)
    assert serial(local) == before + 1
    assert [a[:4] for a in audit(local)] == [
        ("user:alice", "project-claim", "ok", None),
        ("user:alice", "upload", "ok", wheel.name),
    ]
    assert len(local.blob_files()) == 2  # the wheel and its METADATA


@pytest.mark.anyio
async def test_the_identical_file_again_is_accepted_and_changes_nothing(
    local: LocalStore, dists: Path
) -> None:
    alice = user(local, "alice")
    sdist = build_sdist(dists, "acme-core", "1.0")
    uploads = service(local)
    await upload(uploads, alice, sdist)
    before = (serial(local), local.blob_files(), len(audit(local)))

    result = await upload(uploads, alice, sdist)

    assert result.outcome == "present"
    assert "nothing changed" in result.message
    assert (serial(local), local.blob_files(), len(audit(local))) == before


@pytest.mark.anyio
async def test_other_bytes_under_a_stored_filename_are_refused(
    local: LocalStore, dists: Path
) -> None:
    alice = user(local, "alice")
    uploads = service(local)
    first = build_wheel(dists, "acme-core", "1.0")
    await upload(uploads, alice, first)
    blobs = local.blob_files()
    (dists / "b").mkdir()
    second = build_wheel(dists / "b", "acme-core", "1.0", summary="Changed")
    blake2 = hashlib.blake2b(second.read_bytes(), digest_size=32).hexdigest()

    with pytest.raises(InvalidRequest) as caught:
        await upload(uploads, alice, second)

    assert caught.value.message == (
        f"File already exists ({second.name!r}, with blake2_256 hash {blake2!r}). "
        "See /help/#file-name-reuse for more information."
    )
    assert local.blob_files() == blobs
    assert audit(local)[-1][2:] == ("refused", second.name, caught.value.message)


@pytest.mark.anyio
async def test_a_deleted_filename_is_never_used_again(local: LocalStore, dists: Path) -> None:
    alice = user(local, "alice")
    wheel = build_wheel(dists, "acme-core", "1.0")
    with local.sessions.begin() as session:
        session.add(
            DeletedFile(
                filename=wheel.name,
                project_name="acme-core",
                version="1.0",
                sha256="0" * 64,
                deleted_by="user:alice",
                deleted_at=datetime.now(UTC),
            )
        )

    with pytest.raises(InvalidRequest, match=r"^This filename was previously used by a file"):
        await upload(service(local), alice, wheel)

    assert rows(local, File) == 0
    assert local.blob_files() == []


@pytest.mark.anyio
async def test_only_one_sdist_per_release(local: LocalStore, dists: Path) -> None:
    alice = user(local, "alice")
    uploads = service(local)
    await upload(uploads, alice, build_wheel(dists, "acme-core", "1.0"))
    # An sdist stored under its pre-PEP 625 name (`acme-core-1.0.tar.gz`) before
    # uploads and imports refused such names: PEP 625 allows one name per release.
    with local.sessions.begin() as session:
        project = session.scalars(select(Project)).one()
        session.add(
            File(
                project=project,
                filename="acme-core-1.0.tar.gz",
                version="1.0",
                packagetype="sdist",
                python_version="source",
                size=1,
                sha256="0" * 64,
                blake2_256="1" * 64,
                md5="2" * 32,
                upload_time=datetime.now(UTC),
                blob_key="legacy",
            )
        )

    with pytest.raises(InvalidRequest, match=r"^Only one sdist may be uploaded per release\.$"):
        await upload(uploads, alice, build_sdist(dists, "acme-core", "1.0"))


@pytest.mark.anyio
async def test_only_owners_and_maintainers_may_upload(local: LocalStore, dists: Path) -> None:
    alice, bob = user(local, "alice"), user(local, "bob")
    uploads = service(local)
    await upload(uploads, alice, build_wheel(dists, "acme-core", "1.0"))
    sdist = build_sdist(dists, "acme-core", "1.0")

    with pytest.raises(PermissionDenied) as caught:
        await upload(uploads, bob, sdist)

    assert caught.value.message.startswith(
        "The user 'bob' isn't allowed to upload to project 'acme-core'."
    )
    assert rows(local, File) == 1
    assert audit(local)[-1][:3] == ("user:bob", "upload", "refused")


@pytest.mark.anyio
async def test_a_token_for_other_projects_may_not_create_one(
    local: LocalStore, dists: Path
) -> None:
    alice = user(local, "alice")
    token = Identity(
        kind="token",
        name="alice",
        user_id=alice.user_id,
        projects=frozenset({"acme-tools"}),
        token_prefix="pky_abcd1234",
    )

    with pytest.raises(PermissionDenied, match=r"^The given token isn't allowed to upload"):
        await upload(service(local), token, build_wheel(dists, "acme-core", "1.0"))

    assert rows(local, Project) == 0
    assert audit(local)[-1][:3] == ("token:alice/pky_abcd1234", "upload", "refused")


@pytest.mark.anyio
@pytest.mark.parametrize("status", ["archived", "quarantined"])
async def test_closed_projects_take_no_files(local: LocalStore, dists: Path, status: str) -> None:
    alice = user(local, "alice")
    uploads = service(local)
    await upload(uploads, alice, build_wheel(dists, "acme-core", "1.0"))
    with local.sessions.begin() as session:
        session.scalars(select(Project)).one().status = status

    with pytest.raises(InvalidRequest, match=f"^Project 'acme-core' is {status}"):
        await upload(uploads, alice, build_sdist(dists, "acme-core", "1.0"))

    assert rows(local, File) == 1


@pytest.mark.anyio
async def test_a_new_name_must_pass_the_name_guard(local: LocalStore, dists: Path) -> None:
    alice = user(local, "alice")
    guard = Guard("requests")

    with pytest.raises(InvalidRequest, match=r"^The name 'requests' isn't allowed"):
        await upload(service(local, guard), alice, build_wheel(dists, "requests", "1.0"))

    assert (rows(local, Project), rows(local, File), local.blob_files()) == (0, 0, [])


@pytest.mark.anyio
async def test_a_name_taken_during_the_upload_is_a_conflict(local: LocalStore, dists: Path) -> None:
    alice = user(local, "alice")

    with pytest.raises(Conflict, match=r"^The name 'acme-core' conflicts with an existing project"):
        await upload(
            service(local, SnatchingGuard(local)), alice, build_wheel(dists, "acme-core", "1.0")
        )

    assert (rows(local, File), rows(local, ProjectRole), local.blob_files()) == (0, 0, [])


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("changes", "error", "message"),
    [
        ({"sha256_digest": "0" * 64}, InvalidRequest, "^The digest supplied does not match"),
        ({"metadata_version": "3.0"}, InvalidRequest, "^'3.0' is not a valid metadata version"),
        ({":action": "submit"}, InvalidRequest, "'submit' is no longer supported"),
        ({"version": "2.0"}, InvalidRequest, "^Version in filename should be '2.0' not '1.0'"),
    ],
)
async def test_bad_forms_store_nothing(
    local: LocalStore,
    dists: Path,
    changes: dict[str, str],
    error: type[PackyardError],
    message: str,
) -> None:
    alice = user(local, "alice")

    with pytest.raises(error, match=message):
        await upload(service(local), alice, build_wheel(dists, "acme-core", "1.0"), None, **changes)

    assert (rows(local, Project), rows(local, File), local.blob_files()) == (0, 0, [])
    assert audit(local)[-1][2] == "refused"


@pytest.mark.anyio
async def test_a_corrupt_or_lying_archive_is_refused_and_its_blob_removed(
    local: LocalStore, dists: Path
) -> None:
    alice = user(local, "alice")
    uploads = service(local)
    lying = build_wheel(dists, "acme-core", "1.0", metadata=metadata_text("acme-tools", "1.0"))

    with pytest.raises(InvalidDistribution, match="metadata name 'acme-tools' does not match"):
        await upload(uploads, alice, lying, name="acme-core")

    corrupt = build_sdist(dists, "acme-core", "2.0").read_bytes()  # a tar.gz, not a zip
    wheel = build_wheel(dists, "acme-core", "2.0")
    with pytest.raises(InvalidDistribution, match=r"^Invalid distribution file"):
        await upload(uploads, alice, wheel, content=corrupt)

    assert (rows(local, Project), rows(local, File), local.blob_files()) == (0, 0, [])


@pytest.mark.anyio
async def test_a_form_without_a_file_is_refused(local: LocalStore, dists: Path) -> None:
    alice = user(local, "alice")
    content_type, body = encode(twine_form(build_wheel(dists, "acme-core", "1.0")), None)

    with pytest.raises(InvalidRequest, match=r"^Upload payload does not have a file\.$"):
        await service(local).receive_upload(alice, content_type, receiver(body), ORIGIN)


@pytest.mark.anyio
async def test_of_concurrent_uploads_of_one_filename_exactly_one_wins(
    local: LocalStore, dists: Path
) -> None:
    alice = user(local, "alice")
    uploads = service(local)
    await upload(uploads, alice, build_sdist(dists, "acme-core", "1.0"))  # the project exists
    wheels = []
    for n in range(4):
        (dists / str(n)).mkdir()
        wheels.append(build_wheel(dists / str(n), "acme-core", "2.0", summary=f"variant {n}"))
    outcomes: list[str] = []

    async def attempt(path: Path) -> None:
        try:
            outcomes.append((await upload(uploads, alice, path)).outcome)
        except InvalidRequest as exc:
            outcomes.append(exc.message.split(" (")[0])

    async with anyio.create_task_group() as group:
        for wheel in wheels:
            group.start_soon(attempt, wheel)

    assert sorted(outcomes) == ["File already exists"] * 3 + ["added"]
    with local.sessions() as session:
        winner = session.scalars(select(File).where(File.version == "2.0")).one()
        keys = {
            key
            for row in session.scalars(select(File))
            for key in (row.blob_key, row.metadata_blob_key)
            if key
        }
    # No loser's blob is left: every stored file belongs to a row.
    stored = {str(p.relative_to(local.store.root)) for p in local.blob_files()}
    assert stored == keys
    assert winner.filename == wheels[0].name
