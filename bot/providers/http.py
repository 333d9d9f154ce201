"""The HTTP side every provider client shares: the client itself, what one attempt got onto the
wire, Retry-After, and bodies that may not be JSON."""

from __future__ import annotations

import email.utils
import functools
import json
import math
import ssl
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import httpx

from bot import __version__

USER_AGENT = f"callbot/{__version__} (+https://github.com/callbot/callbot)"


@functools.cache
def _tls() -> ssl.SSLContext:
    """The TLS settings every provider client shares (httpx's defaults). Building them reads the
    CA bundle, ~50 ms and a megabyte each: once per account, 101 accounts took seconds to start."""
    return httpx.create_ssl_context()


def make_http_client(auth: httpx.Auth, timeout: float) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        auth=auth,
        timeout=httpx.Timeout(timeout, connect=min(timeout, 5.0)),
        headers={"User-Agent": USER_AGENT},
        transport=httpx.AsyncHTTPTransport(retries=2, verify=_tls()),
        verify=_tls(),
        follow_redirects=False,
    )


def json_or_none(response: httpx.Response) -> Any:
    try:
        return response.json()
    except (json.JSONDecodeError, UnicodeDecodeError, ValueError):
        return None


class Wire:
    """What one attempt got onto the wire, from httpcore's trace: once the request's headers start
    going out, the provider may act on it."""

    def __init__(self) -> None:
        self.sent = False

    async def trace(self, event: str, info: Mapping[str, Any]) -> None:
        if event.endswith("send_request_headers.started"):
            self.sent = True


def retry_after(response: httpx.Response) -> float | None:
    """The Retry-After header in seconds (it may be a number or an HTTP date); None without one."""
    header = response.headers.get("Retry-After", "").strip()
    if not header:
        return None
    try:
        seconds = float(header)
    except ValueError:
        try:
            seconds = (email.utils.parsedate_to_datetime(header) - datetime.now(UTC)).total_seconds()
        except (TypeError, ValueError):
            return None
    # NaN and infinity are no answer; a finite wait is kept whole (the caller decides if it waits).
    return max(0.0, seconds) if math.isfinite(seconds) else None


def retry_delay(response: httpx.Response, attempt: int) -> float:
    """Retry-After when given (never shortened: resending early is refused again), else an
    exponential backoff."""
    given = retry_after(response)
    return 0.5 * 2 ** (attempt - 1) if given is None else given
