"""Every Slack audit filter is served by an index, in order: EXPLAIN shows no full scan and no
sort of the filtered rows (SQLite and PostgreSQL), and the query shapes that make this so (the
visibility scope as a merge of index-ordered branches) return exactly the rows they should."""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Connection
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.expression import ClauseElement, Executable

from bot.db import audit_search, repo
from bot.db.audit_search import AuditFilter, Cursor
from bot.db.session import Database
from tests.support.database import DbHelper

T0 = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
CURSOR = Cursor(T0 + timedelta(days=1), 42)
ALICE, BOB = "U0ALICE01", "U0BOB0002"

FILTERS: dict[str, AuditFilter] = {
    "user": AuditFilter(workspace="T0001", user_id=ALICE),
    "account": AuditFilter(workspace="T0001", account="prod"),
    "call": AuditFilter(workspace="T0001", call_id="CA0123"),
    "action": AuditFilter(workspace="T0001", action="hangup"),
    "outcome": AuditFilter(workspace="T0001", outcome="failed"),
    "since": AuditFilter(workspace="T0001", since=T0),
    "until": AuditFilter(workspace="T0001", until=T0),
    "combination": AuditFilter(workspace="T0001", account="prod", action="hangup", outcome="failed", since=T0),
    "own rows": AuditFilter(workspace="T0001", visible_user=ALICE, visible_accounts=()),
    "own rows + one account": AuditFilter(workspace="T0001", visible_user=ALICE, visible_accounts=("prod",)),
    "own rows + two accounts, filtered": AuditFilter(
        workspace="T0001", action="hangup", since=T0, visible_user=ALICE, visible_accounts=("prod", "bw")
    ),
}
PAGES: dict[str, dict[str, Cursor]] = {"first": {}, "next": {"older_than": CURSOR}, "previous": {"newer_than": CURSOR}}


class Explain(Executable, ClauseElement):
    """EXPLAIN of a statement, compiled (bound parameters and all) like the statement itself."""

    inherit_cache = False

    def __init__(self, statement: Any) -> None:
        self.statement = statement


@compiles(Explain)
def _explain(element: Explain, compiler: SQLCompiler, **kw: Any) -> str:
    prefix = "EXPLAIN QUERY PLAN " if compiler.dialect.name == "sqlite" else "EXPLAIN (COSTS OFF) "
    return prefix + compiler.process(element.statement, **kw)


def plan(conn: Connection, statement: Any) -> list[str]:
    if conn.dialect.name == "sqlite":
        return [row[3] for row in conn.execute(Explain(statement))]
    # A test table holds a handful of rows, where a full scan and a sort are cheapest. With both
    # priced out, a Seq Scan or a Sort left in the plan means no index could serve the query.
    conn.exec_driver_sql("SET LOCAL enable_seqscan = off")
    conn.exec_driver_sql("SET LOCAL enable_sort = off")
    return [row[0] for row in conn.execute(Explain(statement))]


@pytest.mark.parametrize("page", list(PAGES))
@pytest.mark.parametrize("name", list(FILTERS))
def test_each_slack_filter_reads_an_index_in_order(db: DbHelper, name: str, page: str) -> None:
    statement = audit_search.page_query(FILTERS[name], 10, dialect=db.engine.dialect.name, **PAGES[page])
    with db.engine.begin() as conn:
        lines = plan(conn, statement)
    text = "\n".join(lines)
    if db.engine.dialect.name == "sqlite":
        reads = [line for line in lines if line.startswith(("SCAN", "SEARCH"))]
        assert reads, text
        for line in reads:
            # Every read of audit_log is an index search: never the table, never a whole index.
            assert re.fullmatch(r"SEARCH audit_log USING (COVERING )?INDEX ix_audit_log_\w+ \(.+\)", line), text
        assert "TEMP B-TREE" not in text
    else:
        assert "Seq Scan" not in text, text
        assert not re.search(r"(?m)^\s*(->\s*)?(Incremental )?Sort\s*$", text), text
        assert re.search(r"Index (Only )?Scan (Backward )?using ix_audit_log_\w+ on audit_log", text), text


