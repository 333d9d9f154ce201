"""The Slack workspaces callbot serves, and the rows written before it knew them.

A workspace is (enterprise_id, team_id); team_id is the key. Every scoped table carries it
(models.py). Rows written before revision 0015 have team_id "" (audit rows: workspace_id NULL)
until `assign_unassigned` gives them to the workspace the bot token belongs to, once, at start.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, update

from bot.db.models import (
    ApprovalRow,
    AuditRow,
    BatchRow,
    FlowDraftRow,
    FreezeRow,
    GrantRow,
    PendingChoice,
    RoleRow,
    SavedFlowRow,
    WorkspaceRow,
    utcnow,
)
from bot.db.session import Database
from bot.domain.errors import WorkspaceUnknown

# What revision 0015 put in the team_id of the rows it found (alembic cannot ask Slack).
UNASSIGNED = ""

SCOPED = (GrantRow, RoleRow, PendingChoice, SavedFlowRow, FlowDraftRow, FreezeRow, ApprovalRow, BatchRow)


@dataclass(frozen=True)
class Workspace:
    team_id: str
    enterprise_id: str | None = None
    name: str | None = None


async def record(db: Database, team_id: str, enterprise_id: str | None = None, name: str | None = None) -> Workspace:
    """Remembers a workspace callbot serves (at start from auth.test; an OAuth install calls it
    too). Seen again, its enterprise id and name are refreshed; `first_seen` stays."""
    if not team_id:
        raise ValueError("a workspace needs its team id")
    async with db.session() as session:
        row = await session.get(WorkspaceRow, team_id)
        if row is None:
            session.add(WorkspaceRow(team_id=team_id, enterprise_id=enterprise_id, name=name, first_seen=utcnow()))
        else:
            row.enterprise_id = enterprise_id or row.enterprise_id
            row.name = name or row.name
    return Workspace(team_id, enterprise_id, name)


async def known(db: Database) -> list[Workspace]:
    async with db.session() as session:
        rows = await session.scalars(select(WorkspaceRow).order_by(WorkspaceRow.team_id))
        return [Workspace(row.team_id, row.enterprise_id, row.name) for row in rows]


async def enterprise_of(db: Database, team_id: str) -> str | None:
    async with db.session() as session:
        row = await session.get(WorkspaceRow, team_id)
        return row.enterprise_id if row is not None else None


async def unassigned(db: Database) -> dict[str, int]:
    """How many rows of each table wait for their workspace (tables with none left out)."""
    found: dict[str, int] = {}
    async with db.session() as session:
        for model in SCOPED:
            n = await session.scalar(select(func.count()).select_from(model).where(model.team_id == UNASSIGNED))
            if n:
                found[model.__tablename__] = int(n)
        n = await session.scalar(select(func.count()).select_from(AuditRow).where(AuditRow.workspace_id.is_(None)))
        if n:
            found[AuditRow.__tablename__] = int(n)
    return found


async def assign_unassigned(db: Database, team_id: str, at: datetime | None = None) -> dict[str, int]:
    """Gives every unassigned row to `team_id`, in one transaction; how many of each table.

    Audit rows keep their hashed fields: an old row with a team_id (Slack sent one) is in that
    workspace, any other (the shell's, or older) in `team_id`; only `workspace_id` is written."""
    if not team_id:
        raise ValueError("a workspace needs its team id")
    moved: dict[str, int] = {}
    async with db.session() as session:
        for model in SCOPED:
            result = await session.execute(update(model).where(model.team_id == UNASSIGNED).values(team_id=team_id))
            if result.rowcount:  # type: ignore[attr-defined]
                moved[model.__tablename__] = int(result.rowcount)  # type: ignore[attr-defined]
        result = await session.execute(
            update(AuditRow)
            .where(AuditRow.workspace_id.is_(None))
            .values(workspace_id=func.coalesce(AuditRow.team_id, team_id))
        )
        if result.rowcount:  # type: ignore[attr-defined]
            moved[AuditRow.__tablename__] = int(result.rowcount)  # type: ignore[attr-defined]
        row = await session.get(WorkspaceRow, team_id)
        if row is not None and moved and row.assigned_at is None:
            row.assigned_at = at or utcnow()
    return moved


async def choose(
    db: Database, asked: str | None, home: str | None = None, *, organisations: bool = False, oauth: bool = False
) -> str:
    """The workspace a shell command is about: `--team` when given (it must be one callbot knows),
    else the only one it knows. Several and no `--team`: a clear error listing them. An org-wide
    install's rows are filed under its enterprise id (E…): only the audit commands
    (`organisations`) take one, and never by default, since no request ever comes from it."""
    known_ids = {w.team_id for w in await known(db)} | ({home} if home else set())
    teams = sorted(team for team in known_ids if not team.startswith("E"))
    listed = ", ".join(teams)
    if asked:
        if asked.startswith("E") and asked in known_ids and not organisations:
            raise WorkspaceUnknown(
                f"--team {asked}: an Enterprise Grid organisation, not a workspace; name one of its workspaces (T…)."
            )
        if asked not in (known_ids if organisations else teams):
            known_text = f"known: {listed}" if teams else "callbot knows none yet"
            raise WorkspaceUnknown(f"--team {asked}: not a workspace callbot serves ({known_text}).")
        return asked
    if len(teams) == 1:
        return teams[0]
    if not teams and oauth:
        # No bot token whose auth.test would later claim unassigned rows: there must be a workspace.
        raise WorkspaceUnknown(
            "No Slack workspace is known yet: install callbot from /slack/install (under an org-wide"
            " install, a workspace is known once someone there has used callbot)."
        )
    if not teams:
        # No Slack yet (no SLACK_BOT_TOKEN, or auth.test unread): the shell writes rows without a
        # workspace, given to the bot token's at the first start that reads it, like older rows.
        return UNASSIGNED
    raise WorkspaceUnknown(f"callbot serves several Slack workspaces ({listed}): say which with --team T….")


def scoped(column: Any, team: str) -> Any:
    """The condition "in workspace `team`" on an audit_log workspace column: NULL is the rows not
    assigned yet (UNASSIGNED, what the shell works in before callbot knows a workspace)."""
    return column.is_(None) if team == UNASSIGNED else column == team


def same(workspace_id: str | None, team: str) -> bool:
    """`scoped`, for a row already read."""
    return (workspace_id or UNASSIGNED) == team


async def misplaced(db: Database, limit: int = 20) -> list[int]:
    """Audit rows shown in a workspace other than the one their hashed team_id names: the chain
    does not cover `workspace_id`, so `audit verify` checks it against what it does cover."""
    async with db.session() as session:
        rows = await session.scalars(
            select(AuditRow.id)
            .where(AuditRow.team_id.is_not(None), AuditRow.workspace_id != AuditRow.team_id)
            .order_by(AuditRow.id)
            .limit(limit)
        )
        return list(rows)
