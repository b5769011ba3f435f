"""HTTP-level limits, proven with raw sockets against a real `packyard serve`.

An attacker on the network sends huge or endless request heads, sends them a
byte at a time (slowloris), opens connections and says nothing, or opens more
connections than a worker can serve; and asks for project names of any length,
which once ended in ENAMETOOLONG and a 500. The server runs with small limits
from its `[http]` settings, so each is cheap to reach; its upstream has every
project, however long its name (`echo_upstream.py`).
"""

from __future__ import annotations

import hashlib
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.e2e.servers import (
    PYTHON,
    PackyardProcess,
    ServerProcess,
    clean_environment,
    free_port,
    packyard,
)
from tests.unit.publish.test_multipart import encode

pytestmark = pytest.mark.e2e

HEADER_LIMIT = 2048
LINE_LIMIT = 8192  # the default: long project names below reach the app
HEADER_TIMEOUT = 1.0
KEEP_ALIVE = 1
MAX_CONNECTIONS = 4
LONG_NAME = "a" * 5000
UPSTREAM = Path(__file__).with_name("echo_upstream.py")


@dataclass
class Site:
    server: PackyardProcess
    token: str

    @property
    def address(self) -> tuple[str, int]:
        return ("127.0.0.1", self.server.port)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    root = tmp_path_factory.mktemp("http-limits")
    config = root / "packyard.toml"
    config.write_text(
        "[http]\n"
        f"max_header_bytes = {HEADER_LIMIT}\n"
        f"max_request_line_bytes = {LINE_LIMIT}\n"
        f"header_timeout = {HEADER_TIMEOUT}\n"
        f"keep_alive_timeout = {KEEP_ALIVE}\n"
        f"max_connections = {MAX_CONNECTIONS}\n"
    )
    port = free_port()
    upstream = ServerProcess(
        [PYTHON, str(UPSTREAM), str(port)], port, root / "upstream.log", "/simple/"
    )
    with upstream:
        server = PackyardProcess(root / "data", upstreams=[upstream.url + "/simple/"])
        server.environment["PACKYARD_CONFIG"] = str(config)
        data = ["--data-dir", str(server.data_dir)]
        env = clean_environment(PACKYARD_CONFIG=str(config))
        server.init()
        made = packyard("user", "add", "alice", *data, env=env)
        assert made.returncode == 0, made.stderr
        created = packyard("token", "create", "alice", *data, env=env)
        assert created.returncode == 0, created.stderr
        with server:
            yield Site(server, created.stdout.strip().splitlines()[-1])


def connect(site: Site) -> socket.socket:
    return socket.create_connection(site.address, timeout=10)


