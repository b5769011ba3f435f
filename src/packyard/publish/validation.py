"""What an upload must satisfy before it is stored: STANDARDS §2.9-2.18, Warehouse's rules.

Three groups, run by the upload service in this order:

1. `validate_metadata` (§2.9): the form's core metadata, through
   `packaging.metadata` plus the extra rules of `warehouse/forklift/metadata.py`;
   of all errors, the first of Metadata-Version, Name, Version wins, as there.
2. `validate_file` (§2.5, §2.12, §2.17, §2.18): the control fields and the
   filename, against the form. These need only the name, so they run before
   the archive is opened (Warehouse opens it first; only the order of two
   errors in one bad upload differs).
3. `read_archive_metadata` (§2.16): the archive itself, its members first
   (`dists/archive.py`: nothing escapes the tree, nothing repeats, no bomb),
   then the bounded reader of `dists/metadata.py`, whose METADATA/PKG-INFO
   must agree with the filename, hence with the form, and whose description
   must be within the size limit.

Every error is an `InvalidRequest` or `InvalidDistribution` (400) whose
message is Warehouse's, so that clients and people see what PyPI would say.
"""

from __future__ import annotations

import email.utils
import re
import zipfile
from pathlib import Path
from typing import cast
from urllib.parse import urlsplit

from packaging.metadata import InvalidMetadata, Metadata, RawMetadata, parse_email
from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name
from trove_classifiers import all_classifiers, deprecated_classifiers

from packyard.dists.archive import ArchiveLimits, check_archive
from packyard.dists.filenames import DistFilename, parse_filename
from packyard.dists.metadata import CoreMetadata, read_core_metadata
from packyard.dists.readme import MAX_README_BYTES
from packyard.errors import InvalidDistribution, InvalidRequest
from packyard.publish.upload_form import UploadForm

# §2.9: 2.0 was never a standard; 2.6 (and anything later) is not supported yet.
SUPPORTED_METADATA_VERSIONS = frozenset({"1.0", "1.1", "1.2", "2.1", "2.2", "2.3", "2.4", "2.5"})
SUMMARY_LIMIT = 512
MAX_DESCRIPTION_BYTES = MAX_README_BYTES  # `upload.max_description_bytes`' default
DEFAULT_ARCHIVE_LIMITS = ArchiveLimits()
PROJECT_URL_LABEL_LIMIT = 32
_FIELD_PRIORITY = ("metadata-version", "name", "version")
_CORE_METADATA_HINT = (
    "See https://packaging.python.org/specifications/core-metadata for more information."
)
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
# Deprecated classifiers are known too: they get their own, more helpful, message.
_KNOWN_CLASSIFIERS = frozenset(all_classifiers)
EXTENSIONS = {"sdist": (".tar.gz", ".zip"), "bdist_wheel": (".whl",)}


def validate_metadata(raw: RawMetadata) -> Metadata:
    """The form's metadata, validated (§2.9).

    Raises:
        InvalidRequest: "{error}. See https://packaging.python.org/... for more
            information.", for the Metadata-Version error if any, else Name,
            else Version, else the first one found.
    """
    try:
        metadata = Metadata.from_raw(raw, validate=True)
    except ExceptionGroup as group:
        raise _metadata_error(_flatten(group)) from group
    errors = _warehouse_rules(metadata)
    if errors:
        raise _metadata_error(errors)
    return metadata


def validate_file_metadata(content: bytes) -> Metadata:
    """A distribution's own METADATA or PKG-INFO under the form's rules
    (`validate_metadata`), as twine would send it: empty and `UNKNOWN` values
    dropped, as the form's reader (`upload_form`) and Warehouse's `sanitize`
    do. `packyard import` checks each file with it.

    Raises:
        InvalidRequest: as `validate_metadata`.
    """
    raw, _ = parse_email(content)
    given: dict[str, object] = {}
    for key, value in raw.items():
        if isinstance(value, list):
            value = [item for item in value if str(item).strip() not in _NOT_GIVEN]
        if value and not (isinstance(value, str) and value.strip() in _NOT_GIVEN):
            given[key] = value
    return validate_metadata(cast(RawMetadata, given))


