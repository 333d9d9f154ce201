"""Each provider's words for a call's state, turned into callbot's (Twilio's: LIVE_STATUSES and
FINAL_STATUSES in bot/domain/confirmation.py).

One table per provider, read both by its client (a call read back or listed) and by its signed
callbacks (bot/domain/callbacks.py), so a call's state reads the same whichever way it arrived.
"""

from __future__ import annotations

from bot.domain.confirmation import FINAL_STATUSES, LIVE_STATUSES

TWILIO_STATUSES = frozenset((*LIVE_STATUSES, *FINAL_STATUSES))
"""Twilio's call statuses are callbot's words as they are."""

BANDWIDTH_LIVE = {"queued": "queued", "initiated": "ringing", "answered": "in-progress"}
"""Bandwidth's call `state` while the call is up."""

# disconnectCause → Twilio's final word. Unlisted causes (the list "is not exhaustive") are
# `completed` for an answered call and `failed` otherwise.
BANDWIDTH_CAUSES = {
    "hangup": "completed",
    "busy": "busy",
    "rejected": "busy",  # as Twilio reports a rejected call
    "timeout": "no-answer",
    "cancel": "canceled",
    "callback-error": "failed",
    "invalid-bxml": "failed",
    "application-error": "failed",
    "account-limit": "failed",
    "node-capacity-exceeded": "failed",
    "error": "failed",
    "unknown": "failed",
}


def bandwidth_final(cause: str, answered: bool) -> str:
    """The final word of a Bandwidth call that disconnected with `cause`."""
    return BANDWIDTH_CAUSES.get(cause) or ("completed" if answered else "failed")


# Bird's channels.call_status → Twilio's words. `scheduled`, `accepted` and `starting` are calls
# not yet ringing: queued, as Twilio would say.
BIRD_LIVE = {
    "accepted": "queued",
    "starting": "queued",
    "scheduled": "queued",
    "ringing": "ringing",
    "ongoing": "in-progress",
}
BIRD_FINAL = {
    "completed": "completed",
    "busy": "busy",
    "no-answer": "no-answer",
    "failed": "failed",
    "cancelled": "canceled",
}
