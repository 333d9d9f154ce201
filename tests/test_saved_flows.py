"""Saved flows end to end, through signed Slack requests: save (versions), list, show, apply by name
with a confirmation button, dry-run, delete, permissions (`flow` vs `flow:manage`), audit rows."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from bot.db.session import Database
from bot.domain.callflow_text import parse_callflow
from bot.domain.errors import InvalidInput
from bot.domain.flows import FlowRef, parse_ref
from bot.domain.grammar import FlowsCommand, SavedFlowCommand, parse, read_flows_document
from bot.domain.redact import Redactor
from bot.service.core import Invocation, Service
from tests.fakes.bird import CHANNEL_ID, WORKSPACE_ID, bird_call_id, schema_errors
from tests.processes import callbot
from tests.support.bots import ALICE, BOB, CAROL, PAYLOADS, Bot, reply_text
from tests.support.database import TEAM

# The worker's one default bot, lent to each test (tests/support/bots.py SharedBot).
pytestmark = pytest.mark.shared_bot

V1: list[dict[str, Any]] = [
    {"command": "say", "options": {"text": "Please hold", "locale": "en-GB"}},
    {"command": "hangup"},
]
V2: list[dict[str, Any]] = [
    {"command": "say", "options": {"text": "Please hold", "locale": "en-GB"}},
    {"command": "pause", "options": {"pauseSeconds": 2}},
    {"command": "hangup"},
]


def call_path(call_id: str) -> str:
    return f"/workspaces/{WORKSPACE_ID}/channels/{CHANNEL_ID}/calls/{call_id}"


@pytest.fixture
def lib(bot: Bot) -> Bot:
    """Alice may apply flows on Bird and manage the library."""
    bot.db.grant(ALICE, "flow", "bird")
    bot.db.grant(ALICE, "flow:manage", "*")
    return bot


def say(bot: Bot, command: str, user: str = ALICE) -> dict[str, Any]:
    response = bot.slack.command(command, user)
    assert response.status_code == 200, response.text
    return dict(response.json())


def save(bot: Bot, name: str, flow: list[dict[str, Any]], user: str = ALICE) -> str:
    return reply_text(say(bot, f"flows save {name} '{json.dumps(flow)}'", user))


def buttons(message: dict[str, Any]) -> list[dict[str, Any]]:
    return [e for b in message.get("blocks", []) if b["type"] == "actions" for e in b["elements"]]


def click(bot: Bot, button: dict[str, Any], user: str = ALICE, expect: int = 2) -> list[dict[str, Any]]:
    """Click as Slack sends it; the messages posted to the response_url (ack, then outcome)."""
    before = len(bot.fake_slack.responses())
    payload = json.loads((PAYLOADS / "block_actions.json").read_text())
    payload["user"]["id"] = user
    payload["response_url"] = bot.slack.slack.response_url("confirm")
    payload["actions"] = [{**button, "block_id": "choose_account", "type": "button", "action_ts": "1.2"}]
    assert bot.slack.interact(payload).status_code == 200
    return [r.json for r in bot.fake_slack.wait_responses(before + expect)[before:]]


def saved_rows(bot: Bot) -> list[dict[str, Any]]:
    with bot.db.engine.connect() as conn:
        rows = conn.execute(text("SELECT * FROM saved_flows ORDER BY id")).mappings().all()
    return [{**row, "callflow": _json(row["callflow"])} for row in rows]


def _json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


def revoke(bot: Bot, user: str, action: str) -> None:
    with bot.db.engine.begin() as conn:
        conn.execute(text("DELETE FROM grants WHERE user_id = :u AND action = :a"), {"u": user, "a": action})


# -- save, versions, list, show ----------------------------------------------------------------------


def test_save_creates_versions_and_keeps_the_old_ones(lib: Bot) -> None:
    first = save(lib, "hold-music", V1)
    assert "Saved `hold-music` v1 (2 commands)." in first
    assert 'say "Please hold" en-GB' in first
    second = save(lib, "hold-music", V2)
    assert "Saved `hold-music` v2 (3 commands)." in second
    assert "Earlier versions are kept: `/call flows show hold-music@1`" in second

    rows = saved_rows(lib)
    assert [(r["name"], r["version"], r["author"], r["deleted_at"]) for r in rows] == [
        ("hold-music", 1, ALICE, None),
        ("hold-music", 2, ALICE, None),
    ]
    assert rows[0]["callflow"] == V1 and rows[1]["callflow"] == V2

    audit = lib.db.audit()
    assert [(r["action"], r["outcome"], r["source"]) for r in audit] == [
        ("flows.save", "succeeded", "slash"),
        ("flows.save", "succeeded", "slash"),
    ]
    assert audit[1]["request"] == {"name": "hold-music", "callFlow": V2}
    assert audit[1]["result"]["version"] == 2
    assert audit[1]["decision"] == "allowed" and "flow:manage on all accounts" in audit[1]["decision_basis"]


def test_list_shows_name_latest_version_commands_author_and_when(lib: Bot) -> None:
    assert "No saved flows yet." in reply_text(say(lib, "flows"))
    save(lib, "hold-music", V1)
    save(lib, "hold-music", V2)
    save(lib, "goodbye", [{"command": "hangup"}])
    listing = reply_text(say(lib, "flows"))
    assert "Saved flows (2):" in listing
    lines = listing.splitlines()
    goodbye = next(line for line in lines if line.startswith("`goodbye`"))
    hold = next(line for line in lines if line.startswith("`hold-music`"))
    assert goodbye.startswith(f"`goodbye` v1 · 1 command · by <@{ALICE}> · 20")
    assert hold.startswith(f"`hold-music` v2 · 3 commands · by <@{ALICE}> · 20")
    assert hold.endswith("· 2 versions") and "UTC" in hold
    assert lines.index(goodbye) < lines.index(hold)  # by name
    assert "list" not in {r["action"] for r in lib.db.audit() if r["action"] != "flows.save"}  # reads: no rows
    assert len(lib.db.audit()) == 3


def test_show_latest_and_a_given_version(lib: Bot) -> None:
    save(lib, "hold-music", V1)
    save(lib, "hold-music", V2)
    latest = say(lib, "flows show hold-music")
    shown = reply_text(latest)
    assert "Saved flow `hold-music` v2 (latest)" in shown
    assert "Versions: 1, 2." in shown and "pause 2s" in shown
    assert json.loads(_code(latest)) == V2
    older = say(lib, "flows show hold-music@1")
    assert "Saved flow `hold-music` v1 (latest is v2)" in reply_text(older)
    assert json.loads(_code(older)) == V1
    assert json.loads(_code(say(lib, "flows show hold-music version=1"))) == V1
    missing = reply_text(say(lib, "flows show hold-music@7"))
    assert "`hold-music@7`: there is no version 7." in missing and "versions 1, 2" in missing


def _code(message: dict[str, Any]) -> str:
    for block in message["blocks"]:
        body = (block.get("text") or {}).get("text", "")
        if body.startswith("```"):
            return str(body.strip("`"))
    raise AssertionError(f"no code block in {message}")


# -- apply by name ---------------------------------------------------------------------------------


def test_apply_by_name_asks_to_confirm_then_the_click_applies_exactly_the_saved_flow(lib: Bot) -> None:
    save(lib, "hold-music", V1)
    save(lib, "hold-music", V2)
    call_id = lib.fake_bird.add_call(bird_call_id(1))
    audit_before = len(lib.db.audit())

    confirm = say(lib, f'flow bird:{call_id} hold-music reason="IVR loop"')
    shown = reply_text(confirm)
    assert f"Apply saved flow `hold-music` v2 to bird:{call_id}?" in shown
    assert f"Saved by <@{ALICE}>" in shown and "3 commands:" in shown
    assert '1. say "Please hold" en-GB' in shown and "2. pause 2s" in shown and "3. hangup" in shown
    assert "Reason: IVR loop" in shown
    [button] = buttons(confirm)
    assert button["text"]["text"] == "Apply hold-music v2"
    assert lib.fake_bird.requests == []
    assert len(lib.db.audit()) == audit_before  # asking is not an attempt yet

    progress, outcome = click(lib, button)
    assert f"Applying the callFlow to bird:{call_id}" in reply_text(progress)
    assert progress["replace_original"] is True
    done = reply_text(outcome)
    assert f"Applied saved flow `hold-music` v2 (3 commands) to bird:{call_id}." in done
    assert "Reason: IVR loop" in done

    [request] = lib.fake_bird.updates()
    assert request.method == "PATCH" and request.path == call_path(call_id)
    assert request.json == {"callFlow": V2}
    assert schema_errors(request.json) == []

    row = lib.db.audit()[-1]
    assert (row["source"], row["action"], row["account"], row["call_id"], row["outcome"]) == (
        "button",
        "flow",
        "bird",
        call_id,
        "succeeded",
    )
    assert row["request"]["body"] == {"callFlow": V2}
    assert row["request"]["params"]["flow"] == V2
    assert (row["request"]["params"]["saved_name"], row["request"]["params"]["saved_version"]) == ("hold-music", 2)
    assert row["request"]["params"]["reason"] == "IVR loop"
    assert row["command_text"] == f"/call flow bird:{call_id} hold-music@2 'reason=IVR loop'"
    assert row["idempotency_key"].startswith("choice:")
    assert row["decision"] == "allowed" and "flow on account bird" in row["decision_basis"]


def test_the_click_applies_the_version_shown_even_if_a_newer_one_was_saved_meanwhile(lib: Bot) -> None:
    save(lib, "hold-music", V1)
    call_id = lib.fake_bird.add_call(bird_call_id(2))
    [button] = buttons(say(lib, f"flow bird:{call_id} hold-music"))
    save(lib, "hold-music", V2)
    click(lib, button)
    assert lib.fake_bird.updates()[0].json == {"callFlow": V1}


def test_an_older_version_by_number(lib: Bot) -> None:
    save(lib, "hold-music", V1)
    save(lib, "hold-music", V2)
    call_id = lib.fake_bird.add_call(bird_call_id(3))
    confirm = say(lib, f"flow bird:{call_id} hold-music@1")
    assert "Apply saved flow `hold-music` v1" in reply_text(confirm)
    assert "Apply saved flow `hold-music` v1" in reply_text(say(lib, f"flow bird:{call_id} hold-music version=1"))
    click(lib, buttons(confirm)[0])
    assert lib.fake_bird.updates()[0].json == {"callFlow": V1}


def test_double_click_applies_once(lib: Bot) -> None:
    save(lib, "hold-music", V1)
    call_id = lib.fake_bird.add_call(bird_call_id(4))
    [button] = buttons(say(lib, f"flow bird:{call_id} hold-music"))
    click(lib, button)
    [again] = click(lib, button, expect=1)
    assert "already handled" in reply_text(again)
    assert len(lib.fake_bird.updates()) == 1
    assert [r["outcome"] for r in lib.db.audit() if r["action"] == "flow"] == ["succeeded"]


def test_someone_else_cannot_click_my_confirmation(lib: Bot) -> None:
    lib.db.grant(BOB, "flow", "bird")
    save(lib, "hold-music", V1)
    call_id = lib.fake_bird.add_call(bird_call_id(5))
    [button] = buttons(say(lib, f"flow bird:{call_id} hold-music"))
    [reply] = click(lib, button, user=BOB, expect=1)
    assert "Only the person who asked" in reply_text(reply)
    assert lib.fake_bird.requests == []
    refused = lib.db.audit()[-1]
    assert (refused["user_id"], refused["action"], refused["outcome"]) == (BOB, "flow", "denied")
    assert "hold-music" not in (refused["command_text"] or "")


def test_dry_run_by_name_shows_the_exact_request_without_asking(lib: Bot) -> None:
    save(lib, "hold-music", V2)
    call_id = bird_call_id(6)
    answer = say(lib, f"flow bird:{call_id} hold-music dry-run")
    shown = reply_text(answer)
    assert buttons(answer) == []
    assert f"PATCH {lib.fake_bird.url}{call_path(call_id)}" in shown
    assert '"pauseSeconds": 2' in shown and "AccessKey ***" in shown
    assert lib.fake_bird.requests == []
    row = lib.db.audit()[-1]
    assert (row["action"], row["outcome"]) == ("flow", "dry_run")
    assert row["request"]["body"] == {"callFlow": V2}
    assert row["request"]["params"]["saved_name"] == "hold-music"


def test_unknown_name_gets_did_you_mean(lib: Bot) -> None:
    save(lib, "hold-music", V1)
    call_id = lib.fake_bird.add_call(bird_call_id(7))
    shown = reply_text(say(lib, f"flow bird:{call_id} hold-musik"))
    assert "`hold-musik`: is not a saved flow. Did you mean `hold-music`?" in shown
    assert lib.fake_bird.requests == []
    row = lib.db.audit()[-1]
    assert (row["action"], row["account"], row["outcome"]) == ("flow", "bird", "invalid")
    assert "Did you mean `hold-music`?" in reply_text(say(lib, "flows show hold-musik"))
    nothing = reply_text(say(lib, f"flow bird:{call_id} something-else"))
    assert "is not a saved flow" in nothing and "See `/call flows`" in nothing


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("Hold_Music", "Did you mean `hold-music`?"),
        ("hold--music", "is not a valid flow name"),
        ("-hold", "is not a valid flow name"),
        ("x" * 65, "a flow name has at most 64"),
    ],
)
def test_invalid_names_are_refused_clearly(lib: Bot, name: str, expected: str) -> None:
    shown = reply_text(say(lib, f"flows save {name} '{json.dumps(V1)}'"))
    assert expected in shown
    assert "lowercase words joined by dashes" in shown or "at most 64" in shown
    assert saved_rows(lib) == []
    row = lib.db.audit()[-1]
    assert (row["action"], row["outcome"]) == ("flows.save", "invalid")


def test_an_invalid_flow_is_refused_on_save_with_its_path(lib: Bot) -> None:
    bad = [{"command": "say", "options": {"text": "Hi"}}, {"command": "pause", "options": {"pauseSeconds": 31}}]
    shown = reply_text(say(lib, f"flows save hold-music '{json.dumps(bad)}'"))
    assert "`callFlow[1].options.pauseSeconds`: must be ≤ 30" in shown
    typo = [{"command": "say", "options": {"txt": "Hi"}}]
    assert "`callFlow[0].options.txt`" in reply_text(say(lib, f"flows save hold-music '{json.dumps(typo)}'"))
    assert saved_rows(lib) == []
    assert [(r["action"], r["outcome"]) for r in lib.db.audit()] == [("flows.save", "invalid")] * 2


def test_saving_yaml_stores_the_wire_form(lib: Bot) -> None:
    shown = reply_text(
        say(lib, "flows save short-pause '[{command: pause, options: {pauseSeconds: 1}}, {command: hangup}]'")
    )
    assert "Saved `short-pause` v1" in shown
    assert saved_rows(lib)[0]["callflow"] == [
        {"command": "pause", "options": {"pauseSeconds": 1}},
        {"command": "hangup"},
    ]


# -- delete ----------------------------------------------------------------------------------------


def test_delete_hides_the_name_keeps_history_and_applying_it_fails_clearly(lib: Bot) -> None:
    save(lib, "hold-music", V1)
    save(lib, "hold-music", V2)
    call_id = lib.fake_bird.add_call(bird_call_id(8))
    [pending_button] = buttons(say(lib, f"flow bird:{call_id} hold-music"))

    deleted = reply_text(say(lib, "flows delete hold-music"))
    assert "Deleted saved flow `hold-music`." in deleted and "versions 1–2 stay in the database" in deleted
    assert "No saved flows yet." in reply_text(say(lib, "flows"))

    applied = reply_text(say(lib, f"flow bird:{call_id} hold-music"))
    assert f"`hold-music`: was deleted by <@{ALICE}> on 20" in applied
    assert "was deleted by" in reply_text(say(lib, "flows show hold-music@1"))
    [late] = click(lib, pending_button, expect=1)  # a confirmation shown before the delete
    assert "`hold-music`: was deleted by" in reply_text(late)
    assert lib.fake_bird.requests == []

    rows = saved_rows(lib)
    assert [(r["version"], r["deleted_by"]) for r in rows] == [(1, ALICE), (2, ALICE)]
    assert all(r["deleted_at"] is not None for r in rows) and rows[1]["callflow"] == V2
    delete_row = next(r for r in lib.db.audit() if r["action"] == "flows.delete")
    assert delete_row["outcome"] == "succeeded" and delete_row["result"] == {"name": "hold-music", "versions": [1, 2]}

    again = reply_text(say(lib, "flows delete hold-music"))
    assert "was already deleted" in again
    assert "Saved `hold-music` v3" in save(lib, "hold-music", V1)  # numbers are never reused
    assert "`hold-music@1`: version 1 was deleted" in reply_text(say(lib, f"flow bird:{call_id} hold-music@1"))
    assert "only version 3" in reply_text(say(lib, "flows show hold-music@2"))


def test_deleting_an_unknown_name(lib: Bot) -> None:
    save(lib, "hold-music", V1)
    shown = reply_text(say(lib, "flows delete hold-musc"))
    assert "is not a saved flow. Did you mean `hold-music`?" in shown
    row = lib.db.audit()[-1]
    assert (row["action"], row["outcome"]) == ("flows.delete", "invalid")


# -- permissions -----------------------------------------------------------------------------------


def test_flow_without_flow_manage_can_read_and_apply_but_not_save_or_delete(lib: Bot) -> None:
    lib.db.grant(BOB, "flow", "bird")
    save(lib, "hold-music", V1)
    assert "`hold-music` v1" in reply_text(say(lib, "flows", BOB))
    assert "Saved flow `hold-music` v1" in reply_text(say(lib, "flows show hold-music", BOB))

    refused = reply_text(say(lib, f"flows save hold-music '{json.dumps(V2)}'", BOB))
    assert "not allowed to `flows save`" in refused and "`flow:manage`" in refused
    assert "not allowed to `flows delete`" in reply_text(say(lib, "flows delete hold-music", BOB))
    assert [r["version"] for r in saved_rows(lib)] == [1] and saved_rows(lib)[0]["deleted_at"] is None
    denied = [r for r in lib.db.audit() if r["outcome"] == "denied"]
    assert [(r["user_id"], r["action"]) for r in denied] == [(BOB, "flows.save"), (BOB, "flows.delete")]
    # Refused before its callFlow is read (issue 14): the row keeps the name; the text keeps the rest.
    assert denied[0]["request"] == {"name": "hold-music"}
    assert json.dumps(V2) in denied[0]["command_text"]

    call_id = lib.fake_bird.add_call(bird_call_id(9))
    confirm = say(lib, f"flow bird:{call_id} hold-music", BOB)
    click(lib, buttons(confirm)[0], user=BOB)
    assert lib.fake_bird.updates()[0].json == {"callFlow": V1}
    assert lib.db.audit()[-1]["user_id"] == BOB and lib.db.audit()[-1]["outcome"] == "succeeded"


def test_flow_manage_without_flow_can_save_but_not_apply(lib: Bot) -> None:
    lib.db.grant(CAROL, "flow:manage", "*")
    assert "Saved `hold-music` v1" in save(lib, "hold-music", V1, CAROL)
    assert f"by <@{CAROL}>" in reply_text(say(lib, "flows", CAROL))
    call_id = lib.fake_bird.add_call(bird_call_id(10))
    answer = say(lib, f"flow bird:{call_id} hold-music", CAROL)
    assert "You are not allowed to `flow` on account `bird`" in reply_text(answer)
    assert buttons(answer) == []
    row = lib.db.audit()[-1]
    assert (row["user_id"], row["action"], row["outcome"]) == (CAROL, "flow", "denied")
    assert lib.fake_bird.requests == []


def test_a_grant_revoked_between_confirmation_and_click_is_denied_at_click_time(lib: Bot) -> None:
    save(lib, "hold-music", V1)
    call_id = lib.fake_bird.add_call(bird_call_id(11))
    [button] = buttons(say(lib, f"flow bird:{call_id} hold-music"))
    revoke(lib, ALICE, "flow")
    [reply] = click(lib, button, expect=1)
    assert "You are not allowed to `flow` on account `bird`" in reply_text(reply)
    assert lib.fake_bird.requests == []
    row = lib.db.audit()[-1]
    assert (row["source"], row["action"], row["outcome"], row["decision"]) == ("button", "flow", "denied", "denied")


def test_people_without_flow_rights_cannot_read_the_library(lib: Bot) -> None:
    lib.db.grant(CAROL, "hangup", "*")
    save(lib, "hold-music", V1)
    refused = reply_text(say(lib, "flows", CAROL))
    assert "Saved flows are for people who hold `flow`" in refused
    assert "`hold-music`" not in refused
    assert "not allowed" in reply_text(say(lib, "flows show hold-music", CAROL))
    assert [(r["action"], r["outcome"]) for r in lib.db.audit() if r["user_id"] == CAROL] == [
        ("flows.list", "denied"),
        ("flows.show", "denied"),
    ]


def test_admin_on_star_implies_flow_manage_but_admin_on_one_account_does_not(bot: Bot) -> None:
    bot.db.grant(BOB, "admin", "*")
    bot.db.grant(CAROL, "admin", "bird")
    assert "Saved `hold-music` v1" in save(bot, "hold-music", V1, BOB)
    assert "not allowed to `flows save`" in save(bot, "hold-music", V2, CAROL)
    assert "`hold-music` v1" in reply_text(say(bot, "flows", CAROL))  # admin on bird implies flow there


def test_flow_manage_is_granted_on_star_only(lib: Bot) -> None:
    lib.db.grant(BOB, "admin", "*")
    refused = reply_text(say(lib, f"grant <@{CAROL}> flow:manage on=bird", BOB))
    assert "`flow:manage` is team-wide" in refused and "granted on `*` only" in refused
    granted = reply_text(say(lib, f"grant <@{CAROL}> flow:manage", BOB))
    assert f"Granted to <@{CAROL}>: flow:manage on *." in granted
    assert (CAROL, "flow:manage", "*") in lib.db.grants()


# -- help, audit filter, shell, builder entry point -----------------------------------------------------


def test_help_lists_flows_for_those_who_may_use_it(lib: Bot) -> None:
    lib.db.grant(BOB, "hangup", "*")
    lib.db.grant(CAROL, "flow:manage", "*")
    assert "/call flows" in reply_text(say(lib, "help"))
    assert "/call flows" in reply_text(say(lib, "help", CAROL))
    assert "/call flows" not in reply_text(say(lib, "help", BOB))
    topic = reply_text(say(lib, "help flows"))
    assert "/call flows [show NAME[@VERSION]" in topic
    assert "flow:manage" in topic and "Apply button" in topic and "`NAME@2`" in topic


def test_audit_can_be_filtered_by_library_action(lib: Bot) -> None:
    lib.db.grant(ALICE, "audit", "*")
    save(lib, "hold-music", V1)
    say(lib, "flows delete hold-music")
    shown = reply_text(say(lib, "audit action=flows.delete"))
    assert "flows.delete" in shown and "flows.save" not in shown


def test_the_shell_applies_a_saved_flow_without_a_confirmation(lib: Bot, env: dict[str, str], tmp_path: Path) -> None:
    save(lib, "hold-music", V1)
    call_id = lib.fake_bird.add_call(bird_call_id(12))
    ran = callbot(["run", "--as", ALICE, f"flow bird:{call_id} hold-music"], env, tmp_path)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert f"Applied saved flow `hold-music` v1 (2 commands) to bird:{call_id}." in ran.stdout
    assert lib.fake_bird.updates()[0].json == {"callFlow": V1}
    refused = callbot(["grant", CAROL, "flow:manage", "--on", "bird"], env, tmp_path)
    assert refused.returncode != 0 and "team-wide" in refused.stdout + refused.stderr


def test_service_save_flow_is_the_builders_entry_point(lib: Bot) -> None:
    lib.db.grant(BOB, "flow", "bird")

    async def run() -> tuple[str, str, str]:
        db = Database(lib.db.url)
        service = Service(db, {}, Redactor())
        try:
            flow = parse_callflow(json.dumps(V1))
            saved = await service.save_flow(
                Invocation("modal", ALICE, "builder: save as hold-music", team_id=TEAM), "hold-music", flow
            )
            denied = await service.save_flow(
                Invocation("modal", BOB, "builder: save as hold-music", team_id=TEAM), "hold-music", flow
            )
            invalid = await service.save_flow(
                Invocation("modal", ALICE, "builder: save as Hold", team_id=TEAM), "Hold Music", flow
            )
            return saved.as_text(), denied.as_text(), invalid.as_text()
        finally:
            await db.close()

    saved, denied, invalid = asyncio.run(run())
    assert "Saved `hold-music` v1" in saved
    assert "not allowed" in denied and "is not a valid flow name" in invalid
    assert [(r["source"], r["action"], r["outcome"]) for r in lib.db.audit()] == [
        ("modal", "flows.save", "succeeded"),
        ("modal", "flows.save", "denied"),
        ("modal", "flows.save", "invalid"),
    ]


# -- grammar ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("word", "ref"),
    [("hold-music", FlowRef("hold-music")), ("hold-music@3", FlowRef("hold-music", 3)), ("a1-b2", FlowRef("a1-b2"))],
)
def test_flow_references(word: str, ref: FlowRef) -> None:
    assert parse_ref(word) == ref
    command = parse(f"flow bird:abc {word}")
    assert isinstance(command, SavedFlowCommand) and command.ref == ref


@pytest.mark.parametrize(
    ("command", "expected"),
    [
        ('flows save hold-music@2 \'[{"command":"hangup"}]\'', "saving picks the next version itself"),
        ("flows delete hold-music@2", "delete removes the name with all its versions"),
        ("flows shwo hold-music", "Did you mean `show`?"),
        ("flows show", "`flows show` needs NAME"),
        ("flows show hold-music@0", "is not a version"),
        ("flows show hold-music@1 version=2", "contradicts"),
        ("flows delete hold-music version=2", "is not an option of `flows delete`"),
        ('flow bird:abc \'[{"command":"hangup"}]\' version=2', "goes with the name of a saved flow"),
    ],
)
def test_flows_grammar_refusals(command: str, expected: str) -> None:
    with pytest.raises(InvalidInput) as error:
        parse(command)
    assert expected in error.value.message


def test_flows_grammar() -> None:
    assert parse("flows") == FlowsCommand("list")
    assert parse("flows list") == FlowsCommand("list")
    assert parse("flows show hold-music version=2") == FlowsCommand("show", FlowRef("hold-music", 2))
    saved = parse('flows save hold-music \'[{"command":"hangup"}]\'')
    # The callFlow is read once the person may save (read_flows_document), not by parse.
    assert saved == FlowsCommand("save", FlowRef("hold-music"), document='[{"command":"hangup"}]')
    read = read_flows_document(saved)
    assert read.flow is not None and read.flow.to_wire() == [{"command": "hangup"}] and read.document is None
