"""Workspace isolation as a security boundary, end to end: signed Slack requests whose payloads
name different team ids (A, the sample payloads' T0001 and the fake Slack's auth.test; B, T0002)
reach one bot. A grant, role, freeze or saved flow of one workspace never reaches the other, even
for the same user id; audit pages, details, App Home and exports of one never show the other's rows;
a button of one naming a row of the other is refused and audited; an account exists only in the
workspaces it is shared with; and the shell's `--team`."""

from __future__ import annotations

import csv
import io
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from tests.fakes import bandwidth, bird
from tests.fakes.twilio import FakeTwilio, call_sid
from tests.processes import callbot
from tests.support.bots import ALICE, BOB, CAROL, PAYLOADS, Bot, BotFactory, reply_text
from tests.support.clock import FakeClock
from tests.support.database import DbHelper
from tests.test_app_home import rows_in, wait_home
from tests.test_audit_slack import export, shown
from tests.test_flow_builder import Builder

A, B = "T0001", "T0002"
SHARED = f'workspaces = ["{A}", "{B}"]'
ONLY_A = f'workspaces = ["{A}"]'
APPROVERS = "C0APPROVE1"
HOLD = [{"command": "say", "options": {"text": "Please hold", "locale": "en-GB"}}, {"command": "hangup"}]
_clicks = iter(range(1, 1_000_000))
_events = iter(range(1, 1_000_000))


def slash(bot: Bot, command: str, user: str = ALICE, team: str = A) -> dict[str, Any]:
    response = bot.slack.command(command, user, team_id=team)
    assert response.status_code == 200, response.text
    return dict(response.json())


def later(bot: Bot, command: str, user: str = ALICE, team: str = A) -> str:
    """A command answered after its acknowledgement (a call action): the final answer's text."""
    before = len(bot.fake_slack.responses())
    slash(bot, command, user, team)
    return reply_text(bot.fake_slack.wait_responses(before + 1)[before].json)


def click(bot: Bot, element: dict[str, Any], user: str = ALICE, team: str = A, *, answered: bool = True) -> str:
    """A block_actions payload from workspace `team`; the answer posted to its response_url (none
    awaited when not `answered`: Details answers in a modal)."""
    n = next(_clicks)
    payload = json.loads((PAYLOADS / "block_actions.json").read_text())
    payload["team"] = {"id": team, "domain": "example"}
    payload["user"] = {"id": user, "username": user.lower(), "name": user.lower(), "team_id": team}
    payload["response_url"] = bot.fake_slack.response_url(f"ws{n}")
    payload["trigger_id"] = f"12321423423.333649436676.{n:08x}{int(time.time() * 1000):x}"
    action = {k: element[k] for k in ("action_id", "value") if k in element}
    payload["actions"] = [{**action, "block_id": "b", "type": "button", "action_ts": "1.2"}]
    before = len(bot.fake_slack.responses())
    assert bot.slack.interact(payload).status_code == 200
    if not answered:
        return ""
    return reply_text(bot.fake_slack.wait_responses(before + 1)[before].json)


def buttons(message: dict[str, Any]) -> list[dict[str, Any]]:
    blocks = message.get("blocks") or []
    blocks = json.loads(blocks) if isinstance(blocks, str) else blocks
    return [e for b in blocks if b["type"] == "actions" for e in b["elements"]]


def home_opened(bot: Bot, user: str, team: str) -> None:
    n = next(_events)
    body = json.dumps(
        {
            "token": "gIkuvaNzQIHg97ATvDxqgjtO",
            "team_id": team,
            "api_app_id": "A123456",
            "event": {"type": "app_home_opened", "user": user, "channel": "D0HOME", "tab": "home"},
            "type": "event_callback",
            "event_id": f"EvWS{n:08d}",
            "event_time": int(time.time()),
            "authorizations": [{"team_id": team, "user_id": "U0BOT", "is_bot": True}],
        }
    )
    assert bot.slack.post(body, bot.slack.sign(body), "application/json").status_code == 200


