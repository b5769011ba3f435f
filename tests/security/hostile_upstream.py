"""A hostile upstream index and a stand-in internal service, each its own process.

    python -m tests.security.hostile_upstream upstream ROOT PORT INTERNAL_PORT
    python -m tests.security.hostile_upstream internal ROOT PORT

`write_wheels(root)` builds the wheels both serve. Byte ranges are honoured
(a hostile upstream has no reason to give itself away). The upstream's projects
(PEP 691 JSON, or PEP 503 HTML under `/html/`), one attack each:

- `acme` lists its own `acme-1.0` (with a provenance URL on the internal
  service), `acme-2.0` on the internal service (`127.0.0.1:INTERNAL_PORT`),
  `acme-3.0` on `localhost:INTERNAL_PORT`, and `othername-1.0` (another
  project's file);
- `redirected`: its file's URL answers 302 to the internal service;
- `badhash`: its file's bytes do not match the page's sha256 (sent slowly, in
  many chunks);
- `liar`: no size on the page; byte ranges are read from another wheel, whose
  METADATA requires `evil`; the whole file is the true one.

The internal service counts every request it gets (`GET /_hits`, not counted)
and serves the files under ROOT, so that it can also stand for a file host
an administrator allowed.
"""

from __future__ import annotations

import asyncio
import hashlib
import html
import json
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, RedirectResponse, Response, StreamingResponse
from starlette.routing import Route

from tests.builders import build_wheel
from tests.e2e.servers import PYTHON, ServerProcess, free_port

JSON_TYPE = "application/vnd.pypi.simple.v1+json"
BAD_SIZE = 600 * 1024  # many chunks, sent slowly: two clients overlap
TRUE_REQUIRES = "attrs"
LYING_REQUIRES = "evil"  # what the liar's byte ranges say it requires


def wheel_name(project: str, version: str = "1.0") -> str:
    return f"{project}-{version}-py3-none-any.whl"


def write_wheels(root: Path) -> None:
    """The wheels both processes serve, under `root/files/` (`root/lies/` for the liar's ranges)."""
    files, lies = root / "files", root / "lies"
    files.mkdir(parents=True, exist_ok=True)
    lies.mkdir(parents=True, exist_ok=True)
    for version in ("1.0", "2.0", "3.0"):
        build_wheel(files, "acme", version)
    build_wheel(files, "othername", "1.0")
    build_wheel(files, "redirected", "1.0")
    # Incompressible padding: the file is large and arrives in many chunks.
    padding = {"badhash/data.bin": hashlib.shake_256(b"pad").digest(BAD_SIZE)}
    bad = build_wheel(files, "badhash", "1.0", extra_files=padding).read_bytes()
    (root / "lies" / wheel_name("badhash")).write_bytes(bad[:-1] + bytes([bad[-1] ^ 1]))
    build_wheel(files, "liar", "1.0", requires_dist=(TRUE_REQUIRES,))
    build_wheel(lies, "liar", "1.0", requires_dist=(LYING_REQUIRES,))


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def upstream_app(root: Path, internal_port: int) -> Starlette:
    files = root / "files"
    internal = f"127.0.0.1:{internal_port}"

    def entry(filename: str, url: str, *, size: bool = True, **extra: object) -> dict[str, object]:
        path = files / filename
        found: dict[str, object] = {
            "filename": filename,
            "url": url,
            "hashes": {"sha256": sha256_of(path)},
        }
        if size:
            found["size"] = path.stat().st_size
        return {**found, **extra}

    def entries(project: str) -> list[dict[str, object]] | None:
        if project == "acme":
            return [
                entry(
                    wheel_name("acme"),
                    f"/files/{wheel_name('acme')}",
                    provenance=f"http://{internal}/provenance/acme-1.0",
                ),
                entry(
                    wheel_name("acme", "2.0"),
                    f"http://{internal}/files/{wheel_name('acme', '2.0')}",
                ),
                entry(
                    wheel_name("acme", "3.0"),
                    f"http://localhost:{internal_port}/files/{wheel_name('acme', '3.0')}",
                ),
                entry(wheel_name("othername"), f"/files/{wheel_name('othername')}"),
            ]
        if project == "redirected":
            return [entry(wheel_name("redirected"), f"/moved/{wheel_name('redirected')}")]
        if project == "badhash":
            return [entry(wheel_name("badhash"), f"/files/{wheel_name('badhash')}")]
        if project == "liar":
            return [entry(wheel_name("liar"), f"/files/{wheel_name('liar')}", size=False)]
        return None

    async def page(request: Request) -> Response:
        project = request.path_params["project"]
        found = entries(project)
        if found is None:
            return Response("not found", status_code=404)
        data = {"meta": {"api-version": "1.1"}, "name": project, "files": found}
        return Response(json.dumps(data), media_type=JSON_TYPE)

    async def html_page(request: Request) -> Response:
        found = entries(request.path_params["project"])
        if found is None:
            return Response("not found", status_code=404)
        anchors = []
        for item in found:
            hashes = item["hashes"]
            assert isinstance(hashes, dict)
            href = f"{item['url']}#sha256={hashes['sha256']}"
            provenance = item.get("provenance")
            extra = f' data-provenance="{html.escape(str(provenance))}"' if provenance else ""
            anchors.append(f'<a href="{html.escape(href)}"{extra}>{item["filename"]}</a>')
        return Response(
            "<html><body>" + "\n".join(anchors) + "</body></html>", media_type="text/html"
        )

    async def file(request: Request) -> Response:
        name = Path(request.path_params["filename"]).name
        path = files / name
        if not path.is_file():
            return Response("not found", status_code=404)
        if name == wheel_name("badhash"):
            lie = root / "lies" / name  # the page gives the true file's sha256
            if "range" in request.headers:  # ranges are honoured, as a real server does
                return FileResponse(lie)
            content = lie.read_bytes()
            return StreamingResponse(
                _slowly(content),
                headers={"Content-Length": str(len(content))},
                media_type="application/octet-stream",
            )
        if name == wheel_name("liar") and "range" in request.headers:
            return FileResponse(root / "lies" / name)  # Starlette honours the Range
        return FileResponse(path)

    async def moved(request: Request) -> Response:
        name = request.path_params["filename"]
        return RedirectResponse(f"http://{internal}/files/{name}", status_code=302)

    return Starlette(
        routes=[
            Route("/simple/", lambda request: Response("", media_type="text/html")),
            Route("/simple/{project}/", page),
            Route("/html/", lambda request: Response("", media_type="text/html")),
            Route("/html/{project}/", html_page),
            Route("/files/{filename}", file, methods=["GET", "HEAD"]),
            Route("/moved/{filename}", moved),
        ]
    )


