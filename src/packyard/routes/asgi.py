"""Small helpers for the raw ASGI handlers of the hot paths.

The index and file routes speak ASGI directly rather than through
Starlette's Request/Response objects: a warm project page is prepared bytes,
and the object layer would cost more than the page (bench/RESULTS.md).
"""

from __future__ import annotations

from starlette.types import Message, Receive, Scope, Send

Headers = list[tuple[bytes, bytes]]


def request_header(scope: Scope, name: bytes) -> bytes | None:
    """The first value of a request header (`name` in lower case), or None."""
    for key, value in scope["headers"]:
        if key == name:
            return value  # type: ignore[no-any-return]
    return None


async def send_response(
    send: Send, status: int, headers: Headers, body: bytes = b"", *, head: bool = False
) -> None:
    """Send a complete response; for HEAD the headers only, with the body's length."""
    headers = [*headers, (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": b"" if head else body})


async def drain(receive: Receive) -> None:
    """Read and drop a request body (GET/HEAD normally have none)."""
    message: Message = {"more_body": True}
    while message.get("more_body", False):
        message = await receive()
        if message["type"] == "http.disconnect":
            return
