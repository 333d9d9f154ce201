"""Reading the audit log: filters, keyset pages (newest first) and constant-memory streams.

Pages and streams are keyed on (created_at, id), never OFFSET: the 100th page costs what the
first does, and every filter has an index that ends in (created_at, id) (see models.AuditRow).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, or_, select, tuple_

from bot.db.models import AuditRow
from bot.db.session import Database
from bot.permissions import ANY_ACCOUNT


@dataclass(frozen=True)
class AuditFilter:
    user_id: str | None = None
    account: str | None = None
    call_id: str | None = None
    action: str | None = None
    outcome: str | None = None
    since: datetime | None = None  # inclusive
    until: datetime | None = None  # exclusive
    # Who is asking decides what they may see: None means every row.
    visible_accounts: tuple[str, ...] | None = None
    visible_user: str | None = None


@dataclass(frozen=True)
class Cursor:
    """A position in the newest-first order: the row at (created_at, id)."""

    created_at: datetime
    id: int

    @classmethod
    def of(cls, row: Any) -> Cursor:
        return cls(row.created_at, row.id)


@dataclass(frozen=True)
class AuditPage:
    rows: list[AuditRow]  # newest first
    has_newer: bool
    has_older: bool

    @property
    def newest(self) -> Cursor | None:
        return Cursor.of(self.rows[0]) if self.rows else None

    @property
    def oldest(self) -> Cursor | None:
        return Cursor.of(self.rows[-1]) if self.rows else None


def _key() -> Any:
    return tuple_(AuditRow.created_at, AuditRow.id)


def where(query: Select[Any], flt: AuditFilter) -> Select[Any]:
    """Applies the filter and the asker's visibility to a query over audit_log."""
    scope = []
    if flt.visible_user is not None:
        scope.append(AuditRow.user_id == flt.visible_user)
    if flt.visible_accounts:
        if ANY_ACCOUNT in flt.visible_accounts:
            scope = []
        else:
            scope.append(AuditRow.account.in_(flt.visible_accounts))
    if scope:
        query = query.where(or_(*scope))
    for column, value in (
        (AuditRow.user_id, flt.user_id),
        (AuditRow.account, flt.account),
        (AuditRow.call_id, flt.call_id),
        (AuditRow.action, flt.action),
        (AuditRow.outcome, flt.outcome),
    ):
        if value is not None:
            query = query.where(column == value)
    if flt.since is not None:
        query = query.where(AuditRow.created_at >= flt.since)
    if flt.until is not None:
        query = query.where(AuditRow.created_at < flt.until)
    return query


def page_query(
    flt: AuditFilter, size: int, *, older_than: Cursor | None = None, newer_than: Cursor | None = None
) -> Select[Any]:
    """One more row than `size`, to know whether another page follows. With `newer_than` the
    rows come oldest first (the caller reverses them)."""
    query = where(select(AuditRow), flt)
    if newer_than is not None:
        query = query.where(_key() > tuple_(newer_than.created_at, newer_than.id))
        return query.order_by(AuditRow.created_at.asc(), AuditRow.id.asc()).limit(size + 1)
    if older_than is not None:
        query = query.where(_key() < tuple_(older_than.created_at, older_than.id))
    return query.order_by(AuditRow.created_at.desc(), AuditRow.id.desc()).limit(size + 1)


async def page(
    db: Database,
    flt: AuditFilter,
    size: int = 10,
    *,
    older_than: Cursor | None = None,
    newer_than: Cursor | None = None,
) -> AuditPage:
    """The `size` newest rows, or those just older than `older_than` ("Next"), or just newer
    than `newer_than` ("Previous")."""
    async with db.session() as session:
        rows = list(await session.scalars(page_query(flt, size, older_than=older_than, newer_than=newer_than)))
    more = len(rows) > size
    rows = rows[:size]
    if newer_than is not None:
        return AuditPage(rows[::-1], has_newer=more, has_older=True)
    return AuditPage(rows, has_newer=older_than is not None, has_older=more)


async def get(db: Database, audit_id: int, flt: AuditFilter) -> AuditRow | None:
    """One row, if the asker may see it."""
    async with db.session() as session:
        return await session.scalar(where(select(AuditRow), flt).where(AuditRow.id == audit_id))


async def stream(
    db: Database, flt: AuditFilter, columns: Sequence[str], chunk: int = 2000
) -> AsyncIterator[dict[str, Any]]:
    """Every matching row, oldest first, as plain dicts of `columns`: one short query per chunk,
    so memory stays flat however many rows match and no transaction stays open meanwhile."""
    selected = [getattr(AuditRow, name) for name in columns]
    base = where(select(*selected, AuditRow.created_at.label("_at"), AuditRow.id.label("_id")), flt)
    after: tuple[datetime, int] | None = None
    while True:
        query = base if after is None else base.where(_key() > tuple_(*after))
        query = query.order_by(AuditRow.created_at.asc(), AuditRow.id.asc()).limit(chunk)
        async with db.session() as session:
            rows = (await session.execute(query)).mappings().all()
        for row in rows:
            yield {name: row[name] for name in columns}
        if len(rows) < chunk:
            return
        after = (rows[-1]["_at"], rows[-1]["_id"])
