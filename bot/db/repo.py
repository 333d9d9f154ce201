"""The queries the service needs, and nothing else. Each function is one short transaction."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, delete, func, or_, select, update
from sqlalchemy.exc import IntegrityError

from bot.db import chain, pending, workspaces
from bot.db.models import (
    ApprovalRow,
    AuditRow,
    BatchRow,
    FreezeRow,
    GrantRow,
    PendingChoice,
    RoleRow,
    utcnow,
)
from bot.db.session import Database
from bot.domain.permissions import GROUP, USER, Grant

CHOICE_TTL = timedelta(minutes=15)


class DuplicateRequest(Exception):
    """The idempotency key was already used: the request was delivered before."""


def _grant(row: GrantRow) -> Grant:
    return Grant(
        row.id,
        row.user_id,
        row.action,
        row.account,
        channel=row.channel,
        expires_at=row.expires_at,
        subject_kind=row.subject_kind,
        needs_approval=bool(row.needs_approval),
    )


async def group_grants(db: Database, team: str) -> list[Grant]:
    async with db.session() as session:
        rows = await session.scalars(
            select(GrantRow).where(GrantRow.team_id == team, GrantRow.subject_kind == GROUP).order_by(GrantRow.id)
        )
        return [_grant(row) for row in rows]


async def grants_for(
    db: Database, team: str, user_id: str
) -> tuple[list[Grant], list[Grant], dict[str, tuple[str, ...]]]:
    """What a permission check reads, in one session: the user's own grants, every group grant and
    the custom roles of the workspace `team` (expired grants included)."""
    async with db.session() as session:
        rows = await session.scalars(
            select(GrantRow)
            .where(
                GrantRow.team_id == team,
                or_(
                    and_(GrantRow.user_id == user_id, GrantRow.subject_kind == USER),
                    GrantRow.subject_kind == GROUP,
                ),
            )
            .order_by(GrantRow.id)
        )
        grants = [(row.subject_kind, _grant(row)) for row in rows]
        roles = await session.scalars(select(RoleRow).where(RoleRow.team_id == team).order_by(RoleRow.name))
        custom = {row.name: tuple(row.actions) for row in roles}
    own = [grant for kind, grant in grants if kind == USER]
    return own, [grant for kind, grant in grants if kind == GROUP], custom


async def all_grants(db: Database, team: str) -> list[Grant]:
    async with db.session() as session:
        rows = await session.scalars(
            select(GrantRow).where(GrantRow.team_id == team).order_by(GrantRow.user_id, GrantRow.id)
        )
        return [_grant(row) for row in rows]


def _same_grant(team: str, kind: str, subject: str, action: str, account: str, channel: str | None) -> list[Any]:
    return [
        GrantRow.team_id == team,
        GrantRow.subject_kind == kind,
        GrantRow.user_id == subject,
        GrantRow.action == action,
        GrantRow.account == account,
        GrantRow.channel.is_(None) if channel is None else GrantRow.channel == channel,
    ]


async def add_grant(
    db: Database,
    team: str,
    user_id: str,
    action: str,
    account: str,
    granted_by: str,
    *,
    kind: str = USER,
    channel: str | None = None,
    expires_at: datetime | None = None,
    needs_approval: bool = False,
) -> str:
    """ "added", "renewed" (same grant, new expiry or approval flag: an incident grant extended or
    made permanent) or "held" (nothing changed)."""
    try:
        async with db.session() as session:
            row = await session.scalar(
                select(GrantRow).where(*_same_grant(team, kind, user_id, action, account, channel))
            )
            if row is None:
                session.add(
                    GrantRow(
                        team_id=team,
                        user_id=user_id,
                        action=action,
                        account=account,
                        granted_by=granted_by,
                        subject_kind=kind,
                        channel=channel,
                        expires_at=expires_at,
                        needs_approval=needs_approval,
                    )
                )
                return "added"
            if row.expires_at == expires_at and bool(row.needs_approval) == needs_approval:
                return "held"
            row.expires_at, row.granted_by, row.needs_approval = expires_at, granted_by, needs_approval
            return "renewed"
    except IntegrityError:
        return "held"


async def remove_grant(
    db: Database, team: str, user_id: str, action: str, account: str, *, kind: str = USER, channel: str | None = None
) -> bool:
    """Without `channel`, every grant of that action on that account goes (whatever its channel)."""
    conditions = [
        GrantRow.team_id == team,
        GrantRow.subject_kind == kind,
        GrantRow.user_id == user_id,
        GrantRow.action == action,
        GrantRow.account == account,
    ]
    if channel is not None:
        conditions.append(GrantRow.channel == channel)
    async with db.session() as session:
        result = await session.execute(delete(GrantRow).where(*conditions))
        return bool(result.rowcount)  # type: ignore[attr-defined]


async def custom_roles(db: Database, team: str) -> dict[str, tuple[str, ...]]:
    async with db.session() as session:
        rows = await session.scalars(select(RoleRow).where(RoleRow.team_id == team).order_by(RoleRow.name))
        return {row.name: tuple(row.actions) for row in rows}


async def save_role(
    db: Database, team: str, name: str, actions: list[str], by: str, now: datetime
) -> tuple[str, ...] | None:
    """Create or redefine a custom role; returns its previous actions (None when new)."""
    async with db.session() as session:
        row = await session.get(RoleRow, (team, name))
        if row is None:
            session.add(RoleRow(team_id=team, name=name, actions=actions, created_by=by, updated_at=now))
            return None
        previous = tuple(row.actions)
        row.actions, row.created_by, row.updated_at = actions, by, now
        return previous


async def insert_audit(db: Database, team: str, *, reply_url: str | None = None, **fields: Any) -> AuditRow:
    """Inserts the row, in the audit of workspace `team`, and appends its opening entry to the hash
    chain, in one transaction. `reply_url`: a pending call action's response_url (bot/db/pending.py)."""
    fields.setdefault("created_at", utcnow())
    fields["workspace_id"] = team or None  # the shell before any workspace is known: assigned later
    try:
        async with db.chain_session() as session:
            row = await chain.append_row(session, fields)
            if reply_url:
                await pending.keep_reply(session, row.id, reply_url, fields["created_at"])
    except IntegrityError:
        if fields.get("idempotency_key") is None:
            raise
        raise DuplicateRequest(fields["idempotency_key"]) from None
    return row


