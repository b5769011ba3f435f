"""READMEs are rendered once per file and kept for every replica (`browser/readmes.py`)."""

from __future__ import annotations

from pathlib import Path

import pytest

import packyard.browser.readmes as readmes_module
from packyard.browser.readmes import MAX_RENDERED_README, Readmes
from packyard.dists.readme import render_readme
from tests.builders import make_local_store, metadata_text

SHA = "ab" * 32


@pytest.fixture
def renders(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Each README the real renderer is asked to render."""
    rendered: list[str] = []
    real = render_readme

    def counted(description: str | None, content_type: str | None = None) -> str:
        rendered.append(description or "")
        return real(description, content_type)

    monkeypatch.setattr(readmes_module, "render_readme", counted)
    return rendered


@pytest.mark.anyio
async def test_a_readme_rendered_by_one_replica_is_not_rendered_by_another(
    tmp_path: Path, database_url: str, renders: list[str]
) -> None:
    one = Readmes(make_local_store(tmp_path / "one", database_url).sessions)
    other = Readmes(make_local_store(tmp_path / "other", database_url).sessions)
    html = await one.html(SHA, "# Hello\n\n*there*", "text/markdown")
    assert "<em>there</em>" in html
    assert await other.html(SHA, "# Hello\n\n*there*", "text/markdown") == html
    assert len(renders) == 1


@pytest.mark.anyio
async def test_prepare_renders_at_upload_and_never_fails_it(
    tmp_path: Path, renders: list[str]
) -> None:
    readmes = Readmes(make_local_store(tmp_path).sessions)
    metadata = metadata_text("acme", "1.0", description="*uploaded*").encode()
    await readmes.prepare(SHA, metadata)
    assert [text.strip() for text in renders] == ["*uploaded*"]
    assert "<em>uploaded</em>" in await readmes.html(SHA, "*uploaded*", "text/markdown")
    assert len(renders) == 1
    await readmes.prepare("cd" * 32, b"\xff\xfe not metadata at all")  # logged, not raised


@pytest.mark.anyio
async def test_a_readme_too_large_to_render_is_a_notice(renders: list[str]) -> None:
    html = await Readmes().html(SHA, "x" * (MAX_RENDERED_README + 1), "text/plain")
    assert "larger than this server renders" in html
    assert renders == []


@pytest.mark.anyio
async def test_without_a_database_or_a_sha256_it_renders_each_time(
    tmp_path: Path, renders: list[str]
) -> None:
    kept = Readmes(make_local_store(tmp_path).sessions)
    await kept.html(None, "*a*", "text/markdown")
    await kept.html(None, "*a*", "text/markdown")
    await Readmes().html(SHA, "*a*", "text/markdown")
    assert len(renders) == 3