def test_the_visibility_scope_is_merged_not_sorted(db: DbHelper) -> None:
    """The OR of the asker's rows and a visible account's cannot walk one index: each branch is
    its own index-ordered read, merged (SQLite MERGE, PostgreSQL Merge Append of LIMITed legs)."""
    statement = audit_search.page_query(FILTERS["own rows + one account"], 10, dialect=db.engine.dialect.name)
    with db.engine.begin() as conn:
        text = "\n".join(plan(conn, statement))
    if db.engine.dialect.name == "sqlite":
        assert "MERGE (UNION ALL)" in text
        assert "ix_audit_log_user_id_created_at (user_id=?)" in text
        assert "ix_audit_log_account_created_at (account=?)" in text
    else:
        assert "Merge Append" in text and text.count("->  Limit") == 2, text


# -- the merged queries return what the plain OR would ------------------------------------------


def _seed(url: str) -> list[dict[str, Any]]:
    """30 rows over 3 users and 3 accounts; some share a timestamp (the keyset's tie-break)."""
    users, accounts = (ALICE, BOB, "U0CAROL03"), ("prod", "bw", None)

    async def go() -> list[dict[str, Any]]:
        database = Database(url)
        made = []
        try:
            for n in range(30):
                fields = {
                    "created_at": T0 + timedelta(minutes=n // 3),  # three rows a minute
                    "source": "slash",
                    "user_id": users[n % 3],
                    "command_text": f"hangup #{n}",
                    "action": "hangup" if n % 2 else "redirect",
                    "account": accounts[(n // 3) % 3],
                    "outcome": "denied",
                    "decision": "denied",
                }
                row = await repo.insert_audit(database, "T0001", **fields)
                made.append({**fields, "id": row.id})
        finally:
            await database.close()
        return made

    return asyncio.run(go())


def _visible(row: dict[str, Any], flt: AuditFilter) -> bool:
    scoped = row["user_id"] == flt.visible_user or row["account"] in (flt.visible_accounts or ())
    return scoped and (flt.action is None or row["action"] == flt.action)


def _walk(url: str, flt: AuditFilter, size: int) -> tuple[list[list[int]], list[list[int]], list[int]]:
    """Pages going Next to the end, then Previous back to the start; and the streamed ids."""

    async def go() -> tuple[list[list[int]], list[list[int]], list[int]]:
        database = Database(url)
        try:
            page = await audit_search.page(database, flt, size)
            forward = [[row.id for row in page.rows]]
            while page.has_older:
                page = await audit_search.page(database, flt, size, older_than=page.oldest)
                forward.append([row.id for row in page.rows])
            backward = [forward[-1]]
            while page.has_newer:
                page = await audit_search.page(database, flt, size, newer_than=page.newest)
                backward.append([row.id for row in page.rows])
            streamed = [row["id"] async for row in audit_search.stream(database, flt, ["id"], chunk=4)]
            return forward, backward, streamed
        finally:
            await database.close()

    return asyncio.run(go())


@pytest.mark.parametrize(
    "flt",
    [
        AuditFilter(workspace="T0001", visible_user=ALICE, visible_accounts=("prod",)),
        AuditFilter(workspace="T0001", visible_user=BOB, visible_accounts=("prod", "bw")),
        AuditFilter(workspace="T0001", action="hangup", visible_user=ALICE, visible_accounts=("bw", "bw")),
    ],
    ids=["one account", "two accounts", "filtered, account repeated"],
)
def test_merged_pages_and_streams_hold_exactly_the_visible_rows(db: DbHelper, flt: AuditFilter) -> None:
    rows = _seed(db.url)
    expected = [
        row["id"] for row in sorted(rows, key=lambda r: (r["created_at"], r["id"]), reverse=True) if _visible(row, flt)
    ]
    assert len(expected) > 7  # several pages, each crossing rows that share a timestamp
    forward, backward, streamed = _walk(db.url, flt, 3)
    assert [i for page in forward for i in page] == expected
    assert all(len(page) == 3 for page in forward[:-1])
    assert backward == forward[::-1]
    assert streamed == expected[::-1]  # oldest first, each row once
