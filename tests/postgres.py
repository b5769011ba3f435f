"""A throwaway PostgreSQL server for the test run (DESIGN §5: the real thing, never a mock).

    with running_postgres() as server:
        with server.database() as url:   # postgresql+psycopg://packyard@127.0.0.1:PORT/test_1
            ...

`running_postgres` starts one server from the binaries of Debian's `postgresql`
package (`/usr/lib/postgresql/<version>/bin`), in a fresh data directory under
the system's temporary folder, listening on 127.0.0.1 only, on a free port,
with durability switched off for speed (`fsync`, `synchronous_commit`,
`full_page_writes`): nothing here has to survive a crash. It is stopped and
its directory removed on exit, also after Ctrl-C. `server.database()` gives
each test an empty database of its own (`CREATE DATABASE` is a few
milliseconds) and drops it afterwards.

The server runs as the `postgres` OS user when the tests run as root
(`initdb` refuses root), as the current user otherwise.

Environment:
    PACKYARD_TEST_POSTGRES=skip  leave the PostgreSQL variants out (a quick local
        run); CI never sets it, and without it a missing PostgreSQL is an error.
"""

from __future__ import annotations

import atexit
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from itertools import count
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

SKIP_VARIABLE = "PACKYARD_TEST_POSTGRES"
BINARY_DIRECTORIES = Path("/usr/lib/postgresql")
SUPERUSER = "packyard"
SERVICE_ACCOUNT = "postgres"  # Debian's package creates it
START_TIMEOUT_SECONDS = 60
PORT_ATTEMPTS = 3

INSTALL_HINT = (
    "the PostgreSQL tests need PostgreSQL's server binaries in "
    f"{BINARY_DIRECTORIES}/<version>/bin: install Debian's package "
    "(`apt-get install postgresql`, which scripts/test.sh does), or set "
    f"{SKIP_VARIABLE}=skip to leave the PostgreSQL tests out of a quick local run"
)

# Test speed: a throwaway cluster needs no durability. More connections than the
# default 100, because a test may keep a few engines open until it ends.
SERVER_SETTINGS: Mapping[str, str] = {
    "listen_addresses": "'127.0.0.1'",
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "max_connections": "200",
    "shared_buffers": "32MB",
}


class PostgresUnavailable(RuntimeError):
    """PostgreSQL is not installed, or its server could not be started."""


def postgres_skipped() -> bool:
    """True when `PACKYARD_TEST_POSTGRES=skip` asks to leave the PostgreSQL tests out."""
    return os.environ.get(SKIP_VARIABLE, "").strip().lower() == "skip"


def find_binaries() -> Path:
    """The `bin` directory of the newest installed PostgreSQL server.

    Raises:
        PostgresUnavailable: no `initdb` and `pg_ctl` were found (the message says
            how to install them).
    """
    candidates = [
        directory
        for directory in BINARY_DIRECTORIES.glob("*/bin")
        if (directory / "initdb").is_file() and (directory / "pg_ctl").is_file()
    ]
    if not candidates:
        raise PostgresUnavailable(INSTALL_HINT)
    return max(candidates, key=lambda directory: _version_key(directory.parent.name))


