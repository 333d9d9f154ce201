"""The audit hash chain: evidence that nobody edited, removed or slipped in an audit row.

The chain is a sequence of entries numbered 1, 2, 3… (docs/audit.md, "Tamper evidence"):

- an *opening* entry when a row is inserted, over the row's fields as inserted;
- a *closing* entry when a `pending` row gets its outcome, over the outcome fields (a row
  inserted with its final outcome, such as a denial, has no closing entry);
- a *confirming* entry when the provider later shows what happened to the call (read back, or in
  its signed callback), over the confirmation fields: at most one per row.

    hash(entry) = sha256(hash(previous entry) as hex || canonical JSON of the entry)

The first entry follows GENESIS, or after a purge the last purged entry (the chain head's
`base_*`, also recorded in the purge's own audit row). Appends take the write lock on the
single chain-head row first, so entries stay linear with any number of processes writing.
"""

from __future__ import annotations

import hashlib
import heapq
import json
import json.encoder as json_encoder
import os
import subprocess
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from operator import itemgetter
from typing import Any, NamedTuple

from sqlalchemy import Connection, Text, and_, case, cast, delete, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from bot.db import events
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
# What the provider showed later, and so what a confirming entry covers.
CONFIRM_FIELDS = ("confirmed_status", "confirmed_word", "confirmed_at", "confirmed_via")
# How every pending row is opened: the closing entry carries the rest.
PENDING = "pending"
# Rows whose request went out (or may have, or is going): only they have a call state to confirm.
CONFIRMABLE = (PENDING, "succeeded", "unknown")
_PENDING_OUTCOME: dict[str, Any] = {name: None for name in OUTCOME_FIELDS} | {"outcome": PENDING}
_DEFAULTS: dict[str, Any] = {"break_glass": False}


# What an observer hears about a row being closed (bot/db/events.py), read in the same SELECT.
_NOTED_NAMES = ("action", "account", "provider", "call_id", "user_id", "team_id", "source")
_NOTED = tuple(getattr(AuditRow, name) for name in _NOTED_NAMES)


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


def confirming_entry(fields: Mapping[str, Any], seq: int, opened: int) -> dict[str, Any]:
    return {"entry": "confirm", "seq": seq, "confirms": opened, **{name: fields.get(name) for name in CONFIRM_FIELDS}}


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


async def lock_head(session: AsyncSession) -> None:
    """Holds the chain head for the rest of the transaction: until it ends, no other session
    inserts, closes or confirms an audit row (each appends to the chain)."""
    await _advance(session, 0)


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
    events.note(session, row.id, fields, fields)
    return row


async def append_rows(session: AsyncSession, many: list[dict[str, Any]]) -> list[int]:
    """Inserts several audit rows with their opening entries (one head update for all: a bulk
    action's group commit). Returns their ids, in order."""
    if not many:
        return []
    if any(f.get("outcome") == PENDING and any(f.get(n) is not None for n in OUTCOME_FIELDS[1:]) for f in many):
        raise ValueError("a pending audit row carries no outcome fields until it is completed")
    seq, prev, _, _ = await _advance(session, len(many))
    rows = []
    for fields in many:
        seq += 1
        prev = link(prev, opening_entry(fields, seq, closed=False))
        rows.append(AuditRow(**fields, chain_seq=seq, chain_hash=prev))
    session.add_all(rows)
    await session.flush()
    await _set_head_hash(session, prev)
    for fields, row in zip(many, rows, strict=True):
        events.note(session, row.id, fields, fields)
    return [row.id for row in rows]


async def close_rows(session: AsyncSession, outcomes: Mapping[int, Mapping[str, Any]]) -> list[int]:
    """Gives pending rows their outcome, one closing entry each. Returns the ids closed; a row
    already closed (say, marked unknown by a restart) is left as it is."""
    if not outcomes:
        return []
    seq, prev, _, _ = await _advance(session, 0)
    rows = (
        await session.execute(
            select(AuditRow.id, AuditRow.chain_seq, *_NOTED)
            .where(
                AuditRow.id.in_(list(outcomes)),
                AuditRow.outcome == PENDING,
                AuditRow.outcome_seq.is_(None),
                AuditRow.chain_seq.is_not(None),
            )
            .order_by(AuditRow.id)
        )
    ).all()
    closed: list[dict[str, Any]] = []
    for audit_id, opened, *noted in rows:
        values = dict(outcomes[audit_id])
        seq += 1
        prev = link(prev, closing_entry(values, seq, opened or 0))
        closed.append({"id": audit_id, **values, "outcome_seq": seq, "outcome_hash": prev})
        events.note(session, audit_id, dict(zip(_NOTED_NAMES, noted, strict=True)), values)
    if closed:
        # By primary key, in one executemany per set of columns (the head lock is held: no one
        # else can close these rows between the SELECT above and here).
        await session.execute(update(AuditRow), closed)
    await session.execute(update(AuditChainRow).where(AuditChainRow.id == HEAD_ID).values(seq=seq, hash=prev))
    return [values["id"] for values in closed]