def in_workspace(bot: Bot, team: str) -> list[dict[str, Any]]:
    return [row for row in bot.db.audit() if row["workspace_id"] == team]


# -- grants and roles -------------------------------------------------------------------------------


def test_a_grant_in_one_workspace_does_not_authorise_the_same_user_id_in_another(make_bot: BotFactory) -> None:
    bot = make_bot({"prod": SHARED})
    bot.db.grant(ALICE, "hangup", "prod", team=A)
    sid = bot.fake_twilio.add_call(call_sid(1))

    refused = reply_text(slash(bot, f"hangup prod:{sid}", team=B))
    assert "not allowed to `hangup` on account `prod`" in refused
    assert bot.fake_twilio.requests == []
    [row] = bot.db.audit()
    assert (row["team_id"], row["workspace_id"], row["outcome"], row["user_id"]) == (B, B, "denied", ALICE)
    assert row["decision_basis"] == "no matching grant"

    assert f"Hung up prod:{sid}." in later(bot, f"hangup prod:{sid}", team=A)
    assert [r["workspace_id"] for r in bot.db.audit()] == [B, A]
    assert len(bot.fake_twilio.updates()) == 1


def test_admins_grants_perms_and_roles_stay_in_their_workspace(make_bot: BotFactory) -> None:
    bot = make_bot({"prod": SHARED})
    bot.db.grant(ALICE, "admin", "*", team=A)
    assert "Granted to" in reply_text(slash(bot, f"grant <@{BOB}> hangup on=prod", team=A))
    # ALICE is nobody in B: she may not grant there.
    assert "not allowed to `grant`" in reply_text(slash(bot, f"grant <@{BOB}> hangup on=prod", team=B))
    with bot.db.engine.connect() as conn:
        held = conn.execute(text("SELECT team_id, user_id, action FROM grants ORDER BY id")).all()
    assert [tuple(r) for r in held] == [(A, ALICE, "admin"), (A, BOB, "hangup")]

    assert "Created role `night`" in reply_text(slash(bot, "role create night hangup,audit", team=A))
    bot.db.grant(CAROL, "admin", "*", team=B)
    in_b = reply_text(slash(bot, f"grant <@{BOB}> night on=prod", user=CAROL, team=B))
    assert "`night`" in in_b and "Granted" not in in_b  # the role does not exist in B
    assert "`night` (custom)" not in reply_text(slash(bot, "roles", user=CAROL, team=B))
    assert "`night` (custom)" in reply_text(slash(bot, "roles", team=A))
    everyone_b = reply_text(slash(bot, "perms", user=CAROL, team=B))
    assert f"<@{BOB}>" not in everyone_b and f"<@{CAROL}>" in everyone_b


# -- buttons across workspaces ---------------------------------------------------------------------


