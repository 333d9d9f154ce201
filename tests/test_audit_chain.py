"""The audit hash chain: every write is chained, any edit shows, a purge keeps it verifiable,
and several processes writing at once keep it linear."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import pytest
from sqlalchemy import text

from bot.config import Settings
from bot.db import chain, confirmations, repo
from bot.db.session import Database
from bot.domain.confirmation import Seen, Via
from bot.domain.errors import InvalidInput
from bot.service import audit_confirmed
from bot.service.audit_retention import purge
from tests.fakes.server import Answer
from tests.fakes.twilio import call_sid
from tests.processes import callbot
from tests.support.bots import ALICE, Bot, BotFactory, write_config
from tests.support.database import DbHelper, on_database

T = TypeVar("T")
NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


def verify(db: DbHelper) -> chain.ChainReport:
    return on_database(db.url, chain.verify)


def insert(db: DbHelper, rows: list[dict[str, Any]]) -> list[int]:
    async def go(database: Database) -> list[int]:
        ids = []
        for fields in rows:
            ids.append((await repo.insert_audit(database, "T0001", **fields)).id)
        return ids

    return on_database(db.url, go)


def complete(db: DbHelper, audit_id: int, **fields: Any) -> bool:
    return on_database(db.url, lambda database: repo.complete_audit(database, audit_id, **fields))


def attempt(n: int, *, outcome: str = "denied", days_ago: float = 0, **extra: Any) -> dict[str, Any]:
    return {
        "created_at": NOW - timedelta(days=days_ago, seconds=-n),
        "source": "slash",
        "user_id": f"U{n:04d}",
        "command_text": f'hangup prod:CA{n:032x} reason="a, b \u00e9"',
        "action": "hangup",
        "account": "prod",
        "call_id": f"CA{n:032x}",
        "outcome": outcome,
        "request": {"method": "POST", "params": {"Status": "completed"}, "n": n},
        **extra,
    }


def sql(db: DbHelper, statement: str, **params: Any) -> None:
    with db.engine.begin() as conn:
        conn.execute(text(statement), params)


def test_every_attempt_through_slack_is_chained_and_verifies(bot: Bot) -> None:
    bot.db.grant(ALICE, "hangup", "prod")
    ok = bot.fake_twilio.add_call(call_sid(1))
    bot.slack.run(f"hangup prod:{ok}")  # pending, then closed as succeeded
    bot.fake_twilio.script(Answer(500, b'{"code": 20500, "message": "Internal Server Error", "status": 500}'))
    bot.slack.run(f"hangup prod:{call_sid(2)}")  # pending, then closed as unknown
    assert bot.slack.command(f"redirect prod:{call_sid(3)} https://example.com/x").status_code == 200  # denied

    rows = bot.db.audit()
    assert [r["outcome"] for r in rows] == ["succeeded", "unknown", "denied"]
    assert [r["chain_seq"] for r in rows] == [1, 3, 5]
    assert [r["outcome_seq"] for r in rows] == [2, 4, None]
    report = verify(bot.db)
    assert report.ok, report.problem
    assert (report.rows, report.entries, report.head_seq) == (3, 5, 5)
    assert report.head_hash == rows[2]["chain_hash"]


def test_hash_is_sha256_of_previous_hash_and_canonical_entry(db: DbHelper) -> None:
    import hashlib
    import json

    [first, second] = insert(db, [attempt(1), attempt(2, outcome="pending")])
    rows = db.audit()
    entry = {
        "entry": "open",
        "seq": 1,
        "created_at": "2026-11-24T12:00:01.000000+00:00",
        "source": "slash",
        "team_id": None,
        "user_id": "U0001",
        "user_name": None,
        "channel_id": None,
        "command_text": 'hangup prod:CA00000000000000000000000000000001 reason="a, b \u00e9"',
        "action": "hangup",
        "account": "prod",
        "provider": None,
        "call_id": "CA00000000000000000000000000000001",
        "request": {"method": "POST", "params": {"Status": "completed"}, "n": 1},
        "decision": None,
        "grant_id": None,
        "decision_basis": None,
        "idempotency_key": None,
        "break_glass": False,
        "outcome": "denied",
        "completed_at": None,
        "provider_status": None,
        "error_code": None,
        "error_message": None,
        "provider_request_id": None,
        "latency_ms": None,
        "result": None,
    }
    body = json.dumps(entry, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    assert rows[0]["chain_hash"] == hashlib.sha256(b"0" * 64 + body).hexdigest()
    assert first < second


def test_a_pending_row_verifies_before_and_after_its_outcome(db: DbHelper) -> None:
    [pending] = insert(db, [attempt(1, outcome="pending")])
    assert verify(db).ok
    insert(db, [attempt(2)])
    assert complete(db, pending, outcome="succeeded", provider_status=204, latency_ms=42, result={"status": "ok"})
    report = verify(db)
    assert report.ok and (report.rows, report.entries) == (2, 3)
    # A second outcome for the same row is refused: the chain already holds one.
    assert not complete(db, pending, outcome="failed")
    assert db.audit()[0]["outcome"] == "succeeded"
    assert verify(db).ok


def test_a_pending_row_cannot_carry_outcome_fields(db: DbHelper) -> None:
    with pytest.raises(ValueError, match="pending"):
        insert(db, [attempt(1, outcome="pending", latency_ms=3)])
    assert db.audit() == []


def _chained(db: DbHelper, count: int = 5, *, outcome: str = "denied") -> list[int]:
    ids = insert(db, [attempt(n, outcome="pending" if n == 2 else outcome) for n in range(1, count + 1)])
    closed_as = "unknown" if outcome == "succeeded" else "failed"
    assert complete(db, ids[1], outcome=closed_as, error_message="boom", provider_status=500)
    assert verify(db).ok
    return ids


def test_an_edited_outcome_is_caught_on_the_closing_entry(db: DbHelper) -> None:
    ids = _chained(db)
    sql(db, "UPDATE audit_log SET error_message = 'all fine' WHERE id = :id", id=ids[1])
    report = verify(db)
    assert not report.ok and report.audit_id == ids[1]
    assert report.problem == f"audit #{ids[1]} was modified (chain entry 6)"


def test_an_edited_field_is_caught(db: DbHelper) -> None:
    ids = _chained(db)
    sql(db, "UPDATE audit_log SET user_id = 'U9999' WHERE id = :id", id=ids[3])
    report = verify(db)
    assert report.problem == f"audit #{ids[3]} was modified (chain entry 4)"


def test_a_deleted_row_is_caught(db: DbHelper) -> None:
    ids = _chained(db)
    sql(db, "DELETE FROM audit_log WHERE id = :id", id=ids[2])
    report = verify(db)
    assert report.problem == f"chain entries 3…3 are missing: rows were deleted before audit #{ids[3]}"


def test_reordered_rows_are_caught(db: DbHelper) -> None:
    ids = _chained(db)
    sql(db, "UPDATE audit_log SET chain_seq = -1 WHERE id = :id", id=ids[2])
    sql(db, "UPDATE audit_log SET chain_seq = 3 WHERE id = :id", id=ids[3])
    sql(db, "UPDATE audit_log SET chain_seq = 4 WHERE id = :id", id=ids[2])
    report = verify(db)
    assert report.problem == f"audit #{ids[3]} is out of order (chain entry 3): rows were reordered or inserted"


def test_rows_slipped_in_or_cut_off_are_caught(db: DbHelper) -> None:
    _chained(db)
    sql(
        db,
        "INSERT INTO audit_log (created_at, source, user_id, command_text, outcome, break_glass) "
        "VALUES (CURRENT_TIMESTAMP, 'slash', 'U1', 'hangup', 'succeeded', false)",
    )
    stray = db.audit()[-1]["id"]
    assert verify(db).problem == f"audit #{stray} has no chain entry: it was inserted out of order, not by callbot"
    sql(db, "DELETE FROM audit_log WHERE id = :id", id=stray)
    assert verify(db).ok
    [newest] = insert(db, [attempt(9)])
    sql(db, "DELETE FROM audit_log WHERE id = :id", id=newest)
    assert verify(db).problem == "chain entries 7…7 are missing: the newest rows were deleted"


def test_purge_removes_a_prefix_and_the_rest_still_verifies(db: DbHelper) -> None:
    old = [attempt(n, days_ago=500) for n in range(1, 5)]
    old[2] = attempt(3, days_ago=500, outcome="pending")  # still pending: it and what follows stay
    ids = insert(db, [*old, attempt(5, days_ago=1)])
    report = on_database(
        db.url,
        lambda d: purge(
            d, older_than=timedelta(days=400), now=NOW, by="shell:ops", source="cli", command_text="x", basis="shell"
        ),
    )
    assert report.rows == 2 and report.through_seq == 2
    remaining = db.audit()
    assert [r["id"] for r in remaining] == [*ids[2:], report.audit_id]
    checkpoint = remaining[-1]
    assert checkpoint["action"] == "audit.purge" and checkpoint["user_id"] == "shell:ops"
    assert checkpoint["result"] == {"purged_rows": 2, "through_seq": 2, "last_hash": report.last_hash}
    assert report.last_hash not in {r["chain_hash"] for r in remaining}
    assert verify(db).ok

    # The pending row completes much later: its closing entry is after the checkpoint.
    assert complete(db, ids[2], outcome="unknown")
    again = on_database(
        db.url,
        lambda d: purge(
            d, older_than=timedelta(days=400), now=NOW, by="shell:ops", source="cli", command_text="x", basis="shell"
        ),
    )
    # Row 3 was closed after rows that stay (row 5, the first checkpoint), so it must stay too.
    assert again.rows == 0
    assert verify(db).ok
    # Tampering with what remains is still caught.
    sql(db, "UPDATE audit_log SET account = 'test' WHERE id = :id", id=ids[4])
    assert verify(db).problem == f"audit #{ids[4]} was modified (chain entry 5)"


def test_purge_refuses_to_touch_the_last_day(db: DbHelper) -> None:
    with pytest.raises(InvalidInput, match="younger than a day"):
        on_database(
            db.url,
            lambda d: purge(
                d, older_than=timedelta(hours=23), now=NOW, by="x", source="cli", command_text="2h", basis="shell"
            ),
        )


def test_the_server_applies_audit_retention_days(make_bot: BotFactory, db: DbHelper) -> None:
    ids = insert(db, [attempt(1, days_ago=40), attempt(2, days_ago=35), attempt(3, days_ago=2)])
    make_bot(preamble="audit_retention_days = 30", retention_every=(0.05, 3600.0))
    rows = db.wait_audit(lambda rows: any(r["action"] == "audit.purge" for r in rows))
    make_bot.stop_all()
    assert [r["id"] for r in rows[:-1]] == [ids[2]]
    assert rows[-1]["source"] == "system" and rows[-1]["result"]["purged_rows"] == 2
    assert rows[-1]["decision_basis"].startswith("audit_retention_days = 30")
    assert verify(db).ok


def test_retention_days_must_be_a_whole_number_of_days(tmp_path: Path, env: dict[str, str]) -> None:
    config = tmp_path / "bad.toml"
    write_config(config, "http://127.0.0.1:9")
    config.write_text('audit_retention_days = "400d"\n' + config.read_text(encoding="utf-8"), encoding="utf-8")
    with pytest.raises(Exception) as caught:
        Settings.from_env({**env, "CALLBOT_CONFIG": str(config)})
    assert "audit_retention_days" in str(caught.value)


_WRITER = """
import asyncio, sys
from bot.db import repo
from bot.db.session import Database