async def confirm_rows(session: AsyncSession, confirmations: Mapping[int, Mapping[str, Any]]) -> list[int]:
    """Records what the provider confirmed, one confirming entry per row. Returns the ids
    confirmed; a row confirmed already (a callback came first) keeps its first confirmation, and a
    row whose request never went out (denied, failed, cancelled…) has nothing to confirm."""
    if not confirmations:
        return []
    seq, prev, _, _ = await _advance(session, 0)
    rows = (
        await session.execute(
            select(AuditRow.id, AuditRow.chain_seq)
            .where(
                AuditRow.id.in_(list(confirmations)),
                AuditRow.confirm_seq.is_(None),
                AuditRow.chain_seq.is_not(None),
                AuditRow.outcome.in_(CONFIRMABLE),
            )
            .order_by(AuditRow.id)
        )
    ).all()
    confirmed: list[dict[str, Any]] = []
    for audit_id, opened in rows:
        values = {name: confirmations[audit_id].get(name) for name in CONFIRM_FIELDS}
        seq += 1
        prev = link(prev, confirming_entry(values, seq, opened or 0))
        confirmed.append({"id": audit_id, **values, "confirm_seq": seq, "confirm_hash": prev})
    if confirmed:
        await session.execute(update(AuditRow), confirmed)
    await session.execute(update(AuditChainRow).where(AuditChainRow.id == HEAD_ID).values(seq=seq, hash=prev))
    return [values["id"] for values in confirmed]


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


class _Entry(NamedTuple):
    seq: int
    audit_id: int
    stored: str | None
    body: dict[str, Any]


# Exactly what canonical() does, with the encoder built once: json.dumps builds a new one per
# call, and JSONEncoder.encode a new C encoder, a fifth of the cost of checking an entry. Without
# the circular-reference check, which a row read from the database cannot need
# (tests/test_audit_cli.py checks that both agree).
_ENCODER = json.JSONEncoder(
    sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False, default=_json_default
)
_MAKE_C_ENCODER = getattr(json_encoder, "c_make_encoder", None)  # CPython's C accelerator
_C_ENCODER = (
    None
    if _MAKE_C_ENCODER is None
    else _MAKE_C_ENCODER(None, _json_default, json_encoder.encode_basestring, None, ":", ",", True, False, False)
)


def _encode(body: Mapping[str, Any]) -> str:
    return "".join(_C_ENCODER(body, 0)) if _C_ENCODER is not None else _ENCODER.encode(body)


def _digest(prev_hash: str, body: Mapping[str, Any]) -> str:
    return hashlib.sha256(prev_hash.encode("ascii") + _encode(body).encode()).hexdigest()


# JSON columns are read as their text and decoded here: the same json.loads the column type
# would run, without the driver's per-value detour (a third of the fetch time on PostgreSQL).
_JSON_FIELDS = ("request", "result")
_decode_json = json.JSONDecoder().decode


def _column(name: str, *, closed_as_null: bool = False) -> Any:
    column: Any = getattr(AuditRow, name)
    if closed_as_null:
        # A row closed later was opened pending: its opening entry never reads the outcome
        # fields, so the costliest of them (JSON, timestamps) are not even fetched for it.
        column = case((AuditRow.outcome_seq.is_not(None), None), else_=column)
    if name in _JSON_FIELDS:
        column = cast(column, Text)
    return column.label(name) if column is not getattr(AuditRow, name) else column


_OPEN_COLUMNS = (
    [AuditRow.id, AuditRow.chain_seq, AuditRow.chain_hash, AuditRow.outcome_seq]
    + [_column(name) for name in OPENING_FIELDS]
    + [_column(name, closed_as_null=name in ("result", "completed_at")) for name in OUTCOME_FIELDS]
)
# A closing entry covers the outcome fields only: reading no more keeps its stream cheap.
_CLOSE_COLUMNS = [AuditRow.id, AuditRow.chain_seq, AuditRow.outcome_seq, AuditRow.outcome_hash] + [
    _column(name) for name in OUTCOME_FIELDS
]


