"""Configuration: a TOML file, `PACKYARD_*` environment variables and flags.

Precedence, lowest first: built-in defaults, the TOML file, the environment,
command-line flags. Everything is validated here, once, with pydantic; the
rest of the code receives a frozen `Settings`.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit, urlunsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from packyard.errors import ConfigurationError

DEFAULT_UPSTREAM = "https://pypi.org/simple/"
AdvisoryPolicy = Literal["warn", "yank", "hide", "deny"]
ENV_PREFIX = "PACKYARD_"


class UpstreamSettings(BaseModel):
    """One upstream index, in priority order after the local store."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    url: str
    name: str = ""
    timeout: float = Field(default=30.0, gt=0)
    # How long a fetched project page is served without asking the upstream again.
    page_ttl: float = Field(default=600.0, ge=0)
    # How long the upstream's "no such project" (404) is remembered before it is
    # asked again; at most page_ttl (repository/cache.py).
    not_found_ttl: float = Field(default=60.0, ge=0)
    # Curation (PolicyRepository): name globs; an empty allow-list allows every name.
    allow: tuple[str, ...] = ()
    deny: tuple[str, ...] = ()
    # Hide upstream files younger than this many days (by upload-time).
    cooldown_days: float = Field(default=0.0, ge=0)
    # Hosts ("host" or "host:port") the upstream's pages may point files at,
    # besides the upstream's own host; a bare host means its default port.
    # Files elsewhere are dropped and redirects elsewhere refused. None: none,
    # except files.pythonhosted.org for pypi.org (repository/upstream_hosts.py).
    file_hosts: tuple[str, ...] | None = None
    # What known vulnerabilities do to this upstream's files; None: `[advisories] policy`.
    advisories_policy: AdvisoryPolicy | None = None

    @field_validator("url")
    @classmethod
    def _http_url(cls, url: str) -> str:
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"upstream URL must start with http:// or https://, got {url!r}")
        return url if url.endswith("/") else url + "/"

    @field_validator("file_hosts")
    @classmethod
    def _hosts(cls, hosts: tuple[str, ...] | None) -> tuple[str, ...] | None:
        for host in hosts or ():
            try:
                parts = urlsplit("//" + host)
                valid = bool(parts.hostname) and parts.netloc == host and not parts.username
                valid = valid and parts.port != 0
            except ValueError:
                valid = False
            if not valid:
                raise ValueError(f"file_hosts entries are 'host' or 'host:port', got {host!r}")
        return hosts

    @property
    def label(self) -> str:
        """The name used in messages and pages: `name`, else the URL without credentials."""
        if self.name:
            return self.name
        parts = urlsplit(self.url)
        host = parts.hostname or ""
        if parts.port is not None:
            host = f"{host}:{parts.port}"
        return urlunsplit(parts._replace(netloc=host))


