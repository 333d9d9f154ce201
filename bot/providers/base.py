"""What every provider client offers the service, and the HTTP sending they share.

A client turns a provider-neutral action into its own wire request (`build`, pure, also used for
dry runs), sends it (`send`), and turns the answer into a `ProviderResult` or a `ProviderError`.
Clients never see Slack or the database.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import time
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, ClassVar
from urllib.parse import urlencode

import httpx

from bot import __version__
from bot.actions import ActionName, CallAction
from bot.errors import (
    CallNotFound,
    CallNotModifiable,
    InvalidInput,
    ProviderAuthFailed,
    ProviderError,
    ProviderOutcomeUnknown,
    ProviderRateLimited,
    ProviderUnavailable,
)
from bot.redact import MASK, mask_url_credentials

USER_AGENT = f"callbot/{__version__} (+https://github.com/callbot/callbot)"
MAX_TRIES = 3
MAX_RETRY_WAIT = 10.0


@dataclass(frozen=True)
class WireRequest:
    """Exactly what goes on the wire, minus the credentials (added by the client's auth)."""

    method: str
    url: str
    auth_scheme: str
    form: tuple[tuple[str, str], ...] | None = None
    json_body: Any = None
    # Body fields that hold secrets: shown and stored as *** .
    secret_fields: frozenset[str] = field(default_factory=frozenset)

    @property
    def content_type(self) -> str:
        return "application/x-www-form-urlencoded" if self.form is not None else "application/json"

    def redacted_body(self) -> Any:
        def mask(key: str, value: Any) -> Any:
            if key in self.secret_fields:
                return MASK
            return mask_url_credentials(value) if isinstance(value, str) else value

        if self.form is not None:
            return {k: mask(k, v) for k, v in self.form}
        if isinstance(self.json_body, dict):
            return {k: mask(k, v) for k, v in self.json_body.items()}
        return self.json_body

    def preview(self) -> str:
        """The request as a person reads it, with every credential masked."""
        body = self.redacted_body()
        if self.form is not None:
            text = urlencode(list(body.items()))
        else:
            text = json.dumps(body, indent=2, ensure_ascii=False)
        return "\n".join(
            [
                f"{self.method} {self.url}",
                f"Authorization: {self.auth_scheme} {MASK}",
                f"Content-Type: {self.content_type}",
                "",
                text,
            ]
        )

    def for_audit(self) -> dict[str, Any]:
        return {"method": self.method, "url": self.url, "body": self.redacted_body()}

    def secret_values(self) -> list[str]:
        """The secrets this request carries in its body (e.g. credentials for a redirect URL)."""
        fields = dict(self.form) if self.form is not None else self.json_body
        if not isinstance(fields, dict):
            return []
        return [str(fields[k]) for k in self.secret_fields if fields.get(k)]


@dataclass(frozen=True)
class ProviderResult:
    http_status: int
    call_status: str | None  # the provider's own word for the call's state, when it reports one
    request_id: str | None = None
    summary: Mapping[str, Any] = field(default_factory=dict)  # stored in the audit row
    notes: tuple[str, ...] = ()  # extra facts worth telling the person (e.g. accepted commands)


class ProviderClient(ABC):
    provider: ClassVar[str]
    display_name: ClassVar[str]  # as people write it: "Twilio"
    credential_hint: ClassVar[str] = "its credentials"  # what an admin must check after a 401
    call_id_pattern: ClassVar[Any]  # compiled regex of this provider's call ids
    call_id_example: ClassVar[str]
    # For each supported action, the grammar options the provider understands.
    supported: ClassVar[Mapping[ActionName, frozenset[str]]]
    # What to use instead of an action this provider does not have.
    alternatives: ClassVar[Mapping[ActionName, str]] = {}

    def __init__(self, account_name: str, http: httpx.AsyncClient) -> None:
        self.account_name = account_name
        self.http = http

    def check_supported(self, action: ActionName, options: frozenset[str]) -> None:
        if action not in self.supported:
            offered = ", ".join(a.value for a in self.supported)
            hint = self.alternatives.get(action, "")
            raise InvalidInput(
                action.value,
                f"is not supported by {self.provider} (account `{self.account_name}`).",
                f"{hint} On {self.provider} you can: {offered}.".strip(),
            )
        unsupported = sorted(options - self.supported[action])
        if unsupported:
            allowed = ", ".join(sorted(self.supported[action])) or "none"
            raise InvalidInput(
                f"{unsupported[0]}=",
                f"is not supported by {self.provider} for `{action.value}` (account `{self.account_name}`).",
                f"Options {self.provider} accepts here: {allowed}.",
            )

    def check_call_id(self, call_id: str) -> None:
        if not self.call_id_pattern.fullmatch(call_id):
            raise InvalidInput(
                call_id,
                f"is not a {self.provider} call id.",
                f"{self.provider} call ids look like `{self.call_id_example}`.",
            )

    @abstractmethod
    def build(self, call_id: str, action: CallAction) -> WireRequest:
        """The wire request for this action; raises InvalidInput for what the provider refuses."""

    @abstractmethod
    def interpret(self, response: httpx.Response) -> ProviderResult:
        """A provider answer as a result, or raises the matching ProviderError."""

    async def send(self, request: WireRequest, *, retry_safe: bool) -> ProviderResult:
        """Sends the request. Retries 429/503 only when `retry_safe` (the action is idempotent).

        Connection failures are retried by the transport: nothing reached the provider then.
        """
        tries = MAX_TRIES if retry_safe else 1
        try:
            for attempt in range(1, tries + 1):
                response = await self._send_once(request)
                if response.status_code in (429, 503) and attempt < tries:
                    await asyncio.sleep(retry_delay(response, attempt))
                    continue
                return self.interpret(response)
        except ProviderError as error:
            # A provider's error text may quote what we sent: never the secrets in it.
            _scrub(error, request.secret_values())
            raise
        raise AssertionError("unreachable")  # pragma: no cover

    def status_error(self, response: httpx.Response, common: dict[str, Any], ref: str, detail: str) -> ProviderError:
        """The error for an HTTP status, worded the same for every provider.

        Clients handle their own error codes first and call this for the rest. `ref` names the
        provider's code or status (" (Twilio 20404)"), `detail` is the provider's own message.
        """
        status, p, name = response.status_code, self.display_name, self.account_name
        said = f": {detail}" if detail else ""
        if status == 401:
            return ProviderAuthFailed(
                self.provider,
                f"{p} rejected the credentials of account `{name}`{ref}. An admin must check {self.credential_hint}.",
                **common,
            )
        if status == 403:
            return ProviderAuthFailed(
                self.provider,
                f"{p} refused account `{name}` access{ref}{said}. An admin must check its permissions.",
                **common,
            )
        if status == 404:
            return CallNotFound(
                self.provider,
                f"{p} has no such call on account `{name}`{ref}: the call is gone (no longer active) or the id "
                "is wrong. Check the id, and that the call belongs to this account.",
                **common,
            )
        if status in (409, 422):
            return CallNotModifiable(
                self.provider, f"{p} cannot change the call in its current state{ref}{said}", **common
            )
        if status == 429:
            return ProviderRateLimited(
                self.provider,
                f"{p} is rate limiting account `{name}`{ref}; nothing was changed. Wait a few seconds and try again.",
                retry_after=_seconds(response.headers.get("Retry-After")),
                **common,
            )
        if status == 503:
            return ProviderUnavailable(
                self.provider, f"{p} is unavailable{ref}; nothing was changed. Try again shortly.", **common
            )
        if status >= 500:
            return ProviderOutcomeUnknown(
                self.provider,
                f"{p} failed with a server error{ref}. The call may or may not have changed: check it before retrying.",
                **common,
            )
        return ProviderError(self.provider, f"{p} refused the request{ref}{said}", **common)

    async def _send_once(self, request: WireRequest) -> httpx.Response:
        kwargs: dict[str, Any] = {"headers": {"Accept": "application/json"}}
        if request.form is not None:
            kwargs["data"] = dict(request.form)
        elif request.json_body is not None:
            kwargs["json"] = request.json_body
        try:
            return await self.http.request(request.method, request.url, **kwargs)
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            raise ProviderUnavailable(
                self.provider,
                f"Could not reach {self.provider} ({type(exc).__name__}); nothing was sent. Try again shortly.",
            ) from None
        except httpx.TimeoutException as exc:
            raise ProviderOutcomeUnknown(
                self.provider,
                f"{self.provider} did not answer in time ({type(exc).__name__}). The request was sent, so the "
                "call may or may not have changed: check it before retrying.",
            ) from None
        except httpx.HTTPError as exc:
            raise ProviderOutcomeUnknown(
                self.provider,
                f"The connection to {self.provider} broke ({type(exc).__name__}) after the request was sent. "
                "The call may or may not have changed: check it before retrying.",
            ) from None

    async def aclose(self) -> None:
        await self.http.aclose()


def retry_delay(response: httpx.Response, attempt: int) -> float:
    """Retry-After (seconds or HTTP date) when given, else exponential backoff; capped."""
    header = response.headers.get("Retry-After", "").strip()
    delay: float | None = None
    if header:
        try:
            delay = float(header)
        except ValueError:
            try:
                when = email.utils.parsedate_to_datetime(header)
                delay = (when - datetime.now(UTC)).total_seconds()
            except (TypeError, ValueError):
                delay = None
    if delay is None:
        delay = 0.5 * 2 ** (attempt - 1)
    return max(0.0, min(delay, MAX_RETRY_WAIT))


def _scrub(error: ProviderError, secrets: list[str]) -> None:
    # Like the Redactor: values under 4 characters would mask ordinary words.
    for secret in sorted((s for s in secrets if len(s) >= 4), key=len, reverse=True):
        error.message = error.message.replace(secret, MASK)
        if error.provider_message:
            error.provider_message = error.provider_message.replace(secret, MASK)
    error.args = (error.message,)


def _seconds(value: str | None) -> float | None:
    try:
        return float(value) if value else None
    except ValueError:
        return None


def make_http_client(auth: httpx.Auth, timeout: float) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        auth=auth,
        timeout=httpx.Timeout(timeout, connect=min(timeout, 5.0)),
        headers={"User-Agent": USER_AGENT},
        transport=httpx.AsyncHTTPTransport(retries=2),
        follow_redirects=False,
    )


def json_or_none(response: httpx.Response) -> Any:
    try:
        return response.json()
    except (json.JSONDecodeError, UnicodeDecodeError, ValueError):
        return None


def elapsed_ms(started: float) -> int:
    return int((time.monotonic() - started) * 1000)


def provider_error_fields(error: ProviderError) -> dict[str, Any]:
    return {
        "provider_status": error.http_status,
        "error_code": error.code,
        "error_message": error.provider_message or error.message,
        "provider_request_id": error.request_id,
    }