async def complete_audit(db: Database, audit_id: int, **fields: Any) -> bool:
    """Gives a pending row its outcome (a closing chain entry). False when the row was no longer
    pending: a restart marked it unknown first."""
    fields.setdefault("completed_at", utcnow())
    async with db.chain_session() as session:
        await pending.forget_reply(session, audit_id)
        return bool(await chain.close_rows(session, {audit_id: fields}))


async def audit_by_key(db: Database, key: str) -> AuditRow | None:
    """Idempotency keys are Slack's trigger ids (unique across workspaces): the replay check reads
    the row whatever its workspace, and the caller compares it with the asker's."""
    async with db.session() as session:
        return await session.scalar(select(AuditRow).where(AuditRow.idempotency_key == key))


async def audit_by_id(db: Database, team: str | None, audit_id: int) -> AuditRow | None:
    """The row if it is in workspace `team` (None: whatever its workspace, for the process's own
    bookkeeping of rows it wrote)."""
    async with db.session() as session:
        row = await session.get(AuditRow, audit_id)
        return row if row is not None and (team is None or workspaces.same(row.workspace_id, team)) else None


async def save_choice(
    db: Database, team: str, token: str, user_id: str, text: str, accounts: list[str], purpose: str = "account"
) -> None:
    async with db.session() as session:
        await session.execute(delete(PendingChoice).where(PendingChoice.created_at < utcnow() - CHOICE_TTL))
        session.add(
            PendingChoice(team_id=team, token=token, user_id=user_id, text=text, accounts=accounts, purpose=purpose)
        )


async def peek_choice(db: Database, team: str | None, token: str) -> PendingChoice | None:
    """The stored command, left in place; None when unknown, expired or (with `team`) of
    another workspace."""
    async with db.session() as session:
        choice = await session.get(PendingChoice, token)
        if choice is None or (team is not None and choice.team_id != team):
            return None
        return choice if choice.created_at >= utcnow() - CHOICE_TTL else None


async def take_choice(db: Database, team: str, token: str, user_id: str | None = None) -> PendingChoice | None:
    """The stored command, removed as it is taken; None when unknown or expired. With `user_id`,
    someone else's click leaves it in place (the owner's buttons keep working). One DELETE …
    RETURNING, so of two clicks at once exactly one gets the command and the other None."""
    taking = delete(PendingChoice).where(PendingChoice.token == token, PendingChoice.team_id == team)
    if user_id is not None:
        taking = taking.where(PendingChoice.user_id == user_id)
    async with db.session() as session:
        choice = (await session.scalars(taking.returning(PendingChoice))).one_or_none()
        return choice if choice is not None and choice.created_at >= utcnow() - CHOICE_TTL else None


# -- safety policy: rate limits and freezes ---------------------------------------------------------

# Attempts that count against a rate limit: sent, or being sent. Refusals and dry runs do not.
COUNTED_OUTCOMES = ("pending", "succeeded", "failed", "unknown")


async def recent_attempt_times(
    db: Database,
    team: str | None,
    since: datetime,
    actions: tuple[str, ...],
    *,
    account: str,
    user_id: str | None = None,
) -> list[datetime]:
    """When the counted call attempts on `account` (by `user_id`, or by anyone) in workspace `team`
    (None: in every workspace the account is shared with) since `since` began. The calls of a bulk
    action do not count: its one command was counted, and its own throttle paces it."""
    query = select(AuditRow.created_at).where(
        AuditRow.created_at >= since,
        AuditRow.account == account,
        AuditRow.action.in_(actions),
        AuditRow.outcome.in_(COUNTED_OUTCOMES),
        AuditRow.source != "bulk",
    )
    if team is not None:
        query = query.where(workspaces.scoped(AuditRow.workspace_id, team))
    if user_id is not None:
        query = query.where(AuditRow.user_id == user_id)
    async with db.session() as session:
        return list(await session.scalars(query))


