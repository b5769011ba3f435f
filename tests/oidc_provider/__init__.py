"""A real OpenID Connect provider for end-to-end tests of "Sign in with <provider>".

    with running_oidc_provider(tmp_path) as provider:
        provider.add_client("packyard", "s3cret", ["http://127.0.0.1:8000/callback"])
        provider.add_user(OidcUser("alice", "pw", "alice@lab.example", "Alice A", ["dev"]))
        ...  # sign in through provider.issuer (discovery at provider.discovery_url)
        provider.set_groups("alice", ["dev", "ops"])  # seen by alice's next sign-in
        provider.stop(); ...; provider.start()        # down, then back on the same port

It is django-oidc-provider (a certified-style OP: authorization code flow with
PKCE, state, nonce, RS256 ID tokens and a JWKS, userinfo, refresh tokens,
end-session) in a minimal Django project (`settings.py`, `urls.py`, templates),
run as its own process by Django's threaded server on 127.0.0.1 (`serve.py`),
with its SQLite database, directory file and log under the given directory.

The directory (users and clients) is a JSON file this side rewrites; the
provider brings its database in line with it at its next request
(`directory.py`), so every change is instant and allowed while it is stopped.
Scopes give these claims, in the userinfo answer and (unless
`claims_in_id_token=False`) in the ID token: `profile`: preferred_username,
name, nickname, manager (absent when None); `email`: email, email_verified;
`groups`: groups (a list, maybe empty). `sub` is `OidcUser.subject`.

Every client must consent on a user's first sign-in (then consent is reused):
a browser meets the login page, then the consent page. Their selectors:
    login:   input[name=username], input[name=password], button#login
             (a wrong password shows p#login-error)
    consent: button#allow, button#decline
"""

from __future__ import annotations

import atexit
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx

__all__ = [
    "OidcClient",
    "OidcProvider",
    "OidcProviderError",
    "OidcUser",
    "running_oidc_provider",
    "start_oidc_provider",
]

REPOSITORY = Path(__file__).resolve().parents[2]
START_TIMEOUT_SECONDS = 30.0
STOP_TIMEOUT_SECONDS = 5.0
PORT_ATTEMPTS = 3


class OidcProviderError(RuntimeError):
    """The provider did not start (the message ends with its log)."""


@dataclass
class OidcUser:
    """A person in the provider's directory. `subject` (the ID token's `sub`)
    defaults to a UUID derived from the user name: stable across restarts and
    across removing and adding the user again, as a directory's object id is."""

    username: str
    password: str
    email: str
    name: str
    groups: list[str] = field(default_factory=list)
    manager: str | None = None
    subject: str = ""

    def __post_init__(self) -> None:
        if not self.subject:
            self.subject = str(uuid.uuid5(uuid.NAMESPACE_URL, f"oidc-test-user:{self.username}"))


@dataclass
class OidcClient:
    """A relying party registered with the provider. No secret: a public client
    (which the library asks for consent at every sign-in)."""

    client_id: str
    client_secret: str
    redirect_uris: list[str]


