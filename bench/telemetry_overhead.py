"""What the telemetry wrapper costs per request, measured in-process.

    python bench/telemetry_overhead.py [requests]

Drives a trivial ASGI app (one prepared 200 response, as a warm /simple/ page
is) with N fake requests, bare and inside `telemetry.asgi.Instrumented` with
metrics on and events off (a warm page emits no event), and prints the
difference per request in microseconds. The best of five runs is kept, since
a shared machine only ever adds time.
"""

from __future__ import annotations

import asyncio
import sys
import time
from typing import Any

from starlette.types import ASGIApp, Message

from packyard.telemetry.asgi import Instrumented
from packyard.telemetry.metrics import Metrics

_START = {"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]}
_BODY = {"type": "http.response.body", "body": b"ok"}
_SCOPE: dict[str, Any] = {
    "type": "http",
    "method": "GET",
    "path": "/simple/numpy/",
    "root_path": "",
    "headers": [],
}


async def _page(scope: Any, receive: Any, send: Any) -> None:
    await send(_START)
    await send(_BODY)


async def _receive() -> Message:
    return {"type": "http.request"}


async def _send(message: Message) -> None:
    return None


async def _run(app: ASGIApp, requests: int) -> float:
    start = time.perf_counter()
    for _ in range(requests):
        await app(_SCOPE, _receive, _send)
    return time.perf_counter() - start


async def main(requests: int) -> None:
    metrics = Metrics(environ={})
    wrapped = Instrumented(_page, metrics, None)
    bare_runs, wrapped_runs = [], []
    for _ in range(5):
        bare_runs.append(await _run(_page, requests))
        wrapped_runs.append(await _run(wrapped, requests))
    bare, instrumented = min(bare_runs), min(wrapped_runs)
    print(f"requests per run:      {requests}")
    print(f"bare app:              {bare / requests * 1e6:.3f} us/request")
    print(f"with telemetry:        {instrumented / requests * 1e6:.3f} us/request")
    print(f"telemetry overhead:    {(instrumented - bare) / requests * 1e6:.3f} us/request")
    assert sum(metrics.requests.counts.values()) == 5 * requests


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 100_000))
