"""An OSV API query (the body of osv.dev's `POST /v1/query`), read and checked.

    query = read_query(json.loads(body))           # POST /osv/v1/query
    queries = read_batch(json.loads(body))         # POST /osv/v1/querybatch

A query names a package, by `name` and `ecosystem` or by a `purl`, with an
optional `version`; or it names a git `commit`. It reads as a `Query`: the
normalised PyPI project and the version to look up. A query that can only
match records packyard never holds (another ecosystem, a purl of another
type, a commit: packyard has no git data) reads as `ELSEWHERE` and is
answered with nothing, as osv.dev answers a package it has no record of.

The rules are osv.dev's (its API's query parsing and docs/api/post-v1-query.md):

- `commit` and `version` are one field in osv.dev's schema (a protobuf
  `oneof`): setting both is refused. A commit must be hexadecimal; the
  package beside it is ignored.
- `purl` excludes `name` and `ecosystem`, and a versioned purl excludes `version`.
- Ecosystem names are case-sensitive (`PyPI`, not `pypi`); a name that is not
  an OSV ecosystem is refused. No ecosystem is accepted only with a version.
- No version: every record of the package.
- `page_token`: packyard answers every query whole and never hands out a
  token, so only none (or osv.dev's "first page" token) is accepted.

Unlike osv.dev, a field this schema does not have is refused rather than
ignored: a misspelt `"verison"` would otherwise ask for every record of the
package. `null` is read as absent, as protobuf's JSON mapping does. Anything
refused is a `QueryRejected` whose message starts as osv.dev's does (`invalid
query`, `invalid ecosystem`, `invalid hash`, ...) and says what to change.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final
from urllib.parse import unquote

from packaging.utils import canonicalize_name

PYPI: Final = "PyPI"
MAX_BATCH: Final = 1000  # osv.dev's limit of queries per querybatch
MAX_VERSION_LENGTH: Final = 256
# osv.dev's "start from the beginning" page token ("FIRST_PAGE_TOKEN", base64).
FIRST_PAGE_TOKEN: Final = "RklSU1RfUEFHRV9UT0tFTg=="  # noqa: S105 (not a secret)
# The OSV schema's ecosystems (ossf.github.io/osv-schema, "affected[].package"),
# plus GIT, which osv.dev's API also takes; a suffix (`Debian:12`) may follow.
ECOSYSTEMS: Final = frozenset(
    {
        *("AlmaLinux", "Alpaquita", "Alpine", "Android", "Azure Linux"),
        *("BellSoft Hardened Containers", "Bioconductor", "Bitnami", "Chainguard"),
        *("CleanStart", "ConanCenter", "CRAN", "crates.io", "Debian"),
        *("Docker Hardened Images", "Echo", "FreeBSD", "GHC", "GitHub Actions", "Go"),
        *("Hackage", "Hex", "Homebrew", "Julia", "Kubernetes", "Linux", "Mageia", "Maven"),
        *("MinimOS", "npm", "NuGet", "opam", "openEuler", "openSUSE", "OSS-Fuzz"),
        *("Packagist", "Photon OS", "Pub", "PyPI", "Red Hat", "Rocky Linux", "Root"),
        *("RubyGems", "SUSE", "SwiftURL", "TuxCare", "Ubuntu", "vcpkg", "VSCode", "Wolfi"),
        *("WordPress", "GIT"),
    }
)
_QUERY_FIELDS: Final = frozenset({"commit", "version", "package", "page_token"})
_PACKAGE_FIELDS: Final = frozenset({"name", "ecosystem", "purl"})
_HEX = re.compile(r"(?:[0-9a-fA-F]{2})+")
_PURL_TYPE = re.compile(r"[A-Za-z.+-][A-Za-z0-9.+-]*")


class QueryRejected(ValueError):
    """A query osv.dev would refuse (400); the message says why."""


@dataclass(frozen=True, slots=True)
class Query:
    """What to look up: the records of the PyPI project `name` (normalised) that
    affect `version`, or all of them when `version` is None. `name` None: a
    query for something packyard holds no records of, answered with nothing."""

    name: str | None
    version: str | None = None


ELSEWHERE: Final = Query(None)


def read_query(raw: object) -> Query:
    """One query, as JSON gave it.

    Raises:
        QueryRejected: not an object, a field of the wrong type or unknown, both
            `commit` and `version`, no package, a malformed purl or commit, an
            ecosystem that is not an OSV ecosystem, a page token packyard did not
            hand out, a version longer than `MAX_VERSION_LENGTH`.
    """
    query = _fields(raw, _QUERY_FIELDS, "a query")
    _page_token(query)
    version = _string(query, "version")
    commit = _string(query, "commit")
    if commit is not None:
        if version is not None:
            raise QueryRejected("invalid query: set 'commit' or 'version', not both")
        if not _HEX.fullmatch(commit):
            raise QueryRejected("invalid hash: 'commit' must be a git commit's hexadecimal hash")
        return ELSEWHERE  # packyard holds no git data: no record names a commit
    if query.get("package") is None:
        raise QueryRejected("invalid query: a 'package' (or a 'commit') is required")
    package = _fields(query["package"], _PACKAGE_FIELDS, "'package'")
    if version is not None and len(version) > MAX_VERSION_LENGTH:
        raise QueryRejected(f"invalid query: 'version' is longer than {MAX_VERSION_LENGTH}")
    purl = _string(package, "purl")
    if purl:
        return _purl_query(package, purl, version)
    return _named_query(package, version)


def read_batch(raw: object) -> list[Query]:
    """The `queries` of a batch, in order.

    Raises:
        QueryRejected: not an object, `queries` not a list, more than
            `MAX_BATCH` queries, or a query `read_query` refuses (the message
            names its index, as osv.dev's does).
    """
    batch = _fields(raw, frozenset({"queries"}), "a batch")
    queries = batch.get("queries")
    if queries is None:
        return []
    if not isinstance(queries, list):
        raise QueryRejected("invalid query: 'queries' must be a list of queries")
    if len(queries) > MAX_BATCH:
        raise QueryRejected(
            f"too many queries: {len(queries)} in one batch, at most {MAX_BATCH}: "
            "split them into several requests"
        )
    read = []
    for index, query in enumerate(queries):
        try:
            read.append(read_query(query))
        except QueryRejected as exc:
            raise QueryRejected(f"error in query at index {index}: {exc}") from None
    return read


def _named_query(package: Mapping[str, object], version: str | None) -> Query:
    name = _string(package, "name")
    ecosystem = _string(package, "ecosystem")
    if ecosystem and ecosystem.partition(":")[0] not in ECOSYSTEMS:
        hint = f" (names are case-sensitive: {PYPI})" if ecosystem.lower() == "pypi" else ""
        raise QueryRejected(f"invalid ecosystem: {ecosystem!r} is not an OSV ecosystem{hint}")
    if not name:
        raise QueryRejected("invalid query: the package's 'name' (or a 'purl') is required")
    if not ecosystem and not version:
        raise QueryRejected(
            "invalid query: the package's 'ecosystem' is required without a version"
        )
    # No ecosystem: osv.dev looks in every one; packyard's records are all PyPI's.
    if ecosystem and ecosystem != PYPI:
        return ELSEWHERE
    return Query(canonicalize_name(name), version or None)


def _purl_query(package: Mapping[str, object], purl: str, version: str | None) -> Query:
    if package.get("name") is not None:
        raise QueryRejected("name specified in a PURL query: give 'purl' or 'name', not both")
    if package.get("ecosystem") is not None:
        raise QueryRejected(
            "ecosystem specified in a PURL query: give 'purl' or 'ecosystem', not both"
        )
    kind, name, purl_version = parse_purl(purl)
    if purl_version is not None and version is not None:
        raise QueryRejected("version specified in params and PURL query: give it in one place only")
    if kind != "pypi":
        return ELSEWHERE  # another ecosystem's, or a type osv.dev does not know
    return Query(canonicalize_name(name), purl_version or version or None)


def parse_purl(purl: str) -> tuple[str, str, str | None]:
    """The type (lower case), name and version of a package URL
    (github.com/package-url/purl-spec: `pkg:type/namespace/name@version?qualifiers#subpath`).

    Raises:
        QueryRejected: not a `pkg:` URL, no type or no name, or a namespace on a
            pypi purl (PyPI has none).
    """
    scheme, colon, rest = purl.partition(":")
    if not colon or scheme.lower() != "pkg":
        raise QueryRejected(f"invalid purl {purl!r}: a package URL starts with 'pkg:'")
    rest = rest.partition("#")[0].partition("?")[0].strip("/")
    kind, slash, path = rest.partition("/")
    remainder, at, version = path.rpartition("@") if "@" in path else (path, "", "")
    *namespace, name = remainder.strip("/").split("/")
    if not slash or not _PURL_TYPE.fullmatch(kind) or not name:
        raise QueryRejected(f"invalid purl {purl!r}: expected pkg:<type>/<name>[@<version>]")
    kind = kind.lower()
    if kind == "pypi" and namespace:
        raise QueryRejected(f"invalid purl {purl!r}: a pypi package URL has no namespace")
    return kind, unquote(name), unquote(version) if at else None


def _fields(raw: object, allowed: frozenset[str], what: str) -> Mapping[str, object]:
    if not isinstance(raw, dict):
        raise QueryRejected(f"invalid query: {what} must be a JSON object")
    if raw.keys() - allowed:
        unknown = sorted(raw.keys() - allowed)
        fields = ", ".join(repr(key) for key in sorted(allowed))
        raise QueryRejected(
            f"invalid query: {what} has no field {unknown[0]!r} (its fields: {fields})"
        )
    return raw


def _string(fields: Mapping[str, object], key: str) -> str | None:
    value = fields.get(key)
    if value is None or isinstance(value, str):
        return value
    raise QueryRejected(f"invalid query: {key!r} must be a string, not {type(value).__name__}")


def _page_token(query: Mapping[str, object]) -> None:
    token = _string(query, "page_token")
    if token and token != FIRST_PAGE_TOKEN:
        raise QueryRejected(
            "invalid cursor: packyard answers every query in one page and hands out no "
            "page token; send the query without 'page_token'"
        )
