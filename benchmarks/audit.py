"""The audit log at scale: seeds N realistic rows (a valid hash chain) into a fresh schema, then
measures what `/call audit`, `callbot audit export` and `callbot audit verify` cost there.

Run by hand (not part of the test suite); the database's schema is DROPPED and recreated:
    .venv/bin/python benchmarks/audit.py --database-url sqlite:////tmp/bench_audit.db [--rows 1000000]
    .venv/bin/python benchmarks/audit.py --database-url postgresql://postgres@127.0.0.1:5432/bench_audit
`--reuse` measures an already seeded database again (no seeding).

Reports: seeding rate; for each Slack filter the median time of the first page (10 rows) and of
the 100th page (the keyset cursor followed 99 times); export rows/s and peak RSS of
`callbot audit export --format csv` (a subprocess) over the newest 100k rows and over all rows;
verify rows/s (bot.db.chain.verify).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, insert, select, text

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bot.db import audit_search, chain, migrate
from bot.db.audit_search import AuditFilter, Cursor
from bot.db.models import AuditChainRow, AuditRow
from bot.db.session import Database, parse_database_url

DAYS = 90
BATCH = 20_000
# A team: a few heavy users and a long tail, over a handful of accounts.
USERS = [f"U0{n:07d}" for n in range(300)]
USER_WEIGHTS = [1 / (rank + 1) ** 0.8 for rank in range(len(USERS))]
ACCOUNTS = {
    "prod": ("twilio", 50),
    "staging": ("twilio", 15),
    "bw": ("bandwidth", 15),
    "bird": ("bird", 12),
    "eu": ("twilio", 8),
}
CALL_ACTIONS = {"hangup": 45, "redirect": 16, "cancel": 10, "twiml": 6, "flow": 6}
TEAM = "T0BENCH01"  # every seeded row is this workspace's, as after a single-workspace upgrade
OTHER_ACTIONS = {"perms": 8, "grant": 3, "revoke": 1, "audit": 3, "flows.save": 1, "freeze": 1}
# (outcome, weight, pending first: whether the row was opened pending and closed by a second entry)
OUTCOMES = [
    ("succeeded", 72, True),
    ("failed", 7, True),
    ("denied", 9, False),
    ("invalid", 5, False),
    ("dry_run", 4, False),
    ("unknown", 1, True),
    ("rate_limited", 1, False),
    ("pending_approval", 1, False),
]
ERRORS = {
    "failed": ("20404", "Twilio has no such call on account `{account}`"),
    "denied": (None, "You are not allowed to `{action}` on account `{account}`. Ask an admin."),
    "invalid": (None, "`{call}`: is not a call id. Did you mean a Twilio CallSid?"),
    "unknown": (None, "the call may or may not have changed: check it"),
    "rate_limited": (None, "rate limited: wait 20 s"),
}


def weighted(rng: random.Random, table: dict[str, int]) -> str:
    return rng.choices(list(table), weights=list(table.values()))[0]


def generate(rows: int, seed: int = 7) -> Iterator[dict[str, Any]]:
    """Rows in creation order over the last DAYS days, with their chain fields: an opening entry
    each, and a closing entry right after it for rows opened `pending`, as the service writes."""
    rng = random.Random(seed)
    now = datetime.now(UTC).replace(microsecond=0)
    start = now - timedelta(days=DAYS)
    step = DAYS * 86400 / rows
    seq, prev = 0, chain.GENESIS
    recent_calls: list[tuple[str, str]] = []
    outcome_names = [o[0] for o in OUTCOMES]
    outcome_weights = [o[1] for o in OUTCOMES]
    pending_first = {o[0]: o[2] for o in OUTCOMES}
    for n in range(rows):
        created = start + timedelta(seconds=n * step + rng.random() * step * 0.9)
        user = rng.choices(USERS, weights=USER_WEIGHTS)[0]
        is_call = rng.random() < 0.85
        action = weighted(rng, CALL_ACTIONS) if is_call else weighted(rng, OTHER_ACTIONS)
        account: str | None = None
        call_id: str | None = None
        provider: str | None = None
        if is_call:
            if recent_calls and rng.random() < 0.2:  # a second action on a recent call
                account, call_id = rng.choice(recent_calls)
            else:
                account = rng.choices(list(ACCOUNTS), weights=[w for _, w in ACCOUNTS.values()])[0]
                call_id = "CA" + f"{rng.getrandbits(128):032x}"
                recent_calls = [*recent_calls[-49:], (account, call_id)]
            provider = ACCOUNTS[account][0]
        outcome = rng.choices(outcome_names, weights=outcome_weights)[0] if is_call else "succeeded"
        if not is_call and rng.random() < 0.1:
            outcome = "denied"
        code, message = ERRORS.get(outcome, (None, None))
        fields: dict[str, Any] = {
            "created_at": created,
            "source": rng.choices(["slash", "modal", "button", "cli"], weights=[80, 10, 8, 2])[0],
            "team_id": "T0BENCH01",
            "workspace_id": "T0BENCH01",
            "user_id": user,
            "user_name": "user" + user[2:],
            "channel_id": "C0OPSVOICE",
            "command_text": f"{action} {account}:{call_id}" if is_call else f"{action} @someone",
            "action": action,
            "account": account,
            "provider": provider,
            "call_id": call_id,
            "request": {"action": action, "call_id": call_id, "reason": 'caller asked, "twice"'} if is_call else None,
            "decision": "denied" if outcome == "denied" else "allowed",
            "grant_id": rng.randint(1, 400),
            "decision_basis": f"grant #{rng.randint(1, 400)}: {action} on {account or '*'}",
            "idempotency_key": f"bench-{n}" if rng.random() < 0.8 else None,
            "break_glass": False,
            "outcome": outcome,
            "completed_at": None,
            "provider_status": None,
            "error_code": code,
            "error_message": message.format(account=account, action=action, call=call_id) if message else None,
            "provider_request_id": None,
            "latency_ms": None,
            "result": None,
        }
        closed = is_call and pending_first[outcome]
        if closed:
            fields["completed_at"] = created + timedelta(milliseconds=rng.randint(80, 900))
            fields["provider_status"] = 200 if outcome == "succeeded" else 404
            fields["provider_request_id"] = f"RQ{rng.getrandbits(64):016x}"
            fields["latency_ms"] = rng.randint(80, 900)
            fields["result"] = {"status": "completed"} if outcome == "succeeded" else None
        seq += 1
        prev = chain.link(prev, chain.opening_entry(fields, seq, closed=closed))
        fields["chain_seq"], fields["chain_hash"] = seq, prev
        fields["outcome_seq"] = fields["outcome_hash"] = None
        if closed:
            opened = seq
            seq += 1
            prev = chain.link(prev, chain.closing_entry(fields, seq, opened))
            fields["outcome_seq"], fields["outcome_hash"] = seq, prev
        fields["id"] = n + 1
        yield fields


def fresh_schema(url: str) -> None:
    engine = create_engine(parse_database_url(url, sync=True))
    if engine.dialect.name == "postgresql":
        with engine.begin() as conn:
            conn.execute(text("DROP SCHEMA IF EXISTS public CASCADE"))
            conn.execute(text("CREATE SCHEMA public"))
    else:
        path = Path(engine.url.database or "")
        for suffix in ("", "-wal", "-shm"):
            Path(str(path) + suffix).unlink(missing_ok=True)
    engine.dispose()
    migrate.upgrade(url)


def seed(url: str, rows: int) -> float:
    """Inserts the rows in big transactions; returns rows/s (generation and hashing included)."""
    engine = create_engine(parse_database_url(url, sync=True))
    started = time.perf_counter()
    batch: list[dict[str, Any]] = []
    last: dict[str, Any] = {}
    for fields in generate(rows):
        batch.append(fields)
        if len(batch) == BATCH:
            _insert(engine, batch)
            last, batch = batch[-1], []
    if batch:
        _insert(engine, batch)
        last = batch[-1]
    head_seq = last["outcome_seq"] or last["chain_seq"]
    head_hash = last["outcome_hash"] or last["chain_hash"]
    with engine.begin() as conn:
        conn.execute(
            AuditChainRow.__table__.update()
            .where(AuditChainRow.id == chain.HEAD_ID)
            .values(seq=head_seq, hash=head_hash)
        )
        # The workspace is known, as after the first start (the shell's --team then defaults to it).
        conn.execute(text("INSERT INTO workspaces (team_id, first_seen) VALUES (:t, CURRENT_TIMESTAMP)"), {"t": TEAM})
        if engine.dialect.name == "postgresql":
            conn.execute(
                text("SELECT setval(pg_get_serial_sequence('audit_log', 'id'), (SELECT max(id) FROM audit_log))")
            )
    elapsed = time.perf_counter() - started
    _analyze(engine)
    engine.dispose()
    return rows / elapsed


def _insert(engine: Engine, batch: list[dict[str, Any]]) -> None:
    if engine.dialect.name != "postgresql":
        with engine.begin() as conn:
            conn.execute(insert(AuditRow.__table__), batch)
        return
    from psycopg.types.json import Json

    names = [column.name for column in AuditRow.__table__.columns]
    raw = engine.raw_connection()
    try:
        driver = raw.driver_connection
        assert driver is not None
        with driver.cursor() as cursor, cursor.copy(f"COPY audit_log ({', '.join(names)}) FROM STDIN") as copy:
            for fields in batch:
                copy.write_row(
                    [
                        Json(fields[name])
                        if name in ("request", "result") and fields[name] is not None
                        else fields.get(name)
                        for name in names
                    ]
                )
        driver.commit()
    finally:
        raw.close()


def _analyze(engine: Engine) -> None:
    if engine.dialect.name == "postgresql":
        # What autovacuum would have done on a table that grew to this size.
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("VACUUM ANALYZE audit_log"))


# -- measuring ---------------------------------------------------------------------------------------


@dataclass
class Timing:
    name: str
    first_ms: float
    hundredth_ms: float | None
    pages: int  # pages available when fewer than 100


def filters(url: str) -> dict[str, AuditFilter]:
    """The Slack filters, with values picked from the seeded data (a typical user, a real call)."""
    engine = create_engine(parse_database_url(url, sync=True))
    with engine.connect() as conn:
        call = conn.execute(
            select(AuditRow.call_id)
            .where(AuditRow.call_id.is_not(None))
            .order_by(AuditRow.id.desc())
            .limit(1)
            .offset(5000)
        ).scalar_one()
    engine.dispose()
    now = datetime.now(UTC)
    user = USERS[20]  # neither the busiest nor the quietest
    return {
        "(none)": AuditFilter(workspace=TEAM),
        "user": AuditFilter(workspace=TEAM, user_id=user),
        "account": AuditFilter(workspace=TEAM, account="prod"),
        "call": AuditFilter(workspace=TEAM, call_id=call),
        "action": AuditFilter(workspace=TEAM, action="hangup"),
        "outcome=failed": AuditFilter(workspace=TEAM, outcome="failed"),
        "outcome=unknown (1%)": AuditFilter(workspace=TEAM, outcome="unknown"),
        "since=7d": AuditFilter(workspace=TEAM, since=now - timedelta(days=7)),
        "until=30d ago": AuditFilter(workspace=TEAM, until=now - timedelta(days=30)),
        "account+action+since=30d": AuditFilter(
            workspace=TEAM, account="prod", action="hangup", since=now - timedelta(days=30)
        ),
        "user+outcome=failed": AuditFilter(workspace=TEAM, user_id=user, outcome="failed"),
        "own rows (no audit)": AuditFilter(workspace=TEAM, visible_user=user, visible_accounts=()),
        "own rows + audit on bw,eu": AuditFilter(workspace=TEAM, visible_user=user, visible_accounts=("bw", "eu")),
    }


async def time_pages(db: Database, name: str, flt: AuditFilter, runs: int) -> Timing:
    async def timed(older_than: Cursor | None) -> tuple[float, audit_search.AuditPage]:
        started = time.perf_counter()
        found = await audit_search.page(db, flt, 10, older_than=older_than)
        return (time.perf_counter() - started) * 1000, found

    await timed(None)  # warm the cache and the pool
    first = statistics.median([(await timed(None))[0] for _ in range(runs)])
    cursor: Cursor | None = None
    pages = 1
    found = (await timed(None))[1]
    while pages < 100 and found.has_older:
        cursor = found.oldest
        found = (await timed(cursor))[1]
        pages += 1
    if pages < 100:
        return Timing(name, first, None, pages)
    hundredth = statistics.median([(await timed(cursor))[0] for _ in range(runs)])
    return Timing(name, first, hundredth, pages)


def export(url: str, since: datetime | None, output: Path) -> tuple[int, float, float]:
    """`callbot audit export --format csv` as a subprocess: (rows, rows/s, peak RSS in MiB)."""
    args = [sys.executable, "-m", "bot.cli", "audit", "export", "--format", "csv", "--output", str(output)]
    if since is not None:
        args += ["--since", since.isoformat()]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CALLBOT_", "SLACK_"))}
    env["DATABASE_URL"] = url
    started = time.perf_counter()
    child = subprocess.Popen(args, env=env, cwd=Path(__file__).resolve().parents[1], stderr=subprocess.PIPE)
    _, status, usage = os.wait4(child.pid, 0)
    elapsed = time.perf_counter() - started
    message = child.stderr.read().decode() if child.stderr else ""
    if status != 0:
        raise RuntimeError(f"export failed: {message}")
    rows = int(message.split()[1])
    return rows, rows / elapsed, usage.ru_maxrss / 1024


def newest_since(url: str, count: int) -> datetime:
    engine = create_engine(parse_database_url(url, sync=True))
    with engine.connect() as conn:
        moment = conn.execute(
            select(AuditRow.created_at)
            .order_by(AuditRow.created_at.desc(), AuditRow.id.desc())
            .limit(1)
            .offset(count - 1)
        ).scalar_one()
    engine.dispose()
    return moment


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


async def measure(url: str, runs: int) -> tuple[list[Timing], float, int]:
    db = Database(url)
    try:
        timings = [await time_pages(db, name, flt, runs) for name, flt in filters(url).items()]
        load = os.getloadavg()[0]  # other work on the machine takes cores from verify's processes
        started, cpu, children = time.perf_counter(), time.process_time(), _children_cpu()
        report = await chain.verify(db)
        verify_rate = report.rows / (time.perf_counter() - started)
        if not report.ok:
            raise RuntimeError(report.summary())
        used = time.process_time() - cpu + _children_cpu() - children
        print(
            f"verify CPU (this process and its workers): {used:.1f} s, {report.rows / used:,.0f} rows per CPU-second; load average before {load:.2f}"
        )
        return timings, verify_rate, report.rows
    finally:
        await db.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=20, help="timed runs per query (the median is reported)")
    parser.add_argument("--reuse", action="store_true", help="measure the database as it is, without seeding")
    args = parser.parse_args()
    url = args.database_url

    if not args.reuse:
        fresh_schema(url)
        rate = seed(url, args.rows)
        print(f"seeded {args.rows:,} rows: {rate:,.0f} rows/s", flush=True)

    timings, verify_rate, rows = asyncio.run(measure(url, args.runs))
    print(f"\n{'filter':<28} {'page 1 (ms)':>12} {'page 100 (ms)':>14}")
    for t in timings:
        hundredth = f"{t.hundredth_ms:.2f}" if t.hundredth_ms is not None else f"({t.pages} pages)"
        print(f"{t.name:<28} {t.first_ms:>12.2f} {hundredth:>14}")
    print(
        f"\nverify: {rows:,} rows, {verify_rate:,.0f} rows/s",
        flush=True,
    )

    output = Path(os.environ.get("TMPDIR", "/tmp")) / f"bench_audit_export_{os.getpid()}.csv"
    try:
        for label, since in (("newest 100k", newest_since(url, min(100_000, rows))), ("all rows", None)):
            count, per_second, rss = export(url, since, output)
            print(f"export {label}: {count:,} rows, {per_second:,.0f} rows/s, peak RSS {rss:.0f} MiB", flush=True)
    finally:
        output.unlink(missing_ok=True)


if __name__ == "__main__":
    main()
