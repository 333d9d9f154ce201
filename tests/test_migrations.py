"""Alembic migrations run down to base and back up to head on this run's database."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import create_engine, inspect

from bot.db import migrate
from bot.db.session import parse_database_url


def _tables(url: str) -> set[str]:
    engine = create_engine(parse_database_url(url, sync=True))
    try:
        return set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


def test_downgrade_to_base_and_upgrade_to_head(database_url: str) -> None:
    migrate.downgrade(database_url, "base")
    assert {"grants", "audit_log"}.isdisjoint(_tables(database_url))
    migrate.upgrade(database_url, "head")
    assert {"grants", "audit_log", "alembic_version"} <= _tables(database_url)
    assert not migrate.pending_revisions(database_url)


def test_fresh_sqlite_file_migrates_up_and_down(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'fresh.db'}"
    assert migrate.pending_revisions(url)
    migrate.upgrade(url)
    assert not migrate.pending_revisions(url)
    migrate.downgrade(url)
    assert "audit_log" not in _tables(url)