def test_an_approval_cannot_be_decided_from_another_workspace(make_bot: BotFactory) -> None:
    policy = f'{ONLY_A}\napproval = ["hangup"]\napprovers_channel = "{APPROVERS}"'
    bot = make_bot({"prod": policy}, clock=FakeClock())
    bot.db.grant(ALICE, "operator", "prod", team=A)
    bot.db.grant(CAROL, "approve", "prod", team=A)
    bot.db.grant(BOB, "approve", "prod", team=B)  # an approver, but in B only
    sid = bot.fake_twilio.add_call(call_sid(2))
    assert "Waiting for approval" in reply_text(slash(bot, f"hangup prod:{sid}", team=A))
    bot.fake_slack.wait_for(lambda reqs: any(r.path == "/api/chat.postMessage" for r in reqs))
    [posted] = bot.fake_slack.calls("chat.postMessage")
    approve = next(b for b in buttons(posted) if b["text"]["text"] == "Approve")

    # BOB's grant in B does not let him approve A's request, from A or from B.
    assert "needs `approve` on account `prod`" in click(bot, approve, BOB, team=A)
    foreign = click(bot, approve, BOB, team=B)
    assert "belongs to another Slack workspace: nothing was done." in foreign
    # CAROL approves in A, but a click of hers from B is not hers in A.
    assert "belongs to another Slack workspace" in click(bot, approve, CAROL, team=B)
    assert bot.fake_twilio.updates() == []
    with bot.db.engine.connect() as conn:
        # The slash-command sample comes from Enterprise Grid organisation E0001: kept with the request,
        # so its later messages can be sent with that workspace's token.
        assert conn.execute(text("SELECT status, team_id, enterprise_id FROM approvals")).one() == (
            "pending",
            A,
            "E0001",
        )
    refusals = [r for r in bot.db.audit() if r["action"] == "approval.approve"]
    assert [(r["workspace_id"], r["user_id"], r["outcome"]) for r in refusals] == [
        (A, BOB, "denied"),
        (B, BOB, "denied"),
        (B, CAROL, "denied"),
    ]
    assert all(r["account"] is None for r in refusals[1:])  # nothing of A's request is copied into B

    assert "Approved #" in click(bot, approve, CAROL, team=A)
    bot.fake_twilio.wait_for(lambda reqs: len(reqs) >= 1)
    [sent] = bot.fake_twilio.updates()
    assert sent.form == {"Status": "completed"}


def test_a_confirmation_button_cannot_be_used_from_another_workspace(make_bot: BotFactory) -> None:
    bot = make_bot({"prod": f'{SHARED}\nconfirm = ["hangup"]'})
    bot.db.grant(ALICE, "hangup", "prod", team=A)
    bot.db.grant(ALICE, "hangup", "prod", team=B)
    sid = bot.fake_twilio.add_call(call_sid(3))
    asked = slash(bot, f"hangup prod:{sid}", team=A)
    confirm = next(b for b in buttons(asked) if b["text"]["text"] == "Confirm")

    assert "belongs to another Slack workspace: nothing was done." in click(bot, confirm, ALICE, team=B)
    assert bot.fake_twilio.requests == []
    [refused] = bot.db.audit()
    assert (refused["workspace_id"], refused["outcome"], refused["action"]) == (B, "denied", "hangup")
    assert refused["command_text"] == "/call button of another workspace"  # A's command is not copied

    click(bot, confirm, ALICE, team=A)  # the owner's button still works in its workspace
    bot.fake_twilio.wait_for(lambda reqs: len(reqs) >= 1)
    assert [r["workspace_id"] for r in bot.db.audit()] == [B, A]


def test_a_batch_cannot_be_cancelled_from_another_workspace(make_bot: BotFactory) -> None:
    bot = make_bot({"prod": SHARED})
    bot.db.grant(ALICE, "bulk", "prod", team=B)
    with bot.db.engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO batches (team_id, account, action, requested_by, filter, status, total, ended, failed, "
                "created_at, heartbeat_at) VALUES (:t, 'prod', 'hangup', :u, '{}', 'running', 3, 0, 0, "
                "CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"
            ),
            {"t": A, "u": ALICE},
        )
        batch_id = conn.execute(text("SELECT max(id) FROM batches")).scalar_one()
    answer = click(bot, {"action_id": "batch_cancel:0", "value": str(batch_id)}, ALICE, team=B)
    assert "This batch belongs to another Slack workspace: nothing was done." in answer
    with bot.db.engine.connect() as conn:
        assert conn.execute(text("SELECT cancel_requested_by FROM batches")).scalar_one() is None
    [row] = bot.db.audit()
    assert (row["workspace_id"], row["action"], row["outcome"]) == (B, "batch.cancel", "denied")


# -- what people read -------------------------------------------------------------------------------


