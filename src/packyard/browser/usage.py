"""Usage at a glance: per-day bar charts drawn on the server as SVG, from the
daily roll-ups (`db/usage.py`).

A chart is computed here (bar heights, labels, the text alternative) and
drawn by a template (`_chart.html`) with plain `<rect>`s: no script, nothing
loaded from elsewhere, and a table-like text alternative (`summary`, and a
`<title>` per bar) for screen readers and text browsers.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, timedelta

import anyio.to_thread
from sqlalchemy.orm import Session, sessionmaker

from packyard.db.usage import first_day, project_downloads

CHART_DAYS = 30
WIDTH = 300  # SVG user units; the SVG scales to its box
HEIGHT = 60
GAP = 1.0


@dataclass(frozen=True, slots=True)
class Bar:
    day: date
    value: float
    x: float
    y: float
    width: float
    height: float


@dataclass(frozen=True, slots=True)
class DailyChart:
    """A bar per day, oldest first; `label` names what is counted ("downloads")."""

    label: str
    bars: tuple[Bar, ...]
    total: float
    peak: float
    width: int = WIDTH
    height: int = HEIGHT

    @property
    def first(self) -> date:
        return self.bars[0].day

    @property
    def last(self) -> date:
        return self.bars[-1].day

    @property
    def summary(self) -> str:
        """The chart in words: the text alternative."""
        days = len(self.bars)
        if not self.total:
            return f"No {self.label} in the last {days} days."
        busiest = max(self.bars, key=lambda bar: (bar.value, bar.day))
        label = self.label.removesuffix("s") if self.total == 1 else self.label
        return (
            f"{_number(self.total)} {label} in the last {days} days "
            f"({self.first.isoformat()} to {self.last.isoformat()}); the most on "
            f"{busiest.day.isoformat()}: {_number(busiest.value)}."
        )


def daily_chart(
    label: str, values: Mapping[date, float], days: int, until: date | None = None
) -> DailyChart:
    """A chart of `values` (by UTC day; days missing are 0) over the `days` days
    ending with `until` (today by default)."""
    start = first_day(days, until)
    series = [
        (start + timedelta(days=i), values.get(start + timedelta(days=i), 0)) for i in range(days)
    ]
    peak = max((value for _, value in series), default=0)
    step = WIDTH / days
    bars = []
    for index, (day, value) in enumerate(series):
        height = HEIGHT * value / peak if peak else 0.0
        # A day with any at all shows at least a sliver.
        if value and height < 1:
            height = 1.0
        bars.append(
            Bar(day, value, round(index * step, 2), round(HEIGHT - height, 2),
                round(step - GAP, 2), round(height, 2))
        )  # fmt: skip
    return DailyChart(label, tuple(bars), sum(value for _, value in series), peak)


def _number(value: float) -> str:
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.1f}"


class ProjectDownloads:
    """The download chart of a project page: its last `days` days."""

    def __init__(self, sessions: sessionmaker[Session], days: int = CHART_DAYS) -> None:
        self._sessions = sessions
        self.days = days

    def read(self, project: str) -> DailyChart:
        """The chart of `project` (normalised name), in the calling thread.

        Raises:
            sqlalchemy.exc.SQLAlchemyError: the database cannot be read.
        """
        with self._sessions() as session:
            values = project_downloads(session, project, self.days)
        return daily_chart("downloads", values, self.days)

    async def chart(self, project: str) -> DailyChart:
        """`read(project)` in a worker thread."""
        return await anyio.to_thread.run_sync(self.read, project)
