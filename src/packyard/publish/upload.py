"""The upload service: one legacy upload (STANDARDS §2), checked, stored, recorded.

Given who is uploading and the streamed form (`multipart.read_multipart`,
the file written to the blob store but not committed):

1. the form: `:action`, protocol, metadata and control fields (§2.5-2.9);
2. the project: archived or quarantined ones take nothing (PEP 792), then
   `ownership.check_upload` decides whether this identity may upload; a new
   name must pass the name guard (§2.10, dependency confusion);
3. the file: filename, digests, its PEP 740 attestations (verified when it
   carries some, required when the project says so: `attestations/`), then
   duplicates as PyPI does (§2.14-2.15):
   the identical file again is a 200 that changes nothing, any other reuse of
   a filename or of the bytes is "File already exists", a deleted filename is
   never reused, one sdist per release;
4. the blob is committed and its archive read (§2.16: real zip/tar, bounded,
   METADATA/PKG-INFO consistent with the filename and so with the form);
   its Requires-Dist are checked against the advisories
   (`advisories/findings.py`): a requirement that admits only affected
   versions is a warning in the answer, or a refusal with `[advisories]
   refuse_uploads`;
5. ONE transaction: the project (if new) and its owner (`ownership.claim`),
   the file row, its requirements (`advisories/dependency_findings.py`), the
   serial bump and the audit event (with the findings).

Concurrent uploads are settled by the database's unique constraints: of two
uploads of one filename exactly one commits, the other is answered as a
duplicate, and a blob only the loser referenced is removed. Every refusal is
recorded in the audit trail in its own transaction.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal, Protocol

import anyio
import anyio.to_thread
from packaging.metadata import Metadata
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker
from starlette.types import Receive

from packyard.advisories.dependency_findings import check_release, describe, record_release
from packyard.advisories.findings import Finding, read_requirements
from packyard.attestations.requirement import UploadAttestations
from packyard.attestations.verify import Verified
from packyard.auth.ci_replay import claim_upload
from packyard.auth.identity import Identity
from packyard.db.governance import DeletedFile
from packyard.db.models import File, Project
from packyard.db.serial import bump_serial
from packyard.dists.archive import ArchiveLimits
from packyard.dists.filenames import DistFilename
from packyard.dists.metadata import CoreMetadata
from packyard.errors import Conflict, DatabaseUnavailable, InvalidRequest, PackyardError
from packyard.publish.audit import Origin, record
from packyard.publish.multipart import FormLimits, MultipartForm, UploadedFile, read_multipart
from packyard.publish.ownership import check_upload, claim
from packyard.publish.recording import (
    CLOSED_STATUSES,
    file_row,
    find_existing,
    local_copy,
    remove_unreferenced,
    store_bytes,
)
from packyard.publish.upload_form import UploadForm, check_action, check_digests, parse_form
from packyard.publish.validation import read_archive_metadata, validate_file, validate_metadata
from packyard.settings import UploadSettings
from packyard.storage.base import BlobStore, StoredBlob

OTHER_FIELDS_BYTES = 4 * 1024 * 1024  # the form's fields but the description, together
IDS_IN_A_REFUSAL = 5  # advisory ids a refusal names (a reason phrase is one short line)
HELP_URL = "/help/"
"""This server's help page (`routes/ui/help.py`); absolute with `public_url`."""


class NameGuard(Protocol):
    """Decides whether a NEW project may take a name (`publish/name_guard.py`)."""

    async def check(self, name: str) -> None:
        """Raises InvalidRequest (or an upstream error) when the name may not be used."""
        ...


@dataclass(frozen=True, slots=True)
class UploadResult:
    """`added`: stored now; `present`: the identical file was already there (§2.14).
    `findings`: the file's requirements that admit only affected versions."""

    outcome: Literal["added", "present"]
    project: str
    version: str
    filename: str
    findings: tuple[Finding, ...] = ()

    @property
    def message(self) -> str:
        """The short body of the 200 answer, then a line per finding: Warehouse
        puts warnings in a success's body (STANDARDS §2.3)."""
        if self.outcome == "present":
            return f"{self.filename} is already stored with the same contents: nothing changed."
        lines = [f"Uploaded {self.filename} to {self.project} {self.version}."]
        lines += (f"Warning: {describe(finding)}." for finding in self.findings)
        return "\n".join(lines)


