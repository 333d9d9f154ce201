"""The body of a request that arrives from outside (Slack's POST /slack/events, the providers'
POST /webhooks/…), read before anything in it is trusted: bounded, so that no sender can make
callbot hold more than BODY_LIMIT bytes of it.

Shared by the two edges, which are sibling layers that may not import each other
(pyproject.toml, [tool.importlinter]); a package of its own, one layer below them, keeps bot/'s
top level to its few loose modules.
"""

from __future__ import annotations

from dataclasses import dataclass

from starlette.requests import Request

BODY_LIMIT = 1024 * 1024
"""Bytes. Slack's largest requests (a view submission with its blocks) are tens of kilobytes, a
provider's call event a few."""


@dataclass(frozen=True)
class Unread:
    """Why the body was not read: the HTTP status to answer (400, 413) and a reason written here."""

    status: int
    reason: str


async def read_body(request: Request, limit: int = BODY_LIMIT) -> bytes | Unread:
    """The body as it arrives, or why not: a Content-Length that is not a number (400), or a body
    over `limit` bytes (413), refused before reading anything when Content-Length says so, else
    as soon as the bytes read pass it (a chunked body has no Content-Length)."""
    too_large = Unread(413, f"The request body is over the {limit // 1024} KiB callbot accepts.")
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isascii() or not declared.isdigit():
            return Unread(400, "The Content-Length header is not a number.")
        if int(declared) > limit:
            return too_large
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            return too_large
        chunks.append(chunk)
    return b"".join(chunks)
