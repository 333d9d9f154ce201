"""The closed vocabularies of an audit row: where an attempt came from, and how it ended.

StrEnum members compare equal to their text, so rows, filters and the grammar keep reading them
as the words people type (`/call audit outcome=denied`).
"""

from __future__ import annotations

from enum import StrEnum


class Outcome(StrEnum):
    DENIED = "denied"
    INVALID = "invalid"
    DRY_RUN = "dry_run"
    PENDING = "pending"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    UNKNOWN = "unknown"
    RATE_LIMITED = "rate_limited"
    # A call action waiting for a second person (two-person approval).
    PENDING_APPROVAL = "pending_approval"
    # An approval request nobody decided before its deadline (the expiry sweep).
    EXPIRED = "expired"
    # A bulk action stopped with its Cancel button before every call was handled.
    CANCELLED = "cancelled"


class Source(StrEnum):
    SLASH = "slash"
    MODAL = "modal"
    BUTTON = "button"
    CLI = "cli"
    # A call action run when a second person clicked Approve (the requester's, re-checked).
    APPROVAL = "approval"
    # One call of a bulk hang-up, run by the batch.
    BULK = "bulk"
    # The server itself (the retention purge).
    SYSTEM = "system"
    # The action form opened by the global shortcut, or by "Act on this call" on a message (its
    # submission keeps where the form came from).
    SHORTCUT = "shortcut"
    MESSAGE_SHORTCUT = "message_shortcut"
    # Slack itself: an install through the OAuth redirect, an app_uninstalled or tokens_revoked event.
    SLACK = "slack"


class WorkspaceChange(StrEnum):
    """The audit action of a change to an OAuth installation (docs/distribution.md)."""

    INSTALLED = "app_installed"
    UNINSTALLED = "app_uninstalled"
    TOKENS_REVOKED = "tokens_revoked"


OUTCOME_EMOJI: dict[str, str] = {
    Outcome.SUCCEEDED: "✅",
    Outcome.FAILED: "❌",
    Outcome.UNKNOWN: "❓",
    Outcome.PENDING: "⏳",
    Outcome.DENIED: "⛔",
    Outcome.RATE_LIMITED: "🐢",
    Outcome.INVALID: "⚠️",
    Outcome.DRY_RUN: "🧪",
    Outcome.PENDING_APPROVAL: "🖐️",
    Outcome.EXPIRED: "⌛",
    Outcome.CANCELLED: "🛑",
}