_CONFIRM_COLUMNS = [AuditRow.id, AuditRow.chain_seq, AuditRow.confirm_seq, AuditRow.confirm_hash] + [
    _column(name) for name in CONFIRM_FIELDS
]


def _stream(conn: Connection, columns: list[Any], order: Any, low: int, high: int, chunk: int) -> Iterator[Any]:
    """Plain tuples (no mappings: this runs once per row of the whole table)."""
    query = select(*columns).where(order > low, order <= high).order_by(order)
    yield from conn.execution_options(stream_results=True, yield_per=chunk).execute(query)


def _fields(names: tuple[str, ...], values: Any) -> dict[str, Any]:
    fields = dict(zip(names, values, strict=True))
    for name in _JSON_FIELDS:
        if fields.get(name) is not None:
            fields[name] = _decode_json(fields[name])
    return fields


def _openings(conn: Connection, base: int, head: int, chunk: int) -> Iterator[_Entry]:
    """opening_entry() of each row, built straight from the row's tuple."""
    split = 4 + len(OPENING_FIELDS)
    for row in _stream(conn, _OPEN_COLUMNS, AuditRow.chain_seq, base, head, chunk):
        body: dict[str, Any] = {"entry": "open", "seq": row[1], **_fields(OPENING_FIELDS, row[4:split])}
        if row[3] is not None:  # closed later: opened pending
            body.update(_PENDING_OUTCOME)
        else:
            body.update(_fields(OUTCOME_FIELDS, row[split:]))
        yield _Entry(row[1], row[0], row[2], body)


def _closings(conn: Connection, base: int, head: int, chunk: int) -> Iterator[_Entry]:
    for row in _stream(conn, _CLOSE_COLUMNS, AuditRow.outcome_seq, base, head, chunk):
        body = {"entry": "close", "seq": row[2], "opens": row[1], **_fields(OUTCOME_FIELDS, row[4:])}
        yield _Entry(row[2], row[0], row[3], body)


def _confirmings(conn: Connection, base: int, head: int, chunk: int) -> Iterator[_Entry]:
    for row in _stream(conn, _CONFIRM_COLUMNS, AuditRow.confirm_seq, base, head, chunk):
        body = {
            "entry": "confirm",
            "seq": row[2],
            "confirms": row[1],
            **dict(zip(CONFIRM_FIELDS, row[4:], strict=True)),
        }
        yield _Entry(row[2], row[0], row[3], body)


def _entries(conn: Connection, base: int, head: int, chunk: int) -> Iterator[_Entry]:
    # Ordered by seq alone: on a tie (a tampered seq) the opening comes first, as it always did.
    return heapq.merge(
        _openings(conn, base, head, chunk),
        _closings(conn, base, head, chunk),
        _confirmings(conn, base, head, chunk),
        key=itemgetter(0),
    )


@dataclass(frozen=True)
class _Run:
    """How far one walk over a range of the chain got."""

    rows: int
    entries: int
    prev: str  # the last entry's hash
    expected: int  # the next entry's seq
    problem: str | None = None
    audit_id: int | None = None


def _check(entries: Iterator[_Entry], prev: str, expected: int, until: int) -> _Run:
    """Checks entries from seq `expected` (after the one whose hash is `prev`) to `until`; the
    first entry past `until` is only looked at (the next range checks it)."""
    rows = count = 0
    suspect: _Entry | None = None
    for entry in entries:
        if suspect is not None:
            # The entry after a mismatch tells what happened: if it links to the stored hash, only
            # the suspect's content changed; if not, entries were swapped or slipped in.
            if entry.stored == _digest(suspect.stored or "", entry.body):
                problem = f"audit #{suspect.audit_id} was modified (chain entry {suspect.seq})"
            else:
                problem = (
                    f"audit #{suspect.audit_id} is out of order (chain entry {suspect.seq}): rows were reordered "
                    "or inserted"
                )
            return _Run(rows, count, prev, expected, problem, suspect.audit_id)
        if entry.seq != expected:
            problem = f"chain entries {expected}…{entry.seq - 1} are missing: rows were deleted before audit #{entry.audit_id}"
            return _Run(rows, count, prev, expected, problem, entry.audit_id)
        if entry.seq > until:
            break
        if _digest(prev, entry.body) != entry.stored:
            suspect = entry
            continue
        count += 1
        rows += entry.body["entry"] == "open"
        prev, expected = entry.stored or "", expected + 1
    if suspect is not None:
        problem = f"audit #{suspect.audit_id} was modified (chain entry {suspect.seq})"
        return _Run(rows, count, prev, expected, problem, suspect.audit_id)
    return _Run(rows, count, prev, expected)


