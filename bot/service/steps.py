"""The values the use cases pass around: who asked (`Invocation`), and the two steps of an action
(`Done`, or `Started` with its provider request still to send).

The work is split in two so Slack can be answered within its 3 s: `begin` does everything that
needs no provider (and audits the attempt); `finish` sends the provider request and completes the
audit row.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from bot.domain.actions import CallAction
from bot.domain.errors import NO_WORKSPACE, WorkspaceUnknown
from bot.domain.outcomes import Source
from bot.domain.permissions import Decision
from bot.domain.replies import Reply
from bot.providers.base import ProviderClient, WireRequest

Clock = Callable[[], datetime]


def real_clock() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Invocation:
    """Who asked for what, from where: the same shape from Slack and from the shell."""

    source: str  # a Source
    user_id: str
    text: str
    user_name: str | None = None
    # The workspace (bot/db/workspaces.py): Slack names it in every payload; the shell's comes from
    # `--team` (or the one workspace callbot knows). Every row read or written is scoped by it.
    team_id: str | None = None
    channel_id: str | None = None
    idempotency_key: str | None = None
    # The account picked with a button when the call id alone was ambiguous.
    account: str | None = None
    # Slack's response_url for this request: a call action keeps it while pending, so a restart
    # can still tell the person (bot/db/pending.py). Anyone holding it may post for 30 minutes:
    # never logged, so out of the repr too.
    response_url: str | None = field(default=None, repr=False)
    # Enterprise Grid: the organisation the workspace belongs to, when Slack names one.
    enterprise_id: str | None = None

    @property
    def team(self) -> str:
        """The workspace every query of this invocation is scoped by: there is no unscoped one. ""
        is the shell's before callbot knows any workspace (bot/db/workspaces.py UNASSIGNED)."""
        if self.team_id is None:
            raise WorkspaceUnknown(NO_WORKSPACE)
        return self.team_id

    @property
    def command_text(self) -> str:
        return f"/call {self.text}".rstrip() if self.source not in (Source.CLI, Source.SLACK) else self.text


@dataclass(frozen=True)
class Done:
    reply: Reply


@dataclass(frozen=True)
class Started:
    """An allowed call action, audited as pending: the provider request still has to be sent."""

    ack: Reply
    audit_id: int
    client: ProviderClient
    request: WireRequest
    action: CallAction
    label: str
    call_id: str = ""
    # The account's `check_state`: `finish` reads the call's state first (bot/service/live.py).
    check_state: bool = False
    # A dry run waiting for its state check: the reply to give once the check passes.
    dry_run: Reply | None = None
    # The account's announce_channel, when the outcome is to be announced there (bot/slack/announce.py).
    announce: str | None = None
    # The workspace it runs in: an announcement posted after the request is over uses its token.
    team_id: str | None = None
    enterprise_id: str | None = None


@dataclass(frozen=True)
class Authorised:
    """A call action's account resolved and `decide` passed: what the rest of the pipeline needs."""

    account: str
    client: ProviderClient
    decision: Decision
    context: dict[str, Any]  # the audit row's action, account, provider, call
    label: str  # how people read the target: `prod:CA…`


@dataclass(frozen=True)
class Cleared:
    """An action that passed the account's safety policy: the decision to audit it under."""

    decision: Decision
    break_glass: bool
