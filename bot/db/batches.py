"""Bulk actions that survive the process: a batch row and one item per call (the runner that
drives them is bot/service/bulk/runner.py).

Every item moves todo → sending → ended | failed, committed before and after its provider
request, so after a crash nothing is sent twice blindly: `todo` items were never sent, `ended` /
`failed` ones are done, and `sending` ones are in doubt (the action gets `in_doubt=True` and
checks the call's state first). A running batch beats its heartbeat every progress tick; the
next start-up marks a batch whose heartbeat stopped as `interrupted`, and `resume` finishes it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from bot.db import chain
from bot.db.models import BatchItemRow, BatchRow, utcnow
from bot.db.session import Database

RUNNING, FINISHED, CANCELLED, INTERRUPTED = "running", "finished", "cancelled", "interrupted"
TODO, SENDING, ENDED, FAILED = "todo", "sending", "ended", "failed"
# A running batch's heartbeat older than this belongs to a dead process (ticks come every second).
STALE_AFTER = timedelta(seconds=30)


class AlreadyHandled(Exception):
    """The call's audit row exists already (its idempotency key): an earlier run handled it."""


@dataclass(frozen=True)
class ItemOutcome:
    audit_id: int | None
    error: str | None  # None: the action succeeded on this call
    note: str | None = None  # about a success (e.g. the call had already ended), kept on the item


@dataclass
class _Write:
    item_id: int
    state: str
    item_fields: dict[str, Any]
    done: asyncio.Future[int | None]
    opening: dict[str, Any] | None = None  # a new audit row (pending), in the same transaction
    audit_id: int | None = None  # with `closing`: the row to complete
    closing: dict[str, Any] | None = None


