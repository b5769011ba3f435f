"""An upstream index that has every project: any `/simple/<name>/` is a page.

    python tests/security/echo_upstream.py PORT

It answers each project page with a PEP 691 JSON page of that name and no
files, whatever the name (however long), and `/simple/` with an empty list:
the upstream a hostile or careless index could be. Standard library only.
"""

from __future__ import annotations

import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

JSON_TYPE = "application/vnd.pypi.simple.v1+json"


class Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        meta = {"api-version": "1.1"}
        if path.rstrip("/") == "/simple":
            page: dict[str, object] = {"meta": meta, "projects": []}
        else:
            name = path.rstrip("/").rsplit("/", 1)[-1]
            page = {"meta": meta, "name": name, "files": [], "versions": []}
        body = json.dumps(page).encode()
        self.send_response(200)
        self.send_header("Content-Type", JSON_TYPE)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        return


if __name__ == "__main__":
    ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
