"""A static PEP 503 tree served over HTTP with byte ranges, counting the file bytes it sends.

    python tests/e2e/counting_upstream.py ROOT PORT [--ignore-ranges]

Serves `ROOT` (see `servers.write_static_tree`) on 127.0.0.1:PORT, with
`index.html` for directories. Unlike `python -m http.server` it honours
single byte ranges (RFC 9110 §14: `a-b`, `a-`, `-n`; 206 with Content-Range,
416 when unsatisfiable), unless `--ignore-ranges`, which answers every GET
with 200 and the whole file, as some servers do.

`GET /_sent` returns `{"bytes": n, "requests": n}`: the body bytes of
distribution files (not pages) actually written to clients, and the number
of file requests. Standard library only, so it runs in any interpreter.
"""

from __future__ import annotations

import json
import re
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

CHUNK = 64 * 1024
_RANGE = re.compile(r"bytes=(\d*)-(\d*)")


class Counter:
    """File bytes sent and file requests, shared by the handler threads."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.bytes = 0
        self.requests = 0

    def add(self, sent: int = 0, requests: int = 0) -> None:
        with self.lock:
            self.bytes += sent
            self.requests += requests


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    root: Path
    counter: Counter
    ignore_ranges: bool

    def do_HEAD(self) -> None:
        self._serve(head=True)

    def do_GET(self) -> None:
        self._serve(head=False)

    def log_message(self, format: str, *args: object) -> None:
        return  # quiet: the tests read the counter, not the log

    def _serve(self, head: bool) -> None:
        path = unquote(urlsplit(self.path).path)
        if path == "/_sent":
            with self.counter.lock:
                body = json.dumps({"bytes": self.counter.bytes, "requests": self.counter.requests})
            self._send(200, body.encode(), "application/json", head)
            return
        # Refuse `..` rather than resolving, so the tree may link to big files elsewhere.
        target = self.root / path.lstrip("/")
        if ".." in Path(path).parts or not target.exists():
            self._send(404, b"Not Found\n", "text/plain", head)
            return
        if target.is_dir():
            if not path.endswith("/"):
                self.send_response(301)
                self.send_header("Location", path + "/")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            target = target / "index.html"
        if target.suffix == ".html":
            self._send(200, target.read_bytes(), "text/html; charset=utf-8", head)
        else:
            self._send_file(target, head)

    def _send(self, status: int, body: bytes, content_type: str, head: bool) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if not head:
            self.wfile.write(body)

    def _send_file(self, target: Path, head: bool) -> None:
        size = target.stat().st_size
        self.counter.add(requests=1)
        try:
            wanted = None if self.ignore_ranges else _byte_range(self.headers.get("Range"), size)
        except Unsatisfiable:
            self.send_response(416)
            self.send_header("Content-Range", f"bytes */{size}")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        start, end = (0, size - 1) if wanted is None else wanted
        self.send_response(200 if wanted is None else 206)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(end - start + 1))
        if not self.ignore_ranges:
            self.send_header("Accept-Ranges", "bytes")
        if wanted is not None:
            self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
        self.end_headers()
        if not head:
            self._copy(target, start, end - start + 1)

    def _copy(self, target: Path, start: int, length: int) -> None:
        with target.open("rb") as file:
            file.seek(start)
            while length > 0:
                chunk = file.read(min(CHUNK, length))
                if not chunk:
                    return
                try:
                    self.wfile.write(chunk)
                except OSError:  # the client went away: count only what it took
                    self.close_connection = True
                    return
                self.counter.add(sent=len(chunk))
                length -= len(chunk)


class Unsatisfiable(Exception):
    """The range lies outside the file (416)."""


def _byte_range(header: str | None, size: int) -> tuple[int, int] | None:
    """The single range of `header` as (start, end); None for the whole file.

    Raises:
        Unsatisfiable: the range starts past the end, or is an empty suffix.
    """
    match = _RANGE.fullmatch((header or "").strip())
    if match is None or not (match[1] or match[2]):
        return None
    if not match[1]:  # suffix: the last n bytes
        length = int(match[2])
        if not length or not size:
            raise Unsatisfiable
        return max(size - length, 0), size - 1
    start = int(match[1])
    end = min(int(match[2]), size - 1) if match[2] else size - 1
    if start >= size or end < start:
        raise Unsatisfiable
    return start, end


def main(argv: list[str]) -> None:
    root, port = Path(argv[0]).resolve(), int(argv[1])
    Handler.root = root
    Handler.counter = Counter()
    Handler.ignore_ranges = "--ignore-ranges" in argv[2:]
    with ThreadingHTTPServer(("127.0.0.1", port), Handler) as server:
        server.daemon_threads = True
        server.serve_forever()


if __name__ == "__main__":
    main(sys.argv[1:])
