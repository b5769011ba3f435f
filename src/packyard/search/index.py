"""The search index: SQLite FTS5 by default, PostgreSQL full-text search at scale.

The index is derived data: every in-house document is rebuilt from the store
(`search.sync`), and public documents record names the chain has served.
So it lives apart from the store's schema, in tables the index creates itself
(`create`), with no Alembic migration: by default in its own SQLite file,
`<data_dir>/search.db`; with PostgreSQL, in the same database as the store,
so every replica shares one index. Losing it loses only the list of public
names seen so far.

Ranking (`search.ranking`): the exact name, names that start with it, names
holding every word, then the rest; among equals the more downloaded on this
server and the more relevant. Relevance is SQLite's bm25 with the name
weighted 10 to the summary's 1, or PostgreSQL's ts_rank_cd with the name as
weight A and the summary as weight B. Downloads are the `downloads` column,
written by `set_downloads` from a `search.popularity.Popularity` source (0
when there is none).

Every method is synchronous (SQLAlchemy Core): call it from a worker thread.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy import Connection, Engine, RowMapping, text
from sqlalchemy.pool import StaticPool

from packyard.db.engine import create_database_engine
from packyard.search.documents import SearchDocument, SearchResults
from packyard.search.query import SearchQuery
from packyard.search.ranking import SCORE_ALL_UP_TO, Ranking, like_escape, tier_expression

_LOCK_KEY = 0x5EA2C4  # the advisory lock that serialises `create` on PostgreSQL
_SQLITE_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS search_projects (
        id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, display_name TEXT NOT NULL,
        source TEXT NOT NULL, in_house INTEGER NOT NULL, summary TEXT NOT NULL,
        version TEXT NOT NULL, author TEXT NOT NULL, classifiers TEXT NOT NULL,
        fingerprint TEXT NOT NULL, name_terms TEXT NOT NULL,
        yanked INTEGER NOT NULL DEFAULT 0, downloads BIGINT NOT NULL DEFAULT 0)""",
    # A separate full-text table (not an external-content one): its rows are
    # written next to the project's, in the same transaction.
    """CREATE VIRTUAL TABLE IF NOT EXISTS search_fts
        USING fts5(name_terms, summary, tokenize = 'unicode61 remove_diacritics 2',
                   prefix = '1 2 3')""",
)
_POSTGRES_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS search_projects (
        id BIGSERIAL PRIMARY KEY, name TEXT NOT NULL UNIQUE, display_name TEXT NOT NULL,
        source TEXT NOT NULL, in_house INTEGER NOT NULL, summary TEXT NOT NULL,
        version TEXT NOT NULL, author TEXT NOT NULL, classifiers TEXT NOT NULL,
        fingerprint TEXT NOT NULL, name_terms TEXT NOT NULL,
        yanked INTEGER NOT NULL DEFAULT 0, downloads BIGINT NOT NULL DEFAULT 0,
        -- 'simple': names and summaries are not English prose to be stemmed.
        document tsvector GENERATED ALWAYS AS (
            setweight(to_tsvector('simple', name_terms), 'A')
            || setweight(to_tsvector('simple', summary), 'B')) STORED)""",
    "CREATE INDEX IF NOT EXISTS ix_search_projects_document "
    "ON search_projects USING gin (document)",
)
_COMMON_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS search_dependencies (
        project_id BIGINT NOT NULL REFERENCES search_projects (id) ON DELETE CASCADE,
        dependency TEXT NOT NULL, PRIMARY KEY (dependency, project_id))""",
    "CREATE INDEX IF NOT EXISTS ix_search_projects_in_house ON search_projects (in_house)",
    # Rewriting a document deletes its dependency rows by project.
    "CREATE INDEX IF NOT EXISTS ix_search_dependencies_project ON search_dependencies (project_id)",
)
# Columns added after the first release: an index created before gets them at start.
_ADDED_COLUMNS = {
    "yanked": "INTEGER NOT NULL DEFAULT 0",
    "downloads": "BIGINT NOT NULL DEFAULT 0",
}
# An in-house document always wins; a public one never replaces an in-house one.
_UPSERT = """
    INSERT INTO search_projects (name, display_name, source, in_house, summary, version,
        author, classifiers, fingerprint, name_terms, yanked)
    VALUES (:name, :display_name, :source, :in_house, :summary, :version, :author,
            :classifiers, :fingerprint, :name_terms, :yanked)
    ON CONFLICT (name) DO UPDATE SET
        display_name = excluded.display_name, source = excluded.source,
        in_house = excluded.in_house, summary = excluded.summary,
        version = excluded.version, author = excluded.author,
        classifiers = excluded.classifiers, fingerprint = excluded.fingerprint,
        name_terms = excluded.name_terms, yanked = excluded.yanked
    WHERE excluded.in_house = 1 OR search_projects.in_house = 0
    RETURNING id"""
