"""The audit hash chain: evidence that nobody edited, removed or slipped in an audit row.

The chain is a sequence of entries numbered 1, 2, 3… (README "Audit log: tamper evidence"):

- an *opening* entry when a row is inserted, over the row's fields as inserted;
- a *closing* entry when a `pending` row gets its outcome, over the outcome fields (a row
  inserted with its final outcome, such as a denial, has no closing entry).

    hash(entry) = sha256(hash(previous entry) as hex || canonical JSON of the entry)

The first entry follows GENESIS, or after a purge the last purged entry (the chain head's
`base_*`, also recorded in the purge's own audit row). Appends take the write lock on the
single chain-head row first, so entries stay linear with any number of processes writing.
"""

from __future__ import annotations

import hashlib
import heapq
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, delete, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from bot.db.models import AuditChainRow, AuditRow
from bot.db.session import Database

GENESIS = "0" * 64
HEAD_ID = 1

# What an opening entry covers besides the outcome fields: everything about the attempt.
OPENING_FIELDS = (
    "created_at",
    "source",
    "team_id",
    "user_id",
    "user_name",
    "channel_id",
    "command_text",
    "action",
    "account",
    "provider",
    "call_id",
    "request",
    "decision",
    "grant_id",
    "decision_basis",
    "idempotency_key",
    "break_glass",
)
# What completing a pending row may set, and so what a closing entry covers.
OUTCOME_FIELDS = (
    "outcome",
    "completed_at",
    "provider_status",
    "error_code",
    "error_message",
    "provider_request_id",
    "latency_ms",
    "result",
)
# How every pending row is opened: the closing entry carries the rest.
PENDING = "pending"
_PENDING_OUTCOME: dict[str, Any] = {name: None for name in OUTCOME_FIELDS} | {"outcome": PENDING}
_DEFAULTS: dict[str, Any] = {"break_glass": False}


class ChainHeadMissing(RuntimeError):
    """The audit_chain row is missing: the schema was not created by `callbot migrate`."""


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat(timespec="microseconds")
    raise TypeError(f"{type(value).__name__} is not part of an audit row")


def canonical(entry: Mapping[str, Any]) -> bytes:
    """Sorted keys, no spaces, UTF-8, timestamps as ISO 8601 UTC with microseconds."""
    return json.dumps(
        entry, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False, default=_json_default
    ).encode()


def link(prev_hash: str, entry: Mapping[str, Any]) -> str:
    return hashlib.sha256(prev_hash.encode("ascii") + canonical(entry)).hexdigest()


def opening_entry(fields: Mapping[str, Any], seq: int, *, closed: bool) -> dict[str, Any]:
    """`closed`: the row has a closing entry, so it was opened pending (its outcome came later)."""
    entry: dict[str, Any] = {"entry": "open", "seq": seq}
    for name in OPENING_FIELDS:
        entry[name] = fields.get(name, _DEFAULTS.get(name))
    if closed:
        entry.update(_PENDING_OUTCOME)
    else:
        entry.update({name: fields.get(name) for name in OUTCOME_FIELDS})
    return entry


def closing_entry(fields: Mapping[str, Any], seq: int, opened: int) -> dict[str, Any]:
    return {"entry": "close", "seq": seq, "opens": opened, **{name: fields.get(name) for name in OUTCOME_FIELDS}}


# -- appending (inside the caller's transaction) ----------------------------------------------------


async def _advance(session: AsyncSession, by: int = 1) -> tuple[int, str, int, str]:
    """Locks the chain head (the UPDATE comes first so SQLite takes its write lock at once) and
    returns (seq before, hash before, base seq, base hash); seq is moved on by `by`."""
    head = (
        await session.execute(
            update(AuditChainRow)
            .where(AuditChainRow.id == HEAD_ID)
            .values(seq=AuditChainRow.seq + by)
            .returning(AuditChainRow.seq, AuditChainRow.hash, AuditChainRow.base_seq, AuditChainRow.base_hash)
        )
    ).one_or_none()
    if head is None:
        raise ChainHeadMissing("the audit chain head is missing: run `callbot migrate`")
    return int(head[0]) - by, str(head[1]), int(head[2]), str(head[3])


async def _set_head_hash(session: AsyncSession, new_hash: str) -> None:
    await session.execute(update(AuditChainRow).where(AuditChainRow.id == HEAD_ID).values(hash=new_hash))


