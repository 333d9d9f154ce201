"""What the provider shows happened to a call after callbot acted on it: the *confirmation* an
audit row gains once the call is read back, or once the provider's signed callback arrives
(docs/audit.md, "Confirmation").

The answer to a request says what the provider accepted; the confirmation says what the call
then did. A hang-up is confirmed once the call shows a final state; a redirect, TwiML or callFlow
once the call shows any state SETTLE_AFTER seconds after it (still live, or ended when the new
instructions hang up). An `unknown` redirect is not settled by a live state: the call being live
does not tell whether the new instructions were taken.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

# Every provider's call states, normalised to Twilio's words (the ones the docs and people use).
LIVE_STATUSES: tuple[str, ...] = ("queued", "ringing", "in-progress")
FINAL_STATUSES: tuple[str, ...] = ("completed", "canceled", "failed", "busy", "no-answer")
# The actions whose success means the call ends.
ENDING_ACTIONS = frozenset({"hangup", "cancel"})
CONFIRMED_ACTIONS = frozenset({"hangup", "cancel", "redirect", "twiml", "flow"})
SETTLE_AFTER = 3.0
"""Seconds after a redirect, TwiML or callFlow before a live state says anything: right after the
provider's answer the call is live whether or not it has fetched its new instructions yet."""


class Via(StrEnum):
    """How callbot learned the call's state."""

    READ = "read"  # callbot read the call (the provider's fetch-call endpoint)
    CALLBACK = "callback"  # the provider's signed status callback
    LISTING = "listing"  # a bulk action's listing of live calls no longer shows it


@dataclass(frozen=True)
class Seen:
    """The call's state as the provider showed it: `status` in callbot's words (LIVE_STATUSES or
    FINAL_STATUSES), `word` the provider's own, `at` when (the callback's event time; for a read,
    the end time the provider gives for an ended call, else the time of the read)."""

    status: str
    word: str
    at: datetime
    via: Via

    @property
    def ended(self) -> bool:
        return self.status in FINAL_STATUSES

    def fields(self) -> dict[str, Any]:
        """The audit row's confirmation columns."""
        return {
            "confirmed_status": self.status,
            "confirmed_word": (self.word or self.status)[:32],
            "confirmed_at": self.at.astimezone(UTC),
            "confirmed_via": self.via.value,
        }


def settles(action: str, status: str, *, answered: bool = True) -> bool:
    """Whether `status` is what `action` should lead to, so reading back can stop: an ending
    action needs a final state; any state answers what an `answered` redirect, TwiML or callFlow
    did (read SETTLE_AFTER seconds after it); one whose answer callbot never saw (`unknown`) is
    settled only by the call ending."""
    if action in ENDING_ACTIONS or not answered:
        return status in FINAL_STATUSES
    return status in LIVE_STATUSES or status in FINAL_STATUSES


def state_text(status: str, word: str) -> str:
    """`the call ended (completed)`, `the call is still live (in-progress)`."""
    said = f"`{word}`" if word and word != status else f"`{status}`"
    if status in FINAL_STATUSES:
        return f"the call ended ({said})"
    return f"the call is still live ({said})"


def confirmed_line(provider: str, action: str, seen: Seen, acted_at: datetime | None, *, outcome: str) -> str:
    """What the person reads under the outcome. `provider`: as people write it ("Twilio");
    `outcome`: the audit row's (an `unknown` row keeps it, and the line says what was seen)."""
    state = state_text(seen.status, seen.word)
    source = f"{provider}'s callback" if seen.via is Via.CALLBACK else provider
    if outcome == "unknown":
        clock = seen.at.astimezone(UTC).strftime("%H:%M:%S UTC")
        return f"callbot could not see {provider}'s answer, but {source} shows {state} at {clock}."
    if acted_at is None:
        return f"{source} confirms: {state}."
    seconds = (seen.at - acted_at).total_seconds()
    if not seen.ended:
        # Live after a redirect: what the call is doing, not proof that it took the new instructions.
        return f"{source} shows {state} {max(seconds, 0):.0f} s after the {_noun(action)}."
    if seconds <= -1.0:  # Twilio gives the end to the second: within that, it is not "before"
        clock = seen.at.astimezone(UTC).strftime("%H:%M:%S UTC")
        return f"{source} confirms: {state} at {clock}, before the {_noun(action)} was sent."
    if seconds < 1.0:
        return f"{source} confirms: {state} within a second of the {_noun(action)}."
    return f"{source} confirms: {state} {seconds:.1f} s after the {_noun(action)}."


def unconfirmed_line(provider: str, action: str, last: Seen | None, within: float) -> str:
    """Reading back found no settled state in time (or could not read the call)."""
    if last is None:
        return f"callbot could not read the call back from {provider} to confirm the {_noun(action)}."
    state = state_text(last.status, last.word)
    return f"Not confirmed yet: {provider} shows {state} {within:g} s after the {_noun(action)}."


def _noun(action: str) -> str:
    return {
        "hangup": "hang-up",
        "cancel": "cancel",
        "redirect": "redirect",
        "twiml": "TwiML",
        "flow": "callFlow",
    }.get(action, action)


def batch_confirmed_line(provider: str, account: str, ended: int, live: int) -> str:
    """What one listing of the live calls after a batch showed of the calls it touched."""
    line = f"{provider} confirms {ended:,} of these calls ended (one listing of live calls after the batch)."
    if live:
        line += f" {live:,} still show as live: `/call list {account}`."
    return line