# The write path's statements, built once: `text()` parses its bind parameters
# every time it is called, which cost more than the SQL itself per recorded name.
_SELECT_KNOWN = text("SELECT in_house, source FROM search_projects WHERE name = :name")
_UPDATE_SOURCE = text("UPDATE search_projects SET source = :source WHERE name = :name")
_SELECT_ID = text("SELECT id FROM search_projects WHERE name = :name")
_DELETE_PROJECT = text("DELETE FROM search_projects WHERE id = :id")
_UPSERT_PROJECT = text(_UPSERT)
_INSERT_FTS = text("INSERT INTO search_fts (rowid, name_terms, summary) VALUES (:id, :n, :s)")
_INSERT_DEPENDENCY = text("INSERT INTO search_dependencies VALUES (:id, :dependency)")
_DELETE_FTS = text("DELETE FROM search_fts WHERE rowid = :id")
_DELETE_DEPENDENCIES = text("DELETE FROM search_dependencies WHERE project_id = :id")
_CLEAR_DOWNLOADS = text("UPDATE search_projects SET downloads = 0 WHERE downloads <> 0")
_SET_DOWNLOADS = text("UPDATE search_projects SET downloads = :downloads WHERE name = :name")


def open_index(url: str) -> SearchIndex:
    """A created index at a SQLAlchemy URL (`sqlite:///…/search.db` or PostgreSQL).

    `sqlite://` (no path) is an index in memory, for tests and for an app
    built without a data directory.
    """
    if url in ("sqlite://", "sqlite:///:memory:"):
        # One shared connection: every new connection to :memory: is a new, empty database.
        engine = create_database_engine(
            "sqlite://", poolclass=StaticPool, connect_args={"check_same_thread": False}
        )
    else:
        engine = create_database_engine(url)
    index = SearchIndex(engine)
    index.create()
    return index


