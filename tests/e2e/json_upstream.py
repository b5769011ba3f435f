"""A static PEP 691 JSON upstream whose files carry chosen `upload-time` values.

Curation and snapshots depend on upload times, which an index stamps when a
file arrives and which a test cannot wait for. This small server publishes
wheels with the upload times a test chooses:

    write_manifest(root, [(wheel_path, datetime(2024, 1, 10, tzinfo=UTC)), ...])
    with JsonUpstreamProcess(root) as upstream:
        ... upstream.index_url ...

It serves `/simple/` and `/simple/<project>/` as `application/vnd.pypi.simple.v1+json`
(API 1.1: `size`, `upload-time`, `versions`) and `/files/<filename>` with
Starlette's `FileResponse` (HEAD and byte ranges included). Run as a process:
`python -m tests.e2e.json_upstream ROOT PORT`.
"""

from __future__ import annotations

import json
import shutil
import sys
from datetime import UTC, datetime
from hashlib import sha256
from pathlib import Path

from packaging.utils import canonicalize_name, parse_wheel_filename
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import Route

from tests.e2e.servers import PYTHON, ServerProcess, free_port

JSON_TYPE = "application/vnd.pypi.simple.v1+json"


def write_manifest(root: Path, files: list[tuple[Path, datetime]]) -> None:
    """Copy `files` under `root/files/` and record their project, hash and upload time."""
    (root / "files").mkdir(parents=True, exist_ok=True)
    entries = []
    for path, uploaded in files:
        shutil.copyfile(path, root / "files" / path.name)
        entries.append(
            {
                "project": str(parse_wheel_filename(path.name)[0]),
                "version": str(parse_wheel_filename(path.name)[1]),
                "filename": path.name,
                "sha256": sha256(path.read_bytes()).hexdigest(),
                "size": path.stat().st_size,
                "upload-time": uploaded.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            }
        )
    (root / "manifest.json").write_text(json.dumps(entries))


def create_upstream(root: Path) -> Starlette:
    """The ASGI app serving the manifest in `root`."""
    entries: list[dict[str, object]] = json.loads((root / "manifest.json").read_text())
    projects: dict[str, list[dict[str, object]]] = {}
    for entry in entries:
        projects.setdefault(canonicalize_name(str(entry["project"])), []).append(entry)

    def page(content: object) -> Response:
        return Response(json.dumps(content), media_type=JSON_TYPE)

    async def project_list(request: Request) -> Response:
        names = [{"name": name} for name in projects]
        return page({"meta": {"api-version": "1.1"}, "projects": names})

    async def project(request: Request) -> Response:
        name = request.path_params["name"]
        if name not in projects:
            return Response("Not Found", status_code=404)
        files = [
            {
                "filename": entry["filename"],
                "url": f"../../files/{entry['filename']}",
                "hashes": {"sha256": entry["sha256"]},
                "size": entry["size"],
                "upload-time": entry["upload-time"],
            }
            for entry in projects[name]
        ]
        versions = sorted({str(entry["version"]) for entry in projects[name]})
        return page(
            {"meta": {"api-version": "1.1"}, "name": name, "versions": versions, "files": files}
        )

    async def file(request: Request) -> Response:
        path = root / "files" / Path(request.path_params["filename"]).name
        if not path.is_file():
            return Response("Not Found", status_code=404)
        return FileResponse(path, media_type="application/octet-stream")

    return Starlette(
        routes=[
            Route("/simple/", project_list),
            Route("/simple/{name}/", project),
            Route("/files/{filename}", file, methods=["GET", "HEAD"]),
        ]
    )


class JsonUpstreamProcess(ServerProcess):
    """`create_upstream(root)` under uvicorn, on 127.0.0.1."""

    def __init__(self, root: Path) -> None:
        port = free_port()
        argv = [PYTHON, "-m", "tests.e2e.json_upstream", str(root), str(port)]
        super().__init__(argv, port, root.parent / f"json-upstream-{port}.log", "/simple/")

    @property
    def index_url(self) -> str:
        return self.url + "/simple/"


if __name__ == "__main__":
    import uvicorn

    root, port = Path(sys.argv[1]), int(sys.argv[2])
    uvicorn.run(create_upstream(root), host="127.0.0.1", port=port, log_level="warning")