class OidcIssuerSettings(BaseModel):
    """A CI system whose ID tokens (JWT) may publish, e.g. a GitLab instance."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    issuer: str
    audience: str
    # Defaults to the issuer's OpenID discovery document.
    jwks_url: str | None = None
    # Claim value (glob) -> the projects a token with that value may publish.
    # The claim is `project_claim` (GitLab: `project_path`).
    project_claim: str = "project_path"
    projects: dict[str, tuple[str, ...]] = Field(default_factory=dict)
    # Only tokens whose `ref_claim` matches one of these globs may publish (empty: any).
    # GitLab's `ref` is a bare name for branches and tags alike: pair this with
    # `required_claims = {ref_type = ["tag"]}`, or a branch named `v1` passes `v*`.
    ref_claim: str = "ref"
    refs: tuple[str, ...] = ()
    # Claims a token must carry, each with the values (globs) allowed, e.g.
    # {ref_type = ["tag"], ref_protected = ["true"]}: only protected tags publish.
    # Booleans compare as "true"/"false", numbers as their decimal text.
    required_claims: dict[str, tuple[str, ...]] = Field(default_factory=dict)
    # Seconds: a token meant to live longer (exp - iat) is refused, so that a
    # leaked one is of use for at most this long. GitLab's ID tokens live as long
    # as the job may run; raise this for jobs with a longer timeout.
    max_token_lifetime: float = Field(default=3600.0, gt=0)
    # The issuer as Sigstore certificates name it, when it differs from `issuer`
    # (the URL packyard reaches the CI system by): PEP 740 attestations made by
    # this CI's jobs are verified against it (`attestations/publisher.py`).
    sigstore_issuer: str | None = None


class SsoProviderSettings(BaseModel):
    """An OpenID Connect provider people sign in with (`[[auth.sso]]`): Keycloak,
    Entra ID, ADFS, a laboratory SSO. docs/auth.md has the exact set-ups."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    # Shown on the button ("Sign in with <name>") and in the callback's path:
    # letters, digits, `-` and `_`.
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]{0,39}$")
    # The provider's issuer URL, exactly as its discovery document and ID tokens
    # say it; discovery is read from `<issuer>/.well-known/openid-configuration`
    # on first use, so a provider that is down does not stop packyard starting.
    issuer: str
    client_id: str
    # The client secret, or a file holding it (kept out of the TOML file).
    client_secret: str | None = None
    client_secret_file: Path | None = None
    scopes: tuple[str, ...] = ("openid", "profile", "email")
    # The claim that names the packyard user, lower-cased: it must be a valid
    # user name (letters, digits, `.`, `_`, `-`) once `strip_domain` is removed.
    user_claim: str = "preferred_username"
    # `@<domain>` removed from the end of the user claim (Entra ID's
    # `preferred_username` is the user principal name `alice@lab.example`).
    strip_domain: str | None = None
    # The claim listing the person's directory groups; None: groups come only from LDAP.
    groups_claim: str | None = "groups"
    email_claim: str = "email"
    full_name_claim: str = "name"
    # The claim naming the person's manager (a user name): their successor as the
    # owner of projects they leave behind. None: only LDAP's `manager_attribute`.
    manager_claim: str | None = None
    # A first sign-in whose user name belongs to a local account (made with
    # `packyard user add`) takes that account over, with its projects and
    # tokens. Off by default: it trusts the provider to assert that name.
    adopt_local_users: bool = False
    # Ask the provider's userinfo endpoint for claims the ID token lacks; false
    # for providers whose userinfo says little or refuses (ADFS).
    userinfo: bool = True
    # Seconds to wait for the provider (discovery, keys, token, userinfo).
    timeout_seconds: float = Field(default=10.0, gt=0)

    @field_validator("issuer")
    @classmethod
    def _issuer(cls, url: str) -> str:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"issuer must be an http:// or https:// URL, got {url!r}")
        return url

    def secret(self) -> str:
        """The client secret, read from `client_secret_file` when that is set.

        Raises:
            ConfigurationError: neither is set, or the file cannot be read.
        """
        return _secret_value(
            self.client_secret, self.client_secret_file, f"[[auth.sso]] {self.name}: client_secret"
        )