def _two_workspaces_of_rows(bot: Bot) -> tuple[list[int], list[int]]:
    bot.db.grant(ALICE, "admin", "*", team=A)
    bot.db.grant(ALICE, "admin", "*", team=B)
    for n in range(2):
        slash(bot, f"hangup prod:{call_sid(10 + n)} dry-run", team=A)
        slash(bot, f"hangup prod:{call_sid(20 + n)}", user=CAROL, team=A)
        slash(bot, f"hangup prod:{call_sid(30 + n)}", user=CAROL, team=B)
        slash(bot, f"redirect prod:{call_sid(40 + n)} https://example.com/b.xml dry-run", team=B)
    a_rows, b_rows = [r["id"] for r in in_workspace(bot, A)], [r["id"] for r in in_workspace(bot, B)]
    assert len(a_rows) == 4 and len(b_rows) == 4  # B's rows are there: the reads below could show them
    return a_rows, b_rows


def test_audit_pages_details_and_home_never_show_another_workspaces_rows(make_bot: BotFactory) -> None:
    bot = make_bot({"prod": SHARED})
    a_rows, b_rows = _two_workspaces_of_rows(bot)

    assert sorted(shown(slash(bot, "audit", team=A))) == a_rows
    assert sorted(shown(slash(bot, "audit", team=B))) == b_rows
    assert shown(slash(bot, f"audit user=<@{CAROL}>", team=A)) == [a_rows[3], a_rows[1]]

    updated = len(bot.fake_slack.calls("views.update"))
    click(bot, {"action_id": "audit_details:0", "value": str(b_rows[0])}, ALICE, team=A, answered=False)
    bot.fake_slack.wait_for(lambda reqs: sum(r.path == "/api/views.update" for r in reqs) > updated)
    details = json.dumps(bot.fake_slack.calls("views.update")[updated]["view"])
    assert "This audit row belongs to another Slack workspace: nothing was done." in details
    assert f"Audit #{b_rows[0]}" not in details
    refused = bot.db.audit()[-1]
    assert (refused["workspace_id"], refused["action"], refused["outcome"]) == (A, "audit", "denied")
    assert refused["command_text"] == f"/call audit details #{b_rows[0]}"

    home_opened(bot, ALICE, A)
    view = wait_home(bot, ALICE, 1)
    team_rows = rows_in(view, "team")
    assert team_rows and set(team_rows) <= set(a_rows) | {refused["id"]} and not set(team_rows) & set(b_rows)
    home_opened(bot, ALICE, B)
    view_b = wait_home(bot, ALICE, 2)
    assert set(rows_in(view_b, "team")) <= set(b_rows) and set(rows_in(view_b, "own")) <= set(b_rows)


@pytest.fixture
def known_b(db: DbHelper) -> Iterator[None]:
    """B recorded as a workspace callbot serves (as an OAuth install would), for the shell's --team."""
    with db.engine.begin() as conn:
        conn.execute(text("INSERT INTO workspaces (team_id, first_seen) VALUES (:t, CURRENT_TIMESTAMP)"), {"t": B})
    try:
        yield
    finally:
        with db.engine.begin() as conn:
            conn.execute(text("DELETE FROM workspaces WHERE team_id = :t"), {"t": B})


def test_exports_in_slack_and_from_the_shell_hold_one_workspace(
    make_bot: BotFactory, env: dict[str, str], tmp_path: Path, known_b: None
) -> None:
    bot = make_bot({"prod": SHARED})
    a_rows, b_rows = _two_workspaces_of_rows(bot)

    _, answer, got = export(bot, "audit export")
    assert "4 rows" in answer
    [upload] = got["uploads"]
    assert upload.data is not None
    ids = [int(line["id"]) for line in csv.DictReader(io.StringIO(upload.data.decode("utf-8"), newline=""))]
    assert ids == a_rows

    out = tmp_path / "b.csv"
    exported = callbot(["audit", "export", "--team", B, "--output", str(out)], env, tmp_path)
    assert exported.returncode == 0, exported.stderr
    with out.open(encoding="utf-8", newline="") as f:
        assert [int(line["id"]) for line in csv.DictReader(f)] == b_rows
    listed = callbot(["audit", "list", "--team", B], env, tmp_path)
    assert listed.returncode == 0, listed.stderr
    assert all(f"#{n}" not in listed.stdout.split() for n in a_rows)


