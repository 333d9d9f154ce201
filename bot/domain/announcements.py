"""The one line an executed call action posts for the incident channel (an account's
`announce_channel`, or the thread of the message a shortcut was used on).

Only what the channel needs: who, which action, which account, the call's id shortened, the
outcome and the audit id. No reason, URL or document (free text, where a secret or a number
could be), and no phone number.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bot.domain.callids import short_call_id
from bot.domain.outcomes import OUTCOME_EMOJI, Outcome
from bot.domain.replies import mention

# The outcomes of a request that was sent (a refusal, a dry run or a request never sent is not
# announced: nothing happened to the call).
EXECUTED = frozenset({Outcome.SUCCEEDED, Outcome.FAILED, Outcome.UNKNOWN, Outcome.RATE_LIMITED})
# A bulk hang-up ran (some calls may have ended) when its row closed with one of these.
BATCH_RAN = frozenset({Outcome.SUCCEEDED, Outcome.FAILED, Outcome.UNKNOWN, Outcome.CANCELLED})
_WORDS: dict[str, str] = {Outcome.UNKNOWN: "outcome unknown", Outcome.RATE_LIMITED: "rate limited by the provider"}


def outcome_text(outcome: str) -> str:
    """`✅ succeeded`: the outcome with its emoji, as the audit shows it."""
    word = _WORDS.get(outcome, outcome.replace("_", " "))
    emoji = OUTCOME_EMOJI.get(outcome)
    return f"{emoji} {word}" if emoji else word


def action_line(user_id: str, action: str, account: str, call_id: str, outcome: str, audit_id: int) -> str:
    return (
        f"{outcome_text(outcome)}: {mention(user_id)} ran `{action}` on `{account}`, "
        f"call `{short_call_id(call_id)}` (audit #{audit_id})"
    )


def batch_line(user_id: str, account: str, outcome: str, audit_id: int, result: Mapping[str, Any] | None) -> str:
    """A bulk hang-up: one line for the whole batch, with its counts."""
    counts = ""
    if result:
        total, ended, failed = (_count(result, key) for key in ("total", "ended", "failed"))
        counts = f": {ended:,} of {total:,} calls ended, {failed:,} failed"
        if not_touched := _count(result, "not_touched"):
            counts += f", {not_touched:,} not touched"
    return f"{outcome_text(outcome)}: {mention(user_id)} ran `hangup-all` on `{account}`{counts} (audit #{audit_id})"


def _count(result: Mapping[str, Any], key: str) -> int:
    value = result.get(key)
    return value if isinstance(value, int) and not isinstance(value, bool) else 0
