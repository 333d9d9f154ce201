"""Revision 0015 on a single-workspace database: every row of every table kept, each assigned to the
workspace the bot token belongs to (the fake Slack's auth.test) at the first `callbot migrate` with
SLACK_BOT_TOKEN, the audit hash chain still verifying (and tampering still caught); auth.test failing
leaves the rows waiting, said in the log, for the next start; down to 0013 keeps them too. Run on
SQLite and, with CALLBOT_TEST_DATABASE_URL, PostgreSQL (tests/support/database.py)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from bot.db import migrate, repo
from bot.db.session import Database
from tests.fakes.slack import FakeSlack
from tests.processes import callbot
from tests.support.database import DbHelper
from tests.support.oauth import shell_oauth_env

TEAM = "T0001"  # the fake Slack's auth.test
OLD_ADMIN = "U0OLDADM1"
EVERY_TABLE = (
    "grants",
    "roles",
    "freezes",
    "saved_flows",
    "flow_drafts",
    "approvals",
    "batches",
    "batch_items",
    "pending_choices",
    "audit_log",
    "pending_replies",
    "webhook_receipts",
)
SCOPED = ("grants", "roles", "freezes", "saved_flows", "flow_drafts", "approvals", "batches", "pending_choices")

# Rows as revision 0013 stores them: no workspace anywhere.
OLD_ROWS = (
    "INSERT INTO grants (user_id, action, account, granted_by, created_at, subject_kind, needs_approval) "
    f"VALUES ('{OLD_ADMIN}', 'admin', '*', 'shell:ops', CURRENT_TIMESTAMP, 'user', false)",
    "INSERT INTO grants (user_id, action, account, granted_by, created_at, subject_kind, channel, needs_approval) "
    "VALUES ('S0GROUP01', 'hangup', 'prod', 'U0OLDADM1', CURRENT_TIMESTAMP, 'group', 'C0OPS0001', false)",
    "INSERT INTO roles (name, actions, created_by, updated_at) "
    "VALUES ('night', '[\"hangup\", \"audit\"]', 'U0OLDADM1', CURRENT_TIMESTAMP)",
    "INSERT INTO freezes (account, reason, frozen_by, frozen_at) "
    "VALUES ('prod', 'incident 4', 'U0OLDADM1', CURRENT_TIMESTAMP)",
    "INSERT INTO saved_flows (name, version, callflow, author, created_at) "
    "VALUES ('hold', 1, '[{\"command\": \"hangup\"}]', 'U0OLDADM1', CURRENT_TIMESTAMP)",
    "INSERT INTO flow_drafts (user_id, account, call_id, commands, end_call, created_at, updated_at) "
    "VALUES ('U0OLDADM1', 'bird', 'c1', '[]', false, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)",
    "INSERT INTO approvals (account, action, call_id, requester, text, preview, action_hash, status, created_at, "
    "expires_at, channel) VALUES ('prod', 'hangup', 'CA1', 'U0OLDADM1', '', 'preview', 'h', 'expired', "
    "CURRENT_TIMESTAMP, CURRENT_TIMESTAMP, 'C0APPROVE')",
    "INSERT INTO batches (account, action, requested_by, filter, status, total, ended, failed, created_at, "
    "heartbeat_at) VALUES ('prod', 'hangup', 'U0OLDADM1', '{}', 'finished', 1, 1, 0, CURRENT_TIMESTAMP, "
    "CURRENT_TIMESTAMP)",
    "INSERT INTO batch_items (batch_id, call_id, state, updated_at) "
    "SELECT max(id), 'CA2', 'ended', CURRENT_TIMESTAMP FROM batches",
    "INSERT INTO pending_choices (token, user_id, text, accounts, created_at, purpose) "
    "VALUES ('tok-old', 'U0OLDADM1', 'hangup CA3', '[\"prod\"]', CURRENT_TIMESTAMP, 'confirm')",
    "INSERT INTO webhook_receipts (provider, account, digest, received_at) "
    "VALUES ('twilio', 'prod', 'abc', CURRENT_TIMESTAMP)",
)


def counts(db: DbHelper) -> dict[str, int]:
    with db.engine.connect() as conn:
        return {table: int(conn.execute(text(f"SELECT count(*) FROM {table}")).scalar_one()) for table in EVERY_TABLE}


def teams(db: DbHelper, table: str) -> set[str | None]:
    column = "workspace_id" if table == "audit_log" else "team_id"
    with db.engine.connect() as conn:
        return set(conn.execute(text(f"SELECT {column} FROM {table}")).scalars())


def _audited_rows(db: DbHelper) -> None:
    """Audit rows written the way callbot writes them (a valid chain): one Slack sent (with its
    team id), one of the shell (none), one still pending with its response_url kept."""

    async def write() -> None:
        database = Database(db.url)
        try:
            await repo.insert_audit(
                database,
                TEAM,
                source="slash",
                team_id=TEAM,
                user_id="U1",
                command_text="/call perms",
                outcome="succeeded",
            )
            shell = await repo.insert_audit(
                database, TEAM, source="cli", user_id="shell:ops", command_text="grant", outcome="pending"
            )
            await repo.complete_audit(database, shell.id, outcome="succeeded")
            await repo.insert_audit(
                database,
                TEAM,
                reply_url="https://hooks.slack.com/commands/1/2",
                source="slash",
                team_id=TEAM,
                user_id="U2",
                command_text="/call hangup prod:CA9",
                action="hangup",
                outcome="pending",
            )
        finally:
            await database.close()

    asyncio.run(write())


@pytest.fixture
def at_0013(db: DbHelper) -> Iterator[DbHelper]:
    """The worker's database holding a single-workspace deployment's rows at revision 0013; back
    at head afterwards, whatever the test did."""
    try:
        yield db
    finally:
        migrate.upgrade(db.url, "head")


def seed_0013(db: DbHelper) -> dict[str, int]:
    with db.engine.begin() as conn:
        conn.execute(text("DELETE FROM workspaces"))
    _audited_rows(db)
    migrate.downgrade(db.url, "0013")
    with db.engine.begin() as conn:
        for statement in OLD_ROWS:
            conn.execute(text(statement))
    before = counts(db)
    assert all(before.values()), before  # a row in every table, so a lost one shows
    return before


def test_every_row_is_kept_and_assigned_to_the_bot_tokens_workspace(
    at_0013: DbHelper, env: dict[str, str], tmp_path: Path
) -> None:
    db = at_0013
    before = seed_0013(db)

    migrated = callbot(["migrate"], env, tmp_path)
    assert migrated.returncode == 0, migrated.stderr
    assert migrated.stdout == "database schema is up to date\n"
    assert f"Slack workspace: {TEAM}" in migrated.stderr
    assert counts(db) == before
    for table in SCOPED:
        assert teams(db, table) == {TEAM}, table
    assert teams(db, "audit_log") == {TEAM}
    with db.engine.connect() as conn:
        assert conn.execute(text("SELECT team_id FROM audit_log ORDER BY id")).scalars().all() == [TEAM, None, TEAM]
        [(team, assigned)] = conn.execute(text("SELECT team_id, assigned_at FROM workspaces")).all()
    assert team == TEAM and assigned is not None
    assert "audit_log 1" in migrated.stderr and "grants 2" in migrated.stderr  # the log says what was assigned

    verified = callbot(["audit", "verify"], env, tmp_path)
    assert verified.returncode == 0, verified.stdout + verified.stderr
    # The old grant counts in its workspace: the old admin still administers.
    assert f"<@{OLD_ADMIN}> `admin` on all accounts" in callbot(["perms"], env, tmp_path).stdout
    assert "`night` (custom)" in callbot(["roles"], env, tmp_path).stdout

    again = callbot(["migrate"], env, tmp_path)  # nothing left to assign: said once, not again
    assert again.returncode == 0 and "were assigned" not in again.stderr

    migrate.downgrade(db.url, "0013")
    assert counts(db) == before
    migrate.upgrade(db.url, "head")

    with db.engine.begin() as conn:  # a Slack row moved to another workspace's audit
        conn.execute(text("UPDATE audit_log SET workspace_id = 'T0002' WHERE user_id = 'U1'"))
    moved = callbot(["audit", "verify"], env, tmp_path)
    assert moved.returncode == 1 and "shown in another workspace than their hashed team_id names: #1" in moved.stdout
    with db.engine.begin() as conn:
        conn.execute(text("UPDATE audit_log SET workspace_id = team_id WHERE user_id = 'U1'"))
        conn.execute(text("UPDATE audit_log SET command_text = '/call nothing' WHERE source = 'cli'"))
    tampered = callbot(["audit", "verify"], env, tmp_path)
    assert tampered.returncode == 1, tampered.stdout + tampered.stderr


def test_auth_test_failing_leaves_the_rows_waiting_and_the_next_start_assigns_them(
    at_0013: DbHelper, env: dict[str, str], tmp_path: Path, fake_slack: FakeSlack
) -> None:
    db = at_0013
    before = seed_0013(db)
    fake_slack.failures["auth.test"] = ["invalid_auth", "invalid_auth", "invalid_auth"]
    failed = callbot(["migrate"], env, tmp_path)
    assert failed.returncode == 0, failed.stderr
    assert "Slack workspace: unknown" in failed.stderr
    assert "could not read this bot's Slack workspace from auth.test" in failed.stderr
    assert "rows without a workspace, shown nowhere until then" in failed.stderr and "grants 2" in failed.stderr
    assert counts(db) == before
    assert teams(db, "grants") == {""}

    fake_slack.failures.clear()
    assert f"Slack workspace: {TEAM}" in callbot(["migrate"], env, tmp_path).stderr
    assert teams(db, "grants") == {TEAM} and teams(db, "audit_log") == {TEAM}
    assert counts(db) == before


def test_without_slack_the_shell_works_and_the_first_start_gives_its_rows_a_workspace(
    at_0013: DbHelper, env: dict[str, str], tmp_path: Path
) -> None:
    db = at_0013
    with db.engine.begin() as conn:
        conn.execute(text("DELETE FROM workspaces"))  # a new deployment: no workspace known yet
    no_slack = {k: v for k, v in env.items() if k != "SLACK_BOT_TOKEN"}
    granted = callbot(["grant", OLD_ADMIN, "admin"], no_slack, tmp_path)
    assert granted.returncode == 0, granted.stderr  # the README's first minute, without Slack
    denied = callbot(["run", "--as", "U0NOBODY1", "hangup prod:CA0123456789abcdef0123456789abcdef"], no_slack, tmp_path)
    assert denied.returncode == 1 and "not allowed" in denied.stdout
    listed = callbot(["audit", "list"], no_slack, tmp_path).stdout
    assert "U0NOBODY1" in listed and "grant" in listed
    assert teams(db, "grants") == {""} and teams(db, "audit_log") == {None}

    started = callbot(["migrate"], env, tmp_path)  # Slack configured: its workspace takes them
    assert f"Slack workspace: {TEAM}" in started.stderr
    assert teams(db, "grants") == {TEAM} and teams(db, "audit_log") == {TEAM}
    assert f"<@{OLD_ADMIN}> `admin` on all accounts" in callbot(["perms"], env, tmp_path).stdout
    verified = callbot(["audit", "verify"], env, tmp_path)
    assert verified.returncode == 0, verified.stdout


def test_oauth_mode_does_not_start_while_old_rows_wait_for_their_workspace(
    at_0013: DbHelper, env: dict[str, str], tmp_path: Path
) -> None:
    """Only a bot token's auth.test says whose the old rows are: in OAuth mode they would show
    nowhere (and their freezes hold nowhere), so callbot says how to give them their workspace."""
    db = at_0013
    before = seed_0013(db)
    oauth = shell_oauth_env(env, tmp_path, "T0001")
    assert callbot(["migrate"], oauth, tmp_path).returncode == 0  # the schema; no workspace to give
    refused = callbot(["serve", "--port", "0"], oauth, tmp_path)
    assert refused.returncode == 2, refused.stderr
    assert "rows written before workspaces have none yet (" in refused.stderr
    assert "run `callbot migrate` once with the old SLACK_BOT_TOKEN" in refused.stderr
    assert "Traceback" not in refused.stderr
    assert counts(db) == before

    # As it says: migrate with the bot token, then OAuth mode starts (the shell's audit list here).
    assert f"Slack workspace: {TEAM}" in callbot(["migrate"], env, tmp_path).stderr
    listed = callbot(["audit", "list", "--team", TEAM], oauth, tmp_path)
    assert listed.returncode == 0, listed.stderr
