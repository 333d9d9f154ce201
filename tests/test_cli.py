"""The `callbot` command line: bootstrap grants, the same pipeline with `run --as`, review."""

from __future__ import annotations

import base64
import getpass
from pathlib import Path

from tests.fakes import bandwidth, bird
from tests.fakes.twilio import ACCOUNT_SID, AUTH_TOKEN, FakeTwilio, call_sid
from tests.processes import callbot
from tests.support.database import DbHelper

ADMIN = "U012AB3CD"


def test_bootstrap_admin_then_run_as_goes_through_the_same_pipeline(
    env: dict[str, str], tmp_path: Path, db: DbHelper, fake_twilio: FakeTwilio
) -> None:
    granted = callbot(["grant", ADMIN, "admin"], env, tmp_path)
    assert granted.returncode == 0, granted.stderr
    assert f"Granted to <@{ADMIN}>: admin on *." in granted.stdout
    assert db.grants() == [(ADMIN, "admin", "*")]

    sid = fake_twilio.add_call(call_sid(1))
    ran = callbot(["run", "--as", ADMIN, f"hangup prod:{sid} reason='runbook step 4'"], env, tmp_path)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert f"Hung up prod:{sid}." in ran.stdout
    [request] = fake_twilio.updates()
    assert request.path == f"/2010-04-01/Accounts/{ACCOUNT_SID}/Calls/{sid}.json"
    assert (
        request.header("authorization") == "Basic " + base64.b64encode(f"{ACCOUNT_SID}:{AUTH_TOKEN}".encode()).decode()
    )
    assert request.form_pairs == [("Status", "completed")]

    grant_row, hangup_row = db.audit()
    assert (grant_row["source"], grant_row["action"], grant_row["user_id"]) == (
        "cli",
        "grant",
        f"shell:{getpass.getuser()}",
    )
    assert (hangup_row["source"], hangup_row["user_id"], hangup_row["outcome"]) == ("cli", ADMIN, "succeeded")
    assert hangup_row["command_text"] == f"hangup prod:{sid} reason='runbook step 4'"
    assert hangup_row["user_name"] == f"shell:{getpass.getuser()}"


def test_run_as_is_permission_checked(
    env: dict[str, str], tmp_path: Path, db: DbHelper, fake_twilio: FakeTwilio
) -> None:
    result = callbot(["run", "--as", "U0NOBODY1", f"hangup prod:{call_sid(2)}"], env, tmp_path)
    assert result.returncode == 1
    assert "not allowed to `hangup` on account `prod`" in result.stdout
    assert fake_twilio.requests == []
    assert db.audit()[0]["outcome"] == "denied"


def test_dry_run_from_the_shell(env: dict[str, str], tmp_path: Path, db: DbHelper, fake_twilio: FakeTwilio) -> None:
    db.grant(ADMIN, "redirect", "prod")
    result = callbot(
        ["run", "--as", ADMIN, f"redirect prod:{call_sid(3)} https://example.com/h.xml dry-run"], env, tmp_path
    )
    assert result.returncode == 0
    assert "Authorization: Basic ***" in result.stdout and AUTH_TOKEN not in result.stdout
    assert fake_twilio.requests == []


def test_revoke_perms_accounts_and_audit_list(env: dict[str, str], tmp_path: Path, db: DbHelper) -> None:
    callbot(["grant", ADMIN, "hangup,cancel", "--on", "prod"], env, tmp_path)
    revoked = callbot(["revoke", ADMIN, "cancel", "--on", "prod"], env, tmp_path)
    assert f"Revoked from <@{ADMIN}>: cancel on prod." in revoked.stdout
    perms = callbot(["perms", ADMIN], env, tmp_path)
    assert "`hangup` on account `prod`" in perms.stdout and "cancel" not in perms.stdout
    everyone = callbot(["perms"], env, tmp_path)
    assert f"<@{ADMIN}> `hangup` on account `prod`" in everyone.stdout

    accounts = callbot(["accounts"], env, tmp_path)
    assert "prod" in accounts.stdout and "twilio" in accounts.stdout and ACCOUNT_SID in accounts.stdout
    assert "bw " in accounts.stdout and "bandwidth" in accounts.stdout and bandwidth.ACCOUNT_ID in accounts.stdout
    assert "bird" in accounts.stdout and bird.WORKSPACE_ID in accounts.stdout
    for secret in (AUTH_TOKEN, bandwidth.PASSWORD, bird.ACCESS_KEY):
        assert secret not in accounts.stdout + accounts.stderr

    listing = callbot(["audit", "list", "--action", "revoke"], env, tmp_path)
    assert listing.returncode == 0
    [header, revoke] = listing.stdout.splitlines()
    assert header.split()[:6] == ["TIME", "(UTC)", "ID", "USER", "SOURCE", "ACTION"]
    assert revoke.split()[3:7] == [f"shell:{getpass.getuser()}", "cli", "revoke", "prod"]


def test_migrate_and_usage_errors(env: dict[str, str], tmp_path: Path) -> None:
    migrated = callbot(["migrate"], env, tmp_path)
    assert migrated.returncode == 0 and "up to date" in migrated.stdout
    bad_user = callbot(["grant", "alice", "admin"], env, tmp_path)
    assert bad_user.returncode == 2
    assert "`alice`: is not a Slack user I can identify." in bad_user.stderr
    assert "Traceback" not in bad_user.stderr
    bad_action = callbot(["grant", ADMIN, "hangpu"], env, tmp_path)
    assert "Did you mean `hangup`?" in bad_action.stderr
    nothing = callbot([], env, tmp_path)
    assert nothing.returncode == 2 and "serve" in nothing.stdout


def test_shell_actors_are_named_not_mentioned(env: dict[str, str], tmp_path: Path, db: DbHelper) -> None:
    callbot(["grant", ADMIN, "audit"], env, tmp_path)
    listing = callbot(["audit", "list"], env, tmp_path)
    assert f"  shell:{getpass.getuser()}  cli     grant  " in listing.stdout
    assert "<@" not in listing.stdout and "`" not in listing.stdout  # a terminal table, no Slack markup
