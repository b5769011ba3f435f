"""Static files of the browser under content-hashed URLs: `/static/<hash>/app.css`.

The hash is of the file's bytes, so a URL always names the same bytes and
can be cached for a year (`immutable`); a new release changes the URL. A
URL with another hash (an old page after an upgrade) gets 404.
"""

from __future__ import annotations

import hashlib
import mimetypes
from dataclasses import dataclass
from importlib.resources import files

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

LONG_CACHE = "public, max-age=31536000, immutable"
_TYPES = {".css": "text/css; charset=utf-8", ".js": "text/javascript; charset=utf-8"}


@dataclass(frozen=True, slots=True)
class Asset:
    name: str
    content: bytes
    digest: str
    content_type: str


class StaticAssets:
    """Every file of the `packyard/static` package directory, read once."""

    def __init__(self, package: str = "packyard", directory: str = "static") -> None:
        self._assets: dict[str, Asset] = {}
        for entry in files(package).joinpath(directory).iterdir():
            if not entry.is_file() or entry.name.startswith((".", "_")):
                continue
            content = entry.read_bytes()
            suffix = "." + entry.name.rpartition(".")[2]
            kind = _TYPES.get(suffix) or mimetypes.guess_type(entry.name)[0]
            digest = hashlib.sha256(content).hexdigest()[:16]
            self._assets[entry.name] = Asset(
                entry.name, content, digest, kind or "application/octet-stream"
            )

    def url(self, name: str) -> str:
        """The versioned path of asset `name`. Raises KeyError for an unknown asset."""
        return f"/static/{self._assets[name].digest}/{name}"

    async def endpoint(self, request: Request) -> Response:
        """GET /static/{digest}/{name}: the asset with a year-long cache, else 404."""
        asset = self._assets.get(request.path_params["name"])
        if asset is None or asset.digest != request.path_params["digest"]:
            return PlainTextResponse("Not found.\n", status_code=404)
        headers = {"Cache-Control": LONG_CACHE, "X-Content-Type-Options": "nosniff"}
        return Response(asset.content, media_type=asset.content_type, headers=headers)
