"""Alembic environment: migrates DATABASE_URL (or the URL callbot passes in) with a sync engine."""

from __future__ import annotations

import os

from alembic import context
from sqlalchemy import create_engine, pool

from bot.db.models import Base
from bot.db.session import install_sqlite_pragmas, parse_database_url

config = context.config
url_text = config.attributes.get("database_url") or os.environ.get("DATABASE_URL") or "sqlite:///./callbot.db"
url = parse_database_url(url_text, sync=True)
target_metadata = Base.metadata


def run_migrations_offline() -> None:
    context.configure(url=url, target_metadata=target_metadata, literal_binds=True, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    engine = create_engine(url, poolclass=pool.NullPool)
    if url.get_backend_name() == "sqlite":
        install_sqlite_pragmas(engine)
    with engine.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            render_as_batch=url.get_backend_name() == "sqlite",
        )
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
