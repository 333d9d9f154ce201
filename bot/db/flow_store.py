"""Saved Bird callFlows (versioned, never removed) and the builder's drafts: the queries, each
scoped by workspace. Each function is one short transaction."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import and_, delete, func, select, update
from sqlalchemy.exc import IntegrityError

from bot.db.models import FlowDraftRow, SavedFlowRow, utcnow
from bot.db.session import Database

DRAFT_TTL = timedelta(hours=24)

# -- saved flows ----------------------------------------------------------------------------------

SAVE_ATTEMPTS = 5


async def insert_saved_flow(
    db: Database, team: str, name: str, callflow: list[dict[str, Any]], author: str
) -> SavedFlowRow:
    """The next version of `name` (1 for a new name; numbers are never reused, even after a delete).

    Two people saving the same name at once both compute the same next version; the unique
    (name, version) constraint refuses one of them, which then tries the following number.
    """
    for attempt in range(SAVE_ATTEMPTS):
        try:
            async with db.session() as session:
                latest = await session.scalar(
                    select(func.max(SavedFlowRow.version)).where(
                        SavedFlowRow.team_id == team, SavedFlowRow.name == name
                    )
                )
                row = SavedFlowRow(team_id=team, name=name, version=(latest or 0) + 1, callflow=callflow, author=author)
                session.add(row)
            return row
        except IntegrityError:
            if attempt == SAVE_ATTEMPTS - 1:
                raise
    raise AssertionError("unreachable")  # pragma: no cover


async def saved_flow_versions(db: Database, team: str, name: str) -> list[SavedFlowRow]:
    """Every version of a name, deleted ones included, oldest first."""
    async with db.session() as session:
        rows = await session.scalars(
            select(SavedFlowRow)
            .where(SavedFlowRow.team_id == team, SavedFlowRow.name == name)
            .order_by(SavedFlowRow.version)
        )
        return list(rows)


async def latest_saved_flows(db: Database, team: str) -> list[tuple[SavedFlowRow, int]]:
    """Each name that has live (not deleted) versions: its newest live version and how many it has."""
    live = and_(SavedFlowRow.deleted_at.is_(None), SavedFlowRow.team_id == team)
    newest = (
        select(
            SavedFlowRow.name.label("name"),
            func.max(SavedFlowRow.version).label("version"),
            func.count().label("versions"),
        )
        .where(live)
        .group_by(SavedFlowRow.name)
        .subquery()
    )
    query = (
        select(SavedFlowRow, newest.c.versions)
        .join(newest, (SavedFlowRow.name == newest.c.name) & (SavedFlowRow.version == newest.c.version))
        .where(SavedFlowRow.team_id == team)
        .order_by(SavedFlowRow.name)
    )
    async with db.session() as session:
        return [(row, int(count)) for row, count in (await session.execute(query)).all()]


async def saved_flow_names(db: Database, team: str, *, deleted: bool = False) -> list[str]:
    """Names with live versions (or, with deleted=True, names whose every version is deleted)."""
    here = SavedFlowRow.team_id == team
    live_names = select(SavedFlowRow.name).where(here, SavedFlowRow.deleted_at.is_(None)).distinct()
    query = (
        select(SavedFlowRow.name).where(here, SavedFlowRow.name.not_in(live_names)).distinct()
        if deleted
        else live_names
    )
    async with db.session() as session:
        return sorted(await session.scalars(query))


async def delete_saved_flow(db: Database, team: str, name: str, deleted_by: str) -> list[int]:
    """Marks every live version of `name` deleted; the versions it marked (none: nothing to delete)."""
    async with db.session() as session:
        rows = list(
            await session.scalars(
                select(SavedFlowRow)
                .where(SavedFlowRow.team_id == team, SavedFlowRow.name == name, SavedFlowRow.deleted_at.is_(None))
                .order_by(SavedFlowRow.version)
                .with_for_update()
            )
        )
        now = utcnow()
        for row in rows:
            row.deleted_at = now
            row.deleted_by = deleted_by
        return [row.version for row in rows]


# -- callFlow builder drafts ----------------------------------------------------------------------


async def create_draft(
    db: Database, team: str, user_id: str, account: str, call_id: str, commands: list[dict[str, Any]]
) -> FlowDraftRow:
    """A new draft; the person's earlier drafts for the same call, and every expired draft, go."""
    async with db.session() as session:
        await session.execute(delete(FlowDraftRow).where(FlowDraftRow.updated_at < utcnow() - DRAFT_TTL))
        await session.execute(
            delete(FlowDraftRow).where(
                FlowDraftRow.team_id == team,
                FlowDraftRow.user_id == user_id,
                FlowDraftRow.account == account,
                FlowDraftRow.call_id == call_id,
            )
        )
        row = FlowDraftRow(
            team_id=team, user_id=user_id, account=account, call_id=call_id, commands=commands, end_call=False
        )
        session.add(row)
    return row


async def latest_draft(db: Database, team: str, user_id: str, account: str, call_id: str) -> FlowDraftRow | None:
    """The person's live draft for this call, if any (expired ones are ignored)."""
    async with db.session() as session:
        return await session.scalar(
            select(FlowDraftRow)
            .where(
                FlowDraftRow.team_id == team,
                FlowDraftRow.user_id == user_id,
                FlowDraftRow.account == account,
                FlowDraftRow.call_id == call_id,
                FlowDraftRow.updated_at >= utcnow() - DRAFT_TTL,
            )
            .order_by(FlowDraftRow.updated_at.desc(), FlowDraftRow.id.desc())
            .limit(1)
        )


async def get_draft(db: Database, team: str, draft_id: int) -> FlowDraftRow | None:
    """A live draft by id in workspace `team`; None when unknown, expired or another workspace's."""
    async with db.session() as session:
        row = await session.get(FlowDraftRow, draft_id)
        if row is None or row.team_id != team:
            return None
        return row if row.updated_at >= utcnow() - DRAFT_TTL else None


async def draft_workspace(db: Database, draft_id: int) -> str | None:
    """Whose draft `draft_id` is (None: no such draft), to tell a foreign one from an expired one."""
    async with db.session() as session:
        team: str | None = await session.scalar(select(FlowDraftRow.team_id).where(FlowDraftRow.id == draft_id))
        return team


async def update_draft(db: Database, team: str, draft_id: int, **fields: Any) -> None:
    fields.setdefault("updated_at", utcnow())
    async with db.session() as session:
        await session.execute(
            update(FlowDraftRow).where(FlowDraftRow.id == draft_id, FlowDraftRow.team_id == team).values(**fields)
        )


async def delete_draft(db: Database, team: str, draft_id: int) -> None:
    async with db.session() as session:
        await session.execute(delete(FlowDraftRow).where(FlowDraftRow.id == draft_id, FlowDraftRow.team_id == team))
