"""The tables of the in-house store (SQLAlchemy 2 declarative, portable types).

Every type here works on SQLite and PostgreSQL alike. Timestamps are stored
as UTC and always come back timezone-aware (`UTCDateTime`), because SQLite
keeps no zone and a naive datetime would be serialised without its `Z`.

The schema itself is created by the Alembic migrations in `migrations/`, never
by `create_all`; these classes must be kept in step with them.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    Dialect,
    Double,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
    false,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, relationship

# Named constraints, so that later migrations can alter them on every database
# (SQLite's batch mode needs a name to find a constraint again).
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

PACKAGE_TYPES = ("bdist_wheel", "sdist")
PROJECT_STATUSES = ("active", "archived", "quarantined", "deprecated")  # PEP 792


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp stored in UTC and read back as an aware UTC datetime."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("timestamps must be timezone-aware")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class Project(Base):
    """A project of the in-house store; `name` is normalised (`canonicalize_name`)."""

    __tablename__ = "projects"
    __table_args__ = (
        CheckConstraint(
            "status IN ('active', 'archived', 'quarantined', 'deprecated')", name="status"
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(255), unique=True)
    display_name: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    status: Mapped[str] = mapped_column(String(20), default="active", server_default="active")
    status_reason: Mapped[str | None] = mapped_column(Text)
    # PEP 740: which uploads must carry a verified attestation ("none", "ci",
    # "all"); None follows `[attestations] require` (`attestations/requirement.py`).
    attestation_requirement: Mapped[str | None] = mapped_column(String(8))

    files: Mapped[list[File]] = relationship(back_populates="project")


class File(Base):
    """One distribution file, its hashes and where its bytes are stored."""

    __tablename__ = "files"
    __table_args__ = (
        CheckConstraint("packagetype IN ('bdist_wheel', 'sdist')", name="packagetype"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id"), index=True)
    filename: Mapped[str] = mapped_column(String(255), unique=True)
    version: Mapped[str] = mapped_column(String(255))
    packagetype: Mapped[str] = mapped_column(String(20))
    # The wheel's python tag (`py3`, `cp312`, `py2.py3`), or `source` for an sdist,
    # as twine sends it in the upload form's `pyversion`.
    python_version: Mapped[str] = mapped_column(String(100))
    requires_python: Mapped[str | None] = mapped_column(Text)
    size: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    # Unique, as on PyPI: the same bytes can't be stored under two filenames
    # (STANDARDS §2.14, a file exists if its filename or its blake2_256 does).
    blake2_256: Mapped[str] = mapped_column(String(64), unique=True)
    md5: Mapped[str] = mapped_column(String(32))
    upload_time: Mapped[datetime] = mapped_column(UTCDateTime())
    blob_key: Mapped[str] = mapped_column(String(512))
    # PEP 658: the sha256 of the wheel's exact METADATA bytes and their own blob.
    metadata_sha256: Mapped[str | None] = mapped_column(String(64))
    metadata_blob_key: Mapped[str | None] = mapped_column(String(512))
    yanked: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    yanked_reason: Mapped[str | None] = mapped_column(Text)
    summary: Mapped[str | None] = mapped_column(Text)
    # PEP 740: the provenance object served at /integrity/…/provenance, kept
    # exactly as verified at upload (deferred: pages need only the summary), and
    # the summary the pages and the browser show: JSON of `attestations.Verified`.
    provenance: Mapped[str | None] = mapped_column(Text, deferred=True)
    provenance_publisher: Mapped[str | None] = mapped_column(Text)

    project: Mapped[Project] = relationship(back_populates="files")


class Change(Base):
    """The serial of the store: one row, bumped by every write the index can see.

    A single row updated in place rather than an append-only log: on
    PostgreSQL, sequence values commit out of order, so `max(id)` of a log can
    stay put while an older transaction commits, and a reader would never see
    that change. Updating one row serialises the writers and moves the value
    with every commit.
    """

    __tablename__ = "changes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    serial: Mapped[int] = mapped_column(BigInteger)
    changed_at: Mapped[datetime] = mapped_column(UTCDateTime())


# --- Shared caches (DESIGN §3: nothing a replica needs lives only in its data directory) ---
#
# Cache clocks (`last_access`, `fetched_at`) are seconds since the epoch as a
# double, not `UTCDateTime`: they are compared with `time.time()` on hot paths
# (LRU, page freshness) and an exact round trip of the float keeps a page's
# fetch time the same across replicas.


class UpstreamMetadata(Base):
    """The METADATA extracted from one upstream wheel (`repository/remote_metadata.py`).

    `identity` is the wheel's `sha256:<hex>`, else `url:<hash of its URL>`;
    the bytes are the blob `blob_key` of the shared blob store.
    """

    __tablename__ = "upstream_metadata"

    identity: Mapped[str] = mapped_column(String(100), primary_key=True)
    project: Mapped[str] = mapped_column(String(255))
    sha256: Mapped[str] = mapped_column(String(64))
    blob_key: Mapped[str] = mapped_column(String(512))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class KeptProvenance(Base):
    """The PEP 740 provenance document of one upstream file, as fetched and checked
    (`repository/upstream_provenance.py`).

    `identity` is `provenance:<hash of upstream, URL, filename, file sha256>`;
    the bytes are the blob `blob_key` of the shared blob store.
    """

    __tablename__ = "upstream_provenance"

    identity: Mapped[str] = mapped_column(String(100), primary_key=True)
    project: Mapped[str] = mapped_column(String(255))
    sha256: Mapped[str] = mapped_column(String(64))
    blob_key: Mapped[str] = mapped_column(String(512))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class CachedFile(Base):
    """One upstream file in the file cache's blob store (`repository/file_cache.py`).

    Evictable files go least recently used first, by `last_access`.
    """

    __tablename__ = "cached_files"
    __table_args__ = (Index("ix_cached_files_lru", "evictable", "last_access"),)

    key: Mapped[str] = mapped_column(String(512), primary_key=True)
    size: Mapped[int] = mapped_column(BigInteger)
    last_access: Mapped[float] = mapped_column(Double())
    evictable: Mapped[bool] = mapped_column(Boolean)


class CachedPage(Base):
    """One upstream page (or its project list) kept by `shared_page_store.SharedPageStore`.

    `upstream` is the upstream's slug (`repository.cache.upstream_slug`), `name`
    a normalised project name or `LIST_NAME`; the page's JSON is the blob
    `blob_key`, which several rows may share (it is content-addressed).
    """

    __tablename__ = "cached_pages"

    upstream: Mapped[str] = mapped_column(String(100), primary_key=True)
    name: Mapped[str] = mapped_column(String(255), primary_key=True)
    blob_key: Mapped[str] = mapped_column(String(512), index=True)
    sha256: Mapped[str] = mapped_column(String(64))
    fetched_at: Mapped[float] = mapped_column(Double())


class ServerSecret(Base):
    """A secret every replica must share (e.g. the admin cookies' signing key)."""

    __tablename__ = "server_secrets"

    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    value: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


def upsert(session: Session, model: type[Base]) -> postgresql.Insert | sqlite.Insert:
    """An INSERT into `model`'s table in the dialect of `session`, which offers
    `on_conflict_do_nothing` and `on_conflict_do_update` (SQLite and PostgreSQL
    spell them alike: `INSERT ... ON CONFLICT`), so that replicas inserting the
    same row at once never fail.

    Raises:
        NotImplementedError: the database is neither SQLite nor PostgreSQL.
    """
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        return postgresql.insert(model)
    if dialect == "sqlite":
        return sqlite.insert(model)
    raise NotImplementedError(f"INSERT ... ON CONFLICT is not supported on {dialect}")