class LdapSettings(BaseModel):
    """A directory read for people's groups, e-mail and manager (`[auth.ldap]`)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    # `ldap://host:389` or `ldaps://host:636`.
    url: str = Field(pattern=r"^ldaps?://")
    # The account packyard binds as, and its password (or a file holding it);
    # no bind_dn: an anonymous bind.
    bind_dn: str | None = None
    bind_secret: str | None = None
    bind_secret_file: Path | None = None
    # Where people are, and the filter that finds one: `{username}` is replaced
    # by the user name, escaped (RFC 4515), never pasted in raw.
    base_dn: str
    user_filter: str = "(&(objectClass=inetOrgPerson)(uid={username}))"
    # Where groups are, and the filter that finds a person's: `{user_dn}` and
    # `{username}` are replaced, escaped. The group's name is `group_name_attribute`.
    group_base_dn: str | None = None
    group_filter: str = "(&(objectClass=groupOfNames)(member={user_dn}))"
    group_name_attribute: str = "cn"
    email_attribute: str = "mail"
    full_name_attribute: str = "cn"
    # The attribute holding the person's manager (a DN, whose `username_attribute`
    # is the manager's user name); None: not read.
    manager_attribute: str | None = "manager"
    username_attribute: str = "uid"
    # `ldap://` upgraded with StartTLS; the CA file that signs the server's
    # certificate (None: the system's); `tls_verify = false` only for tests.
    start_tls: bool = False
    ca_file: Path | None = None
    tls_verify: bool = True
    # Seconds for connecting and for each operation: a slow directory costs a
    # sign-in at most about twice this, then the groups kept from before are used.
    timeout_seconds: float = Field(default=5.0, gt=0)

    def secret(self) -> str | None:
        """The bind password, read from `bind_secret_file` when that is set.

        Raises:
            ConfigurationError: the file cannot be read.
        """
        if self.bind_secret is None and self.bind_secret_file is None:
            return None
        return _secret_value(self.bind_secret, self.bind_secret_file, "[auth.ldap] bind_secret")


class DirectoryGroupSettings(BaseModel):
    """Which directory groups (from the ID token or LDAP) become packyard groups
    (`[auth.directory_groups]`)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    # Directory group -> packyard group, e.g. {"Accelerator Controls" = "acc-controls"}.
    map: dict[str, str] = Field(default_factory=dict)
    # Globs: a directory group matching one becomes the packyard group of its own
    # name, lower-cased (a name that is not a valid group name is skipped).
    include: tuple[str, ...] = ()
    # Members of this directory group are packyard admins, for as long as they are.
    admins: str | None = None


class SuccessionSettings(BaseModel):
    """Who takes over the projects of a person who leaves (`[auth.succession]`)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    # The group given a departing person's projects when their manager is unknown
    # or cannot take them (not a user here, or disabled). None: they stay orphaned.
    fallback_group: str | None = None
    # Days since a directory user's last sign-in after which their projects are
    # handed over (they keep their account). None: never.
    max_inactive_days: int | None = Field(default=None, gt=0)
    # How often directory users are read again from LDAP (groups, removals) and
    # inactive ones looked for: one replica does it per period.
    refresh_minutes: float = Field(default=60.0, gt=0)


def _secret_value(value: str | None, file: Path | None, label: str) -> str:
    if file is not None:
        try:
            text = file.read_text().strip()
        except OSError as exc:
            raise ConfigurationError(f"{label}_file {file}: {exc.strerror or exc}") from exc
        if not text:
            raise ConfigurationError(f"{label}_file {file} is empty")
        return text
    if value:
        return value
    raise ConfigurationError(f"{label} (or {label}_file) must be set")


class AuthSettings(BaseModel):
    """Who may read and who may write."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    # When true, /simple/ and /files/ answer 401 with `WWW-Authenticate: Basic`
    # to requests without valid credentials.
    read_requires_auth: bool = False
    # How long a successful read sign-in is remembered per Authorization value,
    # so pip's password on every request costs one argon2 check, not one each
    # time; a disabled user or revoked token keeps read access that long. 0: off.
    credential_cache_seconds: float = Field(default=60.0, ge=0)
    # Failed password sign-ins (the admin form, Basic on /simple/, /legacy/ and
    # the API) counted per account and per client address within
    # `failed_sign_in_window_seconds`: past either limit, sign-ins for that account
    # or from that address are refused with 429 and Retry-After until the window
    # ends. Counted in the database, so alike in every worker and replica. 0: no limit.
    max_failed_sign_ins_per_account: int = Field(default=10, ge=0)
    max_failed_sign_ins_per_address: int = Field(default=50, ge=0)
    failed_sign_in_window_seconds: int = Field(default=300, gt=0)
    # Password checks (argon2id: ~50 ms of CPU and 64 MiB each) run at most this
    # many at a time per worker, and at most `password_check_queue` more wait;
    # beyond that a sign-in is answered 503 with Retry-After at once.
    password_check_threads: int = Field(default=4, ge=1)
    password_check_queue: int = Field(default=16, ge=0)
    # A failed Authorization value is answered from memory for this long (no
    # hashing, no database), per worker; keyed by a keyed hash of the value. 0: off.
    failed_credential_cache_seconds: float = Field(default=30.0, ge=0)
    oidc: tuple[OidcIssuerSettings, ...] = ()
    # People sign in with these OpenID Connect providers (docs/auth.md).
    sso: tuple[SsoProviderSettings, ...] = ()
    # false: no password sign-in at all (the admin form, Basic on every path):
    # people come in through `sso`, tools with API tokens.
    local_passwords: bool = True
    ldap: LdapSettings | None = None
    directory_groups: DirectoryGroupSettings = DirectoryGroupSettings()
    succession: SuccessionSettings = SuccessionSettings()

    @field_validator("sso")
    @classmethod
    def _unique_providers(
        cls, providers: tuple[SsoProviderSettings, ...]
    ) -> tuple[SsoProviderSettings, ...]:
        names = [provider.name for provider in providers]
        repeated = sorted({name for name in names if names.count(name) > 1})
        if repeated:
            raise ValueError(f"[[auth.sso]] names must differ: {', '.join(repeated)} repeated")
        return providers


