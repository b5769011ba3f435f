"""An upstream index that records every request it gets, behind Basic credentials.

    python -m tests.security.recording_upstream PORT USER PASSWORD

Serves, as PEP 691 JSON, one project, `public-thing`, with one wheel (built at
start), to requests carrying `Authorization: Basic USER:PASSWORD` (401
otherwise). `GET /_log` (no credentials needed) returns the paths of every
other request received so far, as a JSON list: a test asks it whether packyard
went to the upstream. Standard library and the test builders only.
"""

from __future__ import annotations

import base64
import hashlib
import json
import sys
import tempfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx

from tests.builders import build_wheel
from tests.e2e.servers import PYTHON, ServerProcess, free_port

JSON_TYPE = "application/vnd.pypi.simple.v1+json"
PROJECT = "public-thing"


class RecordingUpstream(ServerProcess):
    """The upstream as a process on 127.0.0.1, with `user:password` required."""

    def __init__(self, root: Path, user: str, password: str) -> None:
        port = free_port()
        argv = [PYTHON, "-m", "tests.security.recording_upstream", str(port), user, password]
        super().__init__(argv, port, root / f"recording-upstream-{port}.log", "/_log")
        self.user = user
        self.password = password

    @property
    def index_url_with_credentials(self) -> str:
        return f"http://{self.user}:{self.password}@127.0.0.1:{self.port}/simple/"

    def requests(self) -> list[str]:
        """The paths asked for so far (not counting `/_log`)."""
        paths: list[str] = httpx.get(self.url + "/_log", timeout=5).json()
        return paths


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    expected: str
    wheel: Path
    log: list[str]
    lock: threading.Lock

    def do_GET(self) -> None:
        if self.path == "/_log":
            with self.lock:
                self._send(200, json.dumps(self.log).encode(), "application/json")
            return
        with self.lock:
            self.log.append(self.path)
        if self.headers.get("Authorization") != self.expected:
            self._send(401, b"credentials needed\n", "text/plain")
            return
        if self.path == "/simple/":
            body = {"meta": {"api-version": "1.1"}, "projects": [{"name": PROJECT}]}
            self._send(200, json.dumps(body).encode(), JSON_TYPE)
        elif self.path == f"/simple/{PROJECT}/":
            data = self.wheel.read_bytes()
            file = {
                "filename": self.wheel.name,
                "url": f"/files/{self.wheel.name}",
                "hashes": {"sha256": hashlib.sha256(data).hexdigest()},
                "size": len(data),
            }
            body = {"meta": {"api-version": "1.1"}, "name": PROJECT, "files": [file]}
            body["versions"] = ["1.0"]
            self._send(200, json.dumps(body).encode(), JSON_TYPE)
        elif self.path == f"/files/{self.wheel.name}":
            self._send(200, self.wheel.read_bytes(), "application/octet-stream")
        else:
            self._send(404, b"not found\n", "text/plain")

    def log_message(self, format: str, *args: object) -> None:
        return

    def _send(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def main(port: int, user: str, password: str) -> None:
    directory = Path(tempfile.mkdtemp(prefix="recording-upstream-"))
    Handler.wheel = build_wheel(directory, PROJECT, "1.0", summary="A public package")
    Handler.expected = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
    Handler.log = []
    Handler.lock = threading.Lock()
    ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()


if __name__ == "__main__":
    main(int(sys.argv[1]), sys.argv[2], sys.argv[3])
