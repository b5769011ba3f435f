"""Where OSV records come from: a directory tree, a zip, or one file.

    for entry in read_source(Path("advisory-database/vulns")):
        entry.origin, entry.record or entry.problem

- A directory: every `*.yaml`, `*.yml` and `*.json` below it (the PyPA
  advisory database's `vulns/<project>/PYSEC-*.yaml`); symbolic links are not
  followed, so the tree cannot reach outside itself.
- A zip: every `*.json` member (osv.dev's `PyPI/all.zip`). Nothing is
  extracted to disk; a member named like a path out of the archive
  (`../x.json`, `/etc/x.json`), one larger than `MAX_RECORD_BYTES`, or one
  that inflates more than `MAX_RATIO` times is reported and skipped, and the
  archive as a whole may not inflate past `MAX_TOTAL_BYTES`.
- A single `.json`, `.yaml` or `.yml` file: one record.

Every record is checked by `records.read_record`; a file that is not one
becomes an `Entry` with a `problem` naming it, and reading goes on.
"""

from __future__ import annotations

import json
import os
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import yaml

from packyard.advisories.records import OsvRecord, RecordRejected, read_record

MAX_RECORD_BYTES = 1024 * 1024  # the largest real record is under 100 KiB
MAX_TOTAL_BYTES = 4 * 1024**3  # osv.dev's whole PyPI export inflates to well under 1 GiB
MAX_RATIO = 100  # JSON deflates about 5-10 times; a bomb, thousands of times
MAX_NODES = 100_000  # YAML aliases can make a small file a huge tree
RECORD_SUFFIXES = (".json", ".yaml", ".yml")
_ENCRYPTED = 0x1  # a zip member's general purpose flag bit 0 (APPNOTE 4.4.4)

try:  # libyaml's loader is about ten times faster; PyYAML without it still works
    _YamlLoader: type[yaml.SafeLoader] = yaml.CSafeLoader
except AttributeError:  # pragma: no cover - wheels of PyYAML ship libyaml
    _YamlLoader = yaml.SafeLoader


class SourceUnreadable(OSError):
    """The source as a whole cannot be read (missing, not a zip, too big)."""


@dataclass(frozen=True, slots=True)
class Entry:
    """One file of the source: its record, or why it has none."""

    origin: str  # the file's name within the source
    record: OsvRecord | None = None
    problem: str | None = None


def read_source(path: Path) -> Iterator[Entry]:
    """The records under `path`, in a stable order.

    Raises:
        SourceUnreadable: `path` does not exist, or is neither a directory, a
            zip, nor a record file, or the zip is damaged or too big.
    """
    if path.is_dir():
        yield from _directory(path)
    elif zipfile.is_zipfile(path):
        yield from _zip(path)
    elif path.is_file() and path.suffix in RECORD_SUFFIXES:
        yield from _files(path.parent, [path])
    elif not path.exists():
        raise SourceUnreadable(f"{path} does not exist")
    elif path.suffix == ".zip":
        raise SourceUnreadable(f"{path} is not a readable zip (damaged, or not a zip at all)")
    else:
        raise SourceUnreadable(
            f"{path} is not a directory of OSV records, a zip of them, nor a .json/.yaml record"
        )


def count_records(path: Path) -> int:
    """How many files `read_source` will read (for a progress bar)."""
    if path.is_dir():
        return sum(1 for _ in _record_files(path))
    if zipfile.is_zipfile(path):
        try:
            with zipfile.ZipFile(path) as archive:
                return sum(1 for info in archive.infolist() if _is_record_name(info.filename))
        except (zipfile.BadZipFile, OSError):
            return 0  # read_source says what is wrong with it
    return 1


def _directory(root: Path) -> Iterator[Entry]:
    yield from _files(root, sorted(_record_files(root)))


def _record_files(root: Path) -> Iterator[Path]:
    for folder, dirs, names in os.walk(root):  # does not follow links to directories
        dirs.sort()
        for name in names:
            path = Path(folder, name)
            # Regular files only: a named pipe would block the import forever.
            if path.suffix in RECORD_SUFFIXES and not path.is_symlink() and path.is_file():
                yield path