# -- accounts, freezes, saved flows ------------------------------------------------------------------


def test_an_account_exists_only_in_the_workspaces_it_is_shared_with(make_bot: BotFactory, tmp_path: Path) -> None:
    bot = make_bot({"prod": ONLY_A, "bw": SHARED})
    bot.db.grant(ALICE, "admin", "*", team=A)
    bot.db.grant(ALICE, "admin", "*", team=B)
    sid = call_sid(5)

    in_b = reply_text(slash(bot, f"hangup prod:{sid} dry-run", team=B))
    unknown = reply_text(slash(bot, f"hangup nosuch:{sid} dry-run", team=B))
    assert "`prod:`: is not a configured account." in in_b
    assert "`nosuch:`: is not a configured account." in unknown
    assert "Configured accounts: bw." in in_b  # prod is not even offered
    assert "not a configured account" in reply_text(slash(bot, f"grant <@{BOB}> hangup on=prod", team=B))
    assert "prod (twilio)" not in reply_text(slash(bot, "help", team=B))
    assert "prod (twilio)" in reply_text(slash(bot, "help", team=A))
    assert "Dry run" in reply_text(slash(bot, f"hangup prod:{sid} dry-run", team=A))
    assert bot.fake_twilio.requests == []

    call = bandwidth.bw_call_id(1)
    for team in (A, B):  # shared with both: the same account works in each
        assert "Dry run" in reply_text(slash(bot, f"hangup bw:{call} dry-run", team=team))
    listed = callbot(["accounts"], bot.env, tmp_path).stdout
    assert f"workspaces: {A}\n" in listed and f"workspaces: {A}, {B}\n" in listed


def test_freezes_and_saved_flows_are_per_workspace(make_bot: BotFactory) -> None:
    bot = make_bot({"prod": SHARED, "bird": SHARED})
    bot.db.grant(ALICE, "admin", "*", team=A)
    bot.db.grant(ALICE, "admin", "*", team=B)
    bot.db.grant(ALICE, "flow:manage", "*", team=A)
    bot.db.grant(ALICE, "flow:manage", "*", team=B)
    sid = call_sid(6)
    assert "Frozen: `prod`" in reply_text(slash(bot, "freeze on=prod reason='incident 7'", team=A))
    assert "is frozen" in reply_text(slash(bot, f"hangup prod:{sid} dry-run", team=A))
    assert "Dry run" in reply_text(slash(bot, f"hangup prod:{sid} dry-run", team=B))
    assert "Nothing to unfreeze." in reply_text(slash(bot, "unfreeze on=prod", team=B))

    flow = json.dumps(HOLD)
    assert "Saved `hold` v1" in reply_text(slash(bot, f"flows save hold '{flow}'", team=A))
    assert "Saved `hold` v2" in reply_text(slash(bot, f"flows save hold '{flow}'", team=A))
    assert "No saved flows yet." in reply_text(slash(bot, "flows", team=B))
    assert "is not a saved flow" in reply_text(slash(bot, "flows show hold", team=B))
    assert "Saved `hold` v1" in reply_text(slash(bot, f"flows save hold '{flow}'", team=B))
    with bot.db.engine.connect() as conn:
        saved = conn.execute(text("SELECT team_id, name, version FROM saved_flows ORDER BY id")).all()
    assert [tuple(r) for r in saved] == [(A, "hold", 1), (A, "hold", 2), (B, "hold", 1)]


# -- the shell --------------------------------------------------------------------------------------