class Writer:
    """Group commit of a batch's per-call writes. Each call writes twice (its item `sending` with
    its audit row opened `pending`, before the provider request; the item's final state with the
    row's outcome, after it), and the audit chain takes one transaction at a time, so a
    transaction per write would make the database, not the provider, the speed limit. Writes
    wait in a queue; one drainer commits everything queued in a single transaction (one chain
    head update for all the rows) and wakes each writer once its write is durable, so "written
    before the provider request" holds for every call. If a group's transaction fails (one write
    breaking a unique constraint, say), each write is retried alone, so only that one fails."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._queue: list[_Write] = []
        self._drainer: asyncio.Task[None] | None = None

    async def write(self, item_id: int, state: str, **options: Any) -> int | None:
        """`options`: item columns, and `opening=` (returns the new row's id) or `audit_id=` with
        `closing=` (the outcome columns)."""
        opening, audit_id, closing = (
            options.pop("opening", None),
            options.pop("audit_id", None),
            options.pop("closing", None),
        )
        done: asyncio.Future[int | None] = asyncio.get_running_loop().create_future()
        self._queue.append(_Write(item_id, state, options, done, opening, audit_id, closing))
        if self._drainer is None or self._drainer.done():
            self._drainer = asyncio.create_task(self._drain())
        return await done

    async def _drain(self) -> None:
        while self._queue:
            group, self._queue = self._queue, []
            try:
                results = await self._commit(group)
            except Exception:
                for write in group:
                    try:
                        [result] = await self._commit([write])
                    except Exception as error:
                        _settle(write.done, error=error)
                    else:
                        _settle(write.done, result)
                continue
            for write, result in zip(group, results, strict=True):
                _settle(write.done, result)

    async def _commit(self, group: list[_Write]) -> list[int | None]:
        now = utcnow()
        async with self.db.chain_session() as session:
            opens = [(w, w.opening) for w in group if w.opening is not None]
            new_ids = await chain.append_rows(session, [dict(opening) for _, opening in opens])
            ids = {id(w): audit_id for (w, _), audit_id in zip(opens, new_ids, strict=True)}
            closes = {w.audit_id: w.closing for w in group if w.audit_id is not None and w.closing is not None}
            await chain.close_rows(session, closes)
            items = []
            for w in group:
                audit_id = ids.get(id(w), w.audit_id)
                linked = {"audit_id": audit_id} if audit_id is not None else {}
                items.append({"id": w.item_id, "state": w.state, "updated_at": now, **w.item_fields, **linked})
            await session.execute(update(BatchItemRow), items)
        return [ids.get(id(w)) for w in group]


def _settle(done: asyncio.Future[int | None], result: int | None = None, *, error: Exception | None = None) -> None:
    if done.done():  # its writer gave up waiting (cancelled)
        return
    if error is not None:
        done.set_exception(error)
    else:
        done.set_result(result)


@dataclass
class Step:
    """One call of a batch in hand. The action marks it `sending` (committed) before its provider
    request, with the call's audit row when it writes one (`open`), and settles it after (with the
    row's outcome): group commits shared with the other workers (`Writer`)."""

    item_id: int
    call_id: str
    in_doubt: bool  # a `sending` item of an earlier run: its request may or may not have gone
    writer: Writer
    settled: bool = False

    async def sending(self) -> None:
        await self.writer.write(self.item_id, SENDING)

    async def open(self, fields: dict[str, Any]) -> int:
        """Marks the item `sending` and inserts the audit row `fields` (pending); its id.
        AlreadyHandled when an earlier run of the batch wrote this call's row already."""
        try:
            audit_id = await self.writer.write(self.item_id, SENDING, opening=fields)
        except IntegrityError:
            raise AlreadyHandled(self.call_id) from None
        assert audit_id is not None
        return audit_id

    async def settle(self, outcome: ItemOutcome, closing: dict[str, Any] | None = None) -> None:
        """The item's final state (ended, or failed with why) and, with `closing`, its row's outcome."""
        state = ENDED if outcome.error is None else FAILED
        error = outcome.note if outcome.error is None else outcome.error[:500]
        self.settled = True
        await self.writer.write(self.item_id, state, audit_id=outcome.audit_id, error=error, closing=closing)

    async def put_back(self, audit_id: int, closing: dict[str, Any]) -> None:
        """Back to `todo`, its row closed with `closing`: the batch was stopped while the call
        waited to be sent again, and the provider had processed none of its requests."""
        self.settled = True
        await self.writer.write(self.item_id, TODO, audit_id=audit_id, closing=closing)


# The action on one call → what happened. It writes the call's audit row through the step.
Act = Callable[[Step], Awaitable[ItemOutcome]]


async def create(
    db: Database,
    team: str,
    *,
    enterprise_id: str | None = None,
    account: str,
    action: str,
    requested_by: str,
    channel_id: str | None,
    filter: dict[str, Any],
    reason: str | None,
    call_ids: Sequence[str],
    audit_id: int | None = None,
) -> BatchRow:
    """The batch and its items, in one transaction (a batch is never half-listed)."""
    unique = list(dict.fromkeys(call_ids))
    now = utcnow()
    row = BatchRow(
        team_id=team,
        enterprise_id=enterprise_id,
        account=account,
        action=action,
        requested_by=requested_by,
        channel_id=channel_id,
        filter=filter,
        reason=reason,
        status=RUNNING,
        total=len(unique),
        ended=0,
        failed=0,
        created_at=now,
        heartbeat_at=now,
        audit_id=audit_id,
    )
    async with db.session() as session:
        session.add(row)
        await session.flush()
        session.add_all(BatchItemRow(batch_id=row.id, call_id=call, state=TODO, updated_at=now) for call in unique)
    return row


async def get(db: Database, batch_id: int) -> BatchRow | None:
    async with db.session() as session:
        return await session.get(BatchRow, batch_id)


async def items(db: Database, batch_id: int) -> list[BatchItemRow]:
    async with db.session() as session:
        query = select(BatchItemRow).where(BatchItemRow.batch_id == batch_id).order_by(BatchItemRow.id)
        return list(await session.scalars(query))


async def request_cancel(db: Database, batch_id: int, by: str) -> bool:
    """True when the batch was running (the runner stops at its next tick)."""
    async with db.session() as session:
        result = await session.execute(
            update(BatchRow)
            .where(BatchRow.id == batch_id, BatchRow.status == RUNNING, BatchRow.cancel_requested_by.is_(None))
            .values(cancel_requested_by=by)
        )
        return bool(result.rowcount)  # type: ignore[attr-defined]


async def mark_interrupted(db: Database, now: datetime, stale_after: timedelta = STALE_AFTER) -> list[int]:
    """Running batches whose process stopped beating: resumable with `resume`."""
    async with db.session() as session:
        stale = list(
            await session.scalars(
                select(BatchRow.id).where(BatchRow.status == RUNNING, BatchRow.heartbeat_at < now - stale_after)
            )
        )
        if stale:
            await session.execute(update(BatchRow).where(BatchRow.id.in_(stale)).values(status=INTERRUPTED))
        return stale


async def claim_for_resume(db: Database, batch_id: int) -> bool:
    """interrupted → running, once: two clicks on Resume start one runner."""
    async with db.session() as session:
        result = await session.execute(
            update(BatchRow)
            .where(BatchRow.id == batch_id, BatchRow.status == INTERRUPTED)
            .values(status=RUNNING, heartbeat_at=utcnow(), cancel_requested_by=None)
        )
        return bool(result.rowcount)  # type: ignore[attr-defined]


async def set_message(db: Database, batch_id: int, channel: str, ts: str) -> None:
    """Where the progress message is: the interrupted sweep updates it."""
    async with db.session() as session:
        await session.execute(
            update(BatchRow).where(BatchRow.id == batch_id).values(message_channel=channel, message_ts=ts)
        )


async def _mark(session: AsyncSession, item_id: int, state: str, **fields: Any) -> None:
    await session.execute(
        update(BatchItemRow).where(BatchItemRow.id == item_id).values(state=state, updated_at=utcnow(), **fields)
    )


async def counts(db: Database, batch_id: int) -> dict[str, int]:
    """How many of the batch's items are in each state."""
    async with db.session() as session:
        rows = await session.execute(
            select(BatchItemRow.state, func.count())
            .where(BatchItemRow.batch_id == batch_id)
            .group_by(BatchItemRow.state)
        )
        return {state: int(count) for state, count in rows.all()}


async def beat(db: Database, batch_id: int, *, ended: int, failed: int) -> None:
    """The running batch's heartbeat, with its counts so far."""
    async with db.session() as session:
        await session.execute(
            update(BatchRow).where(BatchRow.id == batch_id).values(heartbeat_at=utcnow(), ended=ended, failed=failed)
        )


async def close(db: Database, batch_id: int, *, stopped: bool, ended: int, failed: int) -> None:
    """The batch ran to its end: finished, or cancelled when someone asked."""
    now = utcnow()
    async with db.session() as session:
        await session.execute(
            update(BatchRow)
            .where(BatchRow.id == batch_id)
            .values(
                status=CANCELLED if stopped else FINISHED,
                ended=ended,
                failed=failed,
                heartbeat_at=now,
                finished_at=now,
            )
        )


async def cancel_requested(db: Database, batch_id: int) -> bool:
    row = await get(db, batch_id)
    return row is None or row.cancel_requested_by is not None