class UploadSettings(BaseModel):
    """The legacy upload API (`/legacy/`)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    max_file_size: int = Field(default=1024**3, gt=0)
    # The README (the Description field) may be at most this many bytes (UTF-8):
    # it is rendered once, at upload, and shown on every project page.
    max_description_bytes: int = Field(default=4 * 1024**2, gt=0)
    # An archive's members may add up to at most this many times the file's own
    # size (any ratio below 16 MiB), and never more than `max_uncompressed_bytes`
    # (zip and tar bombs); at upload and on `packyard import`.
    max_uncompressed_ratio: float = Field(default=50.0, ge=1)
    max_uncompressed_bytes: int = Field(default=8 * 1024**3, gt=0)


AttestationRequirement = Literal["none", "ci", "all"]


class AttestationSettings(BaseModel):
    """PEP 740 attestations of uploads (`attestations/`)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    # A Sigstore `trusted_root.json`; None: the public-good instance's, as
    # bundled with the installed `sigstore` package. Never fetched: offline.
    trusted_root: Path | None = None
    # Which uploads must carry a verified attestation: none, those made with a
    # CI ID token, or all (only CI jobs can attest, so `all` admits CI uploads
    # alone). An admin may set it per project (`packyard attestations require`).
    require: AttestationRequirement = "none"


class HttpSettings(BaseModel):
    """Limits of every HTTP connection, per worker process (`http_protocol.py`)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    # The request line (method, target, version): longer ones get 414.
    max_request_line_bytes: int = Field(default=8 * 1024, ge=256)
    # All header fields of a request together: more get 431.
    max_header_bytes: int = Field(default=32 * 1024, ge=1024)
    # Seconds a client may take to send a request's line and headers, from the
    # connection or from the first byte of the request: slower ones get 408.
    header_timeout: float = Field(default=20.0, gt=0)
    # Seconds an idle kept-alive connection stays open between two requests.
    # Behind a load balancer, make it longer than the balancer's idle timeout.
    keep_alive_timeout: int = Field(default=15, ge=1)
    # Open connections per worker; a connection beyond them gets 503 and Retry-After.
    max_connections: int = Field(default=1000, ge=1)


class CacheSettings(BaseModel):
    """The server-side cache of upstream pages, metadata and files."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    # Upstream files are evicted, least recently used first, past this size.
    max_file_bytes: int = Field(default=50 * 1024**3, gt=0)
    # When an upstream page is fetched, read the METADATA of its newest release's
    # wheels (at most 3) at once, before a client asks for it: a cold resolution
    # then waits for one upstream round trip per project instead of two.
    metadata_read_ahead: bool = True
    # With the read-ahead: open the pages of the projects that metadata requires
    # (not those of extras), which are read ahead in turn, so a resolver finds
    # each dependency level fetched before it asks. Through the whole chain, so
    # an in-house name is never asked of an upstream.
    read_ahead_dependencies: bool = True