def _files(root: Path, paths: list[Path]) -> Iterator[Entry]:
    for path in paths:
        origin = _printable(path.relative_to(root).as_posix())
        try:
            with path.open("rb") as handle:
                content = handle.read(MAX_RECORD_BYTES + 1)
        except OSError as exc:
            yield Entry(origin, problem=f"cannot be read: {exc.strerror or exc}")
            continue
        yield _entry(origin, content)


def _zip(path: Path) -> Iterator[Entry]:
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise SourceUnreadable(f"{path} is not a readable zip: {exc}") from None
    with archive:
        total = 0
        for info in archive.infolist():
            if not _is_record_name(info.filename):
                continue
            origin = _printable(info.filename)
            problem = _member_problem(info)
            if problem is not None:
                yield Entry(origin, problem=problem)
                continue
            total += info.file_size
            if total > MAX_TOTAL_BYTES:
                raise SourceUnreadable(
                    f"{path} inflates to more than {MAX_TOTAL_BYTES} bytes: refused as a zip bomb"
                )
            try:
                with archive.open(info) as member:
                    content = member.read(MAX_RECORD_BYTES + 1)
            # NotImplementedError: a compression method zipfile does not know;
            # zlib.error: damaged deflated data.
            except (zipfile.BadZipFile, OSError, EOFError, NotImplementedError, zlib.error) as exc:
                yield Entry(origin, problem=f"cannot be inflated: {exc}")
                continue
            yield _entry(origin, content)


def _is_record_name(name: str) -> bool:
    return not name.endswith("/") and PurePosixPath(name).suffix in RECORD_SUFFIXES


def _member_problem(info: zipfile.ZipInfo) -> str | None:
    """Why a zip member is not read, or None. Its declared sizes are checked
    here; `read(MAX_RECORD_BYTES + 1)` bounds what a lying header can cost."""
    name = PurePosixPath(info.filename.replace("\\", "/"))
    if name.is_absolute() or ".." in name.parts:
        return "a path outside the archive: skipped"
    if info.flag_bits & _ENCRYPTED:
        return "encrypted: skipped"
    if info.file_size > MAX_RECORD_BYTES:
        return f"larger than {MAX_RECORD_BYTES} bytes: skipped"
    if info.file_size > MAX_RATIO * max(info.compress_size, 1) and info.file_size > 64 * 1024:
        return f"inflates more than {MAX_RATIO} times: skipped as a zip bomb"
    return None


def _entry(origin: str, content: bytes) -> Entry:
    if len(content) > MAX_RECORD_BYTES:
        return Entry(origin, problem=f"larger than {MAX_RECORD_BYTES} bytes: skipped")
    try:
        raw = _parse(origin, content)
        if _nodes(raw) > MAX_NODES:
            return Entry(origin, problem=f"more than {MAX_NODES} values: skipped")
        return Entry(origin, record=read_record(raw))
    except RecordRejected as exc:
        return Entry(origin, problem=str(exc))
    except RecursionError:  # the parsers recurse per level of nesting
        return Entry(origin, problem="nested too deeply: skipped")
    except (ValueError, yaml.YAMLError) as exc:  # json.JSONDecodeError is a ValueError
        return Entry(origin, problem=f"not valid {_format(origin)}: {_first_line(exc)}")


def _parse(origin: str, content: bytes) -> object:
    if origin.endswith(".json"):
        return json.loads(content)
    return yaml.load(content, Loader=_YamlLoader)  # noqa: S506 - a safe loader


def _nodes(value: object, budget: int = MAX_NODES + 1) -> int:
    """How many values `value` holds, counting shared ones each time they are
    reached (what walking it costs), stopping once past `budget`."""
    seen = 0
    stack = [value]
    while stack and seen < budget:
        item = stack.pop()
        seen += 1
        if isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return seen


def _printable(name: str) -> str:
    """A file's name as it can be shown on one line of a report: control
    characters (a newline, a terminal escape) are written as escapes."""
    if name.isprintable():
        return name
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode() for c in name)


def _format(origin: str) -> str:
    return "JSON" if origin.endswith(".json") else "YAML"


def _first_line(error: Exception) -> str:
    return str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
