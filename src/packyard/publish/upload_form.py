"""The fields of a legacy upload form, read the way Warehouse reads them.

A legacy upload (`POST /legacy/`, STANDARDS §2) is a multipart form: a few
control fields (`:action`, `protocol_version`, `filetype`, `pyversion`,
digests) and the core metadata under `packaging.metadata.RawMetadata` keys,
multi-use fields as repeated keys (§2.5-2.6).

Clients do not agree on every key (§2.19-2.23): Warehouse names a few fields in
the singular (`platform`, `license_file`, `import_name`), uv sends
`import_names`, pdm `provides_extras`, hatch the header names with `-` → `_`.
Every spelling is accepted here and mapped to the RawMetadata key. Unknown
keys are ignored and `UNKNOWN` (or empty) values dropped, as Warehouse's
`sanitize` does, so `requires_python=""` from uv means "not given".
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import cast

from packaging.metadata import _RAW_TO_EMAIL_MAPPING, RawMetadata

from packyard.errors import InvalidRequest

Digests = dict[str, str]
DIGEST_FIELDS = {"md5_digest": "md5", "sha256_digest": "sha256", "blake2_256_digest": "blake2_256"}
_DIGEST_LENGTHS = {"md5": 32, "sha256": 64, "blake2_256": 64}
_HEX = re.compile(r"[0-9a-f]+")

# Multi-use fields (repeated keys) and the two fields packaging keeps as a
# list and a mapping; everything else is a single string.
_LIST_FIELDS = frozenset(
    {
        "platforms",
        "supported_platforms",
        "classifiers",
        "requires",
        "provides",
        "obsoletes",
        "requires_dist",
        "provides_dist",
        "obsoletes_dist",
        "requires_external",
        "provides_extra",
        "dynamic",
        "license_files",
        "import_names",
        "import_namespaces",
    }
)


def _aliases() -> dict[str, str]:
    """Every form key a client may send -> the RawMetadata key."""
    aliases: dict[str, str] = {}
    for raw, email in _RAW_TO_EMAIL_MAPPING.items():
        aliases[raw] = raw  # the RawMetadata key itself (uv's `import_names`)
        aliases[email.replace("-", "_")] = raw  # the header name (hatch, Warehouse)
    # The plurals clients invent (pdm: provides_extras) and the few singulars.
    aliases |= {
        "provides_extras": "provides_extra",
        "classifier": "classifiers",
        "project_url": "project_urls",
    }
    return aliases


FORM_TO_RAW = _aliases()


class ActionGone(InvalidRequest):
    """An `:action` that PyPI retired (`submit`, `doc_upload`): 410 Gone."""


@dataclass(frozen=True, slots=True)
class UploadForm:
    """The fields of one upload, checked for shape only (not yet for meaning)."""

    raw: RawMetadata
    filetype: str
    pyversion: str
    digests: Digests  # algorithm (`md5`, `sha256`, `blake2_256`) -> lowercase hex
    comment: str | None = None

    @property
    def name(self) -> str:
        return self.raw.get("name", "")

    @property
    def version(self) -> str:
        return self.raw.get("version", "")


def check_action(fields: Mapping[str, list[str]]) -> None:
    """Refuse anything but `:action=file_upload` and protocol version 1.

    Raises:
        ActionGone: `submit` or `doc_upload` (410, as on PyPI).
        InvalidRequest: any other action, or a `protocol_version` other than 1.
    """
    action = _single(fields, ":action")
    if action in ("submit", "doc_upload"):
        raise ActionGone(
            f"The :action {action!r} is no longer supported: PyPI retired it. "
            "Upload distribution files with :action=file_upload."
        )
    if action != "file_upload":
        raise InvalidRequest(f"Unknown :action {action!r}: this server accepts 'file_upload'.")
    if _single(fields, "protocol_version") not in (None, "1"):
        raise InvalidRequest("Unknown protocol version.")


def parse_form(fields: Mapping[str, list[str]]) -> UploadForm:
    """Read the metadata and the control fields of an upload (call `check_action` first).

    Raises:
        InvalidRequest: a field appears twice where it may appear once, no
            digest is given, or a digest is not lowercase-able hex of its length.
    """
    return UploadForm(
        raw=_raw_metadata(fields),
        filetype=_single(fields, "filetype") or "",
        pyversion=_single(fields, "pyversion") or "",
        digests=_digests(fields),
        comment=_single(fields, "comment"),
    )


def _raw_metadata(fields: Mapping[str, list[str]]) -> RawMetadata:
    values: dict[str, list[str]] = {}
    for key, found in fields.items():
        raw_key = FORM_TO_RAW.get(key)
        if raw_key is None:
            continue  # unknown keys are ignored, as on PyPI (§2.6)
        kept = [value for value in found if value.strip() not in ("", "UNKNOWN")]
        if kept:
            # Two spellings of one field (`provides_extra` and `provides_extras`)
            # add up; order kept, repeats dropped.
            merged = values.setdefault(raw_key, [])
            merged.extend(value for value in kept if value not in merged)
    raw: dict[str, object] = {}
    for raw_key, found in values.items():
        raw[raw_key] = _raw_value(raw_key, found)
    # The keys come from FORM_TO_RAW, so they are RawMetadata's own.
    return cast(RawMetadata, raw)


def _raw_value(raw_key: str, found: list[str]) -> object:
    if raw_key in _LIST_FIELDS:
        return found
    if raw_key == "keywords":
        # One comma-separated string in the form, a list in RawMetadata (§2.6).
        return [word.strip() for word in ",".join(found).split(",") if word.strip()]
    if raw_key == "project_urls":
        return _project_urls(found)
    if len(found) > 1:
        raise InvalidRequest(f"{raw_key}: this field may be given only once.")
    return found[0]


def _project_urls(found: list[str]) -> dict[str, str]:
    """`Label, URL` entries (§2.6); a repeated label is an error, as in packaging."""
    urls: dict[str, str] = {}
    for entry in found:
        label, _, url = (part.strip() for part in entry.partition(","))
        if label in urls:
            raise InvalidRequest(f"project_urls: the label {label!r} is given twice.")
        urls[label] = url
    return urls


def _digests(fields: Mapping[str, list[str]]) -> Digests:
    digests: Digests = {}
    for key, algorithm in DIGEST_FIELDS.items():
        value = (_single(fields, key) or "").strip().lower()
        if not value:
            continue
        # Compared as lowercase hex, md5 too: Warehouse's docs say base64, its
        # code and every client use hex (§2.5).
        if len(value) != _DIGEST_LENGTHS[algorithm] or not _HEX.fullmatch(value):
            raise InvalidRequest(f"{key}: Use a valid, hex-encoded, {algorithm} message digest.")
        digests[algorithm] = value
    if not digests:
        raise InvalidRequest("Include at least one message digest.")
    return digests


def _single(fields: Mapping[str, list[str]], key: str) -> str | None:
    found = fields.get(key, [])
    if len(found) > 1:
        raise InvalidRequest(f"{key}: this field may be given only once.")
    return found[0] if found else None


def check_digests(expected: Digests, computed: Mapping[str, str]) -> None:
    """Every digest the client sent must match the bytes received (§2.5).

    Raises:
        InvalidRequest: one of them does not.
    """
    if any(computed[algorithm] != value for algorithm, value in expected.items()):
        raise InvalidRequest(
            "The digest supplied does not match a digest calculated from the uploaded file."
        )
