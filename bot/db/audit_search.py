"""Reading the audit log: filters, keyset pages (newest first) and constant-memory streams.

Pages and streams are keyed on (created_at, id), never OFFSET: the 100th page costs what the
first does, and every filter has an index that ends in (created_at, id) (see models.AuditRow).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import CompoundSelect, Select, and_, func, or_, select, tuple_, union_all
from sqlalchemy.sql.selectable import ExecutableReturnsRows

from bot.db import workspaces
from bot.db.models import AuditRow
from bot.db.session import Database
from bot.domain.permissions import ANY_ACCOUNT


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
    # The workspace whose audit is read (audit_log.workspace_id). Every read needs it: a filter
    # without one is refused (ValueError), so no listing, page or export can span workspaces.
    workspace: str | None = None


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


# Visibility branches, filters, then the ordered reads built from them.


def _conditions(flt: AuditFilter) -> list[Any]:
    """The filters proper, without the visibility scope, within the filter's workspace."""
    if flt.workspace is None:
        raise ValueError("an audit read names its workspace")
    found: list[Any] = [workspaces.scoped(AuditRow.workspace_id, flt.workspace)] + [
        column == value
        for column, value in (
            (AuditRow.user_id, flt.user_id),
            (AuditRow.account, flt.account),
            (AuditRow.call_id, flt.call_id),
            (AuditRow.action, flt.action),
            (AuditRow.outcome, flt.outcome),
        )
        if value is not None
    ]
    if flt.since is not None:
        found.append(AuditRow.created_at >= flt.since)
    if flt.until is not None:
        found.append(AuditRow.created_at < flt.until)
    return found


def _branches(flt: AuditFilter) -> list[list[Any]]:
    """The visibility scope as disjoint branches, each served by one (column, created_at, id)
    index: the asker's own rows, then each visible account's rows by others. A single empty
    branch means every row. Disjoint, so a UNION ALL of them never repeats a row."""
    accounts = tuple(dict.fromkeys(flt.visible_accounts or ()))
    if ANY_ACCOUNT in accounts:
        return [[]]
    branches: list[list[Any]] = []
    if flt.visible_user is not None:
        branches.append([AuditRow.user_id == flt.visible_user])
    others = [] if flt.visible_user is None else [AuditRow.user_id != flt.visible_user]
    branches.extend([AuditRow.account == account, *others] for account in accounts)
    return branches or [[]]


def where(query: Select[Any], flt: AuditFilter) -> Select[Any]:
    """Applies the filter and the asker's visibility to a query over audit_log. For lookups:
    ordered reads go through `_ordered`, which keeps every branch of the scope on an index."""
    branches = _branches(flt)
    scope = [or_(*(and_(*branch) for branch in branches))] if len(branches) > 1 else branches[0]
    return query.where(*scope, *_conditions(flt))


def _order(at: Any, ident: Any, ascending: bool) -> tuple[Any, Any]:
    return (at.asc(), ident.asc()) if ascending else (at.desc(), ident.desc())


def _ordered(
    flt: AuditFilter,
    columns: Sequence[Any],
    *,
    after: Cursor | None,
    before: Cursor | None,
    ascending: bool,
    limit: int,
    dialect: str | None,
) -> Select[Any] | CompoundSelect[Any]:
    """`columns` plus `_at` and `_id` of the rows matching `flt` strictly between the keys, in
    (created_at, id) order, at most `limit` rows.

    An OR across columns (the asker's rows, or a visible account's) cannot walk one index in
    order: the database would collect every visible row and sort them all. So each branch of the
    scope is its own index-ordered SELECT, and the branches are merged (`_merge`)."""
    keyed = [*columns, AuditRow.created_at.label("_at"), AuditRow.id.label("_id")]
    bounds = _conditions(flt)
    if after is not None:
        bounds.append(tuple_(AuditRow.created_at, AuditRow.id) > tuple_(after.created_at, after.id))
    if before is not None:
        bounds.append(tuple_(AuditRow.created_at, AuditRow.id) < tuple_(before.created_at, before.id))
    legs = [select(*keyed).where(*branch, *bounds) for branch in _branches(flt)]
    if len(legs) == 1:
        return legs[0].order_by(*_order(AuditRow.created_at, AuditRow.id, ascending)).limit(limit)
    return _merge(legs, ascending, limit, dialect)