class TelemetrySettings(BaseModel):
    """Structured events and Prometheus metrics."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    # Event lines (downloads, page misses, upstream errors, audit); off: none at all.
    events: bool = True
    # None: JSON lines to standard output.
    events_file: Path | None = None
    # Size rotation of `events_file`: rotate past this many bytes, keep this many old files.
    events_max_bytes: int = Field(default=100 * 1024 * 1024, gt=0)
    events_backups: int = Field(default=5, ge=0)
    # Prometheus metrics at GET /metrics.
    metrics: bool = True
    # Who may read /metrics. None: anyone who reaches it (open). A file holding a
    # token: only requests with `Authorization: Bearer <token>` (Prometheus'
    # `authorization.credentials_file`); read at start.
    metrics_token_file: Path | None = None
    # "host:port": /metrics is served only on this separate address (e.g. a port
    # the load balancer does not expose), and the main port answers it like any
    # unknown path. None: on the main port.
    metrics_listen: str | None = None
    # Usage counts kept in the database per day (project pages' download charts,
    # the admin dashboard); each worker adds what it counted every this many seconds.
    usage: bool = True
    usage_flush_seconds: float = Field(default=5.0, gt=0, le=300)

    @field_validator("metrics_listen")
    @classmethod
    def _host_port(cls, value: str | None) -> str | None:
        if value is None:
            return None
        host, _, port = value.rpartition(":")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"metrics_listen must be host:port, got {value!r}")
        return value


class BrowserSettings(BaseModel):
    """The web pages and their search."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    # Public project names to make searchable before anyone has requested them.
    index_names: tuple[str, ...] = ()
    # The search index's SQLAlchemy URL; None: the store's database if it is
    # PostgreSQL, else SQLite in `<data_dir>/search.db`.
    search_url: str | None = None
    # Signs the admin pages' session cookies; None: a random secret made once and
    # kept in `<data_dir>/session-secret` (mode 0600), shared by workers and restarts.
    session_secret: str | None = None
    # Mark cookies `Secure` even when requests arrive over plain HTTP (TLS ends at
    # a proxy that does not pass the scheme on); HTTPS requests always get it.
    secure_cookies: bool = False
    # Hosts the README's images may be loaded from (Content-Security-Policy
    # `img-src` sources such as "https://img.shields.io" or "*.example.org");
    # by default only this server's own and data: images are shown, so that
    # viewing a page tells no other host who looked at what.
    image_hosts: tuple[str, ...] = ()

    @field_validator("image_hosts")
    @classmethod
    def _csp_sources(cls, hosts: tuple[str, ...]) -> tuple[str, ...]:
        # A CSP host-source (CSP3 §2.3.1): [scheme://]host[:port], the host may start
        # with "*."; nothing that could end the directive (spaces, ";", ",", quotes).
        source = re.compile(r"(https?://)?(\*\.)?[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*(:[0-9]{1,5})?")
        for host in hosts:
            if not source.fullmatch(host):
                raise ValueError(
                    f"image_hosts: {host!r} is not a host such as 'img.example.org', "
                    "'*.example.org' or 'https://img.example.org'"
                )
        return hosts