def _head(conn: Connection) -> tuple[int, str, int, str]:
    head = conn.execute(select(AuditChainRow).where(AuditChainRow.id == HEAD_ID)).one_or_none()
    if head is None:
        raise ChainHeadMissing("the audit chain head is missing: run `callbot migrate`")
    return int(head.seq), str(head.hash), int(head.base_seq), str(head.base_hash)


def _stray(conn: Connection, base_seq: int, head_seq: int) -> tuple[int, str] | None:
    """A row outside the chain (inserted without callbot, or before the purge checkpoint), or one
    whose later entries cannot be where they say: (its id, what is wrong)."""
    outside = conn.execute(
        select(AuditRow.id, AuditRow.chain_seq)
        .where(
            or_(
                AuditRow.chain_seq.is_(None),
                AuditRow.chain_seq <= base_seq,
                AuditRow.chain_seq > head_seq,
                AuditRow.outcome_seq > head_seq,
                AuditRow.confirm_seq > head_seq,
            )
        )
        .order_by(AuditRow.id)
        .limit(1)
    ).first()
    if outside is not None:
        where = "has no chain entry" if outside.chain_seq is None else "is outside the chain"
        return outside.id, f"audit #{outside.id} {where}: it was inserted out of order, not by callbot"
    # A confirmation's columns are covered by its own entry only: set without one (or with one
    # placed before the row's opening), they were written by someone other than callbot.
    unentered = conn.execute(
        select(AuditRow.id)
        .where(
            or_(
                and_(
                    AuditRow.confirm_seq.is_(None),
                    or_(*(_column(name).is_not(None) for name in CONFIRM_FIELDS), AuditRow.confirm_hash.is_not(None)),
                ),
                AuditRow.confirm_seq <= AuditRow.chain_seq,
                AuditRow.outcome_seq <= AuditRow.chain_seq,
            )
        )
        .order_by(AuditRow.id)
        .limit(1)
    ).scalar()
    if unentered is not None:
        return unentered, (
            f"audit #{unentered} has a confirmation or outcome outside the chain: it was set after the fact, "
            "not by callbot"
        )
    return None


def _stored_hash(conn: Connection, seq: int) -> str | None:
    """The stored hash of chain entry `seq` (an opening or a closing one)."""
    for stored, at in (
        (AuditRow.chain_hash, AuditRow.chain_seq),
        (AuditRow.outcome_hash, AuditRow.outcome_seq),
        (AuditRow.confirm_hash, AuditRow.confirm_seq),
    ):
        found = conn.execute(select(stored).where(at == seq)).scalar()
        if found:
            return str(found)
    return None


# Checking an entry is CPU-bound Python (JSON, SHA-256), so a long chain is cut into ranges
# checked by parallel processes: entry k only needs the *stored* hash of entry k-1, so each
# range starts from the stored hash before it, and the first range with a problem decides, as
# in a single walk. Below PARALLEL_FROM entries, starting processes costs more than it saves.
PARALLEL_FROM = 200_000


def _walk(conn: Connection, chunk: int, workers: int, url: str | None) -> ChainReport:
    head_seq, head_hash, base_seq, base_hash = _head(conn)

    def report(rows: int, entries: int, problem: str | None = None, audit_id: int | None = None) -> ChainReport:
        return ChainReport(problem is None, rows, entries, head_seq, head_hash, base_seq, problem, audit_id)

    stray = _stray(conn, base_seq, head_seq)
    if stray is not None:
        return report(0, 0, stray[1], stray[0])

    workers = min(workers, head_seq - base_seq)  # every range holds at least one entry
    if workers > 1 and url is not None and head_seq - base_seq >= PARALLEL_FROM:
        runs = _parallel(conn, url, base_seq, base_hash, head_seq, chunk, workers)
    else:
        runs = [_check(_entries(conn, base_seq, head_seq, chunk), base_hash, base_seq + 1, head_seq)]
    rows = entries = 0
    for run in runs:
        rows, entries = rows + run.rows, entries + run.entries
        if run.problem is not None:
            return report(rows, entries, run.problem, run.audit_id)
    last = runs[-1]
    if last.expected - 1 != head_seq:
        problem = f"chain entries {last.expected}…{head_seq} are missing: the newest rows were deleted"
        return report(rows, entries, problem)
    if last.prev != head_hash:
        return report(rows, entries, "the chain head does not match the last entry: the audit_chain row was modified")
    return report(rows, entries)