def _merge(legs: list[Select[Any]], ascending: bool, limit: int, dialect: str | None) -> CompoundSelect[Any]:
    """A UNION ALL of the legs, in order, at most `limit` rows.

    SQLite runs a top-level compound ORDER BY … LIMIT as a MERGE of co-routines, each walking its
    index and stopping once `limit` rows are out, so the legs need no LIMIT (nor may they have
    one: it takes a subquery, which SQLite would sort again). PostgreSQL never merges UNION ALL
    legs whose index starts with the filtered column (a leg's filter is no equivalence class), so
    there, and by default, each leg is LIMITed on its own and only their few rows are sorted."""
    if dialect != "sqlite":
        legs = [
            select(*leg.order_by(*_order(AuditRow.created_at, AuditRow.id, ascending)).limit(limit).subquery().c)
            for leg in legs
        ]
    merged = union_all(*legs)
    return merged.order_by(*_order(merged.selected_columns._at, merged.selected_columns._id, ascending)).limit(limit)


def page_query(
    flt: AuditFilter,
    size: int,
    *,
    older_than: Cursor | None = None,
    newer_than: Cursor | None = None,
    dialect: str | None = None,
) -> ExecutableReturnsRows:
    """AuditRow entities, one more than `size`, to know whether another page follows. With
    `newer_than` the rows come oldest first (the caller reverses them). `dialect` ("sqlite",
    "postgresql"; None: a form both run) picks how a visibility scope's branches are merged."""
    query = _ordered(
        flt,
        list(AuditRow.__table__.columns),
        after=newer_than,
        before=None if newer_than is not None else older_than,
        ascending=newer_than is not None,
        limit=size + 1,
        dialect=dialect,
    )
    return select(AuditRow).from_statement(query)


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
    query = page_query(flt, size, older_than=older_than, newer_than=newer_than, dialect=db.engine.dialect.name)
    async with db.session() as session:
        rows = list(await session.scalars(query))
    more = len(rows) > size
    rows = rows[:size]
    if newer_than is not None:
        return AuditPage(rows[::-1], has_newer=more, has_older=True)
    return AuditPage(rows, has_newer=older_than is not None, has_older=more)


async def get(db: Database, audit_id: int, flt: AuditFilter) -> AuditRow | None:
    """One row, if the asker may see it."""
    async with db.session() as session:
        row: AuditRow | None = await session.scalar(where(select(AuditRow), flt).where(AuditRow.id == audit_id))
        return row


async def stream(
    db: Database, flt: AuditFilter, columns: Sequence[str], chunk: int = 2000
) -> AsyncIterator[dict[str, Any]]:
    """Every matching row, oldest first, as plain dicts of `columns`: one short query per chunk,
    so memory stays flat however many rows match and no transaction stays open meanwhile."""
    selected = [getattr(AuditRow, name) for name in columns]
    after: Cursor | None = None
    while True:
        query = _ordered(
            flt, selected, after=after, before=None, ascending=True, limit=chunk, dialect=db.engine.dialect.name
        )
        async with db.session() as session:
            rows = (await session.execute(query)).all()
        for row in rows:
            yield dict(zip(columns, row, strict=False))
        if len(rows) < chunk:
            return
        after = Cursor(rows[-1][-2], rows[-1][-1])


async def count(db: Database, flt: AuditFilter) -> int:
    async with db.session() as session:
        return int(await session.scalar(where(select(func.count()).select_from(AuditRow), flt)) or 0)


async def created_at_of_nth_newest(db: Database, flt: AuditFilter, n: int) -> datetime | None:
    """When the (n+1)-th newest matching row was created (an export's cap), None with fewer rows."""
    query = where(select(AuditRow.created_at), flt)
    query = query.order_by(AuditRow.created_at.desc(), AuditRow.id.desc()).offset(n).limit(1)
    async with db.session() as session:
        moment: datetime | None = await session.scalar(query)
        return moment