class S3Settings(BaseModel):
    """An S3-compatible object store (`storage_url = "s3://BUCKET/PREFIX"`).

    Each value left unset here comes from the standard variable named beside
    it, as every AWS SDK reads them; so a Kubernetes Secret can hold the keys.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    # AWS_ENDPOINT_URL (AWS_ENDPOINT_URL_S3 first): for SeaweedFS, MinIO, Ceph...
    endpoint_url: str | None = None
    # AWS_REGION (AWS_DEFAULT_REGION): most S3-compatible servers accept any.
    region: str | None = None
    # AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY; the secret may be read from a file.
    access_key_id: str | None = None
    secret_access_key: str | None = None
    secret_access_key_file: Path | None = None
    # Downloads of stored files answer 302 to a presigned URL of the object
    # instead of streaming through packyard: only for sites whose clients can
    # reach the store themselves.
    presigned_downloads: bool = False
    presigned_expiry_seconds: int = Field(default=300, gt=0, le=7 * 24 * 3600)
    # Replicas that serve /files/ (roles all, index) keep copies of the blobs they
    # serve in `<data_dir>/blob-copies/`, up to this many MiB (0: none), and serve
    # them from there (storage/local_copies.py): throw-away, checked by sha256.
    local_copies_mb: int = Field(default=4096, ge=0)


class AdvisorySettings(BaseModel):
    """Known vulnerabilities (OSV records): where they come from and what they do.

    `policy` applies to every upstream unless its own `advisories_policy` says
    otherwise, `local_policy` to in-house files: `warn` shows them only, `yank`
    serves affected files as yanked (PEP 592), `hide` leaves them out of pages,
    `deny` also refuses their download. Malicious-package records (`MAL-`) are
    always denied. See docs/advisories.md.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    # A directory, zip or record file, or an http(s) URL of a zip, re-imported
    # every `refresh_hours` by one replica; None: only `packyard advisories import`.
    source: str | None = None
    refresh_hours: float = Field(default=24.0, gt=0)
    policy: AdvisoryPolicy = "warn"
    local_policy: AdvisoryPolicy = "warn"
    # Refuse an in-house upload whose requirements admit only affected versions.
    refuse_uploads: bool = False


Role = Literal["all", "index", "upload", "browser"]
"""Which services a process serves (`packyard serve --role`): docs/operations.md."""


class Settings(BaseModel):
    """Every setting of a packyard process."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    workers: int = Field(default=1, ge=1)
    data_dir: Path = Path("packyard-data")
    database_url: str | None = None
    # Where blobs live: `file:///path` (default: the data directory) or
    # `s3://BUCKET/PREFIX` (with `[s3]`). See `storage/location.py`.
    storage_url: str | None = None
    # The services this process serves: all, or one of index, upload, browser.
    role: Role = "all"
    # Apply database migrations before serving (`packyard serve --no-migrate`
    # leaves that to a separate `packyard migrate` step).
    migrate: bool = True
    # On SIGTERM: stop accepting connections, then wait this long for
    # in-flight downloads and uploads before closing them.
    shutdown_grace_seconds: int = Field(default=30, ge=0)
    # A temporary file (or staging object) nothing wrote to for this long is a
    # crashed write's: removed at start and every temp_sweep_seconds (storage/sweep.py).
    stale_temp_seconds: float = Field(default=3600.0, gt=0)
    temp_sweep_seconds: float = Field(default=600.0, gt=0)
    upstreams: tuple[UpstreamSettings, ...] = (UpstreamSettings(url=DEFAULT_UPSTREAM, name="pypi"),)
    # Extra components, `module:callable`, applied in order around the built chain.
    components: tuple[str, ...] = ()
    log_level: str = "info"
    # This server's URL as clients reach it (e.g. "https://pypi.example.org/"):
    # pages and redirects use it for absolute URLs. None: they use relative URLs
    # only, never the request's Host header, which any client can set.
    public_url: str | None = None
    auth: AuthSettings = AuthSettings()
    upload: UploadSettings = UploadSettings()
    http: HttpSettings = HttpSettings()
    cache: CacheSettings = CacheSettings()
    telemetry: TelemetrySettings = TelemetrySettings()
    browser: BrowserSettings = BrowserSettings()
    s3: S3Settings = S3Settings()
    advisories: AdvisorySettings = AdvisorySettings()
    attestations: AttestationSettings = AttestationSettings()

    @field_validator("public_url")
    @classmethod
    def _public_url(cls, url: str | None) -> str | None:
        if not url:
            return None
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"public_url must be an http:// or https:// URL, got {url!r}")
        if parts.username or parts.password or parts.query or parts.fragment:
            raise ValueError(f"public_url must have no credentials, query or fragment, got {url!r}")
        return url if url.endswith("/") else url + "/"

    @property
    def url_prefix(self) -> str:
        """The path of `public_url` without its last slash ("/pypi"; "" at the host's
        root): served as ASGI `root_path`, behind a proxy that strips it (server.py)."""
        return urlsplit(self.public_url).path.rstrip("/") if self.public_url else ""

    @property
    def resolved_database_url(self) -> str:
        """`database_url`, or SQLite in the data directory."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'packyard.db').resolve()}"


