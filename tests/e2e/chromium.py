"""Headless Chromium for the browser tests: Debian's package driven by Playwright.

Never `playwright install`: the machine reaches no browser download site, and the
suite installs `chromium` with apt (scripts/test.sh).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from playwright.sync_api import Page

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
TIMEOUT_MS = 15_000


def screenshot(page: Page, shots: Path, name: str) -> None:
    """Save a full-page PNG in `shots`; with `PACKYARD_SCREENSHOTS_DIR`, also there."""
    shots.mkdir(exist_ok=True)
    path = shots / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    assert path.read_bytes().startswith(b"\x89PNG")
    keep = os.environ.get("PACKYARD_SCREENSHOTS_DIR")
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, Path(keep) / path.name)