_NOT_GIVEN = ("", "UNKNOWN")


def _flatten(group: BaseExceptionGroup[BaseException]) -> list[InvalidMetadata]:
    found: list[InvalidMetadata] = []
    for error in group.exceptions:
        if isinstance(error, BaseExceptionGroup):
            found.extend(_flatten(error))
        elif isinstance(error, InvalidMetadata):
            found.append(error)
    return found


def _metadata_error(errors: list[InvalidMetadata]) -> InvalidRequest:
    def rank(error: InvalidMetadata) -> int:
        field = error.field.replace("_", "-")
        return _FIELD_PRIORITY.index(field) if field in _FIELD_PRIORITY else len(_FIELD_PRIORITY)

    # min() is stable: among equal ranks the first error found wins.
    chosen = min(errors, key=rank)
    return InvalidRequest(f"{str(chosen).rstrip('.')}. {_CORE_METADATA_HINT}")


def _warehouse_rules(metadata: Metadata) -> list[InvalidMetadata]:
    """The rules PyPI adds to packaging's (`forklift/metadata.py`)."""
    errors: list[InvalidMetadata] = []
    if metadata.metadata_version not in SUPPORTED_METADATA_VERSIONS:
        message = f"{metadata.metadata_version!r} is not a valid metadata version"
        errors.append(InvalidMetadata("metadata-version", message))
    if metadata.version.local:
        message = f"The use of local versions in {str(metadata.version)!r} is not allowed."
        errors.append(InvalidMetadata("version", message))
    if metadata.summary is not None and len(metadata.summary) > SUMMARY_LIMIT:
        message = f"'summary' field must be {SUMMARY_LIMIT} characters or less."
        errors.append(InvalidMetadata("summary", message))
    errors += _email_errors(metadata)
    errors += _classifier_errors(metadata.classifiers or [])
    errors += _url_errors(metadata)
    errors += _requirement_errors(metadata)
    if metadata.license is not None and metadata.license_expression is not None:
        # PEP 639: License-Expression replaces License; both at once is ambiguous.
        message = (
            "License is deprecated when License-Expression is present. "
            "Only License-Expression should be present."
        )
        errors.append(InvalidMetadata("license", message))
    return errors


def _email_errors(metadata: Metadata) -> list[InvalidMetadata]:
    errors = []
    for field in ("author_email", "maintainer_email"):
        value: str | None = getattr(metadata, field)
        for _, address in email.utils.getaddresses([value] if value else []):
            if address and not _EMAIL.fullmatch(address):
                message = f"{address!r} is not a valid email address."
                errors.append(InvalidMetadata(field.replace("_", "-"), message))
    return errors


def _classifier_errors(found: list[str]) -> list[InvalidMetadata]:
    errors = [
        InvalidMetadata("classifier", f"{classifier!r} is not a valid classifier.")
        for classifier in sorted(set(found) - _KNOWN_CLASSIFIERS)
    ]
    for classifier in sorted(set(found) & deprecated_classifiers.keys()):
        instead = deprecated_classifiers[classifier]
        hint = f", use one of {instead} instead" if instead else ""
        message = f"The classifier {classifier!r} has been deprecated{hint}."
        errors.append(InvalidMetadata("classifier", message))
    return errors


def _url_errors(metadata: Metadata) -> list[InvalidMetadata]:
    errors = []
    for field in ("home_page", "download_url"):
        url: str | None = getattr(metadata, field)
        if url is not None and not _is_valid_url(url):
            errors.append(InvalidMetadata(field.replace("_", "-"), f"{url!r} is not a valid url."))
    for label, url in (metadata.project_urls or {}).items():
        if not label:
            errors.append(InvalidMetadata("project-url", "Must have a label"))
        elif len(label) > PROJECT_URL_LABEL_LIMIT:
            message = f"{label!r} must be {PROJECT_URL_LABEL_LIMIT} characters or less."
            errors.append(InvalidMetadata("project-url", message))
        elif not url:
            errors.append(InvalidMetadata("project-url", "Must have a URL"))
        elif not _is_valid_url(url):
            errors.append(InvalidMetadata("project-url", f"{url!r} is not a valid url"))
    return errors