class SearchIndex:
    """Projects by name and summary, with the filters of `search.query`.

    The index owns `engine` (a SQLite or PostgreSQL engine) and disposes of it
    in `close`. Database errors (`sqlalchemy.exc.SQLAlchemyError`) propagate.
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.postgres = engine.dialect.name == "postgresql"

    def create(self) -> None:
        """Create the tables if they do not exist yet (safe at every start)."""
        schema = _POSTGRES_SCHEMA if self.postgres else _SQLITE_SCHEMA
        with self.engine.begin() as connection:
            if self.postgres:
                # Workers start at once: CREATE ... IF NOT EXISTS can still race
                # on PostgreSQL's catalog, so creators take turns.
                connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _LOCK_KEY})
            for statement in (*schema, *_COMMON_SCHEMA):
                connection.execute(text(statement))
            self._add_columns(connection)

    def _add_columns(self, connection: Connection) -> None:
        """Add `_ADDED_COLUMNS` to a table created by an earlier release."""
        if self.postgres:
            present = set(
                connection.execute(
                    text(
                        "SELECT column_name FROM information_schema.columns "
                        "WHERE table_name = 'search_projects' AND table_schema = current_schema()"
                    )
                ).scalars()
            )
        else:
            rows = connection.execute(text("PRAGMA table_info(search_projects)"))
            present = {row.name for row in rows}
        for column, definition in _ADDED_COLUMNS.items():
            if column not in present:
                # Constant SQL: both parts come from `_ADDED_COLUMNS`.
                connection.execute(
                    text(f"ALTER TABLE search_projects ADD COLUMN {column} {definition}")
                )

    def close(self) -> None:
        self.engine.dispose()

    # --- writing ------------------------------------------------------------

    def upsert(self, documents: Iterable[SearchDocument]) -> None:
        """Add or replace documents, in one transaction. A public document
        for a name the index holds as in-house is ignored."""
        with self.engine.begin() as connection:
            for document in documents:
                self._upsert(connection, document)

    def record_public(self, name: str, display_name: str, source: str) -> bool:
        """Note a public project, keeping what is known of it; True if it was new.

        An in-house project of that name is left alone; a known public one
        only gets its `source` updated (when `source` is not "").
        """
        with self.engine.begin() as connection:
            return self._record(connection, name, display_name, source)

    def record_public_many(self, projects: Iterable[tuple[str, str, str]]) -> None:
        """`record_public` for each `(name, display_name, source)`, in one transaction."""
        with self.engine.begin() as connection:
            for name, display_name, source in projects:
                self._record(connection, name, display_name, source)

    def _record(self, connection: Connection, name: str, display_name: str, source: str) -> bool:
        known = connection.execute(_SELECT_KNOWN, {"name": name}).first()
        if known is None:
            self._upsert(connection, SearchDocument(name, display_name, source))
            return True
        if not known.in_house and source and known.source != source:
            connection.execute(_UPDATE_SOURCE, {"name": name, "source": source})
        return False

    def set_downloads(self, downloads: Mapping[str, int]) -> None:
        """Replace every project's download count by `downloads` (normalised name
        to count; a name not given counts 0, an unknown name is ignored), in
        one transaction."""
        with self.engine.begin() as connection:
            connection.execute(_CLEAR_DOWNLOADS)
            rows = [
                {"name": name, "downloads": count} for name, count in downloads.items() if count
            ]
            if rows:
                connection.execute(_SET_DOWNLOADS, rows)

    def remove(self, names: Iterable[str]) -> None:
        """Drop the documents of `names` (unknown names are ignored)."""
        with self.engine.begin() as connection:
            for name in names:
                row = connection.execute(_SELECT_ID, {"name": name}).first()
                if row is not None:
                    self._forget(connection, row.id)
                    connection.execute(_DELETE_PROJECT, {"id": row.id})

    def _upsert(self, connection: Connection, document: SearchDocument) -> None:
        row = connection.execute(_UPSERT_PROJECT, _parameters(document)).first()
        if row is None:  # a public document met an in-house one: kept as it was
            return
        self._forget(connection, row.id)
        if not self.postgres:
            connection.execute(
                _INSERT_FTS, {"id": row.id, "n": document.name_terms, "s": document.summary}
            )
        if document.dependencies:
            connection.execute(
                _INSERT_DEPENDENCY,
                [{"id": row.id, "dependency": d} for d in dict.fromkeys(document.dependencies)],
            )

    def _forget(self, connection: Connection, project_id: int) -> None:
        """Remove a project's full-text and dependency rows (before rewriting them)."""
        if not self.postgres:
            connection.execute(_DELETE_FTS, {"id": project_id})
        connection.execute(_DELETE_DEPENDENCIES, {"id": project_id})

    # --- reading ------------------------------------------------------------

    def search(
        self,
        query: SearchQuery,
        *,
        limit: int = 20,
        offset: int = 0,
        within: Collection[str] | None = None,
        count_limit: int | None = None,
    ) -> SearchResults:
        """The documents matching `query`, best first; an empty query matches nothing.

        `within` (normalised names; None: every project) keeps only those
        projects: `has:advisories` passes the names the advisories index
        knows at query time, so an import never re-indexes anything.
        `count_limit` stops counting there (the total is then "at least"):
        a page never reaches further, and counting every match of a short
        prefix costs more than ranking the page.
        """
        if query.empty:
            return SearchResults((), 0)
        where, parameters = _filters(query)
        if within is not None:
            where.append(self._in_json_array("p.name", "within"))
            parameters["within"] = json.dumps(list(within))
        if query.terms:
            source, score, match = self._full_text(query.terms)
            where.insert(0, match)
            parameters["terms"] = self._match_expression(query.terms)
        else:
            source, score = "search_projects p", ""
        condition = " AND ".join(where) or "1 = 1"
        with self.engine.connect() as connection:

            def count() -> tuple[int, bool]:
                return _count(connection, source, condition, parameters, count_limit)

            if query.terms:
                tier = tier_expression(query.exact_name or "", query.terms, parameters)
                candidates = self._in_json_array(self._ranked_id(), "candidates", ids=True)
                ranking = Ranking(
                    connection, source, condition, parameters, tier, score, candidates
                )
                few = self._few_likely(connection, query, within, parameters["terms"])
                ids, total, capped = _ranked_page(ranking, count, few, count_limit, limit, offset)
            else:
                total, capped = count()
                ids = _by_filters(connection, condition, parameters, limit, offset)
            hits = self._documents(connection, self._rows(connection, ids))
        return SearchResults(hits, total, capped)

    def _few_likely(
        self,
        connection: Connection,
        query: SearchQuery,
        within: Collection[str] | None,
        terms: str,
    ) -> bool:
        """Whether the words' matches are likely few enough to score them all
        at once (`Ranking.few`): a filter that narrows by much is on; or, on
        SQLite, the full-text index alone counts few (in a millisecond); or, on
        PostgreSQL, where that count costs as much as the real one, there are
        several words, all of which must match."""
        if query.authors or query.classifiers or query.depends or within is not None:
            return True
        if self.postgres:
            return len(query.terms) > 1
        found = connection.execute(
            text(
                "SELECT count(*) FROM (SELECT 1 FROM search_fts WHERE search_fts MATCH :terms "
                "LIMIT :most) AS m"
            ),
            {"terms": terms, "most": SCORE_ALL_UP_TO + 1},
        ).scalar_one()
        return int(found) <= SCORE_ALL_UP_TO

    def _rows(self, connection: Connection, ids: Sequence[int]) -> list[RowMapping]:
        """The project rows of `ids`, in that order."""
        if not ids:
            return []
        listed = self._in_json_array("p.id", "ids", ids=True)
        rows = connection.execute(
            text(f"SELECT * FROM search_projects p WHERE {listed}"),  # noqa: S608
            {"ids": json.dumps(list(ids))},
        ).mappings()
        by_id = {row["id"]: row for row in rows}
        # A project removed since it was ranked (PostgreSQL reads each statement afresh).
        return [by_id[project_id] for project_id in ids if project_id in by_id]

    def get(self, name: str) -> SearchDocument | None:
        """The document of the normalised `name`, if indexed."""
        with self.engine.connect() as connection:
            rows = connection.execute(
                text("SELECT * FROM search_projects WHERE name = :name"), {"name": name}
            ).mappings()
            found = self._documents(connection, rows.all())
        return found[0] if found else None

    def used_by(self, name: str, limit: int = 100) -> tuple[SearchDocument, ...]:
        """In-house projects whose newest release requires `name`, by name."""
        with self.engine.connect() as connection:
            rows = connection.execute(
                text(
                    "SELECT p.* FROM search_projects p JOIN search_dependencies d "
                    "ON d.project_id = p.id WHERE d.dependency = :name AND p.in_house = 1 "
                    "ORDER BY p.name LIMIT :limit"
                ),
                {"name": name, "limit": limit},
            ).mappings()
            return self._documents(connection, rows.all())

    def counts(self) -> tuple[int, int]:
        """(in-house projects, public projects) in the index."""
        with self.engine.connect() as connection:
            rows = connection.execute(
                text("SELECT in_house, count(*) FROM search_projects GROUP BY in_house")
            ).all()
        by_kind = {bool(in_house): int(count) for in_house, count in rows}
        return by_kind.get(True, 0), by_kind.get(False, 0)

    def in_house_fingerprints(self) -> dict[str, str]:
        """Every in-house document's name and fingerprint."""
        with self.engine.connect() as connection:
            rows = connection.execute(
                text("SELECT name, fingerprint FROM search_projects WHERE in_house = 1")
            ).all()
        return {name: fingerprint for name, fingerprint in rows}

    def public_names(self) -> set[str]:
        """The names of every public document."""
        with self.engine.connect() as connection:
            rows = connection.execute(text("SELECT name FROM search_projects WHERE in_house = 0"))
            return {name for (name,) in rows}

    def _full_text(self, terms: Sequence[str]) -> tuple[str, str, str]:
        """FROM clause, relevance score (lower is more relevant) and the match condition."""
        if self.postgres:
            tsquery = "to_tsquery('simple', :terms)"
            score = f"-ts_rank_cd(p.document, {tsquery})"
            return "search_projects p", score, f"p.document @@ {tsquery}"
        # CROSS JOIN makes SQLite run the full-text match first: the other
        # order runs the match once per project row (seconds, not milliseconds).
        source = "search_fts CROSS JOIN search_projects p ON p.id = search_fts.rowid"
        return source, "bm25(search_fts, 10.0, 1.0)", "search_fts MATCH :terms"

    def _in_json_array(self, column: str, parameter: str, *, ids: bool = False) -> str:
        """The condition keeping the rows whose `column` the JSON array bound to
        `parameter` lists (project ids when `ids`, else text): one bound value
        however many (thousands of names, with osv.dev's export)."""
        if self.postgres:
            value = "CAST(value AS BIGINT)" if ids else "value"
            return (
                f"{column} IN (SELECT {value} "  # noqa: S608
                f"FROM json_array_elements_text(CAST(:{parameter} AS json)))"
            )
        return f"{column} IN (SELECT value FROM json_each(:{parameter}))"  # noqa: S608

    def _ranked_id(self) -> str:
        """The id column a ranking's candidates are checked on."""
        if self.postgres:
            return "p.id"
        # The unary + keeps SQLite from handing the list to FTS5, which would
        # restart the match, and bm25's statistics with it, once per id.
        return "+search_fts.rowid"

    def _match_expression(self, terms: Sequence[str]) -> str:
        # Terms are letters and digits only (`query._TERM`), so they need no
        # quoting beyond this; each is a prefix, and all must match.
        if self.postgres:
            return " & ".join(f"{term}:*" for term in terms)
        return " ".join(f'"{term}"*' for term in terms)

    def _documents(
        self, connection: Connection, rows: Sequence[RowMapping]
    ) -> tuple[SearchDocument, ...]:
        ids = [row["id"] for row in rows]
        dependencies: dict[int, list[str]] = {}
        if ids:
            placeholders = ", ".join(f":id{i}" for i in range(len(ids)))
            found = connection.execute(
                text(
                    "SELECT project_id, dependency FROM search_dependencies "  # noqa: S608
                    f"WHERE project_id IN ({placeholders}) ORDER BY dependency"
                ),
                {f"id{i}": value for i, value in enumerate(ids)},
            )
            for project_id, dependency in found:
                dependencies.setdefault(project_id, []).append(dependency)
        return tuple(_document(row, tuple(dependencies.get(row["id"], ()))) for row in rows)


