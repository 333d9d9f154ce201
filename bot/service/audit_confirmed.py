"""How an audit row's confirmation reads wherever people read the audit: the mark a list line
gains (`/call audit`, the Home tab) and the Details modal's "Confirmed" fact (docs/audit.md,
"Confirmation"). The confirmation itself is recorded by bot/service/confirmations.py."""

from __future__ import annotations

from datetime import UTC

from bot.db.models import AuditRow
from bot.domain.confirmation import CONFIRMED_ACTIONS, FINAL_STATUSES, Via, state_text

# Only these outcomes may have reached the call, so only they are waiting for a confirmation.
_SENT = frozenset({"pending", "succeeded", "unknown"})


def is_confirmed(row: AuditRow) -> bool:
    """Whether the row carries a confirmation callbot recorded: one with its own chain entry.
    Confirmed columns set without one, or with one before the row's own opening entry, were not
    written by callbot (`audit verify` names the row), so no view shows them as confirmed."""
    if not row.confirmed_status or row.confirm_seq is None or row.chain_seq is None:
        return False
    return row.confirm_seq > row.chain_seq


def mark(row: AuditRow) -> str | None:
    """`confirmed ended (`completed`)` / `confirmed live (`in-progress`)`; None when unconfirmed.
    Said in the provider's word when it differs from callbot's, as state_text does."""
    if not is_confirmed(row) or row.confirmed_status is None:
        return None
    state = "ended" if row.confirmed_status in FINAL_STATUSES else "live"
    return f"confirmed {state} ({_said(row.confirmed_status, row.confirmed_word)})"


def fact(row: AuditRow) -> str:
    """The Details modal's line: what was seen, when and how; or why there is nothing to show."""
    if is_confirmed(row) and row.confirmed_status is not None:
        when = ""
        if row.confirmed_at is not None:
            at = row.confirmed_at.astimezone(UTC)
            # The row's own date is on the "When" line: a confirmation the same day needs the time only.
            same_day = at.date() == row.created_at.astimezone(UTC).date()
            when = f" at {at:%H:%M:%S} UTC" if same_day else f" at {at:%Y-%m-%d %H:%M:%S} UTC"
        return f"{state_text(row.confirmed_status, row.confirmed_word or '')}{when}, {_how(row)}"
    if row.action not in CONFIRMED_ACTIONS or not row.call_id:
        return "—"
    if row.outcome not in _SENT:
        return "— (nothing to confirm: the request did not change the call)"
    return "not confirmed (callbot has not seen the call's state since)"


def _said(status: str, word: str | None) -> str:
    return f"`{word}`" if word and word != status else f"`{status}`"


def _how(row: AuditRow) -> str:
    via = row.confirmed_via or ""
    if via == Via.READ:
        return "by read-back"
    if via == Via.CALLBACK:
        provider = (row.provider or "").capitalize()
        return f"by {provider}'s signed callback" if provider else "by the provider's signed callback"
    if via == Via.LISTING:
        return "by the listing of live calls after the bulk action"
    return f"by {via}" if via else "by an unknown route"
