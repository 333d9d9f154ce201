"""What the service answers: plain values that Slack renders as Block Kit and the CLI prints."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime
from enum import StrEnum

_SLACK_USER = re.compile(r"^[UW][A-Z0-9]{2,}$")
# Where the Approve / Deny buttons of a two-person approval request go (Choice.handler).
APPROVE_HANDLER = "approval_approve"
DENY_HANDLER = "approval_deny"
# Bulk actions (bot/service/bulk/actions.py): the count's Confirm, and the progress message's buttons.
BULK_CONFIRM_HANDLER = "bulk_confirm"
BATCH_CANCEL_HANDLER = "batch_cancel"
BATCH_RESUME_HANDLER = "batch_resume"


def mention(user: str) -> str:
    """A person as Slack shows people: `<@U…>` for a Slack user, the shell user's name otherwise."""
    return f"<@{user}>" if _SLACK_USER.match(user) else f"`{user}`"


class Tone(StrEnum):
    SUCCESS = "success"
    FAILURE = "failure"
    UNKNOWN = "unknown"
    DENIED = "denied"
    INVALID = "invalid"
    DRY_RUN = "dry_run"
    WORKING = "working"
    INFO = "info"


@dataclass(frozen=True)
class ConfirmDialog:
    """Slack's "are you sure?" dialog on a button (Block Kit `confirm` object)."""

    title: str
    text: str
    confirm: str
    deny: str = "Back"


@dataclass(frozen=True)
class Choice:
    """A button: `value` comes back to the service when the person clicks it.
    `dismiss`: the button withdraws the pending command instead of running it (Cancel)."""

    label: str
    value: str
    style: str | None = None  # "primary" | "danger"
    confirm: ConfirmDialog | None = None
    dismiss: bool = False
    # Which listener the click goes to (Slack action_id prefix); None: the account/confirm one.
    handler: str | None = None


@dataclass(frozen=True)
class ApprovalNotice:
    """A two-person approval request the chat layer must post to the approvers' channel, then
    report the message back (`Service.approval_posted`) so it can be updated when decided."""

    approval_id: int
    channel: str
    message: Reply
    # The workspace it is posted in: out of any request, the chat layer picks that workspace's token.
    team_id: str | None = None
    enterprise_id: str | None = None


@dataclass(frozen=True)
class AuditEntry:
    """One audit row as a list shows it (the whole row is `AuditDetail`)."""

    id: int
    created_at: datetime
    user_id: str
    action: str | None
    target: str  # `account:call`, or "—"
    outcome: str
    emoji: str
    source: str
    error: str | None  # short (≤ 90 characters), only for outcomes that are not a success
    # What the provider later showed the call did (`confirmed ended (`completed`)`), None: nothing yet.
    confirmed: str | None = None


@dataclass(frozen=True)
class AuditListing:
    """A page of `/call audit`, newest first. The page tokens are opaque button values: they carry
    the filter and the cursor, never who may see what (that is recomputed on every click)."""

    entries: tuple[AuditEntry, ...]
    newer: str | None = None  # "Previous": the page of newer rows
    older: str | None = None  # "Next": the page of older rows


@dataclass(frozen=True)
class AuditDetail:
    """The whole of one audit row, for the Details modal: short facts, then long texts."""

    audit_id: int
    title: str
    facts: tuple[tuple[str, str], ...]
    texts: tuple[tuple[str, str], ...]  # (label, text shown verbatim: JSON, command, error)


@dataclass(frozen=True)
class AuditHome:
    """What the App Home tab shows a person: their own recent attempts and, for `audit` holders,
    the team's (with the quick filter applied)."""

    user_id: str
    own: tuple[AuditEntry, ...]
    team: tuple[AuditEntry, ...] | None  # None: the person may not read others' rows
    team_filter: str = "all"
    team_scope: str = ""


@dataclass(frozen=True)
class CallEntry:
    """One live call as `/call list` and `/call status` show it, with the buttons this person may
    use on it. Plain values: provider types never reach the chat layer."""

    account: str
    call_id: str
    text: str  # the call on one line (empty: the reply's lines already describe it)
    hangup: str | None = None  # the Hang up button's value (a stored `/call hangup`), None: not offered
    redirect: bool = False  # a Redirect button (opens the action form on this call)
    flow: bool = False  # a Flow button (opens the callFlow builder on this call; Bird)


@dataclass(frozen=True)
class CallListing:
    """Live calls, newest first as the provider gives them; `more`: the More button's value."""

    entries: tuple[CallEntry, ...]
    more: str | None = None


@dataclass(frozen=True)
class CallOption:
    """One line of the action form's call type-ahead: what it shows and the call id it picks."""

    label: str
    call_id: str


@dataclass(frozen=True)
class Reply:
    tone: Tone
    title: str
    lines: tuple[str, ...] = ()
    code: str | None = None  # shown verbatim (a request preview, a table)
    audit_id: int | None = None
    choices: tuple[Choice, ...] = ()
    field: str | None = None  # for a refusal: the word (option, call id…) that was wrong
    offers_form: bool = False  # Slack adds an "Open form" button
    approval: ApprovalNotice | None = None  # to post to the approvers (see ApprovalNotice)
    listing: AuditListing | None = None  # a page of `/call audit` (Slack: Details / Next / Previous)
    calls: CallListing | None = None  # live calls (`/call list`, `/call status`) with their buttons

    def map_text(self, fn: Callable[[str], str]) -> Reply:
        return replace(
            self,
            title=fn(self.title),
            lines=tuple(fn(line) for line in self.lines),
            code=fn(self.code) if self.code is not None else None,
        )

    @property
    def ok(self) -> bool:
        return self.tone in (Tone.SUCCESS, Tone.INFO, Tone.DRY_RUN, Tone.WORKING)

    def as_text(self) -> str:
        parts = [self.title, *self.lines]
        if self.calls is not None:
            parts += [entry.text for entry in self.calls.entries if entry.text]
        if self.code:
            parts.append(self.code)
        if self.audit_id:
            parts.append(f"(audit #{self.audit_id})")
        return "\n".join(parts)


def plural(n: int, noun: str) -> str:
    """`1 command`, `3 commands`."""
    return f"{n} {noun}" + ("" if n == 1 else "s")
