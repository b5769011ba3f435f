"""One OSV record (ossf.github.io/osv-schema), read and checked for PyPI.

`read_record` takes the record as JSON or YAML gave it and returns an
`OsvRecord`: what lookups need (ids, dates, the PyPI projects and the
versions each has affected), plus the record itself as JSON-ready data,
served unchanged by the OSV API. Anything it cannot trust is a
`RecordRejected` whose message says what, so an import reports it with the
file's name and goes on.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import cast

from packaging.utils import InvalidName, canonicalize_name

from packyard.advisories.ranges import AffectedVersions, affected_versions

PYPI = "PyPI"
MALICIOUS_PREFIX = "MAL-"
# OSV ids are `<DB>-<ENTRY>`; nothing that could be a path or markup, and at
# most 128 characters (the column's width).
_ID = re.compile(r"[A-Za-z][A-Za-z0-9]{0,15}-[A-Za-z0-9][A-Za-z0-9._:-]{0,110}")
MAX_ALIASES = 100
MAX_AFFECTED = 1_000
MAX_NAME_LENGTH = 255  # the column's width; PyPI's own limit is far below
MAX_DEPTH = 64  # real records nest about 6 deep; deeper would exhaust the stack


class RecordRejected(ValueError):
    """A record that is not imported; the message says why."""


@dataclass(frozen=True, slots=True)
class OsvRecord:
    """What packyard uses of one record; `data` is the record itself."""

    id: str
    modified: datetime
    published: datetime | None
    withdrawn: datetime | None
    summary: str | None
    aliases: tuple[str, ...]
    affected: Mapping[str, tuple[AffectedVersions, ...]]  # normalised name -> its entries
    data: Mapping[str, object]
    notes: tuple[str, ...] = ()  # what was passed over (a SEMVER range, ...)

    @property
    def malicious(self) -> bool:
        """A malicious-package record (OSV's `MAL-` database): always refused."""
        return self.id.startswith(MALICIOUS_PREFIX)

    def affects(self, name: str, version: str) -> bool:
        """Whether `version` of the project `name` (normalised) is affected."""
        return any(entry.affects(version) for entry in self.affected.get(name, ()))


def read_record(raw: object, *, stored: bool = False) -> OsvRecord:
    """Check one record and keep what packyard needs of it. A `stored` record
    (read back from the database, where only checked records go) is plain
    JSON already: it is not walked again for values JSON cannot hold.

    Raises:
        RecordRejected: not an object, a value JSON cannot hold (bytes, NaN,
            a NUL character, text that is not Unicode, nesting past
            `MAX_DEPTH`), an id that is not an OSV id, a missing or unreadable
            `modified`, no PyPI package in `affected`, a version that is not a
            string, or an `affected` entry whose ranges cannot be evaluated
            (SEMVER, GIT without versions, ...).
    """
    if not isinstance(raw, dict):
        raise RecordRejected("a record must be a JSON/YAML object")
    data = cast(dict[str, object], raw if stored else _plain(raw, MAX_DEPTH))
    record_id = data.get("id")
    if not isinstance(record_id, str) or not _ID.fullmatch(record_id):
        raise RecordRejected(f"id {record_id!r} is not an OSV id like PYSEC-2024-1")
    try:
        modified = _timestamp(data, "modified", required=True)
        published = _timestamp(data, "published")
        withdrawn = _timestamp(data, "withdrawn")
    except ValueError as exc:
        raise RecordRejected(f"{record_id}: {exc}") from None
    assert modified is not None
    affected, notes = _pypi_affected(record_id, data.get("affected"))
    if not affected:
        raise RecordRejected(f"{record_id}: no package of the {PYPI} ecosystem is affected")
    summary = data.get("summary")
    return OsvRecord(
        id=record_id,
        modified=modified,
        published=published,
        withdrawn=withdrawn,
        summary=summary if isinstance(summary, str) else None,
        aliases=_aliases(record_id, data.get("aliases")),
        affected=affected,
        data=data,
        notes=notes,
    )


def _pypi_affected(
    record_id: str, entries: object
) -> tuple[dict[str, tuple[AffectedVersions, ...]], tuple[str, ...]]:
    """The PyPI entries by normalised name, and notes on what was skipped.

    An entry whose every range was skipped, with no versions listed, says
    nothing usable: the whole record is refused rather than read as "no
    version affected"."""
    if not isinstance(entries, list):
        raise RecordRejected(f"{record_id}: 'affected' must be a list")
    if len(entries) > MAX_AFFECTED:
        raise RecordRejected(f"{record_id}: more than {MAX_AFFECTED} 'affected' entries")
    found: dict[str, list[AffectedVersions]] = {}
    notes: list[str] = []
    for number, entry in enumerate(entries):
        package = entry.get("package") if isinstance(entry, dict) else None
        if not isinstance(package, dict) or package.get("ecosystem") != PYPI:
            continue  # other ecosystems' entries are not ours to read
        name = _name(record_id, number, package.get("name"))
        ranges = entry.get("ranges", [])
        versions = entry.get("versions", [])
        if not isinstance(ranges, list) or not isinstance(versions, list):
            raise RecordRejected(
                f"{record_id}: affected[{number}]: ranges and versions must be lists"
            )
        evaluated = affected_versions(_objects(ranges), _versions(record_id, number, versions))
        if evaluated.skipped and evaluated.empty:
            raise RecordRejected(f"{record_id}: affected[{number}]: {evaluated.skipped[0]}")
        notes += (f"{record_id}: affected[{number}]: {note}" for note in evaluated.skipped)
        found.setdefault(name, []).append(evaluated)
    return {name: tuple(items) for name, items in found.items()}, tuple(notes)


def _versions(record_id: str, number: int, versions: list[object]) -> list[str]:
    """The listed versions as text. A number is refused rather than guessed at:
    YAML reads an unquoted `1.10` as 1.1."""
    for version in versions:
        if not isinstance(version, str | int) or isinstance(version, bool):
            raise RecordRejected(
                f"{record_id}: affected[{number}]: version {version!r} is not a string"
            )
    return [str(version) for version in versions]


def _objects(items: list[object]) -> list[Mapping[str, object]]:
    """The entries of a list that are objects (others say nothing and are dropped)."""
    return [cast(Mapping[str, object], item) for item in items if isinstance(item, dict)]


def _name(record_id: str, number: int, name: object) -> str:
    if not isinstance(name, str):
        raise RecordRejected(f"{record_id}: affected[{number}]: package has no name")
    if len(name) > MAX_NAME_LENGTH:
        raise RecordRejected(
            f"{record_id}: affected[{number}]: a name longer than {MAX_NAME_LENGTH} characters"
        )
    try:
        return canonicalize_name(name, validate=True)
    except InvalidName:
        raise RecordRejected(
            f"{record_id}: affected[{number}]: {name!r} is not a valid project name"
        ) from None


def _aliases(record_id: str, aliases: object) -> tuple[str, ...]:
    if aliases is None:
        return ()
    if not isinstance(aliases, list) or len(aliases) > MAX_ALIASES:
        raise RecordRejected(f"{record_id}: 'aliases' must be a list of at most {MAX_ALIASES} ids")
    return tuple(alias for alias in aliases if isinstance(alias, str) and _ID.fullmatch(alias))


def _timestamp(data: Mapping[str, object], key: str, *, required: bool = False) -> datetime | None:
    """An RFC 3339 field as an aware UTC datetime (naive values are UTC, as OSV says)."""
    value = data.get(key)
    if value is None:
        if required:
            raise ValueError(f"{key!r} is missing")
        return None
    if not isinstance(value, str):
        raise ValueError(f"{key!r} must be an RFC 3339 time")
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(f"{key!r} is not an RFC 3339 time: {value!r}") from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _plain(value: object, depth: int) -> object:
    """The record as JSON can hold it: YAML's unquoted dates become RFC 3339 text.

    Whatever the database or a JSON reader would fail on is refused here, so
    that one bad file is skipped instead of failing the whole import: YAML's
    binary values and sets, NaN and infinities, NUL characters (PostgreSQL
    text cannot hold them) and lone surrogates (JSON's `"\\ud800"`: not UTF-8).
    """
    if depth < 0:
        raise RecordRejected(f"nested more than {MAX_DEPTH} levels deep")
    if isinstance(value, str):
        if "\x00" in value or not (value.isascii() or _utf8(value)):
            raise RecordRejected("a text value holds a NUL character or is not Unicode")
        return value
    if value is None or isinstance(value, bool | int):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise RecordRejected(f"{value!r} is not a JSON number")
        return value
    if isinstance(value, dict):
        return {str(_plain(key, 0)): _plain(item, depth - 1) for key, item in value.items()}
    if isinstance(value, list):
        return [_plain(item, depth - 1) for item in value]
    if isinstance(value, datetime):
        moment = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
        return moment.isoformat().replace("+00:00", "Z")
    if isinstance(value, date):
        return value.isoformat()
    raise RecordRejected(f"a value of type {type(value).__name__} is not JSON")


def _utf8(text: str) -> bool:
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True
