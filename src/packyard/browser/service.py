"""The browser service: what each page shows, gathered from the chain, the
search index and the in-house catalog. The routes (`routes/ui/`) only render.

A project page comes in two parts. The top (name, label, release history,
files) needs only the chain's project page and is returned at once. The rest
(README, dependencies, license, classifiers, URLs) needs the release's
METADATA: for in-house projects it is read at once (it is a local blob); for
public projects it is included only when already known, and otherwise loaded
by a second request (`details`), so a slow upstream never holds up the page.
"""

from __future__ import annotations

import contextlib
from collections import OrderedDict
from collections.abc import Collection
from dataclasses import dataclass, replace

import anyio.to_thread
from sqlalchemy.exc import SQLAlchemyError

from packyard.browser.advisories import NO_PROJECT_ADVISORIES, ProjectAdvisories
from packyard.browser.advisory_page import AdvisoryPage
from packyard.browser.catalog import LocalCatalog, RecentRelease
from packyard.browser.loading import load_metadata
from packyard.browser.metadata import ProjectMetadata
from packyard.browser.people import NO_PEOPLE, PeopleRecords, ProjectPeople, Role
from packyard.browser.provenance import NO_PROVENANCE, ProjectProvenance, ProvenanceRecords
from packyard.browser.readmes import Readmes
from packyard.browser.releases import FileRow, Release, build_releases, find_release, latest_release
from packyard.browser.usage import ProjectDownloads
from packyard.browser.vulnerabilities import FindingRow, Vulnerabilities
from packyard.dists.filenames import MAX_NAME_LENGTH, TOO_LONG_NAME
from packyard.errors import NotFound
from packyard.model import ANONYMOUS, SOURCE_LOCAL, ProjectDetail, ProjectStatus
from packyard.repository.base import Repository
from packyard.search.documents import SearchDocument, SearchResults, describe
from packyard.search.index import SearchIndex
from packyard.search.query import QuerySyntaxError, parse_query
from packyard.search.sync import InHouseSync

PER_PAGE = 20
NO_RESULTS = SearchResults((), 0)
MAX_PAGE = 500
# No page reaches further, so the count stops there ("10,000+ projects", as on PyPI).
MAX_RESULTS = MAX_PAGE * PER_PAGE
DETAILS_CACHE_ENTRIES = 512
# The parsed-metadata cache holds at most this many bytes of README (source and
# HTML): a README can be megabytes, so a count of entries alone bounds nothing.
DETAILS_CACHE_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class HomeView:
    in_house: int
    public: int
    recent: tuple[RecentRelease, ...]


