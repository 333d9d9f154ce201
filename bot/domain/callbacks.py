"""A provider's status callback about a call, once its signature is verified: one value for every
provider (bot/service/confirmations.py records what it confirms)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class CallbackEvent:
    provider: str  # "twilio" | "bandwidth" | "bird"
    account: str  # the callbot account named in the callback URL
    call_id: str  # the provider's call id
    # The call's state in callbot's words (bot/domain/confirmation.py), None when the event says
    # nothing about it.
    status: str | None
    word: str  # the provider's own word for the event or state
    at: datetime  # the provider's event time (aware, UTC), else when callbot received it