def _ranked_page(
    ranking: Ranking,
    count: Callable[[], tuple[int, bool]],
    few_likely: bool,
    count_limit: int | None,
    limit: int,
    offset: int,
) -> tuple[list[int], int, bool]:
    """A page of the matches of words, how many match and whether the count
    stopped at `count_limit`, the cheapest way: when few matches are likely,
    one scan scores and counts them all; otherwise the count comes first and
    decides between scoring all and ranking in two steps (`search.ranking`)."""
    if few_likely:
        found = ranking.few(limit, offset)
        if found is not None:
            ids, matches = found
            return ids, *_at_most(matches, count_limit)
    total, capped = count()
    if not few_likely and not capped and total <= SCORE_ALL_UP_TO:
        found = ranking.few(limit, offset)
        if found is not None:  # None: past the last match, or rows were added meanwhile
            return found[0], total, capped
    return ranking.many(limit, offset), total, capped


def _count(
    connection: Connection,
    source: str,
    condition: str,
    parameters: dict[str, Any],
    limit: int | None,
) -> tuple[int, bool]:
    """How many rows match, counting at most `limit` (None: all), and whether there are more."""
    if limit is None:
        sql = f"SELECT count(*) FROM {source} WHERE {condition}"  # noqa: S608
        return int(connection.execute(text(sql), parameters).scalar_one()), False
    sql = f"SELECT count(*) FROM (SELECT 1 FROM {source} WHERE {condition} LIMIT :most) AS m"  # noqa: S608
    found = int(connection.execute(text(sql), {**parameters, "most": limit + 1}).scalar_one())
    return _at_most(found, limit)


