"""The order of one page of search results, scoring relevance only where it decides.

The order, in tiers: the exact normalised name first, then names that start
with it, then projects whose name holds every word, then the rest (words
found in the summary only). Within the three name tiers a project downloaded
more on this server comes first, then the more relevant; within the last,
the more relevant first, then the more downloaded. The name breaks the last
ties. Relevance is the index's `score` expression (bm25 or ts_rank_cd).

Relevance is the expensive part: a short prefix such as "pro" matches most
of an index, and scoring its 65,000 matches of 100,000 projects took longer
than the rest of the query. Up to `SCORE_ALL_UP_TO` matches, every match is
scored and counted in one scan (`few`). More are ranked in two steps
(`many`). The first orders the matches by tier and downloads alone, which
needs no relevance, as far as the page's end and one row beyond. When that
row starts a new group of equals, the rows before it are whole groups and the
page lies among them: the second step scores only those. When the page ends
inside a group of equals (no downloads counted, or deep in the summary tier),
every row up to the end of that group is scored.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Row, text

SUMMARY_TIER = 3
# Measured on 100,000 projects: up to this, one scan scoring every match beats two without.
SCORE_ALL_UP_TO = 10_000
# `:prefix` is the exact name and `%`; `{in_name}` is every word in the name.
_TIER = (
    "CASE WHEN p.name = :exact THEN 0 WHEN p.name LIKE :prefix ESCAPE '\\' THEN 1 "
    "WHEN {in_name} THEN 2 ELSE 3 END"
)
_ORDER = (
    f"tier, CASE WHEN tier < {SUMMARY_TIER} THEN downloads ELSE 0 END DESC, score, "
    "downloads DESC, name"
)


def tier_expression(exact: str, terms: Sequence[str], parameters: dict[str, Any]) -> str:
    """The ranking tier of a row of `p`, adding its parameters to `parameters`."""
    parameters["exact"] = exact
    parameters["prefix"] = like_escape(exact) + "%"
    in_name = []
    for i, term in enumerate(terms):
        # A word of the name starts with the term (the words are separated by spaces).
        in_name.append(f"(' ' || p.name_terms) LIKE :word{i}")
        parameters[f"word{i}"] = f"% {like_escape(term)}%"
    return _TIER.format(in_name=" AND ".join(in_name))


def like_escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


@dataclass(frozen=True, slots=True)
class Ranking:
    """The matches of one query: `source` is the FROM clause (projects as `p`),
    `condition` the WHERE clause with its `parameters`, `tier` and `score` the
    expressions of `tier_expression` and of the index's relevance (lower is
    more relevant), `candidates` the condition keeping the ids of the JSON
    array bound to `:candidates`. Only constant fragments are formatted into
    the SQL."""

    connection: Connection
    source: str
    condition: str
    parameters: dict[str, Any]
    tier: str
    score: str
    candidates: str

    def few(self, limit: int, offset: int) -> tuple[list[int], int] | None:
        """The project ids of rows `offset` to `offset + limit`, best first, and
        how many rows match, every match scored in one scan; None when more
        than `SCORE_ALL_UP_TO` match (the scan stops there) or the page is past
        the last match."""
        rows = self.connection.execute(
            text(
                "SELECT id, matches FROM (SELECT *, count(*) OVER () AS matches FROM ("  # noqa: S608
                f"{self._scored_matches} LIMIT :most) AS scored) AS counted "
                f"ORDER BY {_ORDER} LIMIT :limit OFFSET :offset"
            ),
            {**self.parameters, "most": SCORE_ALL_UP_TO + 1, "limit": limit, "offset": offset},
        ).all()
        if not rows or rows[0].matches > SCORE_ALL_UP_TO:
            return None
        return [row.id for row in rows], rows[0].matches

    def many(self, limit: int, offset: int) -> list[int]:
        """The project ids of rows `offset` to `offset + limit`, best first, in
        two steps (see the module docstring)."""
        end = offset + limit
        keys = self._by_tier_and_downloads(end + 1)
        if len(keys) <= offset:
            return []
        if len(keys) <= end or _key(keys[end]) != _key(keys[end - 1]):
            ids = json.dumps([row.id for row in keys[:end]])
            return self._scored(self.candidates, {"candidates": ids}, limit, offset)
        # Tier and downloads of the page's last row; its equals follow it.
        last_tier, last_downloads = _key(keys[end - 1])
        up_to_its_equals = (
            f"({self.tier} < :last_tier OR "
            f"({self.tier} = :last_tier AND p.downloads >= :last_downloads))"
        )
        bound = {"last_tier": last_tier, "last_downloads": last_downloads}
        return self._scored(up_to_its_equals, bound, limit, offset)

    def _scored(
        self, restriction: str, bound: dict[str, Any], limit: int, offset: int
    ) -> list[int]:
        """A page of the matches that also meet `restriction`, scored and in full order."""
        rows = self.connection.execute(
            text(
                f"SELECT id FROM ({self._scored_matches} AND {restriction}) AS ranked "  # noqa: S608
                f"ORDER BY {_ORDER} LIMIT :limit OFFSET :offset"
            ),
            {**self.parameters, **bound, "limit": limit, "offset": offset},
        )
        return [row.id for row in rows]

    @property
    def _scored_matches(self) -> str:
        """The SELECT of the matches with what `_ORDER` sorts by; tier and score
        are computed once per row, here in the inner SELECT. A WHERE clause,
        to be extended with AND or ended."""
        return (
            f"SELECT p.id, p.name, p.downloads, {self.tier} AS tier, {self.score} AS score "  # noqa: S608
            f"FROM {self.source} WHERE {self.condition}"
        )

    def _by_tier_and_downloads(self, count: int) -> Sequence[Row[Any]]:
        """The first `count` matches by tier, then downloads: no relevance computed."""
        return self.connection.execute(
            text(
                f"SELECT p.id, {self.tier} AS tier, p.downloads FROM {self.source} "  # noqa: S608
                f"WHERE {self.condition} ORDER BY tier, p.downloads DESC LIMIT :count"
            ),
            {**self.parameters, "count": count},
        ).all()


def _key(row: Row[Any]) -> tuple[int, int]:
    """What orders a row before relevance: every summary-tier row is equal."""
    return (row.tier, row.downloads if row.tier < SUMMARY_TIER else 0)