class OidcProvider:
    """One provider process and its directory. Prefer `running_oidc_provider`,
    which guarantees `stop`; `start` may be called again after `stop`."""

    def __init__(self, state_dir: Path, *, claims_in_id_token: bool = True) -> None:
        self.state_dir = state_dir
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = state_dir / "provider.log"
        self.directory_path = state_dir / "directory.json"
        self.claims_in_id_token = claims_in_id_token
        self.users: dict[str, OidcUser] = {}
        self.clients: dict[str, OidcClient] = {}
        self.port = 0
        self._secret_key = secrets.token_urlsafe(32)
        self._process: subprocess.Popen[bytes] | None = None
        self._write_directory()

    @property
    def url(self) -> str:
        """The site's root, e.g. http://127.0.0.1:PORT (its login page is /accounts/login/)."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def issuer(self) -> str:
        """Exactly the `issuer` of the discovery document and the ID tokens' `iss`."""
        return f"{self.url}/openid"

    @property
    def discovery_url(self) -> str:
        return f"{self.issuer}/.well-known/openid-configuration"

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    # The directory.

    def add_client(self, client_id: str, client_secret: str, redirect_uris: list[str]) -> None:
        """Registers (or replaces) a confidential client for the code flow; it
        authenticates at the token endpoint with client_secret_basic or _post.
        The library does not form-decode Basic credentials: keep the id and
        secret URL-safe, without `:`."""
        self.clients[client_id] = OidcClient(client_id, client_secret, list(redirect_uris))
        self._write_directory()

    def remove_client(self, client_id: str) -> None:
        del self.clients[client_id]
        self._write_directory()

    def add_user(self, user: OidcUser) -> None:
        """Adds the user, or replaces the one of that user name."""
        self.users[user.username] = user
        self._write_directory()

    def set_groups(self, username: str, groups: list[str]) -> None:
        self.users[username].groups = list(groups)
        self._write_directory()

    def set_manager(self, username: str, manager: str | None) -> None:
        self.users[username].manager = manager
        self._write_directory()

    def remove_user(self, username: str) -> None:
        """Removes the user: their sessions, consents and tokens at the provider
        end (userinfo then answers 401), and they can no longer sign in."""
        del self.users[username]
        self._write_directory()

    def _write_directory(self) -> None:
        document = {
            "users": {name: asdict(user) for name, user in self.users.items()},
            "clients": {
                client_id: {"secret": client.client_secret, "redirect_uris": client.redirect_uris}
                for client_id, client in self.clients.items()
            },
        }
        # Atomic: the provider never reads half a file.
        partial = self.directory_path.with_suffix(".partial")
        partial.write_text(json.dumps(document, indent=2))
        partial.replace(self.directory_path)

    # The process.

    def start(self) -> None:
        """Starts the provider and waits until discovery answers: on a free port
        the first time, on the same port after `stop`.

        Raises:
            OidcProviderError: it exited or did not answer in time.
        """
        if self.running:
            return
        if self.port:
            self._start_on(self.port)
            return
        for attempt in range(PORT_ATTEMPTS):
            self.port = _free_port()
            try:
                self._start_on(self.port)
                return
            except OidcProviderError:
                # Another process may have taken the port in between: try another.
                if attempt == PORT_ATTEMPTS - 1 or "already in use" not in self.log():
                    raise

    def _start_on(self, port: int) -> None:
        environment = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith("DJANGO_") and not key.startswith("OIDC_TEST_")
        }
        environment.update(
            DJANGO_SETTINGS_MODULE="tests.oidc_provider.settings",
            OIDC_TEST_STATE_DIR=str(self.state_dir),
            OIDC_TEST_SITE_URL=self.url,
            OIDC_TEST_SECRET_KEY=self._secret_key,
            OIDC_TEST_CLAIMS_IN_ID_TOKEN="1" if self.claims_in_id_token else "0",
            PYTHONUNBUFFERED="1",
        )
        with self.log_path.open("ab") as log:
            log.write(f"=== starting on port {port}\n".encode())
            log.flush()
            self._process = subprocess.Popen(
                [sys.executable, "-m", "tests.oidc_provider.serve", str(port)],
                cwd=REPOSITORY,
                env=environment,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                # Its own process group, stopped as a whole; Ctrl-C reaches pytest only.
                start_new_session=True,
            )
        atexit.register(self.stop)
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        with httpx.Client(trust_env=False, timeout=2) as http:
            while time.monotonic() < deadline:
                if self._process.poll() is not None:
                    self._process = None
                    raise OidcProviderError(f"the OIDC provider exited:\n{self.log()}")
                with suppress(httpx.HTTPError):
                    if http.get(self.discovery_url).status_code == 200:
                        return
                time.sleep(0.05)
        self.stop()
        raise OidcProviderError(
            f"the OIDC provider did not answer in {START_TIMEOUT_SECONDS} s:\n{self.log()}"
        )

    def stop(self) -> None:
        """Stops the whole process group (the port then refuses connections)."""
        process, self._process = self._process, None
        if process is None:
            return
        atexit.unregister(self.stop)
        with suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(STOP_TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:
            with suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()

    def log(self) -> str:
        """The provider's log so far (requests, and why a flow was refused)."""
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def discovery(self) -> dict[str, Any]:
        """The discovery document, as a relying party reads it."""
        with httpx.Client(trust_env=False) as http:
            response = http.get(self.discovery_url)
            response.raise_for_status()
            document: dict[str, Any] = response.json()
            return document


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_oidc_provider(tmp_path: Path, *, claims_in_id_token: bool = True) -> OidcProvider:
    """A started provider whose state and log are in `tmp_path / "oidc-provider"`;
    the caller must `stop` it."""
    provider = OidcProvider(tmp_path / "oidc-provider", claims_in_id_token=claims_in_id_token)
    provider.start()
    return provider


@contextmanager
def running_oidc_provider(
    tmp_path: Path, *, claims_in_id_token: bool = True
) -> Iterator[OidcProvider]:
    """`start_oidc_provider`, stopped on exit. As a fixture:

    @pytest.fixture
    def oidc_provider(tmp_path: Path) -> Iterator[OidcProvider]:
        with running_oidc_provider(tmp_path) as provider:
            yield provider
    """
    provider = start_oidc_provider(tmp_path, claims_in_id_token=claims_in_id_token)
    try:
        yield provider
    finally:
        provider.stop()