@dataclass(frozen=True, slots=True)
class SearchView:
    text: str
    results: SearchResults = NO_RESULTS
    error: str | None = None
    page: int = 1
    per_page: int = PER_PAGE

    @property
    def pages(self) -> int:
        return min(MAX_PAGE, max(1, -(-self.results.total // self.per_page)))


@dataclass(frozen=True, slots=True)
class DetailsView:
    """The metadata-dependent part of a project page."""

    metadata: ProjectMetadata | None
    readme: str  # sanitised HTML (dists.readme)
    used_by: tuple[SearchDocument, ...] = ()  # in-house projects that require this one


@dataclass(frozen=True, slots=True)
class ProjectView:
    name: str
    display_name: str
    source: str  # SOURCE_LOCAL or the upstream's label
    in_house: bool
    summary: str
    status: ProjectStatus
    releases: tuple[Release, ...]
    release: Release
    latest: Release
    details: DetailsView | None = None  # None: load it from the details URL
    advisories: ProjectAdvisories = NO_PROJECT_ADVISORIES
    findings: tuple[FindingRow, ...] = ()  # in-house: requirements on affected versions
    # In-house: the attestation requirement in force is "ci" or "all", so a
    # file without provenance is marked.
    provenance_required: bool = False
    # In-house: packyard's owners and maintainers (users and groups), owners first.
    maintainers: tuple[Role, ...] = ()


class Browser:
    """Answers the browser's pages. Built once (`routes.ui.build_browser`)."""

    def __init__(
        self,
        chain: Repository,
        index: SearchIndex,
        catalog: LocalCatalog | None = None,
        sync: InHouseSync | None = None,
        readmes: Readmes | None = None,
        vulnerabilities: Vulnerabilities | None = None,
        provenance: ProvenanceRecords | None = None,
        downloads: ProjectDownloads | None = None,
        people: PeopleRecords | None = None,
    ) -> None:
        """`provenance` None: in-house files show a provenance without its publisher;
        `downloads` None: project pages show no download chart; `people` None:
        in-house pages show no maintainers, uploaders, MD5 or BLAKE2b-256."""
        self.chain = chain
        self.index = index
        self.catalog = catalog
        self.sync = sync
        self.readmes = readmes or Readmes()
        self.vulnerabilities = vulnerabilities
        self.provenance = provenance
        self.downloads = downloads
        self.people = people
        # Parsed metadata and rendered README by (project, filename): a file's
        # bytes never change, so an entry is never stale.
        self._parsed: OrderedDict[tuple[str, str], DetailsView] = OrderedDict()
        self._parsed_bytes = 0

    async def home(self) -> HomeView:
        """Counts of in-house and known public projects, and recent in-house releases."""
        await self._refresh()
        in_house, public = await anyio.to_thread.run_sync(self.index.counts)
        recent: list[RecentRelease] = []
        if self.catalog is not None:
            recent = await anyio.to_thread.run_sync(self.catalog.recent_releases)
        return HomeView(in_house, public, tuple(recent))

    async def search(self, text: str, page: int = 1) -> SearchView:
        """One page of results; a query that cannot be parsed gives `error`, never raises."""
        page = min(max(page, 1), MAX_PAGE)
        try:
            query = parse_query(text)
        except QuerySyntaxError as exc:
            return SearchView(text, error=str(exc), page=page)
        await self._refresh()
        offset = (page - 1) * PER_PAGE
        within = await self._with_advisories() if query.has_advisories else None
        results = await anyio.to_thread.run_sync(
            lambda: self.index.search(
                query, limit=PER_PAGE, offset=offset, within=within, count_limit=MAX_RESULTS
            )
        )
        return SearchView(text, results, page=page)

    async def advisory(self, advisory_id: str) -> AdvisoryPage:
        """The page of the stored OSV record `advisory_id`, withdrawn or not.

        Raises:
            NotFound: no such record (or no advisories in this browser).
        """
        found = None
        if self.vulnerabilities is not None:
            found = await self.vulnerabilities.page(advisory_id)
        if found is None:
            raise NotFound(f"There is no advisory {advisory_id!r} here.")
        return found

    async def _with_advisories(self) -> Collection[str]:
        """The projects `has:advisories` keeps: those named by a record in force."""
        if self.vulnerabilities is None:
            return ()
        return await self.vulnerabilities.names()

    async def suggest(self, name: str, limit: int = 5) -> tuple[SearchDocument, ...]:
        """Projects with names like `name` (for a 404 page); none if `name` has no words."""
        query = parse_query(" ".join(part for part in name.split("-") if part))
        if query.empty:
            return ()
        await self._refresh()
        results = await anyio.to_thread.run_sync(
            lambda: self.index.search(query, limit=limit, count_limit=limit)
        )
        return results.hits

    async def project(self, name: str, version: str | None = None) -> ProjectView:
        """The page of project `name` (normalised) at `version` (default: the latest).

        Raises:
            ProjectNotFound: no source has the project.
            NotFound: the project has no such version, or no release at all,
                or its name is longer than any project's may be.
            UpstreamError, UpstreamUnavailable: the upstream failed.
        """
        _check_length(name)
        detail = await self.chain.get_project(name, ANONYMOUS)
        in_house = detail.source == SOURCE_LOCAL
        provenance = await self._provenance(name) if in_house else NO_PROVENANCE
        people = await self._people(name) if in_house else NO_PEOPLE
        releases = build_releases(detail, provenance.publishers, people.uploads)
        latest = latest_release(releases)
        release = latest if version is None else find_release(releases, version)
        if latest is None or release is None:
            raise NotFound(f"Project {name!r} has no release {version or ''}".rstrip() + ".")
        await self._refresh()
        document = await anyio.to_thread.run_sync(self.index.get, name)
        row = release.metadata_file()
        details = None
        if in_house or (row is not None and (name, row.filename) in self._parsed):
            details = await self.details(name, release.version, detail=detail)
        summary = (details.metadata.summary if details and details.metadata else None) or (
            document.summary if document else ""
        )
        display = details.metadata.name if details and details.metadata else None
        advisories = NO_PROJECT_ADVISORIES
        findings: tuple[FindingRow, ...] = ()
        if self.vulnerabilities is not None:
            versions = [r.version for r in releases]
            advisories = await self.vulnerabilities.for_project(name, versions, release.version)
            if in_house:
                findings = await self.vulnerabilities.findings(name, release.version)
        return ProjectView(
            name=name,
            display_name=display or (document.display_name if document else name),
            source=detail.source,
            in_house=in_house,
            summary=summary or "",
            status=detail.status,
            releases=releases,
            release=release,
            latest=latest,
            details=details,
            advisories=advisories,
            findings=findings,
            provenance_required=provenance.required,
            maintainers=people.roles,
        )

    async def _provenance(self, name: str) -> ProjectProvenance:
        """The publishers of in-house project `name`'s files and its requirement."""
        if self.provenance is None:
            return NO_PROVENANCE
        return await anyio.to_thread.run_sync(self.provenance.project, name)

    async def _people(self, name: str) -> ProjectPeople:
        """The roles of in-house project `name` and what is known of each file's upload."""
        if self.people is None:
            return NO_PEOPLE
        return await anyio.to_thread.run_sync(self.people.project, name)

    async def details(
        self, name: str, version: str, *, detail: ProjectDetail | None = None
    ) -> DetailsView:
        """The metadata-dependent part of the page of `name` at `version`.

        Raises:
            ProjectNotFound, NotFound: no such project or version.
            UpstreamError, UpstreamUnavailable: the upstream failed.
        """
        if detail is None:
            _check_length(name)
            detail = await self.chain.get_project(name, ANONYMOUS)
        releases = build_releases(detail)
        release = find_release(releases, version)
        if release is None:
            raise NotFound(f"Project {name!r} has no release {version!r}.")
        row = release.metadata_file()
        parsed = DetailsView(None, "")
        cached = self._parsed.get((name, row.filename)) if row is not None else None
        if cached is not None:
            parsed = cached
        elif row is not None:
            parsed = await self._parse(name, row, await load_metadata(self.chain, name, row))
            if parsed.metadata is not None and release is latest_release(releases):
                await self._describe(detail, release, parsed.metadata)
        used_by = await anyio.to_thread.run_sync(self.index.used_by, name)
        return replace(parsed, used_by=used_by)

    async def _parse(self, name: str, row: FileRow, meta: ProjectMetadata | None) -> DetailsView:
        readme = ""
        if meta is not None:
            readme = await self.readmes.html(
                row.sha256, meta.description, meta.description_content_type
            )
        view = DetailsView(meta, readme)
        self._keep((name, row.filename), view)
        return view

    def _keep(self, key: tuple[str, str], view: DetailsView) -> None:
        """Remember `view`, forgetting the oldest past DETAILS_CACHE_ENTRIES or _BYTES."""
        previous = self._parsed.pop(key, None)
        if previous is not None:
            self._parsed_bytes -= _view_size(previous)
        self._parsed[key] = view
        self._parsed_bytes += _view_size(view)
        while len(self._parsed) > 1 and (
            len(self._parsed) > DETAILS_CACHE_ENTRIES or self._parsed_bytes > DETAILS_CACHE_BYTES
        ):
            _, oldest = self._parsed.popitem(last=False)
            self._parsed_bytes -= _view_size(oldest)

    async def _describe(
        self, detail: ProjectDetail, release: Release, meta: ProjectMetadata
    ) -> None:
        """Make a public project findable by its summary, author and dependencies."""
        if detail.source == SOURCE_LOCAL:
            return  # in-house documents are the sync's
        document = describe(detail.name, detail.source, release.version, meta)
        # The page is what matters; the next parse of this release tries again.
        with contextlib.suppress(SQLAlchemyError):
            await anyio.to_thread.run_sync(self.index.upsert, [document])

    async def _refresh(self) -> None:
        if self.sync is not None:
            await self.sync.refresh()


def _check_length(name: str) -> None:
    """Raise NotFound for a name no project can have: it would reach the upstream
    and the page caches, whose file names cannot be that long."""
    if len(name) > MAX_NAME_LENGTH:
        raise NotFound(TOO_LONG_NAME)


def _size(text: str | None) -> int:
    return len(text.encode("utf-8", "surrogateescape")) if text else 0


def _view_size(view: DetailsView) -> int:
    description = view.metadata.description if view.metadata is not None else None
    return _size(view.readme) + _size(description)