def _version_key(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.split(".") if part.isdigit())


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class PostgresServer:
    """One running server and the databases made for tests on it.

    Use `running_postgres()` rather than this class directly: it guarantees `stop`.
    """

    def __init__(
        self,
        binaries: Path,
        root: Path,
        account: pwd.struct_passwd | None,
        settings: Mapping[str, str] | None = None,
    ) -> None:
        """`root` is an empty directory for the cluster; `account` is the OS user the
        server runs as, or None for the current user; `settings` replace or add
        to `SERVER_SETTINGS`."""
        self.settings = {**SERVER_SETTINGS, **(settings or {})}
        self.binaries = binaries
        self.root = root
        self.data = root / "data"
        self.sockets = root / "sockets"
        self.log = root / "server.log"
        self.port = 0
        self._account = account
        self._names = count(1)
        self._admin: psycopg.Connection[Any] | None = None
        self._running = False

    def url(self, database: str) -> str:
        """The SQLAlchemy URL of `database` on this server, over TCP on 127.0.0.1."""
        return f"postgresql+psycopg://{SUPERUSER}@127.0.0.1:{self.port}/{database}"

    def start(self) -> None:
        """Create the cluster and start the server; return once it accepts connections.

        Raises:
            PostgresUnavailable: `initdb` or `pg_ctl start` failed (their output and
                the server log are in the message).
        """
        for directory in (self.data, self.sockets):
            directory.mkdir()
        self._hand_over(self.root)
        self._run(
            "initdb",
            "--pgdata",
            str(self.data),
            "--username",
            SUPERUSER,
            "--auth",
            "trust",
            "--encoding",
            "UTF8",
            "--no-instructions",
        )
        settings = {**self.settings, "unix_socket_directories": f"'{self.sockets}'"}
        with (self.data / "postgresql.conf").open("a") as conf:
            conf.writelines(f"{key} = {value}\n" for key, value in settings.items())
        # A free port can be taken again before the server binds it: try another.
        for attempt in range(1, PORT_ATTEMPTS + 1):
            self.port = free_port()
            try:
                self._pg_ctl_start()
            except PostgresUnavailable:
                if attempt == PORT_ATTEMPTS or "already in use" not in self._log_text():
                    raise
            else:
                break
        self._running = True
        self._admin = psycopg.connect(
            host="127.0.0.1", port=self.port, user=SUPERUSER, dbname="postgres", autocommit=True
        )

    def _pg_ctl_start(self) -> None:
        self._run(
            "pg_ctl",
            "start",
            "--pgdata",
            str(self.data),
            "--log",
            str(self.log),
            "--wait",
            "--timeout",
            str(START_TIMEOUT_SECONDS),
            "-o",
            f"-p {self.port}",
        )

    def stop_for_a_while(self) -> None:
        """An outage: stop the server at once (`immediate`: no goodbye to its
        clients); `start_again` brings it back on the same port and data."""
        self._run("pg_ctl", "stop", "--pgdata", str(self.data), "--mode", "immediate")

    def start_again(self) -> None:
        """End an outage: start the stopped server again, and reconnect the admin session."""
        self._pg_ctl_start()
        if self._admin is not None:
            self._admin.close()
        self._admin = psycopg.connect(
            host="127.0.0.1", port=self.port, user=SUPERUSER, dbname="postgres", autocommit=True
        )

    @contextmanager
    def database(self) -> Iterator[str]:
        """An empty database of its own, as a SQLAlchemy URL; dropped afterwards,
        together with any connection still open to it."""
        if self._admin is None:
            raise RuntimeError("the server is not running")
        name = f"test_{next(self._names)}"
        self._admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        try:
            yield self.url(name)
        finally:
            if self._admin is not None and not self._admin.closed:
                drop = sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)")
                self._admin.execute(drop.format(sql.Identifier(name)))

    def stop(self) -> None:
        """Stop the server at once (no clean shutdown is needed) and delete its files.

        Safe to call more than once, and after a failed `start`.
        """
        if self._admin is not None:
            self._admin.close()
            self._admin = None
        if self._running:
            self._running = False
            # Already gone: the directory is removed below all the same.
            with suppress(PostgresUnavailable):
                self._run("pg_ctl", "stop", "--pgdata", str(self.data), "--mode", "immediate")
        shutil.rmtree(self.root, ignore_errors=True)

    def _run(self, program: str, *args: str) -> None:
        command = [str(self.binaries / program), *args]
        user = self._account
        try:
            subprocess.run(
                command,
                check=True,
                capture_output=True,
                text=True,
                timeout=START_TIMEOUT_SECONDS + 30,
                cwd=self.root,
                # Set in the child between fork and exec (no shell, no `su`).
                user=user.pw_uid if user else None,
                group=user.pw_gid if user else None,
                extra_groups=[] if user else None,
            )
        except subprocess.CalledProcessError as error:
            raise PostgresUnavailable(
                f"{' '.join(command)} failed ({error.returncode}):\n{error.stdout}{error.stderr}"
                f"\nserver log:\n{self._log_text()}"
            ) from error
        except subprocess.TimeoutExpired as error:
            raise PostgresUnavailable(f"{' '.join(command)} timed out") from error

    def _hand_over(self, directory: Path) -> None:
        if self._account is None:
            return
        for path in (directory, *directory.rglob("*")):
            os.chown(path, self._account.pw_uid, self._account.pw_gid)

    def _log_text(self) -> str:
        try:
            return self.log.read_text(errors="replace")
        except OSError:
            return "(no log)"


def server_account() -> pwd.struct_passwd | None:
    """The OS user to run the server as: `postgres` when we are root, else None (us).

    Raises:
        PostgresUnavailable: running as root and there is no `postgres` user.
    """
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam(SERVICE_ACCOUNT)
    except KeyError:
        raise PostgresUnavailable(
            f"PostgreSQL refuses to run as root and there is no {SERVICE_ACCOUNT!r} user: "
            + INSTALL_HINT
        ) from None


@contextmanager
def running_postgres(settings: Mapping[str, str] | None = None) -> Iterator[PostgresServer]:
    """Start a throwaway server; stop it and delete its files when the block ends.
    `settings` replace or add to `SERVER_SETTINGS` (a benchmark's memory, say).

    Raises:
        PostgresUnavailable: PostgreSQL is not installed or did not start.
    """
    binaries = find_binaries()
    account = server_account()
    root = Path(tempfile.mkdtemp(prefix="packyard-pg-"))
    server = PostgresServer(binaries, root, account, settings)
    # Also when the interpreter exits without unwinding this block.
    atexit.register(server.stop)
    try:
        server.start()
        yield server
    finally:
        server.stop()
        atexit.unregister(server.stop)
