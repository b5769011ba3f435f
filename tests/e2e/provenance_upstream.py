"""A static PEP 691 JSON upstream whose files carry PEP 740 provenance, as PyPI serves it.

Every distribution in `ROOT` is listed on its project's page; one with a
`<filename>.provenance` beside it gets a `provenance` key, the absolute URL
`/integrity/<filename>/provenance` of this server (PyPI's are on its own
host too), which serves that file. `/_asked` counts the provenance requests.
Run as a process: `python -m tests.e2e.provenance_upstream ROOT PORT`.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

from packaging.utils import canonicalize_name, parse_sdist_filename, parse_wheel_filename
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Route

from tests.e2e.servers import PYTHON, ServerProcess, free_port

JSON_TYPE = "application/vnd.pypi.simple.v1+json"
INTEGRITY_TYPE = "application/vnd.pypi.integrity.v1+json"


def project_of(filename: str) -> str:
    if filename.endswith(".whl"):
        return str(parse_wheel_filename(filename)[0])
    return str(canonicalize_name(parse_sdist_filename(filename)[0]))


def create_upstream(root: Path) -> Starlette:
    """The ASGI app serving the distributions in `root`."""
    dists = sorted(p for p in root.iterdir() if p.name.endswith((".whl", ".tar.gz")))
    projects: dict[str, list[Path]] = {}
    for path in dists:
        projects.setdefault(project_of(path.name), []).append(path)
    asked = {"provenance": 0}

    def page(content: object) -> Response:
        return Response(json.dumps(content), media_type=JSON_TYPE)

    async def project_list(request: Request) -> Response:
        names = [{"name": name} for name in projects]
        return page({"meta": {"api-version": "1.3"}, "projects": names})

    async def project(request: Request) -> Response:
        name = request.path_params["name"]
        if name not in projects:
            return Response("Not Found", status_code=404)
        files = []
        for path in projects[name]:
            entry: dict[str, object] = {
                "filename": path.name,
                "url": f"../../files/{path.name}",
                "hashes": {"sha256": hashlib.sha256(path.read_bytes()).hexdigest()},
                "size": path.stat().st_size,
            }
            if (root / f"{path.name}.provenance").is_file():
                entry["provenance"] = f"{request.base_url}integrity/{path.name}/provenance"
            files.append(entry)
        return page({"meta": {"api-version": "1.3"}, "name": name, "files": files})

    async def file(request: Request) -> Response:
        path = root / Path(request.path_params["filename"]).name
        if not path.is_file():
            return Response("Not Found", status_code=404)
        return FileResponse(path, media_type="application/octet-stream")

    async def provenance(request: Request) -> Response:
        asked["provenance"] += 1
        path = root / (Path(request.path_params["filename"]).name + ".provenance")
        if not path.is_file():
            return Response("Not Found", status_code=404)
        return Response(path.read_bytes(), media_type=INTEGRITY_TYPE)

    async def counts(request: Request) -> Response:
        return JSONResponse(asked)

    return Starlette(
        routes=[
            Route("/simple/", project_list),
            Route("/simple/{name}/", project),
            Route("/files/{filename}", file, methods=["GET", "HEAD"]),
            Route("/integrity/{filename}/provenance", provenance),
            Route("/_asked", counts),
        ]
    )


class ProvenanceUpstreamProcess(ServerProcess):
    """`create_upstream(root)` under uvicorn, on 127.0.0.1."""

    def __init__(self, root: Path) -> None:
        port = free_port()
        argv = [PYTHON, "-m", "tests.e2e.provenance_upstream", str(root), str(port)]
        super().__init__(argv, port, root.parent / f"provenance-upstream-{port}.log", "/simple/")

    @property
    def index_url(self) -> str:
        return self.url + "/simple/"


if __name__ == "__main__":
    import uvicorn

    root, port = Path(sys.argv[1]), int(sys.argv[2])
    uvicorn.run(create_upstream(root), host="127.0.0.1", port=port, log_level="warning")
