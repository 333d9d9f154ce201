"""The test database: one per pytest-xdist worker, migrated once, emptied before each test.

SQLite (the default): a file in the worker's own temporary directory. PostgreSQL (when
CALLBOT_TEST_DATABASE_URL is set): each worker of a run gets its own database on the same server,
`<name>_<unix time>_<run id>_gw0`, made through the server's `postgres` maintenance database and
dropped at the end (two runs at once on one server, as on a shared machine, never meet; what a
killed run left behind is dropped by a later run once a day old). A run without workers (`-n 0`)
uses the given database itself, its schema `public` dropped and made again.
Subprocesses (`callbot …`, writers) get the same URL through the `env` fixture's DATABASE_URL.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import JSON, Connection, Engine, bindparam, create_engine, text
from sqlalchemy.engine import make_url

from bot.db import migrate
from bot.db.models import UTCDateTime
from bot.db.session import Database, parse_database_url

ENV_URL = "CALLBOT_TEST_DATABASE_URL"
# The workspace of the sample payloads (tests/payloads/) and of the fake Slack's auth.test.
TEAM = "T0001"
T = TypeVar("T")


def worker() -> str | None:
    """This process's pytest-xdist worker id (gw0, gw1…), None without xdist."""
    return os.environ.get("PYTEST_XDIST_WORKER")


def label() -> str:
    url = os.environ.get(ENV_URL)
    return url.split("@")[-1] if url else "sqlite (temporary file)"


def create(directory: Path) -> tuple[str, Callable[[], None]]:
    """The migrated database of this process, and what removes it at the end of the session."""
    url = os.environ.get(ENV_URL)
    drop: Callable[[], None] = lambda: None  # noqa: E731
    if not url:
        url = f"sqlite:///{directory / 'callbot.db'}"
    elif worker():
        url, drop = _own_postgres_database(url, worker() or "")
    else:
        _fresh_public_schema(url)
    migrate.upgrade(url)
    return url, drop


def _fresh_public_schema(url: str) -> None:
    engine = create_engine(parse_database_url(url, sync=True))
    with engine.begin() as conn:
        # A clean slate whatever an earlier run left behind.
        conn.execute(text("DROP SCHEMA IF EXISTS public CASCADE"))
        conn.execute(text("CREATE SCHEMA public"))
    engine.dispose()


LEFT_BEHIND_AFTER = 86_400  # seconds: no run lasts that long