def _is_valid_url(url: str) -> bool:
    """An http(s) URL with no whitespace (Warehouse's `is_valid_uri`, authority optional)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and not re.search(r"\s", url)


def _requirement_errors(metadata: Metadata) -> list[InvalidMetadata]:
    """No direct-URL dependencies, and Provides/Obsoletes-Dist must parse (§2.9)."""
    errors = []
    for requirement in metadata.requires_dist or []:
        if requirement.url is not None:
            message = f"Can't have direct dependency: {requirement}"
            errors.append(InvalidMetadata("requires-dist", message))
    for field in ("provides_dist", "obsoletes_dist"):
        for text in getattr(metadata, field) or []:
            try:
                parsed = Requirement(text)
            except InvalidRequirement as exc:
                errors.append(InvalidMetadata(field, f"{text!r} is invalid: {exc}"))
                continue
            if parsed.url is not None:
                message = f"Can't have direct dependency: {text!r}"
                errors.append(InvalidMetadata(field, message))
    return errors


def validate_file(filename: str, form: UploadForm, metadata: Metadata) -> DistFilename:
    """Check the control fields and the filename against the validated form.

    Returns the parsed filename.

    Raises:
        InvalidRequest: unknown filetype, missing or wrong pyversion, a
            separator or control character in the name, an extension that is
            not the filetype's, a non-PEP 625 sdist name, a wheel whose name or
            version differs from the metadata, or an unsupported platform tag.
        InvalidDistribution: the filename does not parse.
    """
    _check_control_fields(form)
    check_filename_characters(filename)
    if not filename.endswith(EXTENSIONS[form.filetype]):
        raise InvalidRequest(
            f"Invalid file extension: a {form.filetype} must end with "
            f"{' or '.join(EXTENSIONS[form.filetype])}. See https://peps.python.org/pep-0527 "
            "and https://peps.python.org/pep-0715/ for more information."
        )
    if form.filetype == "sdist":
        _check_sdist_name(filename, metadata)
    dist = parse_filename(filename)
    if dist.packagetype == "bdist_wheel":
        _check_wheel_name(dist, metadata)
    return dist


def check_filename_characters(filename: str) -> None:
    """§2.12: no path separator and no control character, so the name can't
    climb out of a directory or forge a line in a log or a header.

    Raises:
        InvalidRequest: the filename has one.
    """
    if "/" in filename or "\\" in filename:
        raise InvalidRequest("Cannot upload a file with '/' or '\\' in the name.")
    if _CONTROL.search(filename):
        raise InvalidRequest("Cannot upload a file with control characters in the name.")


def _check_control_fields(form: UploadForm) -> None:
    if form.filetype not in EXTENSIONS:
        raise InvalidRequest("filetype: Use a known file type.")
    if form.filetype == "bdist_wheel" and not form.pyversion:
        raise InvalidRequest(
            "pyversion: Python version is required for binary distribution uploads."
        )
    if form.filetype == "sdist" and form.pyversion not in ("", "source"):
        raise InvalidRequest("pyversion: Use 'source' as Python version for an sdist.")


def _check_sdist_name(filename: str, metadata: Metadata) -> None:
    """PEP 625: exactly `{normalized name with _}-{normalized version}.tar.gz` (§2.17)."""
    stem = canonicalize_name(metadata.name).replace("-", "_")
    expected = f"{stem}-{metadata.version}.tar.gz"
    if filename != expected:
        raise InvalidRequest(f"Filename {filename!r} is invalid, should be {expected!r}.")


def _check_wheel_name(dist: DistFilename, metadata: Metadata) -> None:
    """§2.18. Names are compared normalised: wheels built by older tools spell the
    name segment as the project does (`Django-4.2-…`), and pip accepts them."""
    name = canonicalize_name(metadata.name)
    if dist.name != name:
        prefix = name.replace("-", "_")
        raise InvalidRequest(f"Start filename for {metadata.name!r} with {prefix!r}.")
    if dist.version != metadata.version:
        raise InvalidRequest(
            f"Version in filename should be {str(metadata.version)!r} not {str(dist.version)!r}."
        )
    platforms = dist.filename.removesuffix(".whl").split("-")[-1]
    for tag in platforms.split("."):
        if not is_valid_platform_tag(tag):
            raise InvalidRequest(
                f"Binary wheel {dist.filename!r} has an unsupported platform tag {tag!r}."
            )


# §2.18, Warehouse's `_valid_platform_tag`: the platforms an installer can match.
_LINUX_ARCHES = "x86_64|i686|aarch64|armv7l|ppc64|ppc64le|s390x|riscv64|loongarch64"
_MACOS_ARCHES = "ppc|ppc64|i386|x86_64|arm64|intel|fat|fat3|fat64|universal|universal2"
_PLATFORM_TAGS = re.compile(
    "|".join(
        (
            r"any",
            r"win32|win_amd64|win_arm64|win_ia64",
            rf"manylinux(1|2010|2014)_({_LINUX_ARCHES})",
            rf"(many|musl)linux_\d+_\d+_({_LINUX_ARCHES})",
            rf"macosx_10_\d+_({_MACOS_ARCHES})",
            rf"macosx_(11|12|13|14|15|26)_0_({_MACOS_ARCHES})",
            r"ios_\d+_\d+_(arm64|x86_64)_(iphoneos|iphonesimulator)",
            r"android_\d+_(armeabi_v7a|arm64_v8a|x86|x86_64)",
            r"pyemscripten_\d+_\d+_wasm32",
        )
    )
)


def is_valid_platform_tag(tag: str) -> bool:
    """Whether PyPI would accept a wheel for this platform tag."""
    return _PLATFORM_TAGS.fullmatch(tag) is not None


def read_archive_metadata(
    path: Path,
    dist: DistFilename,
    limits: ArchiveLimits = DEFAULT_ARCHIVE_LIMITS,
    max_description_bytes: int = MAX_DESCRIPTION_BYTES,
    *,
    require_record: bool = True,
) -> CoreMetadata:
    """The archive's METADATA/PKG-INFO, checked against the filename (§2.16).

    Blocking (it reads the archive): run it in a worker thread. The importer
    calls it too, without the RECORD rule (it takes existing archives).

    Raises:
        InvalidDistribution: "Invalid distribution file …": not a real zip or
            tar, members that escape the tree, repeat, or add up beyond `limits`
            (`dists/archive.py`), members neither stored nor deflated, no single
            top directory with PKG-INFO, no `.dist-info/WHEEL`, `METADATA` or
            `RECORD`, or metadata whose name or version differs from the filename.
        InvalidRequest: the metadata's description is over `max_description_bytes`.
    """
    check_archive(path, dist, limits)
    metadata = read_core_metadata(path, dist)
    check_description_size(description_of(metadata.content), max_description_bytes)
    if require_record and dist.packagetype == "bdist_wheel":
        _check_wheel_record(path, dist)
    return metadata


def description_of(content: bytes) -> str:
    """The Description of core metadata bytes (the body, or the legacy header)."""
    raw, _ = parse_email(content)
    return raw.get("description") or ""


def check_description_size(description: str, limit: int) -> None:
    """Refuse a README over `limit` bytes (UTF-8): it is rendered and shown on pages.

    Raises:
        InvalidRequest: the description is too large, with its size and the limit.
    """
    size = len(description.encode("utf-8", "surrogateescape"))
    if size > limit:
        raise InvalidRequest(description_too_large(size, limit))


def description_too_large(size: int | None, limit: int) -> str:
    """The message for a description of `size` bytes (None: not known yet) over `limit`."""
    how_large = "" if size is None else f" {size / 1024**2:.1f} MiB,"
    return (
        f"The description is{how_large} over the {limit / 1024**2:g} MiB limit: "
        "shorten the README (long_description). An administrator can raise "
        "upload.max_description_bytes."
    )


def _check_wheel_record(path: Path, dist: DistFilename) -> None:
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
    if not any(name.endswith(".dist-info/RECORD") and name.count("/") == 1 for name in names):
        raise InvalidDistribution(
            f"Invalid distribution file {dist.filename!r}. The wheel has no .dist-info/RECORD file."
        )