def read_response(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection (or 10 s pass)."""
    chunks = []
    try:
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    except (ConnectionResetError, TimeoutError):
        pass
    return b"".join(chunks)


def read_one_response(sock: socket.socket) -> bytes:
    """One whole response (head and Content-Length body) on a kept-alive connection."""
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(65536)
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(
        int(line.split(b":", 1)[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    while len(body) < length:
        body += sock.recv(65536)
    return head + b"\r\n\r\n" + body


def status_of(response: bytes) -> int:
    assert response.startswith(b"HTTP/1.1 "), response[:200]
    return int(response.split(b" ", 2)[1])


def send_all(sock: socket.socket, data: bytes) -> bool:
    """Send `data`; False when the server closed the connection on the way."""
    try:
        sock.sendall(data)
    except (BrokenPipeError, ConnectionResetError):
        return False
    return True


def test_header_fields_beyond_the_limit_get_431(site: Site) -> None:
    with connect(site) as sock:
        big = b"X-Padding: " + b"p" * (HEADER_LIMIT + 100) + b"\r\n"
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + big + b"\r\n")
        response = read_response(sock)
    assert status_of(response) == 431
    assert b"at most %d bytes" % HEADER_LIMIT in response


ATTACK_BYTES = 64 * 1024 * 1024


def test_a_head_that_never_ends_is_cut_off_at_the_limit(site: Site) -> None:
    with connect(site) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        sent = 0
        line = b"X-More: " + b"m" * 1000 + b"\r\n"
        while sent < ATTACK_BYTES and send_all(sock, line):
            sent += len(line)
        response = read_response(sock)
    assert status_of(response) == 431
    # Cut off before the attacker was done. How much was sent first is the
    # kernel's socket buffers and the scheduler's (megabytes on a loaded
    # machine), not the server's: it stops reading at the limit.
    assert sent < ATTACK_BYTES


def test_a_request_line_beyond_the_limit_gets_414(site: Site) -> None:
    with connect(site) as sock:
        target = b"/simple/" + b"a" * (LINE_LIMIT + 10) + b"/"
        sock.sendall(b"GET " + target + b" HTTP/1.1\r\nHost: x\r\n\r\n")
        response = read_response(sock)
    assert status_of(response) == 414


def test_a_slow_head_gets_408_after_the_header_timeout(site: Site) -> None:
    with connect(site) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        start = time.monotonic()
        # A byte every 0.2 s: every read is recent, but the head never ends.
        while time.monotonic() - start < 4 * HEADER_TIMEOUT and send_all(sock, b"s"):
            time.sleep(0.2)
        response = read_response(sock)
        elapsed = time.monotonic() - start
    assert status_of(response) == 408
    assert elapsed < 3 * HEADER_TIMEOUT


def test_a_connection_that_sends_nothing_is_closed(site: Site) -> None:
    with connect(site) as sock:
        start = time.monotonic()
        assert read_response(sock) == b""
        assert time.monotonic() - start < 3 * HEADER_TIMEOUT


def test_an_idle_kept_alive_connection_is_closed(site: Site) -> None:
    with connect(site) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        assert status_of(read_one_response(sock)) == 200
        start = time.monotonic()
        assert read_response(sock) == b""  # closed by the server, nothing more sent
        assert time.monotonic() - start < KEEP_ALIVE + 2


def test_a_connection_beyond_the_limit_gets_503_and_the_others_keep_working(
    site: Site,
) -> None:
    holders = [connect(site) for _ in range(MAX_CONNECTIONS)]
    try:
        time.sleep(0.1)
        with connect(site) as extra:
            extra.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            refused = read_response(extra)
        assert status_of(refused) == 503
        assert b"retry-after: 1" in refused.lower()
        # The connections already open are served.
        holders[0].sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert status_of(read_response(holders[0])) == 200
    finally:
        for sock in holders:
            sock.close()
    time.sleep(0.2)
    assert httpx.get(site.server.url + "/healthz").status_code == 200


@pytest.mark.parametrize(
    "path",
    [
        f"/simple/{LONG_NAME}/",
        f"/simple/{LONG_NAME[:201]}/",
        f"/files/{LONG_NAME}/{LONG_NAME[:10]}-1.0-py3-none-any.whl",
        f"/project/{LONG_NAME}/",
        f"/project/{LONG_NAME}/1.0/details",
    ],
)
def test_a_project_name_of_any_length_is_a_clean_404(site: Site, path: str) -> None:
    response = httpx.get(site.server.url + path, timeout=30)
    assert response.status_code == 404, response.text[:300]
    assert "at most 200 characters" in response.text


def test_an_upload_with_a_name_of_any_length_is_a_clean_400(site: Site) -> None:
    fields = [
        (":action", "file_upload"),
        ("protocol_version", "1"),
        ("metadata_version", "2.1"),
        ("name", LONG_NAME),
        ("version", "1.0"),
        ("filetype", "bdist_wheel"),
        ("pyversion", "py3"),
    ]
    content = b"PK\x05\x06" + bytes(18)
    fields.append(("sha256_digest", hashlib.sha256(content).hexdigest()))
    part = ("a-1.0-py3-none-any.whl", content, None)
    content_type, body = encode(fields, part)
    response = httpx.post(
        site.server.url + "/legacy/",
        content=body,
        headers={"content-type": content_type.decode()},
        auth=("__token__", site.token),
        timeout=30,
    )
    assert response.status_code == 400, response.text[:300]
    assert "at most 200 characters" in response.text
