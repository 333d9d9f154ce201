"""The typed commands the grammar produces: one frozen dataclass per kind of `/call` request."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from bot.domain.actions import (
    ActionName,
    CallAction,
    CallTarget,
)
from bot.domain.callflow import CallFlow
from bot.domain.flows import FlowRef
from bot.domain.permissions import USER


@dataclass(frozen=True)
class CallCommand:
    target: CallTarget
    action: CallAction
    dry_run: bool
    options: frozenset[str]  # the grammar options used, checked against what the provider supports
    # `announce`: tell the account's announce_channel of the outcome (bot/domain/policy.py `announce_to`).
    announce: bool = False

    @property
    def verb(self) -> str:
        return self.action.name.value


@dataclass(frozen=True)
class DocumentCall:
    """`/call flow CALL 'CALLFLOW'` or `/call twiml CALL '<Response>…'` as typed: the verb, the call
    and the options are read; the document is not yet. Reading it is the costly part of a command
    (JSON, YAML, XML), so the service reads it (`grammar.read_document`) only once the person may
    run the verb on the account: a refused person's document is never parsed."""

    target: CallTarget
    name: ActionName  # FLOW or TWIML
    document: str
    reason: str | None
    dry_run: bool
    options: frozenset[str]
    announce: bool = False

    @property
    def verb(self) -> str:
        return self.name.value


@dataclass(frozen=True)
class SavedFlowCommand:
    """`/call flow CALL NAME[@N]`: apply a saved flow (the service resolves it and asks to confirm)."""

    target: CallTarget
    ref: FlowRef
    dry_run: bool
    reason: str | None = None
    announce: bool = False

    @property
    def verb(self) -> str:
        return ActionName.FLOW.value


@dataclass(frozen=True)
class FlowBuilderCommand:
    """`/call flow CALL` with no callFlow: Slack opens the callFlow builder (a modal) for that call.
    Elsewhere (the CLI, or an account without callFlows) it is refused as `flow` needing CALLFLOW."""

    target: CallTarget

    @property
    def verb(self) -> str:
        return ActionName.FLOW.value


@dataclass(frozen=True)
class FlowsCommand:
    """`/call flows …`: `sub` is list, show, save or delete."""

    sub: str
    ref: FlowRef | None = None
    flow: CallFlow | None = None  # for save: the callFlow, once read
    # For save as typed: the callFlow's text, read (`grammar.read_flows_document`) only once the
    # person may save.
    document: str | None = None

    @property
    def audit_action(self) -> str:
        return f"flows.{self.sub}"


@dataclass(frozen=True)
class ListCallsCommand:
    """`/call list ACCOUNT [status=…] [to=…] [from=…]`: the account's live calls (read only).
    `status` is checked by the service against the live statuses the providers share."""

    account: str
    status: str | None = None
    to: str | None = None
    from_number: str | None = None


@dataclass(frozen=True)
class CallStatusCommand:
    """`/call status [account:]CALL`: one call's state, fetched from the provider (read only)."""

    target: CallTarget


@dataclass(frozen=True)
class HangupAllCommand:
    """`/call hangup-all ACCOUNT [status=…] [to=…] [from=…] [max=N] [reason=…]`: end every live call
    matching the filter (at most `max`), as a batch (bot/service/bulk/actions.py)."""

    account: str
    status: str | None = None
    to: str | None = None
    from_number: str | None = None
    max: int | None = None
    reason: str | None = None


@dataclass(frozen=True)
class BatchCommand:
    """`/call batch ID [resume|cancel]`: `sub` is show, resume or cancel."""

    batch_id: int
    sub: str = "show"


@dataclass(frozen=True)
class HelpCommand:
    topic: str | None = None


@dataclass(frozen=True)
class OpenFormCommand:
    pass


@dataclass(frozen=True)
class AuditQuery:
    user_id: str | None = None
    account: str | None = None
    call_id: str | None = None
    action: str | None = None
    outcome: str | None = None
    since: datetime | None = None
    until: datetime | None = None  # exclusive
    # `/call audit export … format=csv|jsonl`: the matching rows as a file instead of a page.
    export: bool = False
    format: str = "csv"


@dataclass(frozen=True)
class GrantCommand:
    revoke: bool
    user_id: str  # the subject: a user id, or a user group id when subject_kind is "group"
    actions: tuple[str, ...]  # actions or role names (custom roles are checked by the service)
    accounts: tuple[str, ...]
    subject_kind: str = USER
    channel: str | None = None
    # At most one of these; the service turns `duration` into a moment with its clock.
    duration: timedelta | None = None
    until: datetime | None = None
    # `needs_approval=yes`: the actions this grant allows are held for two-person approval.
    needs_approval: bool = False


@dataclass(frozen=True)
class PermsCommand:
    user_id: str | None = None
    subject_kind: str = USER


@dataclass(frozen=True)
class RolesCommand:
    pass


@dataclass(frozen=True)
class RoleCommand:
    """`/call role create NAME ACTIONS`: creating an existing custom role redefines it."""

    name: str
    actions: tuple[str, ...]


@dataclass(frozen=True)
class FreezeCommand:
    """`/call freeze|unfreeze on=ACCOUNTS [reason=…]` (a reason is required to freeze)."""

    lift: bool
    accounts: tuple[str, ...]
    reason: str | None

    @property
    def verb(self) -> str:
        return "unfreeze" if self.lift else "freeze"


Command = (
    CallCommand
    | DocumentCall
    | SavedFlowCommand
    | FlowBuilderCommand
    | FlowsCommand
    | HelpCommand
    | OpenFormCommand
    | AuditQuery
    | GrantCommand
    | PermsCommand
    | RolesCommand
    | RoleCommand
    | FreezeCommand
    | ListCallsCommand
    | CallStatusCommand
    | HangupAllCommand
    | BatchCommand
)
