"""Engines: the async one the bot runs on, and the sync one alembic migrates with."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import event, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

from bot.db import events
from bot.domain.errors import ConfigError

log = logging.getLogger(__name__)

_ASYNC_DRIVERS = {"sqlite": "sqlite+aiosqlite", "postgresql": "postgresql+psycopg"}
_SYNC_DRIVERS = {"sqlite": "sqlite", "postgresql": "postgresql+psycopg"}


def parse_database_url(url: str, *, sync: bool) -> URL:
    """Accepts URLs as users write them (`sqlite:///x.db`, `postgres://…`) and picks our driver."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise ConfigError(
            "environment", "DATABASE_URL", "is not a database URL (e.g. sqlite:///./callbot.db)"
        ) from None
    backend = parsed.get_backend_name()
    if backend == "postgres":
        backend = "postgresql"
    drivers = _SYNC_DRIVERS if sync else _ASYNC_DRIVERS
    if backend not in drivers:
        raise ConfigError(
            "environment", "DATABASE_URL", f"backend {backend!r} is not supported; use sqlite or postgresql"
        )
    return parsed.set(drivername=drivers[backend])


def is_sqlite(url: str) -> bool:
    return parse_database_url(url, sync=True).get_backend_name() == "sqlite"


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # WAL lets readers (healthz, /call audit) run while a write is in flight.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def install_sqlite_pragmas(engine_sync: Any) -> None:
    event.listen(engine_sync, "connect", _sqlite_pragmas)


class Database:
    def __init__(self, url: str) -> None:
        parsed = parse_database_url(url, sync=False)
        self.url = url
        self.engine: AsyncEngine = create_async_engine(parsed, pool_pre_ping=parsed.get_backend_name() != "sqlite")
        if parsed.get_backend_name() == "sqlite":
            install_sqlite_pragmas(self.engine.sync_engine)
        self._sessions = async_sessionmaker(self.engine, expire_on_commit=False)
        # Audit chain appends serialise on the chain head row anyway (bot/db/chain.py); queueing
        # them here first keeps this process's writers from spinning on the database's lock
        # (SQLite's busy handler sleeps in growing steps) while another one holds it.
        self._chain_lock = asyncio.Lock()
        # Told about audit rows opened and closed, after their commit (logs and metrics: bot/observe.py).
        self.observer: events.Observer | None = None

    @asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        async with self._sessions() as session:
            async with session.begin():
                yield session
            noted = events.take(session)
        if noted and self.observer is not None:
            try:
                self.observer(noted)
            except Exception:  # logs and metrics must never fail an attempt that was recorded
                log.exception("the audit observer failed")

    @asynccontextmanager
    async def chain_session(self) -> AsyncIterator[AsyncSession]:
        """A session for a transaction that appends to the audit hash chain."""
        async with self._chain_lock, self.session() as session:
            yield session

    async def ping(self) -> bool:
        try:
            async with self.engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
        except Exception:
            return False
        return True

    async def close(self) -> None:
        await self.engine.dispose()