async def _slowly(content: bytes) -> AsyncIterator[bytes]:
    step = 32 * 1024
    for start in range(0, len(content), step):
        yield content[start : start + step]
        await asyncio.sleep(0.02)


def internal_app(root: Path) -> Starlette:
    hits = {"count": 0}

    async def count(request: Request) -> Response:
        return Response(json.dumps(hits), media_type="application/json")

    async def anything(request: Request) -> Response:
        hits["count"] += 1
        path = root / "files" / Path(request.url.path).name
        if request.url.path.startswith("/files/") and path.is_file():
            return FileResponse(path)
        return Response("internal secret\n", media_type="text/plain")

    return Starlette(
        routes=[
            Route("/_hits", count),
            Route("/{path:path}", anything, methods=["GET", "HEAD"]),
        ]
    )


class HostileUpstream(ServerProcess):
    """`upstream_app` under uvicorn on 127.0.0.1."""

    def __init__(self, root: Path, internal_port: int) -> None:
        port = free_port()
        argv = [PYTHON, "-m", "tests.security.hostile_upstream", "upstream", str(root), str(port)]
        argv.append(str(internal_port))
        super().__init__(argv, port, root / f"hostile-{port}.log", "/simple/")

    @property
    def index_url(self) -> str:
        return self.url + "/simple/"


class InternalService(ServerProcess):
    """`internal_app` under uvicorn on 127.0.0.1: `hits` says how often it was contacted."""

    def __init__(self, root: Path) -> None:
        port = free_port()
        argv = [PYTHON, "-m", "tests.security.hostile_upstream", "internal", str(root), str(port)]
        super().__init__(argv, port, root / f"internal-{port}.log", "/_hits")

    def hits(self) -> int:
        import httpx

        return int(httpx.get(self.url + "/_hits", timeout=5).json()["count"])


def main(argv: list[str]) -> None:
    kind, root, port = argv[0], Path(argv[1]), int(argv[2])
    app = upstream_app(root, int(argv[3])) if kind == "upstream" else internal_app(root)
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main(sys.argv[1:])
