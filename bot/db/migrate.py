"""Runs alembic programmatically, so `callbot migrate` and `callbot serve` need no alembic.ini."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, pool

from bot.db.session import parse_database_url
from bot.domain.errors import CallbotError


def migrations_dir() -> Path:
    """The alembic scripts: bot/migrations in an installed wheel (the build copies the top-level
    migrations/ there), else the checkout's migrations/ (an editable install, as ./dev uses)."""
    package = Path(__file__).resolve().parents[1]
    candidates = (package / "migrations", package.parent / "migrations")
    for candidate in candidates:
        if (candidate / "env.py").is_file():
            return candidate
    raise CallbotError(f"callbot's database migrations are missing (looked in {' and '.join(map(str, candidates))})")


def alembic_config(database_url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(migrations_dir()))
    config.attributes["database_url"] = database_url
    return config


def upgrade(database_url: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(database_url), revision)


def downgrade(database_url: str, revision: str = "base") -> None:
    command.downgrade(alembic_config(database_url), revision)


def pending_revisions(database_url: str) -> bool:
    """True when the database is behind the code's newest migration."""
    head = ScriptDirectory.from_config(alembic_config(database_url)).get_current_head()
    engine = create_engine(parse_database_url(database_url, sync=True), poolclass=pool.NullPool)
    try:
        with engine.connect() as connection:
            current = MigrationContext.configure(connection).get_current_revision()
    finally:
        engine.dispose()
    return current != head