@dataclass(frozen=True, slots=True)
class _Stored:
    """What step 5 stores besides the form: the file's metadata, its blobs, its
    requirements and the findings on them, and its verified attestations."""

    core: CoreMetadata
    blobs: list[StoredBlob]
    requirements: tuple[Requirement, ...]
    findings: list[Finding]
    verified: Verified | None = None


@dataclass(frozen=True, slots=True)
class _Checked:
    """An upload that passed every check that needs no archive."""

    form: UploadForm
    metadata: Metadata
    dist: DistFilename
    is_new: bool
    attestation_requirement: str | None  # the project's own; None: the configured one


AfterUpload = Callable[[str, bytes], Awaitable[None]]
"""Told of each new file: its sha256 and its METADATA (or PKG-INFO) bytes."""


class UploadService:
    """Handles legacy uploads into one database and blob store (see the module doc)."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        store: BlobStore,
        name_guard: NameGuard,
        settings: UploadSettings,
        *,
        after_upload: AfterUpload | None = None,
        help_url: str = HELP_URL,
        refuse_affected_requirements: bool = False,
        attestations: UploadAttestations | None = None,
    ) -> None:
        """`after_upload(sha256, metadata)` is awaited once a new file has
        committed (the browser renders its README then); it must not raise.
        `help_url`: this server's help page, which refusals of a reused
        filename link to. `refuse_affected_requirements` (`[advisories]
        refuse_uploads`): a requirement that admits only affected versions
        refuses the upload instead of warning. `attestations`: verifies what
        uploads carry and applies the requirement (None: an upload with
        attestations is refused, since nothing here could verify them)."""
        self.after_upload = after_upload
        self.attestations = attestations
        self.refuse_affected_requirements = refuse_affected_requirements
        self.reuse_help = f"See {help_url}#file-name-reuse for more information."
        self.sessions = sessions
        self.store = store
        self.name_guard = name_guard
        self.limits = FormLimits(
            max_file_size=settings.max_file_size,
            # Room for every other field beside the largest description allowed.
            max_field_bytes=settings.max_description_bytes + OTHER_FIELDS_BYTES,
            max_description_bytes=settings.max_description_bytes,
        )
        self.archive_limits = ArchiveLimits(
            settings.max_uncompressed_ratio, settings.max_uncompressed_bytes
        )
        self.max_description_bytes = settings.max_description_bytes

    async def upload(self, identity: Identity, form: MultipartForm, origin: Origin) -> UploadResult:
        """Check and store the upload in `form`; its file must be written, not committed.

        Raises (each refusal is also written to the audit trail):
            ActionGone: `:action` is `submit` or `doc_upload` (410).
            InvalidRequest, InvalidDistribution: the form, metadata, filename,
                digests or archive break a rule; the message is Warehouse's (400);
                or a requirement admits only affected versions and such
                uploads are refused.
            PermissionDenied: the identity may not upload to this project (403).
            Conflict: a new project's name was taken meanwhile (409).
            UpstreamUnavailable: the name guard could not ask an upstream (503).
            OSError, SQLAlchemyError: the blob store or the database failed.
        """
        try:
            return await self._upload(identity, form, origin)
        except PackyardError as exc:
            await self.record_refusal(identity.actor, origin, exc, form)
            raise

    async def receive_upload(
        self, identity: Identity, content_type: bytes | None, receive: Receive, origin: Origin
    ) -> UploadResult:
        """Stream the request body (`multipart.read_multipart`) and `upload` it.

        Raises:
            Everything `upload` and `read_multipart` raise; every refusal
            (`PackyardError`) is written to the audit trail.
        """
        form: MultipartForm | None = None
        try:
            async with read_multipart(content_type, receive, self.store, self.limits) as form:
                return await self._upload(identity, form, origin)
        except PackyardError as exc:
            await self.record_refusal(identity.actor, origin, exc, form)
            raise

    async def record_refusal(
        self, actor: str, origin: Origin, error: PackyardError, form: MultipartForm | None
    ) -> None:
        """Write a refused upload to the audit trail, in a transaction of its own.

        While the database does not answer, the refusal is in the event log only
        (`audit.record` writes its line first): the refusal itself is the outage.
        """
        names = form.fields.get("name", []) if form else []
        versions = form.fields.get("version", []) if form else []
        filename = form.file.filename if form and form.file else None
        with contextlib.suppress(DatabaseUnavailable):
            await anyio.to_thread.run_sync(
                self._record_refusal,
                actor,
                origin,
                error.message,
                canonicalize_name(names[0]) if names else None,
                versions[0] if versions else None,
                filename,
            )

    def _record_refusal(
        self,
        actor: str,
        origin: Origin,
        message: str,
        project: str | None,
        version: str | None,
        filename: str | None,
    ) -> None:
        with self.sessions.begin() as session:
            record(
                session,
                actor=actor,
                action="upload",
                outcome="refused",
                origin=origin,
                project=project,
                version=version,
                filename=filename,
                reason=message,
            )

    async def _upload(
        self, identity: Identity, form: MultipartForm, origin: Origin
    ) -> UploadResult:
        checked = await self._check(identity, form)
        upload = _file_of(form)
        digests = upload.writer.hexdigests()
        check_digests(checked.form.digests, digests)
        verified = await self._verify_attestations(identity, form, checked, digests["sha256"])
        if await anyio.to_thread.run_sync(self.is_present, checked.dist, digests):
            return _result("present", checked.dist)
        blobs = [await upload.writer.commit()]
        try:
            core = await self._read_archive(blobs[0], checked.dist)
            requirements = read_requirements(core.content)
            findings = await self._check_requirements(requirements)
            if checked.dist.packagetype == "bdist_wheel":
                metadata_name = f"{checked.dist.filename}.metadata"
                blobs.append(await store_bytes(self.store, metadata_name, core.content))
            stored = _Stored(core, blobs, requirements, findings, verified)
            await anyio.to_thread.run_sync(
                self._record, identity, origin, checked, stored, datetime.now(UTC)
            )
        except IntegrityError:
            await remove_unreferenced(self.sessions, self.store, blobs)
            return await self._settle_race(checked.dist, blobs[0])
        except BaseException:
            await remove_unreferenced(self.sessions, self.store, blobs)
            raise
        if self.after_upload is not None:
            await self.after_upload(blobs[0].sha256, core.content)
        return _result("added", checked.dist, findings)

    async def _check(self, identity: Identity, form: MultipartForm) -> _Checked:
        """Steps 1-3 up to the filename: everything that needs neither bytes nor archive."""
        check_action(form.fields)
        upload_form = parse_form(form.fields)
        metadata = validate_metadata(upload_form.raw)
        upload = _file_of(form)
        name = canonicalize_name(metadata.name)
        is_new, requirement = await anyio.to_thread.run_sync(self._authorize, identity, name)
        if identity.kind == "ci":
            await anyio.to_thread.run_sync(self._claim, identity, name, str(metadata.version))
        if is_new:
            await self.name_guard.check(metadata.name)
        dist = validate_file(upload.filename, upload_form, metadata)
        return _Checked(upload_form, metadata, dist, is_new, requirement)

    async def _verify_attestations(
        self, identity: Identity, form: MultipartForm, checked: _Checked, sha256: str
    ) -> Verified | None:
        """The upload's verified attestations, if it carries any (`attestations/`).

        Raises:
            InvalidRequest: they do not verify, or the project requires them and
                there are none.
        """
        fields = form.fields.get("attestations", [])
        if self.attestations is None:
            if any(field.strip() for field in fields):
                raise InvalidRequest("This server does not verify attestations.")
            return None
        return await anyio.to_thread.run_sync(
            self.attestations.check,
            identity,
            fields,
            checked.dist.name,
            self.attestations.effective(checked.attestation_requirement),
            checked.dist.filename,
            sha256,
        )

    def _authorize(self, identity: Identity, name: str) -> tuple[bool, str | None]:
        """Whether the project is new, and its own attestation requirement.
        Raises InvalidRequest (closed project) or PermissionDenied."""
        with self.sessions() as session:
            project = session.scalar(select(Project).where(Project.name == name))
            if project is not None and project.status in CLOSED_STATUSES:
                raise closed_project(project)
            is_new = not check_upload(session, identity, name)
            return is_new, project.attestation_requirement if project else None

    def _claim(self, identity: Identity, name: str, version: str) -> None:
        """A CI token uploads to one release (`auth.ci_replay`); raises PermissionDenied."""
        with self.sessions.begin() as session:
            claim_upload(session, identity, name, version)

    def is_present(self, dist: DistFilename, digests: dict[str, str]) -> bool:
        """True for the identical file; raises for every other reuse (§2.14-2.15).
        `packyard import` applies it too (`publish/importer.py`).

        Raises:
            InvalidRequest: "File already exists …", a deleted filename, or a
                second sdist for the release.
        """
        existing = find_existing(self.sessions, dist.filename, digests["blake2_256"])
        if existing is not None:
            if _is_identical(existing, dist.filename, digests):
                return True
            raise _already_exists(dist.filename, digests["blake2_256"], self.reuse_help)
        with self.sessions() as session:
            if session.get(DeletedFile, dist.filename) is not None:
                raise InvalidRequest(
                    "This filename was previously used by a file that has since been "
                    f"deleted. Use a different version. {self.reuse_help}"
                )
            if dist.packagetype == "sdist" and _has_sdist(session, dist):
                raise InvalidRequest("Only one sdist may be uploaded per release.")
        return False

    async def _check_requirements(self, requirements: tuple[Requirement, ...]) -> list[Finding]:
        """The findings on the file's requirements (`advisories/findings.py`).

        Raises:
            InvalidRequest: there are some, and such uploads are refused.
        """
        if not requirements:
            return []
        findings = await anyio.to_thread.run_sync(self._findings, requirements)
        if findings and self.refuse_affected_requirements:
            raise _affected_requirements(findings)
        return findings

    def _findings(self, requirements: tuple[Requirement, ...]) -> list[Finding]:
        with self.sessions() as session:
            return check_release(session, requirements)

    async def _read_archive(self, blob: StoredBlob, dist: DistFilename) -> CoreMetadata:
        async with local_copy(self.store, blob.key) as path:
            return await anyio.to_thread.run_sync(
                read_archive_metadata,
                path,
                dist,
                self.archive_limits,
                self.max_description_bytes,
            )

    def _record(
        self,
        identity: Identity,
        origin: Origin,
        checked: _Checked,
        stored: _Stored,
        now: datetime,
    ) -> None:
        """Step 5, one transaction. Raises Conflict, InvalidRequest or IntegrityError."""
        dist = checked.dist
        core, blobs = stored.core, stored.blobs
        with self.sessions.begin() as session:
            # A write first: it takes the write lock (the serial row on
            # PostgreSQL, the database on SQLite) before anything is read, so
            # the checks below see every upload that committed before ours.
            bump_serial(session)
            project = self._project_for(session, identity, origin, checked, core, now)
            row = file_row(project, dist, core, blobs, now)
            if stored.verified is not None:
                row.provenance = stored.verified.provenance
                row.provenance_publisher = stored.verified.summary
            session.add(row)
            session.flush()
            version = str(dist.version)
            record_release(
                session, project.name, version, stored.requirements, stored.findings, now
            )
            record(
                session,
                actor=identity.actor,
                action="upload",
                origin=origin,
                project=project.name,
                version=version,
                filename=dist.filename,
                sha256=blobs[0].sha256,
                size=blobs[0].size,
                dependency_findings=_audited(stored.findings),
                attestations=list(stored.verified.predicate_types) if stored.verified else [],
            )

    def _project_for(
        self,
        session: Session,
        identity: Identity,
        origin: Origin,
        checked: _Checked,
        core: CoreMetadata,
        now: datetime,
    ) -> Project:
        name = checked.dist.name
        project = session.scalar(select(Project).where(Project.name == name))
        if project is not None and not checked.is_new:
            if project.status in CLOSED_STATUSES:
                raise closed_project(project)
            return project
        if project is not None or not checked.is_new:
            # Created, or deleted, by someone else since we checked: Warehouse's 409.
            raise _name_conflict(checked.metadata.name)
        project = Project(name=name, display_name=core.name, created_at=now)
        session.add(project)
        try:
            with session.begin_nested():
                session.flush()
        except IntegrityError as exc:
            raise _name_conflict(checked.metadata.name) from exc
        claim(session, identity, project, origin=origin)
        return project

    async def _settle_race(self, dist: DistFilename, blob: StoredBlob) -> UploadResult:
        """Another upload committed this filename or these bytes between our check
        and our commit: the same answer as if it had come first."""
        digests = {"sha256": blob.sha256, "blake2_256": blob.blake2_256}
        existing = await anyio.to_thread.run_sync(
            find_existing, self.sessions, dist.filename, blob.blake2_256
        )
        if existing is None:
            raise Conflict(f"{dist.filename!r} could not be stored: the database refused it.")
        if _is_identical(existing, dist.filename, digests):
            return _result("present", dist)
        raise _already_exists(dist.filename, blob.blake2_256, self.reuse_help)


def _file_of(form: MultipartForm) -> UploadedFile:
    if form.file is None:
        raise InvalidRequest("Upload payload does not have a file.")
    return form.file


def _result(
    outcome: Literal["added", "present"], dist: DistFilename, findings: list[Finding] | None = None
) -> UploadResult:
    return UploadResult(outcome, dist.name, str(dist.version), dist.filename, tuple(findings or ()))


def _affected_requirements(findings: list[Finding]) -> InvalidRequest:
    first, others = findings[0], len(findings) - 1
    more = f" (and {others} more requirement{'s' if others > 1 else ''})" if others else ""
    return InvalidRequest(
        f"The {describe(first, most=IDS_IN_A_REFUSAL)}{more}: this index refuses such "
        f"uploads. Require a fixed version of {first.dependency}, or ask an administrator "
        "to accept the risk."
    )


def _audited(findings: list[Finding]) -> list[dict[str, object]]:
    return [
        {"requirement": f.requirement, "dependency": f.dependency, "advisory_ids": f.advisory_ids}
        for f in findings
    ]


def _is_identical(existing: File, filename: str, digests: dict[str, str]) -> bool:
    return (existing.filename, existing.sha256, existing.blake2_256) == (
        filename,
        digests["sha256"],
        digests["blake2_256"],
    )


def _has_sdist(session: Session, dist: DistFilename) -> bool:
    found = session.scalar(
        select(File.id)
        .join(Project)
        .where(
            Project.name == dist.name,
            File.version == str(dist.version),
            File.packagetype == "sdist",
        )
    )
    return found is not None


def _already_exists(filename: str, blake2_256: str, help_text: str) -> InvalidRequest:
    # The "File already exists" prefix is what twine --skip-existing, poetry
    # and pdm look for (§2.14, §2.19): never reword it.
    return InvalidRequest(
        f"File already exists ({filename!r}, with blake2_256 hash {blake2_256!r}). {help_text}"
    )


def closed_project(project: Project) -> InvalidRequest:
    """The refusal of a file for an archived or quarantined project (imports too)."""
    return InvalidRequest(
        f"Project {project.name!r} is {project.status}: it accepts no new files (PEP 792)."
    )


def _name_conflict(name: str) -> Conflict:
    return Conflict(
        f"The name {name!r} conflicts with an existing project. Upload again to add the "
        "file to it if you may."
    )