def _at_most(found: int, limit: int | None) -> tuple[int, bool]:
    """`found` as a page shows it: at most `limit` (None: no limit), and whether it was more."""
    if limit is None or found <= limit:
        return found, False
    return limit, True


def _by_filters(
    connection: Connection, condition: str, parameters: dict[str, Any], limit: int, offset: int
) -> list[int]:
    """A page of the projects matching filters only: in-house first, then the most downloaded."""
    rows = connection.execute(
        text(
            f"SELECT p.id FROM search_projects p WHERE {condition} "  # noqa: S608
            "ORDER BY p.in_house DESC, p.downloads DESC, p.name LIMIT :limit OFFSET :offset"
        ),
        {**parameters, "limit": limit, "offset": offset},
    )
    return [row.id for row in rows]


def _filters(query: SearchQuery) -> tuple[list[str], dict[str, Any]]:
    """SQL conditions on `p` for the query's filters, and their parameters."""
    where: list[str] = []
    parameters: dict[str, Any] = {}
    if not query.include_yanked:
        where.append("p.yanked = 0")
    if query.source is not None:
        where.append("p.in_house = :in_house")
        parameters["in_house"] = 1 if query.source == "in-house" else 0
    for i, dependency in enumerate(query.depends):
        where.append(
            # Constant SQL: only the parameter's number is formatted in.
            f"p.id IN (SELECT project_id FROM search_dependencies WHERE dependency = :dep{i})"  # noqa: S608
        )
        parameters[f"dep{i}"] = dependency
    for column, values in (("author", query.authors), ("classifiers", query.classifiers)):
        for i, value in enumerate(values):
            where.append(f"lower(p.{column}) LIKE :{column}{i} ESCAPE '\\'")
            parameters[f"{column}{i}"] = f"%{like_escape(value.lower())}%"
    return where, parameters


def _parameters(document: SearchDocument) -> dict[str, Any]:
    return {
        "name": document.name,
        "display_name": document.display_name,
        "source": document.source,
        "in_house": 1 if document.in_house else 0,
        "summary": document.summary,
        "version": document.version,
        "author": document.author,
        # One per line: `classifier:` matches within a line or across the " :: ".
        "classifiers": "\n".join(document.classifiers),
        "fingerprint": document.fingerprint,
        "name_terms": document.name_terms,
        "yanked": 1 if document.yanked else 0,
    }


def _document(row: RowMapping, dependencies: tuple[str, ...]) -> SearchDocument:
    classifiers = row["classifiers"]
    return SearchDocument(
        name=row["name"],
        display_name=row["display_name"],
        source=row["source"],
        summary=row["summary"],
        version=row["version"],
        author=row["author"],
        classifiers=tuple(classifiers.split("\n")) if classifiers else (),
        dependencies=dependencies,
        fingerprint=row["fingerprint"],
        yanked=bool(row["yanked"]),
        downloads=int(row["downloads"]),
    )