async def main(url, name, count):
    db = Database(url)
    for n in range(count):
        row = await repo.insert_audit(db, "T0001", source="cli", user_id=name, command_text=f"hangup {n}", outcome="pending")
        await repo.complete_audit(db, row.id, outcome="succeeded", latency_ms=n)
    await db.close()

asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3])))
"""


def test_processes_writing_at_once_keep_the_chain_linear(db: DbHelper) -> None:
    writers = [
        subprocess.Popen([sys.executable, "-c", _WRITER, db.url, f"writer{n}", "40"], stderr=subprocess.PIPE)
        for n in range(4)
    ]
    for writer in writers:
        _, err = writer.communicate(timeout=120)
        assert writer.returncode == 0, err.decode()
    rows = db.audit()
    assert len(rows) == 160 and {r["user_id"] for r in rows} == {f"writer{n}" for n in range(4)}
    seqs = sorted([r["chain_seq"] for r in rows] + [r["outcome_seq"] for r in rows])
    assert seqs == list(range(1, 321))
    report = verify(db)
    assert report.ok, report.problem
    assert (report.rows, report.entries) == (160, 320)


def test_callbot_audit_purge_then_verify_from_the_shell(db: DbHelper, tmp_path: Path) -> None:
    now = datetime.now(UTC)
    ids = insert(db, [attempt(1, days_ago=0) | {"created_at": now - timedelta(days=d)} for d in (500, 450, 10)])
    env = {"DATABASE_URL": db.url}

    refused = callbot(["audit", "purge", "--older-than", "12h"], env, tmp_path)
    assert refused.returncode == 2 and refused.stderr.startswith("callbot: ") and "Traceback" not in refused.stderr
    assert "Use days or weeks" in refused.stderr
    too_young = callbot(["audit", "purge", "--older-than", "0d"], env, tmp_path)
    assert too_young.returncode == 2 and "younger than a day" in too_young.stderr

    done = callbot(["audit", "purge", "--older-than", "400d"], env, tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("Purged 2 audit rows created before ")
    rows = db.audit()
    assert [r["id"] for r in rows[:-1]] == [ids[2]]
    assert rows[-1]["action"] == "audit.purge" and rows[-1]["source"] == "cli"
    assert rows[-1]["user_id"].startswith("shell:") and rows[-1]["result"]["purged_rows"] == 2

    verified = callbot(["audit", "verify"], env, tmp_path)
    assert verified.returncode == 0 and verified.stdout.startswith("ok: 2 rows, 2 chain entries, head 4 ")


def confirm(db: DbHelper, audit_id: int, status: str = "completed", via: str = "read") -> bool:
    seen = Seen(status, status, NOW + timedelta(seconds=3), Via(via))
    return bool(on_database(db.url, lambda database: confirmations.confirm(database, {audit_id: seen.fields()})))


def test_a_confirmation_is_a_chain_entry_and_an_edit_of_it_is_caught(db: DbHelper) -> None:
    ids = _chained(db, outcome="succeeded")  # entries 1…5 open, 6 closes row 2
    assert confirm(db, ids[1])
    report = verify(db)
    assert report.ok and (report.rows, report.entries) == (5, 7)
    row = db.audit()[1]
    assert row["confirm_seq"] == 7 and row["confirmed_via"] == "read"
    # One confirmation per row: a later one (a callback after the read-back) leaves the first.
    assert not confirm(db, ids[1], "canceled", "callback")
    assert db.audit()[1]["confirmed_status"] == "completed"
    assert verify(db).ok

    sql(db, "UPDATE audit_log SET confirmed_status = 'in-progress' WHERE id = :id", id=ids[1])
    report = verify(db)
    assert not report.ok and report.audit_id == ids[1]
    assert report.problem == f"audit #{ids[1]} was modified (chain entry 7)"


def test_a_confirmation_without_its_entry_or_beyond_the_head_is_caught(db: DbHelper) -> None:
    ids = _chained(db, outcome="succeeded")
    assert confirm(db, ids[3])
    sql(db, "UPDATE audit_log SET confirm_seq = 99 WHERE id = :id", id=ids[3])
    assert verify(db).problem == f"audit #{ids[3]} is outside the chain: it was inserted out of order, not by callbot"


def test_only_a_row_whose_request_went_out_can_be_confirmed(db: DbHelper) -> None:
    ids = _chained(db)  # denied, and one failed: nothing reached the call
    assert not confirm(db, ids[0]) and not confirm(db, ids[1])
    assert all(row["confirm_seq"] is None for row in db.audit())
    assert verify(db).entries == 6


@pytest.mark.parametrize(
    "forgery",
    [
        # Columns written straight into a row no one confirmed: no chain entry covers them.
        "confirmed_status = 'completed', confirmed_via = 'read'",
        "confirmed_word = 'completed'",
        "confirm_hash = 'ab'",
        # An entry placed before the row's own opening.
        "confirm_seq = 1, confirm_hash = 'ab', confirmed_status = 'completed'",
        "outcome_seq = 1",
    ],
)
def test_a_confirmation_set_outside_the_chain_is_caught_and_not_shown(db: DbHelper, forgery: str) -> None:
    ids = _chained(db)
    sql(db, f"UPDATE audit_log SET {forgery} WHERE id = :id", id=ids[3])
    report = verify(db)
    assert not report.ok and report.audit_id == ids[3]
    assert report.problem == (
        f"audit #{ids[3]} has a confirmation or outcome outside the chain: it was set after the fact, not by callbot"
    )
    row = on_database(db.url, lambda database: repo.audit_by_id(database, None, ids[3]))
    assert row is not None and audit_confirmed.mark(row) is None
    assert "read-back" not in audit_confirmed.fact(row)


def test_purge_keeps_a_row_confirmed_after_rows_that_stay(db: DbHelper) -> None:
    ids = insert(db, [attempt(n, days_ago=500, outcome="succeeded") for n in range(1, 4)] + [attempt(4, days_ago=1)])
    assert confirm(db, ids[0])  # entry 5: after row 4, which stays
    report = on_database(
        db.url,
        lambda d: purge(
            d, older_than=timedelta(days=400), now=NOW, by="shell:ops", source="cli", command_text="x", basis="shell"
        ),
    )
    assert report.rows == 0
    assert verify(db).ok
