"""Alembic migrations run down to base and back up to head on this run's database."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import create_engine, inspect, text

from bot.db import migrate
from bot.db.session import parse_database_url
from tests.support.database import DbHelper


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


def test_rows_written_before_the_hash_chain_are_chained_by_the_upgrade(db: DbHelper) -> None:
    import asyncio

    from bot.db import chain
    from bot.db.session import Database

    migrate.downgrade(db.url, "0008")
    try:
        with db.engine.begin() as conn:
            for n, outcome in enumerate(("succeeded", "pending", "denied")):
                conn.execute(
                    text(
                        "INSERT INTO audit_log (created_at, source, user_id, command_text, outcome, request) "
                        "VALUES (CURRENT_TIMESTAMP, 'slash', :u, 'hangup x', :o, :r)"
                    ),
                    {"u": f"U{n}", "o": outcome, "r": '{"a": "\u00e9"}'},
                )
    finally:
        migrate.upgrade(db.url, "head")

    async def check() -> chain.ChainReport:
        database = Database(db.url)
        try:
            return await chain.verify(database)
        finally:
            await database.close()

    report = asyncio.run(check())
    assert report.ok and (report.rows, report.entries) == (3, 3), report
    assert [r["chain_seq"] for r in db.audit()] == [1, 2, 3]


def test_0014_makes_the_tables_slack_sdk_s_stores_use_and_takes_them_down(database_url: str) -> None:
    """Column for column, index for index, what the stores' own create_tables() would make: the
    stores read and write them in OAuth mode (bot/db/installations.py)."""
    from slack_sdk.oauth.installation_store.sqlalchemy import SQLAlchemyInstallationStore
    from slack_sdk.oauth.state_store.sqlalchemy import SQLAlchemyOAuthStateStore
    from sqlalchemy import MetaData

    expected = MetaData()
    SQLAlchemyInstallationStore.build_installations_table(expected, "slack_installations")
    SQLAlchemyInstallationStore.build_bots_table(expected, "slack_bots")
    SQLAlchemyOAuthStateStore.build_oauth_states_table(expected, "slack_oauth_states")
    engine = create_engine(parse_database_url(database_url, sync=True))
    try:
        migrate.downgrade(database_url, "0013")
        assert not set(expected.tables) & set(inspect(engine).get_table_names())
        migrate.upgrade(database_url, "head")
        found = inspect(engine)
        for name, table in expected.tables.items():
            columns = {c["name"]: c for c in found.get_columns(name)}
            assert list(columns) == [c.name for c in table.columns], name
            for column in table.columns:
                migrated = columns[column.name]
                assert migrated["nullable"] == (column.nullable and not column.primary_key), (name, column.name)
                assert type(migrated["type"]).__name__.upper() in _SAME_TYPE[type(column.type).__name__], column.name
                if hasattr(column.type, "length") and column.type.length:
                    assert migrated["type"].length == column.type.length, (name, column.name)
            assert found.get_pk_constraint(name)["constrained_columns"] == ["id"]
            indexes = {i["name"]: i["column_names"] for i in found.get_indexes(name)}
            assert indexes == {i.name: [c.name for c in i.columns] for i in table.indexes}, name
    finally:
        migrate.upgrade(database_url, "head")
        engine.dispose()


# What each SQLAlchemy type of the stores' tables reads back as, on SQLite and PostgreSQL.
_SAME_TYPE = {
    "Integer": {"INTEGER"},
    "String": {"VARCHAR"},
    "DateTime": {"DATETIME", "TIMESTAMP"},
    "Boolean": {"BOOLEAN"},
}
