"""The bot's Slack Web API client: slack_sdk's own retry handlers, and failures counted for /metrics.

Progress messages, App Home publishes and approval posts go through it; a 429 (Slack's rate limit,
with Retry-After) or a dropped connection is retried rather than losing the message. Bolt copies
these handlers into the client it gives each listener, so they hold there too. (Replies to a
command's response_url go through Bolt's own webhook client, which retries dropped connections.)

A rate-limit retry sleeps the whole Retry-After, so work that must finish before Slack's 3 s ack
(the user-group lookup of a permission check) uses `web_client(..., before_ack=True)`: connection
retries only, and a 429 fails at once (the check then says Slack is rate limiting).
"""

from __future__ import annotations

import re

from slack_sdk.http_retry.async_handler import AsyncRetryHandler
from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncConnectionErrorRetryHandler,
    AsyncRateLimitErrorRetryHandler,
)
from slack_sdk.http_retry.request import HttpRequest
from slack_sdk.http_retry.response import HttpResponse
from slack_sdk.http_retry.state import RetryState
from slack_sdk.web.async_client import AsyncWebClient

from bot import metrics

# A 429's Retry-After is slept in full: three tries cover Slack's usual one-minute windows.
RATE_LIMIT_RETRIES = 3
CONNECTION_RETRIES = 2


class CountFailures(AsyncRetryHandler):
    """Never retries. Listed last, it is asked only about an answer or error that no retry handler
    took on: a call that failed for good, which it counts (`ok: false`, an HTTP error, no answer)."""

    async def can_retry_async(
        self,
        *,
        state: RetryState,
        request: HttpRequest,
        response: HttpResponse | None = None,
        error: Exception | None = None,
    ) -> bool:
        # Labels stay a small, fixed vocabulary: a file upload goes to a one-time URL, and an error
        # word is whatever the server said.
        method = request.url.rsplit("/", 1)[-1]
        method = method if _METHOD.fullmatch(method) else "other"
        if error is not None:
            metrics.SLACK_API_ERRORS.labels(method=method, error="connection").inc()
        elif response is not None:
            body = response.body if isinstance(response.body, dict) else {}
            if response.status_code >= 400 or body.get("ok") is False:
                reason = str(body.get("error") or f"http_{response.status_code}")
                metrics.SLACK_API_ERRORS.labels(
                    method=method, error=reason if _WORD.fullmatch(reason) else "other"
                ).inc()
        return False


_METHOD = re.compile(r"[a-z]+(?:\.[A-Za-z]+)+")
_WORD = re.compile(r"[a-z0-9_]{1,48}")


def web_client(token: str | None, base_url: str, *, before_ack: bool = False) -> AsyncWebClient:
    # The handlers share one retry count per call (slack_sdk's RetryState): a call rate-limited
    # twice has one connection retry left.
    handlers: list[AsyncRetryHandler] = [AsyncConnectionErrorRetryHandler(max_retry_count=CONNECTION_RETRIES)]
    if not before_ack:
        handlers.append(AsyncRateLimitErrorRetryHandler(max_retry_count=RATE_LIMIT_RETRIES))
    handlers.append(CountFailures())
    return AsyncWebClient(token=token, base_url=base_url, retry_handlers=handlers)
