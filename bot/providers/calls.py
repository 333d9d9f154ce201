"""Live calls as every provider client reports them, in the same words (Twilio's, the ones the
docs and people use), and the filters and pages of a listing."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from bot.domain.confirmation import FINAL_STATUSES as FINAL_STATUSES  # re-exported for the clients
from bot.domain.confirmation import LIVE_STATUSES as LIVE_STATUSES
from bot.domain.errors import InvalidInput

# Twilio's PageSize and Bird's limit top out at 1000; one page of that is plenty for Slack.
MAX_PAGE_SIZE = 1000
# A listing that keeps getting empty pages with a next token (calls ending while we page, Twilio
# moving on to the next status) stops after this many requests and hands back the token.
MAX_EMPTY_PAGES = 5


@dataclass(frozen=True)
class LiveCall:
    """One call as a provider reports it, in words that are the same for every provider.

    `status` is one of LIVE_STATUSES, or the final word (FINAL_STATUSES) once the call has ended;
    `raw_status` keeps the provider's own word (Bird `ongoing`, Bandwidth `answered`…).
    `direction` is `inbound` or `outbound` (the provider's word when it is neither).
    `duration_s` is what the provider reports (most report it only once a call has ended): for a
    live call use `age_s`.
    """

    call_id: str
    status: str
    direction: str
    from_number: str
    to_number: str
    started_at: datetime | None
    duration_s: int | None
    ended: bool
    raw_status: str = ""
    ended_at: datetime | None = None  # when the provider says the call ended (to the second, on Twilio)

    def __post_init__(self) -> None:
        # A mismatch here is a bug in a client's mapping: fail loudly in tests, not in Slack.
        if self.status not in LIVE_STATUSES + FINAL_STATUSES:
            raise ValueError(f"LiveCall status {self.status!r} is not one of {LIVE_STATUSES + FINAL_STATUSES}")
        if self.ended != (self.status in FINAL_STATUSES):
            raise ValueError(f"LiveCall status {self.status!r} contradicts ended={self.ended}")

    def age_s(self, now: datetime) -> int | None:
        """Seconds since the call started (the duration so far of a live call)."""
        if self.started_at is None:
            return None
        return max(0, int((now - self.started_at).total_seconds()))


@dataclass(frozen=True)
class CallFilter:
    """Which live calls to list: one live status (None = every live call), and exact numbers."""

    status: str | None = None
    to: str | None = None
    from_number: str | None = None

    def __post_init__(self) -> None:
        if self.status is not None and self.status not in LIVE_STATUSES:
            raise InvalidInput(
                f"status={self.status}",
                "is not a live call status.",
                f"Use one of: {', '.join(LIVE_STATUSES)} (or leave `status=` out for every live call).",
            )

    def matches(self, call: LiveCall) -> bool:
        """The status part, checked on our side too: Bandwidth has no state filter, and a call may
        change state between the provider's filter and its answer. Numbers are left to the
        provider, which knows how its own numbers may be written."""
        if call.ended:
            return False
        return self.status is None or call.status == self.status


@dataclass(frozen=True)
class CallPage:
    """Up to page_size live calls, and the opaque token of the next page (None at the end)."""

    calls: tuple[LiveCall, ...]
    next_token: str | None


def check_page_size(page_size: int) -> None:
    if not 1 <= page_size <= MAX_PAGE_SIZE:
        raise InvalidInput(f"page size {page_size}", f"must be between 1 and {MAX_PAGE_SIZE}.")
