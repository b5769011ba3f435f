"""The real installers, run as processes against an index on 127.0.0.1."""

from __future__ import annotations

import subprocess
from pathlib import Path

import httpx

from tests.e2e.servers import BIN, PYTHON, clean_environment
from tests.unit.publish.test_multipart import encode, twine_form


def run(argv: list[str], timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        argv, capture_output=True, text=True, env=clean_environment(), timeout=timeout, check=False
    )


def pip_install(
    index_url: str, target: Path, *requirements: str
) -> subprocess.CompletedProcess[str]:
    """`pip install --isolated` into a target folder, with no cache and only this index."""
    return run(
        [
            PYTHON,
            "-m",
            "pip",
            "install",
            "--isolated",
            "--disable-pip-version-check",
            "--no-cache-dir",
            "--index-url",
            index_url,
            "--target",
            str(target),
            *requirements,
        ]
    )


def pip_download(
    index_url: str, dest: Path, *requirements: str
) -> subprocess.CompletedProcess[str]:
    return run(
        [
            PYTHON,
            "-m",
            "pip",
            "download",
            "--isolated",
            "--disable-pip-version-check",
            "--no-cache-dir",
            "--no-deps",
            "--index-url",
            index_url,
            "--dest",
            str(dest),
            *requirements,
        ]
    )


def uv_install(
    index_url: str, target: Path, *requirements: str
) -> subprocess.CompletedProcess[str]:
    """`uv pip install` into a target folder, with no cache, no config and only this index."""
    return run(
        [
            str(BIN / "uv"),
            "pip",
            "install",
            "--no-cache",
            "--no-config",
            "--python",
            PYTHON,
            "--index-url",
            index_url,
            "--target",
            str(target),
            *requirements,
        ]
    )


def installed(target: Path) -> dict[str, str]:
    """Normalised name -> version of what an install put into `target`."""
    found: dict[str, str] = {}
    for dist_info in target.glob("*.dist-info"):
        name, _, version = dist_info.name[: -len(".dist-info")].partition("-")
        found[name.lower().replace("_", "-")] = version
    return found


def post_upload(url: str, wheel: Path, auth: tuple[str, str]) -> httpx.Response:
    """`wheel` posted to the upload URL `url` (`…/legacy/`) as twine sends it."""
    content_type, body = encode(twine_form(wheel), (wheel.name, wheel.read_bytes(), None))
    return httpx.post(
        url, content=body, headers={"content-type": content_type.decode()}, auth=auth, timeout=30
    )