def _parallel(
    conn: Connection, url: str, base_seq: int, base_hash: str, head_seq: int, chunk: int, workers: int
) -> list[_Run]:
    """The ranges (base, b1], (b1, b2]… checked at once: this process takes the first (in its
    snapshot), child processes (`python -m bot.db.chain`, fed on stdin so the database URL never
    shows in `ps`) the others. On PostgreSQL they share this snapshot (pg_export_snapshot);
    SQLite cannot share one, so there a problem found in parallel is confirmed by a single walk
    in this snapshot before it is reported."""
    size = (head_seq - base_seq) // workers
    bounds = [base_seq + i * size for i in range(workers)] + [head_seq]
    snapshot = None
    if conn.dialect.name == "postgresql":
        snapshot = conn.exec_driver_sql("SELECT pg_export_snapshot()").scalar()
    children = []
    for i in range(1, workers):
        job = {
            "url": url,
            "snapshot": snapshot,
            "low": bounds[i],
            "prev": _stored_hash(conn, bounds[i]) or "",
            "high": bounds[i + 1],
            "head": head_seq,
            "chunk": chunk,
        }
        child = subprocess.Popen(
            [sys.executable, "-m", "bot.db.chain"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        assert child.stdin is not None
        child.stdin.write(json.dumps(job))
        child.stdin.close()
        children.append(child)
    try:
        runs = [_check(_entries(conn, base_seq, head_seq, chunk), base_hash, base_seq + 1, bounds[1])]
        for child in children:
            assert child.stdout is not None
            out = child.stdout.read()
            if child.wait() != 0:
                raise RuntimeError(f"a chain verification worker failed (exit {child.returncode})")
            runs.append(_Run(**json.loads(out)))
    finally:
        for child in children:
            if child.poll() is None:
                child.kill()
                child.wait()
    if snapshot is None and any(run.problem is not None for run in runs):
        return [_check(_entries(conn, base_seq, head_seq, chunk), base_hash, base_seq + 1, head_seq)]
    return runs


def _range_worker(job: dict[str, Any]) -> _Run:
    """In a child process: checks entries low+1…high (reading on to the head for one more)."""
    from sqlalchemy import create_engine, pool

    from bot.db.session import parse_database_url

    engine = create_engine(parse_database_url(job["url"], sync=True), poolclass=pool.NullPool)
    try:
        with engine.connect() as conn:
            snapshot = job["snapshot"]
            if snapshot is not None:
                conn = conn.execution_options(isolation_level="REPEATABLE READ")
            with conn.begin():
                if snapshot is not None:
                    conn.exec_driver_sql(f"SET TRANSACTION SNAPSHOT '{snapshot}'")
                low, high = int(job["low"]), int(job["high"])
                return _check(_entries(conn, low, int(job["head"]), int(job["chunk"])), job["prev"], low + 1, high)
    finally:
        engine.dispose()


async def verify(db: Database, chunk: int = 5000, workers: int | None = None) -> ChainReport:
    """Walks the whole chain in one snapshot (later appends are not part of it). `workers`:
    processes checking a long chain in parallel (default: one per CPU, at most 4)."""
    count = workers if workers is not None else min(os.cpu_count() or 1, 4)
    async with db.engine.connect() as conn:
        if conn.dialect.name == "postgresql":
            conn = await conn.execution_options(isolation_level="REPEATABLE READ")
        async with conn.begin():
            return await conn.run_sync(_walk, chunk, count, db.url)


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
        # A row opened inside the prefix but closed (or confirmed) after it must stay, and
        # everything after it.
        late = await session.scalar(
            select(func.min(AuditRow.chain_seq)).where(
                AuditRow.chain_seq <= through, or_(AuditRow.outcome_seq > through, AuditRow.confirm_seq > through)
            )
        )
        if late is None:
            break
        through = int(late) - 1
    removed, last_hash = 0, base_hash
    if through > base_seq:
        last_hash = str(
            await session.scalar(select(AuditRow.chain_hash).where(AuditRow.chain_seq == through))
            or await session.scalar(select(AuditRow.outcome_hash).where(AuditRow.outcome_seq == through))
            or await session.scalar(select(AuditRow.confirm_hash).where(AuditRow.confirm_seq == through))
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


if __name__ == "__main__":  # a verification worker, started by _parallel
    print(json.dumps(_range_worker(json.loads(sys.stdin.read())).__dict__))
