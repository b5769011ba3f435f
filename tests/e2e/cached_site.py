"""A packyard process configured by a TOML file: one upstream, its cache settings."""

from __future__ import annotations

from pathlib import Path

from tests.e2e.servers import PackyardProcess


class ConfiguredPackyard(PackyardProcess):
    """`packyard serve --config <file>` with `upstream` as its only upstream.

    `page_ttl` 0 revalidates every page on every request (in the background),
    so a stopped upstream is noticed at once; `timeout` bounds upstream requests.
    """

    def __init__(
        self, data_dir: Path, upstream: str, *, page_ttl: float = 0.0, timeout: float = 30.0
    ) -> None:
        super().__init__(data_dir, upstreams=())
        config = data_dir.parent / f"{data_dir.name}.toml"
        config.write_text(
            f'[[upstreams]]\nurl = "{upstream}"\npage_ttl = {page_ttl}\ntimeout = {timeout}\n'
        )
        self.argv += ["--config", str(config)]

    def cached_blobs(self) -> list[Path]:
        """Committed files of the upstream file cache (temporary files excluded)."""
        root = self.data_dir / "cache" / "files"
        if not root.exists():
            return []
        return [p for p in root.rglob("*") if p.is_file() and ".tmp" not in p.parts]