def test_cli_team_is_optional_with_one_workspace_and_required_with_several(
    env: dict[str, str], tmp_path: Path, db: DbHelper, fake_twilio: FakeTwilio
) -> None:
    granted = callbot(["grant", BOB, "hangup", "--on", "prod"], env, tmp_path)
    assert granted.returncode == 0, granted.stderr
    with db.engine.begin() as conn:
        conn.execute(text("INSERT INTO workspaces (team_id, first_seen) VALUES (:t, CURRENT_TIMESTAMP)"), {"t": B})
    try:
        several = callbot(["grant", CAROL, "hangup", "--on", "prod"], env, tmp_path)
        assert several.returncode == 2
        assert f"callbot serves several Slack workspaces ({A}, {B}): say which with --team" in several.stderr
        unknown = callbot(["perms", "--team", "T0BOGUS"], env, tmp_path)
        assert unknown.returncode == 2 and f"not a workspace callbot serves (known: {A}, {B})" in unknown.stderr

        assert callbot(["grant", CAROL, "redirect", "--on", "prod", "--team", B], env, tmp_path).returncode == 0
        with db.engine.connect() as conn:
            rows = conn.execute(text("SELECT team_id, user_id, action FROM grants ORDER BY id")).all()
        assert [tuple(r) for r in rows] == [(A, BOB, "hangup"), (B, CAROL, "redirect")]
        in_a = callbot(["perms", "--team", A], env, tmp_path).stdout
        in_b = callbot(["perms", "--team", B], env, tmp_path).stdout
        assert f"<@{BOB}>" in in_a and f"<@{CAROL}>" not in in_a
        assert f"<@{CAROL}>" in in_b and f"<@{BOB}>" not in in_b
        ran = callbot(
            ["run", "--as", CAROL, "--team", A, f"redirect prod:{call_sid(7)} https://e.com/x dry-run"], env, tmp_path
        )
        assert ran.returncode == 1 and "not allowed to `redirect`" in ran.stdout
        assert [(r["workspace_id"], r["source"]) for r in db.audit()][-1] == (A, "cli")
    finally:
        with db.engine.begin() as conn:
            conn.execute(text("DELETE FROM workspaces WHERE team_id = :t"), {"t": B})


def test_a_flow_draft_cannot_be_read_from_another_workspace(make_bot: BotFactory) -> None:
    bot = make_bot()
    bot.db.grant(ALICE, "flow", "bird", team=A)
    bot.db.grant(ALICE, "flow", "bird", team=B)
    builder = Builder(bot, bird.bird_call_id(1))
    root = builder.open()
    draft = json.loads(root["private_metadata"])["draft"]

    payload = json.loads((PAYLOADS / "block_actions.json").read_text())
    for key in ("channel", "response_url"):
        payload.pop(key)
    payload["team"] = {"id": B, "domain": "other"}
    payload["user"] = {"id": ALICE, "username": "alice", "name": "alice", "team_id": B}
    payload["container"] = {"type": "view", "view_id": builder.root_id}
    payload["view"] = {
        "id": builder.root_id,
        "hash": "1.1",
        "type": "modal",
        "callback_id": root["callback_id"],
        "private_metadata": root["private_metadata"],
        "state": {"values": {}},
        "blocks": root["blocks"],
        "root_view_id": builder.root_id,
    }
    payload["actions"] = [{"action_id": "fb_json", "block_id": "fb_tools", "type": "button", "action_ts": "1.2"}]
    pushed = len(bot.fake_slack.calls("views.push"))
    assert bot.slack.interact(payload).status_code == 200
    bot.fake_slack.wait_for(lambda reqs: sum(r.path == "/api/views.push" for r in reqs) > pushed)
    shown = json.dumps(bot.fake_slack.calls("views.push")[-1]["view"])
    assert "This callFlow draft has expired or was already applied." in shown  # nothing of A's draft
    [refused] = [r for r in bot.db.audit() if r["workspace_id"] == B]
    assert (refused["action"], refused["outcome"], refused["user_id"]) == ("flow", "denied", ALICE)
    assert refused["command_text"] == f"/call flow draft #{draft}"
    with bot.db.engine.connect() as conn:
        assert conn.execute(text("SELECT team_id FROM flow_drafts")).scalar_one() == A
