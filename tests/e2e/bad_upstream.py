"""A misbehaving upstream index, run as its own process: one fault per project.

    python -m tests.e2e.bad_upstream PORT

Each project's page (PEP 691 JSON) lists one file, `<project>-1.0.tar.gz`,
with the sha256 and size of the true content; the fault is in how the page or
the file is then sent:

| project | fault |
|---|---|
| `drop-mid-file` | the file's connection is dropped after a third of it |
| `wrong-length` | Content-Length announces the whole file, half of it is sent |
| `short-file` | a shorter file than the page's size, with a matching Content-Length |
| `html-as-json` | an HTML login page sent as `application/vnd.pypi.simple.v1+json` |
| `slow` | the page comes after `SLOW_SECONDS` (beyond the site's timeout) |
| `bad-hash` | the file's bytes do not match the page's sha256 |
| `good` | no fault |
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route
from starlette.types import Receive, Scope, Send
from typing_extensions import override

from tests.e2e.servers import PYTHON, ServerProcess, free_port

JSON_TYPE = "application/vnd.pypi.simple.v1+json"
FAULTS = ("drop-mid-file", "wrong-length", "short-file", "html-as-json", "slow", "bad-hash")
SLOW_SECONDS = 5.0
SIZE = 300 * 1024  # several chunks, so a fault can strike after the response started


def content(project: str) -> bytes:
    """The true bytes of the project's file."""
    return (project.encode() + b"\n") * (SIZE // (len(project) + 1))


def filename(project: str) -> str:
    return f"{project}-1.0.tar.gz"


async def page(request: Request) -> Response:
    project = request.path_params["project"]
    if project not in (*FAULTS, "good"):
        return Response("not found", status_code=404)
    if project == "slow":
        await asyncio.sleep(SLOW_SECONDS)
    if project == "html-as-json":
        return Response("<html><body>Please log in</body></html>", media_type=JSON_TYPE)
    body = content(project)
    entry = {
        "filename": filename(project),
        "url": f"/files/{project}/{filename(project)}",
        "hashes": {"sha256": hashlib.sha256(body).hexdigest()},
        "size": len(body),
    }
    data = {"meta": {"api-version": "1.1"}, "name": project, "files": [entry], "versions": ["1.0"]}
    return Response(json.dumps(data), media_type=JSON_TYPE)


async def file(request: Request) -> Response:
    project = request.path_params["project"]
    body = content(project)
    if project == "drop-mid-file":
        return StreamingResponse(_then_fail(body[: len(body) // 3]), headers=_length(len(body)))
    if project == "wrong-length":
        return _LyingResponse(body[: len(body) // 2], len(body))
    if project == "short-file":
        return Response(body[:-100], media_type="application/octet-stream")
    if project == "bad-hash":
        return Response(body[:-1] + b"!", media_type="application/octet-stream")
    return Response(body, media_type="application/octet-stream")


def _length(size: int) -> dict[str, str]:
    return {"Content-Length": str(size), "Content-Type": "application/octet-stream"}


async def _then_fail(part: bytes) -> AsyncIterator[bytes]:
    yield part
    await asyncio.sleep(0.1)
    raise ConnectionAbortedError("the upstream dropped the connection on purpose")


class _LyingResponse(Response):
    """Announces `announced` bytes, sends `body`, and ends the response."""

    def __init__(self, body: bytes, announced: int) -> None:
        super().__init__(body)
        self.announced = announced

    @override
    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = [(k.lower().encode(), v.encode()) for k, v in _length(self.announced).items()]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": self.body, "more_body": False})


app = Starlette(
    routes=[
        Route("/simple/", lambda request: Response("", media_type="text/html")),
        Route("/simple/{project}/", page),
        Route("/files/{project}/{filename}", file),
    ]
)


class BadUpstreamProcess(ServerProcess):
    """This module's app under uvicorn, on 127.0.0.1 in its own process."""

    def __init__(self, log_dir: Path) -> None:
        port = free_port()
        argv = [PYTHON, "-m", "tests.e2e.bad_upstream", str(port)]
        super().__init__(argv, port, log_dir / f"bad-upstream-{port}.log", "/simple/")

    @property
    def index_url(self) -> str:
        return self.url + "/simple/"


if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning")
