"""`/healthz` and `/readyz`: is the process alive, and can it serve?

`/healthz` is liveness: the process is up and its event loop turns. It
touches no upstream and no database, so a database outage never makes an
orchestrator restart every replica at once.

`/readyz` is readiness: every part the process needs answers (the database,
with its schema at this code's revision; the blob store). Until then it
answers 503 with the reasons, and a load balancer sends it no traffic.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping

import anyio
from starlette.types import Receive, Scope, Send

from packyard.routes.asgi import send_response

ReadinessCheck = Callable[[], Awaitable[str | None]]
"""One part's check: None when it can serve, else the reason it cannot."""

CHECK_TIMEOUT_SECONDS = 3.0
_OK = b'{"status":"ok"}'
_HEADERS = [(b"content-type", b"application/json"), (b"cache-control", b"no-store")]
_ALLOW = [
    (b"allow", b"GET, HEAD"),
    (b"content-type", b"text/plain; charset=utf-8"),
    (b"cache-control", b"no-store"),
]


async def health(scope: Scope, receive: Receive, send: Send) -> None:
    """ASGI handler: 200 `{"status":"ok"}` for GET and HEAD, 405 otherwise."""
    method = scope["method"]
    if method in ("GET", "HEAD"):
        await send_response(send, 200, _HEADERS, _OK, head=method == "HEAD")
    else:
        await send_response(send, 405, _ALLOW, b"Method not allowed: use GET.\n")


class Readiness:
    """ASGI handler of `/readyz`: 200 when every check passes, else 503 with
    `{"status": "not ready", "reasons": {part: reason}}` and `Retry-After`.

    The checks run concurrently, each bounded by `timeout` seconds: a part
    that hangs is as unready as one that refuses.
    """

    def __init__(
        self, checks: Mapping[str, ReadinessCheck], timeout: float = CHECK_TIMEOUT_SECONDS
    ) -> None:
        self._checks = dict(checks)
        self._timeout = timeout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        method = scope["method"]
        if method not in ("GET", "HEAD"):
            await send_response(send, 405, _ALLOW, b"Method not allowed: use GET.\n")
            return
        reasons = await self.reasons()
        head = method == "HEAD"
        if not reasons:
            await send_response(send, 200, _HEADERS, b'{"status":"ready"}', head=head)
            return
        body = json.dumps({"status": "not ready", "reasons": reasons}).encode()
        headers = [*_HEADERS, (b"retry-after", b"5")]
        await send_response(send, 503, headers, body, head=head)

    async def reasons(self) -> dict[str, str]:
        """Each failing part and why."""
        reasons: dict[str, str] = {}

        async def run(name: str, check: ReadinessCheck) -> None:
            try:
                with anyio.fail_after(self._timeout):
                    problem = await check()
            except TimeoutError:
                problem = f"no answer within {self._timeout:g} s"
            except Exception as exc:  # a check that breaks is a part that is not ready
                problem = f"{type(exc).__name__}: {exc}"
            if problem is not None:
                reasons[name] = problem

        async with anyio.create_task_group() as group:
            for name, check in self._checks.items():
                group.start_soon(run, name, check)
        return dict(sorted(reasons.items()))