async def append_row(session: AsyncSession, fields: dict[str, Any]) -> AuditRow:
    """Inserts an audit row with its opening entry."""
    if fields.get("outcome") == PENDING and any(fields.get(name) is not None for name in OUTCOME_FIELDS[1:]):
        raise ValueError("a pending audit row carries no outcome fields until it is completed")
    seq, prev, _, _ = await _advance(session)
    seq += 1
    entry_hash = link(prev, opening_entry(fields, seq, closed=False))
    row = AuditRow(**fields, chain_seq=seq, chain_hash=entry_hash)
    session.add(row)
    await session.flush()
    await _set_head_hash(session, entry_hash)
    return row


async def close_rows(session: AsyncSession, outcomes: Mapping[int, Mapping[str, Any]]) -> list[int]:
    """Gives pending rows their outcome, one closing entry each. Returns the ids closed; a row
    already closed (say, marked unknown by a restart) is left as it is."""
    if not outcomes:
        return []
    seq, prev, _, _ = await _advance(session, 0)
    rows = (
        await session.execute(
            select(AuditRow.id, AuditRow.chain_seq)
            .where(
                AuditRow.id.in_(list(outcomes)),
                AuditRow.outcome == PENDING,
                AuditRow.outcome_seq.is_(None),
                AuditRow.chain_seq.is_not(None),
            )
            .order_by(AuditRow.id)
        )
    ).all()
    closed = []
    for audit_id, opened in rows:
        values = dict(outcomes[audit_id])
        seq += 1
        prev = link(prev, closing_entry(values, seq, opened or 0))
        await session.execute(
            update(AuditRow).where(AuditRow.id == audit_id).values(**values, outcome_seq=seq, outcome_hash=prev)
        )
        closed.append(audit_id)
    await session.execute(update(AuditChainRow).where(AuditChainRow.id == HEAD_ID).values(seq=seq, hash=prev))
    return closed


# -- verifying --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ChainReport:
    ok: bool
    rows: int  # audit rows checked
    entries: int  # chain entries checked
    head_seq: int
    head_hash: str
    base_seq: int
    problem: str | None = None
    audit_id: int | None = None  # the first row at fault, when there is one

    def summary(self) -> str:
        if self.ok:
            return f"ok: {self.rows} rows, {self.entries} chain entries, head {self.head_seq} {self.head_hash}"
        return f"FAILED: {self.problem}"


@dataclass(frozen=True)
class _Entry:
    seq: int
    audit_id: int
    stored: str | None
    body: dict[str, Any]


_ROW_COLUMNS = [AuditRow.id, AuditRow.chain_seq, AuditRow.chain_hash, AuditRow.outcome_seq, AuditRow.outcome_hash] + [
    getattr(AuditRow, name) for name in OPENING_FIELDS + OUTCOME_FIELDS
]


def _stream(conn: Connection, order: Any, low: int, high: int, chunk: int) -> Iterator[Any]:
    query = select(*_ROW_COLUMNS).where(order > low, order <= high).order_by(order)
    yield from conn.execution_options(stream_results=True, yield_per=chunk).execute(query).mappings()


def _entries(conn: Connection, base: int, head: int, chunk: int) -> Iterator[_Entry]:
    openings = (
        _Entry(
            row["chain_seq"],
            row["id"],
            row["chain_hash"],
            opening_entry(row, row["chain_seq"], closed=row["outcome_seq"] is not None),
        )
        for row in _stream(conn, AuditRow.chain_seq, base, head, chunk)
    )
    closings = (
        _Entry(
            row["outcome_seq"], row["id"], row["outcome_hash"], closing_entry(row, row["outcome_seq"], row["chain_seq"])
        )
        for row in _stream(conn, AuditRow.outcome_seq, base, head, chunk)
    )
    return heapq.merge(openings, closings, key=lambda entry: entry.seq)