def _own_postgres_database(base: str, worker_id: str) -> tuple[str, Callable[[], None]]:
    parsed = make_url(base)
    prefix = (parsed.database or "callbot_test")[:30]  # the whole name within PostgreSQL's 63 bytes
    run_id = re.sub("[^0-9a-f]", "", os.environ.get("PYTEST_XDIST_TESTRUNUID", "").lower())[:8] or f"{os.getppid():x}"
    name = f"{prefix}_{int(time.time())}_{run_id}_{worker_id}"
    admin_url = parse_database_url(parsed.set(database="postgres").render_as_string(hide_password=False), sync=True)
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")

    def run(statement: str) -> None:
        for attempt in range(5):
            try:
                with admin.connect() as conn:
                    conn.execute(text(statement))
                return
            except Exception:
                # CREATE DATABASE copies template1 and fails while another session is on it.
                if attempt == 4:
                    raise
                time.sleep(0.2 * (attempt + 1))

    with admin.connect() as conn:
        others = conn.execute(text("SELECT datname FROM pg_database")).scalars().all()
    for other in others:
        made = re.fullmatch(rf"{re.escape(prefix)}_(\d+)_[0-9a-f]+_gw\d+", other)
        if made and time.time() - int(made.group(1)) > LEFT_BEHIND_AFTER:
            run(f'DROP DATABASE IF EXISTS "{other}" WITH (FORCE)')
    run(f'CREATE DATABASE "{name}"')

    def drop() -> None:
        try:
            # WITH (FORCE): a subprocess a failed test left running does not keep it alive.
            run(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            admin.dispose()

    return parsed.set(database=name).render_as_string(hide_password=False), drop


def on_database(url: str, work: Callable[[Database], Awaitable[T]]) -> T:
    """Runs `work` with the bot's own async Database on `url` (a fresh event loop), then closes it."""

    async def go() -> T:
        database = Database(url)
        try:
            return await work(database)
        finally:
            await database.close()

    return asyncio.run(go())


TABLES = (
    "approvals",
    "freezes",
    "audit_log",
    "grants",
    "roles",
    "saved_flows",
    "flow_drafts",
    "batches",
    "batch_items",
    "pending_replies",
    "pending_choices",
    "webhook_receipts",
    # The workspaces callbot knows (migration 0015): from auth.test at start, and from OAuth installs.
    "workspaces",
    # OAuth mode's stores (migration 0014).
    "slack_installations",
    "slack_bots",
    "slack_oauth_states",
)


_SEQUENCES: dict[str, list[str]] = {}


def _sequences(conn: Connection) -> list[str]:
    """The id sequences of TABLES in this PostgreSQL database (looked up once per database)."""
    name = str(conn.engine.url)
    if name not in _SEQUENCES:
        rows = conn.execute(
            text(
                "SELECT pg_get_serial_sequence(quote_ident(table_name), column_name) FROM information_schema.columns "
                "WHERE table_schema = current_schema() AND table_name IN :tables "
                "AND (column_default LIKE 'nextval(%' OR is_identity = 'YES')"
            ).bindparams(bindparam("tables", expanding=True)),
            {"tables": list(TABLES)},
        )
        _SEQUENCES[name] = [str(sequence) for sequence in rows.scalars() if sequence]
    return _SEQUENCES[name]


@dataclass
class DbHelper:
    url: str
    engine: Engine

    def reset(self) -> None:
        with self.engine.begin() as conn:
            # DELETE, not TRUNCATE: on tables this small PostgreSQL's TRUNCATE costs ~0.25 s (new
            # files, fsync) against a few ms, and every test pays it.
            for table in TABLES:
                conn.execute(text(f"DELETE FROM {table}"))
            if self.engine.dialect.name == "postgresql":
                # Ids start at 1 again, as TRUNCATE … RESTART IDENTITY did (SQLite's do by themselves).
                for sequence in _sequences(conn):
                    conn.execute(text("SELECT setval(:s, 1, false)"), {"s": sequence})
            # A fresh, empty hash chain (bot/db/chain.py).
            conn.execute(
                text("UPDATE audit_chain SET seq = 0, hash = :genesis, base_seq = 0, base_hash = :genesis"),
                {"genesis": "0" * 64},
            )

    def grant(
        self,
        user: str,
        action: str,
        account: str = "*",
        *,
        kind: str = "user",
        channel: str | None = None,
        expires_at: datetime | None = None,
        team: str = TEAM,
    ) -> int:
        """Insert a grant (a user's, or a user group's with kind="group") in workspace `team`
        (the one the sample payloads come from, by default); returns its id."""
        with self.engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO grants (team_id, user_id, action, account, granted_by, created_at, subject_kind, "
                    "channel, expires_at) VALUES (:t, :u, :a, :acc, 'test-setup', CURRENT_TIMESTAMP, :k, :c, :e)"
                ).bindparams(bindparam("e", type_=UTCDateTime())),  # stored exactly as the bot stores it
                {"t": team, "u": user, "a": action, "acc": account, "k": kind, "c": channel, "e": expires_at},
            )
            return int(conn.execute(text("SELECT max(id) FROM grants")).scalar_one())

    def save_flows(
        self, names: Sequence[str], callflow: list[dict[str, Any]], author: str = "U0ALICE01", team: str = TEAM
    ) -> None:
        """Version 1 of each name, with that callFlow, as `/call flows save` stores it (one insert)."""
        statement = text(
            "INSERT INTO saved_flows (team_id, name, version, callflow, author, created_at) "
            "VALUES (:t, :n, 1, :c, :a, CURRENT_TIMESTAMP)"
        ).bindparams(bindparam("c", type_=JSON()))
        with self.engine.begin() as conn:
            conn.execute(statement, [{"t": team, "n": name, "c": callflow, "a": author} for name in names])

    def grants(self) -> list[tuple[str, str, str]]:
        with self.engine.connect() as conn:
            rows = conn.execute(text("SELECT user_id, action, account FROM grants ORDER BY id"))
            return [tuple(r) for r in rows]  # type: ignore[misc]

    def audit(self) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            rows = conn.execute(text("SELECT * FROM audit_log ORDER BY id")).mappings().all()
        result = []
        for row in rows:
            item = dict(row)
            for key in ("request", "result"):
                if isinstance(item.get(key), str):
                    item[key] = json.loads(item[key])
            result.append(item)
        return result

    def wait_audit(self, predicate: Any, timeout: float = 10.0) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while True:
            rows = self.audit()
            if predicate(rows):
                return rows
            if time.monotonic() > deadline:
                raise AssertionError(f"audit rows never matched: {rows}")
            time.sleep(0.02)
