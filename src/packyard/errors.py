"""The domain errors of packyard.

Components raise these, never HTTP errors; one table at the HTTP edge
(`routes/errors.py`) maps each class to a status code. Every message is
written for a person: it says what went wrong and, where it can, what to do.
"""

from sqlalchemy.exc import SQLAlchemyError


class PackyardError(Exception):
    """Base of every error packyard raises on purpose."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class NotFound(PackyardError):
    """The thing asked for does not exist here."""


class ProjectNotFound(NotFound):
    """No source knows this project."""

    def __init__(self, name: str) -> None:
        super().__init__(f"Project {name!r} was not found.")
        self.name = name


class FileNotFound(NotFound):
    """The project exists but has no file of that name."""

    def __init__(self, name: str, filename: str) -> None:
        super().__init__(f"File {filename!r} was not found in project {name!r}.")
        self.name = name
        self.filename = filename


class FileDenied(PackyardError):
    """A file whose download a policy refuses (403), such as a version affected
    by a known vulnerability under the `deny` advisory policy.

    `advisories` names the advisory ids behind the refusal and `source` the
    page's source (an upstream's label or `local`), for telemetry.
    """

    def __init__(
        self,
        name: str,
        filename: str,
        reason: str,
        *,
        advisories: tuple[str, ...] = (),
        source: str | None = None,
    ) -> None:
        super().__init__(f"{filename} of project {name!r} is refused: {reason}.")
        self.name = name
        self.filename = filename
        self.reason = reason
        self.advisories = advisories
        self.source = source


class InvalidName(PackyardError):
    """A project name that is not valid under the name-normalization spec."""

    def __init__(self, name: str) -> None:
        super().__init__(
            f"{name!r} is not a valid project name: names are ASCII letters, digits, "
            "'.', '_' and '-', and start and end with a letter or digit."
        )
        self.name = name


class UpstreamError(PackyardError):
    """An upstream index answered with something unusable (a 502 at the edge)."""

    def __init__(self, upstream: str, message: str) -> None:
        super().__init__(f"Upstream {upstream}: {message}")
        self.upstream = upstream


class UpstreamUnavailable(UpstreamError):
    """An upstream index could not be reached or timed out (a 503 at the edge)."""


class StoreUnavailable(PackyardError, OSError):
    """The blob store (an S3 bucket) could not be reached, timed out or answered
    with a server error (a 503 with Retry-After at the edge).

    Also an `OSError`: the blob store contract (`storage.base`) names OSError
    for a read or write that failed, and code that copes with one (a cache that
    serves without storing) copes with this too.
    """

    def __init__(self, store: str, reason: str) -> None:
        super().__init__(f"The blob store {store} is unavailable: {reason}")
        self.store = store


class StorageFull(StoreUnavailable):
    """A blob store, or the local directory a blob is spooled in, has no space
    left (ENOSPC, EDQUOT): a 507 Insufficient Storage at the edge, naming it.

    A `StoreUnavailable`, hence an `OSError`: a cache that serves without
    storing when its store fails does so when it is full too.
    """

    def __init__(self, place: str, filename: str) -> None:
        PackyardError.__init__(
            self,
            f"Insufficient storage: {place} is full, so {filename} could not be stored. "
            "An operator must free space there or enlarge it.",
        )
        self.store = place
        self.blob_name = filename  # not `filename`: OSError's str() would show that one


class DatabaseUnavailable(PackyardError, SQLAlchemyError):
    """The database could not be reached, or failed a query in a way that a retry
    may not (connection refused or lost, a timeout, a lock): a 503 with
    `Retry-After` at the edge. Raised for the driver's error by the engine
    itself (`db/engine.py`), so every caller sees this one domain error.

    Also a `SQLAlchemyError`: code that copes with a failing database (a
    cache that serves without recording what it served) copes with this too.
    """

    RETRY_AFTER = 5  # seconds: a restart or a failover is over in a few

    def __init__(self, reason: str) -> None:
        super().__init__(
            "The database does not answer, so this request cannot be served now: "
            "retry in a few seconds."
        )
        self.reason = reason  # the driver's words: for the log, not for clients


class BlobMissing(StoreUnavailable):
    """A file the database lists has no blob in the store: the two disagree (a
    restore that lost blobs, a bucket changed by hand). A 503, not a 404: the
    file exists, and an operator can put its blob back (`packyard verify`)."""

    def __init__(self, store: str, filename: str) -> None:
        PackyardError.__init__(
            self,
            f"The blob store {store} has lost the bytes of {filename}: "
            "an operator should run `packyard verify` and restore it.",
        )
        self.store = store


class NotAcceptable(PackyardError):
    """No representation matches the client's Accept header (406)."""


class RangeNotSatisfiable(PackyardError):
    """A byte range lies outside the file (416)."""

    def __init__(self, size: int) -> None:
        super().__init__(f"The requested range is not satisfiable: the file has {size} bytes.")
        self.size = size


class InvalidDistribution(PackyardError):
    """A wheel or sdist that cannot be read or is inconsistent with its name."""


class ConfigurationError(PackyardError):
    """The configuration file, environment or flags are not valid."""


class AuthenticationFailed(PackyardError):
    """No credentials, or credentials that are wrong, expired or revoked (401/403)."""


class PermissionDenied(PackyardError):
    """The identity is known but may not do this (403)."""


class Conflict(PackyardError):
    """The request conflicts with what is stored, e.g. a name taken meanwhile (409)."""


class InvalidRequest(PackyardError):
    """A request that is malformed or breaks a rule; the message says which (400)."""


class TooManyFailures(PackyardError):
    """Too many failed sign-ins for an account or from an address (429 with Retry-After)."""

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class Overloaded(PackyardError):
    """Too much of a costly kind of work is under way; try again shortly (503 with
    Retry-After), e.g. every password check slot is taken."""

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after
