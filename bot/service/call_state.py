"""Reading a call's state around an action: the account's `check_state` before it is sent, and
after a refusal that does not say what state the call is in (Twilio 21220, "not in progress").

Both reads are bounded (STATE_CHECK_DEADLINE) and never raise: they only inform an action, which
a failed read must never hold back.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

from bot.domain.actions import ActionName
from bot.domain.errors import CallbotError, CallNotInProgress, ProviderError
from bot.providers.base import LiveCall, ProviderClient
from bot.service.steps import Started

log = logging.getLogger(__name__)

# The state check runs just before an (often urgent) action: it may delay it this long at most.
STATE_CHECK_DEADLINE = 5.0
STATE_CHECKED = frozenset({ActionName.HANGUP, ActionName.CANCEL, ActionName.REDIRECT, ActionName.TWIML})
# Actions that replace what an answered call is running: Twilio (21220) and Bandwidth (409) refuse
# them on a call not answered yet. Bird has neither; its callFlows are meant for ringing calls too.
NEEDS_ANSWER = frozenset({ActionName.REDIRECT, ActionName.TWIML})
UNANSWERED = ("queued", "ringing")
_ENDING = (ActionName.CANCEL, ActionName.HANGUP)


@dataclass(frozen=True)
class StateCheck:
    """What `check_state` found: a refusal (nothing is sent), a note for the reply (the check could
    not be made, the action went ahead), and what goes in the audit row's result."""

    refusal: str | None
    note: str | None
    record: dict[str, Any]


async def check_state(client: ProviderClient, call_id: str, action: ActionName, label: str) -> StateCheck:
    """The call's state just before acting. An ended call is refused with its final status, `cancel`
    on an answered call suggests `hangup`, and `redirect`/`twiml` on a call not answered yet is
    refused (the provider would refuse it). When the read itself fails (timeout, 5xx, unknown call,
    unreadable answer) the action goes ahead with a note: the check is a safety net, never a gate
    that could hold back an urgent hangup."""
    call = await read_state(client, call_id, label)
    if isinstance(call, str):
        note = (
            f"callbot could not check the call's state first ({call}); it went ahead anyway "
            "(check_state never holds an action back when the check itself fails)."
        )
        return StateCheck(None, note, {"checked": False, "error": call[:300]})
    record = {"checked": True, **state_record(call)}
    if call.ended:
        return StateCheck(f"The call already ended: {call.status}.", None, record)
    if action is ActionName.CANCEL and call.status == "in-progress":
        refusal = (
            f"{label} is in progress (answered): `cancel` only ends queued or ringing calls. "
            f"To end it, use `/call hangup {label}`."
        )
        return StateCheck(refusal, None, record)
    if action in NEEDS_ANSWER and call.status in UNANSWERED:
        return StateCheck(_unanswered(call, client, action, label), None, record)
    return StateCheck(None, None, record)


async def after_refusal(
    started: Started, error: ProviderError, checked: StateCheck | None
) -> tuple[ProviderError, StateCheck | None]:
    """A refusal because the call "is not in progress" (Twilio 21220) does not say whether the call
    ended or is not answered yet, and an operator told "it ended" could leave a ringing call alone.
    The call is read and the error says which; the audit row keeps the provider's code and message,
    and the read goes in its `result.state_check` (after what check_state found, if it ran). Any
    other error is returned as it is."""
    if not isinstance(error, CallNotInProgress):
        return error, checked
    client, label = started.client, started.label
    call = await read_state(client, started.call_id, label)
    record: dict[str, Any] = {"after_refusal": True}
    if isinstance(call, str):
        found = (
            "the call has either ended or not been answered yet (callbot could not "
            f"read which: {call}). `/call status {label}` shows it."
        )
        record.update(checked=False, error=call[:300])
    else:
        record.update(checked=True, **state_record(call))
        if call.ended:
            found = f"the call already ended: {call.status}."
        elif call.status in UNANSWERED:
            found = _unanswered(call, client, started.action.name, label)
        else:  # answered between the refusal and the read
            found = f"the call was not in progress then; it is `{call.status}` now: try again."
    if checked is not None:
        record["before"] = checked.record
    ref = f"{client.display_name} {error.code}" if error.code else f"HTTP {error.http_status}"
    ref += ", not in progress"
    explained = CallNotInProgress(
        error.provider,
        f"{client.display_name} refused ({ref}): {found}",
        http_status=error.http_status,
        code=error.code,
        provider_message=error.provider_message,
        request_id=error.request_id,
        applied=error.applied,
    )
    return explained, StateCheck(None, checked.note if checked else None, record)


async def read_state(client: ProviderClient, call_id: str, label: str) -> LiveCall | str:
    """The call as the provider reports it now, or why it could not be read."""
    try:
        return await asyncio.wait_for(client.get_call(call_id), STATE_CHECK_DEADLINE)
    except CallbotError as error:
        why = error.message
    except TimeoutError:
        why = f"no answer within {STATE_CHECK_DEADLINE:g} s"
    except Exception:
        log.exception("reading the state of %s failed unexpectedly", label)
        why = "an internal error in callbot; see the server log"
    log.warning("state read of %s failed: %s", label, why)
    return why


def state_record(call: LiveCall) -> dict[str, Any]:
    return {"status": call.status, "raw_status": call.raw_status, "ended": call.ended}


def _unanswered(call: LiveCall, client: ProviderClient, action: ActionName, label: str) -> str:
    ends = " or ".join(f"`/call {verb.value} {label}`" for verb in _ENDING if verb in client.supported)
    return (
        f"{label} is `{call.status}` (not answered yet): `{action.value}` needs an answered call. "
        f"To end it, use {ends}."
    )