def _walk(conn: Connection, chunk: int) -> ChainReport:
    head = conn.execute(select(AuditChainRow).where(AuditChainRow.id == HEAD_ID)).one_or_none()
    if head is None:
        raise ChainHeadMissing("the audit chain head is missing: run `callbot migrate`")
    head_seq, head_hash, base_seq, base_hash = int(head.seq), str(head.hash), int(head.base_seq), str(head.base_hash)

    def report(problem: str | None = None, audit_id: int | None = None) -> ChainReport:
        return ChainReport(problem is None, rows, entries, head_seq, head_hash, base_seq, problem, audit_id)

    rows = entries = 0
    # Rows outside the chain: inserted without callbot, or before the purge checkpoint.
    stray = conn.execute(
        select(AuditRow.id, AuditRow.chain_seq)
        .where(
            or_(
                AuditRow.chain_seq.is_(None),
                AuditRow.chain_seq <= base_seq,
                AuditRow.chain_seq > head_seq,
                AuditRow.outcome_seq > head_seq,
            )
        )
        .order_by(AuditRow.id)
        .limit(1)
    ).first()
    if stray is not None:
        where = "has no chain entry" if stray.chain_seq is None else "is outside the chain"
        return report(f"audit #{stray.id} {where}: it was inserted out of order, not by callbot", stray.id)

    prev, expected = base_hash, base_seq + 1
    suspect: _Entry | None = None
    for entry in _entries(conn, base_seq, head_seq, chunk):
        if suspect is not None:
            # The entry after a mismatch tells what happened: if it links to the stored hash, only
            # the suspect's content changed; if not, entries were swapped or slipped in.
            if entry.stored == link(suspect.stored or "", entry.body):
                return report(f"audit #{suspect.audit_id} was modified (chain entry {suspect.seq})", suspect.audit_id)
            return report(
                f"audit #{suspect.audit_id} is out of order (chain entry {suspect.seq}): rows were reordered "
                "or inserted",
                suspect.audit_id,
            )
        if entry.seq != expected:
            return report(
                f"chain entries {expected}…{entry.seq - 1} are missing: rows were deleted before audit #{entry.audit_id}",
                entry.audit_id,
            )
        if link(prev, entry.body) != entry.stored:
            suspect = entry
            continue
        entries += 1
        rows += entry.body["entry"] == "open"
        prev, expected = entry.stored, expected + 1
    if suspect is not None:
        return report(f"audit #{suspect.audit_id} was modified (chain entry {suspect.seq})", suspect.audit_id)
    if expected - 1 != head_seq:
        return report(f"chain entries {expected}…{head_seq} are missing: the newest rows were deleted")
    if prev != head_hash:
        return report("the chain head does not match the last entry: the audit_chain row was modified")
    return report()


async def verify(db: Database, chunk: int = 5000) -> ChainReport:
    """Walks the whole chain in one snapshot (later appends are not part of it)."""
    async with db.engine.connect() as conn:
        if conn.dialect.name == "postgresql":
            conn = await conn.execution_options(isolation_level="REPEATABLE READ")
        async with conn.begin():
            return await conn.run_sync(_walk, chunk)


# -- purging ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Purge:
    rows: int  # audit rows deleted
    through_seq: int  # the last chain entry removed
    last_hash: str  # its hash: where the remaining chain starts


async def purge(session: AsyncSession, before: datetime, checkpoint: dict[str, Any]) -> tuple[Purge, AuditRow]:
    """Deletes the oldest rows created before `before`, as a prefix of the chain (a row still
    pending, or one closed after a row that stays, stays too), then appends `checkpoint` (the
    purge's own audit row, its `result` completed here with what was removed)."""
    head_seq, _, base_seq, base_hash = await _advance(session, 0)
    first_kept = await session.scalar(
        select(func.min(AuditRow.chain_seq)).where(or_(AuditRow.created_at >= before, AuditRow.outcome == PENDING))
    )
    through = head_seq if first_kept is None else int(first_kept) - 1
    while through > base_seq:
        # A row opened inside the prefix but closed after it must stay, and everything after it.
        late = await session.scalar(
            select(func.min(AuditRow.chain_seq)).where(AuditRow.chain_seq <= through, AuditRow.outcome_seq > through)
        )
        if late is None:
            break
        through = int(late) - 1
    removed, last_hash = 0, base_hash
    if through > base_seq:
        last_hash = str(
            await session.scalar(select(AuditRow.chain_hash).where(AuditRow.chain_seq == through))
            or await session.scalar(select(AuditRow.outcome_hash).where(AuditRow.outcome_seq == through))
        )
        result = await session.execute(delete(AuditRow).where(AuditRow.chain_seq <= through))
        removed = int(result.rowcount)  # type: ignore[attr-defined]
        await session.execute(
            update(AuditChainRow).where(AuditChainRow.id == HEAD_ID).values(base_seq=through, base_hash=last_hash)
        )
    done = Purge(removed, max(through, base_seq), last_hash)
    result_fields = {"purged_rows": removed, "through_seq": done.through_seq, "last_hash": last_hash}
    row = await append_row(session, {**checkpoint, "result": {**(checkpoint.get("result") or {}), **result_fields}})
    return done, row