async def active_freeze(db: Database, team: str, account: str) -> FreezeRow | None:
    async with db.session() as session:
        query = (
            select(FreezeRow)
            .where(FreezeRow.team_id == team, FreezeRow.account == account, FreezeRow.lifted_at.is_(None))
            .order_by(FreezeRow.id.desc())
            .limit(1)
        )
        return (await session.scalars(query)).first()


async def add_freeze(db: Database, team: str, account: str, reason: str, frozen_by: str, at: datetime) -> FreezeRow:
    row = FreezeRow(team_id=team, account=account, reason=reason, frozen_by=frozen_by, frozen_at=at)
    async with db.session() as session:
        session.add(row)
    return row


async def lift_freezes(
    db: Database, team: str, account: str, lifted_by: str, at: datetime, reason: str | None
) -> list[int]:
    """Lift every active freeze of `account` in workspace `team`; the ids lifted (none when it was
    not frozen)."""
    async with db.session() as session:
        rows = list(
            await session.scalars(
                select(FreezeRow).where(
                    FreezeRow.team_id == team, FreezeRow.account == account, FreezeRow.lifted_at.is_(None)
                )
            )
        )
        for row in rows:
            row.lifted_by, row.lifted_at, row.lift_reason = lifted_by, at, reason
        return [row.id for row in rows]


# -- two-person approval ------------------------------------------------------------------------------


async def insert_approval(db: Database, team: str, **fields: Any) -> ApprovalRow:
    row = ApprovalRow(team_id=team, **fields)
    async with db.session() as session:
        session.add(row)
    return row


async def get_approval(db: Database, team: str | None, approval_id: int) -> ApprovalRow | None:
    """The request if it is in workspace `team` (None: whatever its workspace, for the process's
    own bookkeeping: expiry, execution)."""
    async with db.session() as session:
        row = await session.get(ApprovalRow, approval_id)
        return row if row is not None and (team is None or row.team_id == team) else None


async def set_approval(db: Database, approval_id: int, **fields: Any) -> None:
    async with db.session() as session:
        await session.execute(update(ApprovalRow).where(ApprovalRow.id == approval_id).values(**fields))


async def due_approvals(db: Database, now: datetime) -> list[ApprovalRow]:
    """Requests still pending whose deadline has passed (for the expiry sweep)."""
    async with db.session() as session:
        result = await session.execute(
            select(ApprovalRow)
            # A request still waiting for its workspace (written before workspaces, auth.test not
            # read yet) expires once it has one: its audit row needs the workspace.
            .where(ApprovalRow.status == "pending", ApprovalRow.expires_at <= now, ApprovalRow.team_id != "")
            .order_by(ApprovalRow.id)
        )
        return list(result.scalars())


FINISHED_APPROVALS = ("executed", "denied", "expired")


async def move_approval(db: Database, approval_id: int, from_status: str, to_status: str, **fields: Any) -> bool:
    """Change the status only if it is still `from_status`: one conditional UPDATE, so of two
    clicks arriving together exactly one wins (the other sees 0 rows changed)."""
    if to_status in FINISHED_APPROVALS:
        # The command as typed may hold a provider password: keep it only until it has run.
        fields.setdefault("text", "")
    async with db.session() as session:
        result = await session.execute(
            update(ApprovalRow)
            .where(ApprovalRow.id == approval_id, ApprovalRow.status == from_status)
            .values(status=to_status, **fields)
        )
        return bool(getattr(result, "rowcount", 0) == 1)


async def gauges(db: Database) -> tuple[int, int]:
    """(audit rows pending, batches running) in the whole database: two index-only counts."""
    async with db.session() as session:
        pending = await session.scalar(select(func.count()).where(AuditRow.outcome == chain.PENDING))
        running = await session.scalar(select(func.count()).select_from(BatchRow).where(BatchRow.status == "running"))
    return int(pending or 0), int(running or 0)


async def approval_linked_to(db: Database, team: str, audit_id: int, approval_id: int | None) -> ApprovalRow | None:
    """The two-person approval an audit row requested, executed or decided (`approval_id`: named
    in the row), if any, in workspace `team`."""
    conditions = [ApprovalRow.request_audit_id == audit_id, ApprovalRow.result_audit_id == audit_id]
    if approval_id is not None:
        conditions.append(ApprovalRow.id == approval_id)
    async with db.session() as session:
        row: ApprovalRow | None = await session.scalar(
            select(ApprovalRow).where(ApprovalRow.team_id == team, or_(*conditions)).limit(1)
        )
        return row


async def audit_rows_before(db: Database, before: datetime) -> bool:
    async with db.session() as session:
        return (await session.scalar(select(AuditRow.id).where(AuditRow.created_at < before).limit(1))) is not None


async def purge_audit(db: Database, before: datetime, checkpoint: dict[str, Any]) -> tuple[chain.Purge, AuditRow]:
    """Deletes the chain's prefix before `before` and inserts the checkpoint row, in one transaction."""
    async with db.chain_session() as session:
        return await chain.purge(session, before, checkpoint)
