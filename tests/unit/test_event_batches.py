"""Event lines emitted on the event loop reach the writer in batches, in order, and on close."""

from __future__ import annotations

import json
import time
from pathlib import Path

import anyio
import pytest

from packyard.telemetry.events import BATCH_SECONDS, EventLog

pytestmark = pytest.mark.anyio


def lines_in(path: Path, expected: int, timeout: float = 5.0) -> list[dict[str, object]]:
    """The file's event lines, once `expected` of them are there (the writer is a thread)."""
    deadline = time.monotonic() + timeout
    while True:
        text = path.read_text() if path.exists() else ""
        lines = [json.loads(line) for line in text.splitlines()]
        if len(lines) >= expected or time.monotonic() > deadline:
            return lines


async def test_lines_of_a_burst_are_written_together_in_order(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    events = EventLog(path)
    for number in range(50):
        events.emit("download", number=number)
    assert lines_in(path, 1, timeout=0.05) == []  # held until the batch is handed over
    await anyio.sleep(BATCH_SECONDS * 2)
    lines = lines_in(path, 50)
    assert [line["number"] for line in lines] == list(range(50))
    assert all(line["event"] == "download" for line in lines)
    events.close()


async def test_closing_writes_the_pending_batch(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    events = EventLog(path)
    events.emit("page-miss", project="nothing")
    events.close()
    assert [line["project"] for line in lines_in(path, 1)] == ["nothing"]


def test_outside_an_event_loop_a_line_is_handed_over_at_once(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    events = EventLog(path)
    events.emit("download", number=1)
    assert [line["number"] for line in lines_in(path, 1)] == [1]
    events.close()