def _upstreams_from_urls(urls: list[str]) -> list[dict[str, Any]]:
    """`--upstream none` means no upstream at all; otherwise one entry per URL."""
    if [u.lower() for u in urls] == ["none"]:
        return []
    return [{"url": url} for url in urls]


# Top-level settings that `PACKYARD_<KEY>` sets.
_ENVIRONMENT_KEYS = (
    "host",
    "port",
    "workers",
    "data_dir",
    "database_url",
    "storage_url",
    "role",
    "log_level",
    "public_url",
)


def _from_environment(environ: Mapping[str, str]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for key in _ENVIRONMENT_KEYS:
        raw = environ.get(ENV_PREFIX + key.upper())
        if raw:
            values[key] = raw
    upstream = environ.get(ENV_PREFIX + "UPSTREAM")
    if upstream:
        values["upstreams"] = _upstreams_from_urls(upstream.split())
    return values


def load_settings(
    config_file: Path | None = None,
    overrides: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
) -> Settings:
    """Build the settings from the file, the environment and the flags.

    Args:
        config_file: a TOML file; None reads `PACKYARD_CONFIG` if set.
        overrides: values from command-line flags; None values are ignored.
            `upstreams` may be given as a list of URLs (`["none"]` for none).
        environ: the environment (defaults to `os.environ`).

    Raises:
        ConfigurationError: the file is missing or malformed, or a value is invalid.
    """
    env = os.environ if environ is None else environ
    if config_file is None and env.get(ENV_PREFIX + "CONFIG"):
        config_file = Path(env[ENV_PREFIX + "CONFIG"])
    values: dict[str, Any] = {}
    if config_file is not None:
        values.update(_read_toml(config_file))
    values.update(_from_environment(env))
    for key, value in (overrides or {}).items():
        if value is None or value == ():
            continue
        if key == "upstreams":
            value = _upstreams_from_urls(list(value))
        values[key] = value
    try:
        return Settings.model_validate(values)
    except ValidationError as exc:
        raise ConfigurationError(_describe(exc)) from exc


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as f:
            return tomllib.load(f)
    except FileNotFoundError as exc:
        raise ConfigurationError(f"configuration file {str(path)!r} does not exist") from exc
    except tomllib.TOMLDecodeError as exc:
        message = f"configuration file {str(path)!r} is not valid TOML: {exc}"
        raise ConfigurationError(message) from exc


def _describe(exc: ValidationError) -> str:
    problems = []
    for error in exc.errors():
        where = ".".join(str(part) for part in error["loc"]) or "configuration"
        problems.append(f"{where}: {error['msg']}")
    return "invalid configuration: " + "; ".join(problems)
