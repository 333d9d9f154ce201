"""Transparency for the incident channel, end to end through signed Slack requests: an account's
`announce_channel` gets one masked line per executed call action (none for refusals or dry runs),
`announce = "on_request"` only for commands typed with `announce`, a bulk hang-up one line for the
whole batch; a channel callbot cannot post in never breaks the action; no line carries a secret or
a whole number."""

from __future__ import annotations

import json
import logging
import textwrap
import time
from pathlib import Path
from typing import Any, cast

import pytest
from sqlalchemy import text

from bot.config import Settings
from bot.domain import grammar
from bot.domain.errors import ConfigError, InvalidInput
from bot.domain.grammar import CallCommand, DocumentCall, SavedFlowCommand
from tests.fakes.bird import bird_call_id
from tests.fakes.twilio import AUTH_TOKEN, call_sid, twilio_error
from tests.support.bots import ALICE, BOB, PAYLOADS, Bot, BotFactory, reply_text, write_config
from tests.support.leaks import traces

INCIDENTS = "C0INCIDENT"
CHANNEL = "C2147483705"  # the channel of the samples
NUMBER = "+447700900123"
ANNOUNCING = f'announce_channel = "{INCIDENTS}"'


def announced(bot: Bot, channel: str = INCIDENTS) -> list[dict[str, Any]]:
    return [m for m in bot.fake_slack.calls("chat.postMessage") if m["channel"] == channel]


def wait_announced(bot: Bot, count: int, channel: str = INCIDENTS) -> list[dict[str, Any]]:
    bot.fake_slack.wait_for(lambda reqs: len(announced(bot, channel)) >= count)
    return announced(bot, channel)


def settle(make_bot: BotFactory) -> None:
    """The bot has finished all it was doing: whatever it would post is posted."""
    server, _ = make_bot.running[-1]
    assert server.wait_idle()


def short(sid: str) -> str:
    return f"{sid[:4]}…{sid[-2:]}"


def test_each_executed_action_posts_one_masked_line_and_nothing_else_does(make_bot: BotFactory) -> None:
    bot = make_bot({"prod": ANNOUNCING})
    for action in ("hangup", "redirect"):
        bot.db.grant(ALICE, action, "prod")
    sid, other = bot.fake_twilio.add_call(call_sid(1)), bot.fake_twilio.add_call(call_sid(2))

    _, outcome = bot.slack.run(f'hangup prod:{sid} reason="fraud from {NUMBER}"')
    assert f"Hung up prod:{sid}" in reply_text(outcome)  # the person's own answer, as before
    [line] = wait_announced(bot, 1)
    [row] = bot.db.audit()
    assert line["text"] == (
        f"✅ succeeded: <@{ALICE}> ran `hangup` on `prod`, call `{short(sid)}` (audit #{row['id']})"
    )
    assert "thread_ts" not in line and line["unfurl_links"] in (False, "false", "0")

    bot.slack.run(f"redirect prod:{other} https://example.com/hold.xml")
    wait_announced(bot, 2)
    # Refused, invalid, a dry run: nothing reached a provider, nothing is announced.
    bot.slack.command(f"twiml prod:{other} '<Response/>'")  # no twiml grant
    bot.slack.command("hangup prod:CA123")
    bot.slack.command(f"redirect prod:{other} https://example.com/x.xml dry-run")
    bot.slack.command(f"hangup prod:{sid}", user=BOB)
    settle(make_bot)
    first, second = announced(bot)
    assert first == line
    assert "ran `redirect` on `prod`" in second["text"] and short(other) in second["text"]
    assert sorted(r["outcome"] for r in bot.db.audit()) == [
        "denied",
        "denied",
        "dry_run",
        "invalid",
        "succeeded",
        "succeeded",
    ]
    assert all(m["channel"] == INCIDENTS for m in bot.fake_slack.calls("chat.postMessage"))


def test_a_failed_or_unknown_outcome_is_announced_as_it_is(make_bot: BotFactory) -> None:
    bot = make_bot({"prod": ANNOUNCING})
    bot.db.grant(ALICE, "hangup", "prod")
    sid = bot.fake_twilio.add_call(call_sid(3))
    bot.fake_twilio.refusing[sid] = twilio_error(400, 21220, "Call is not in-progress.")
    bot.slack.run(f"hangup prod:{sid}")
    [line] = wait_announced(bot, 1)
    [row] = bot.db.audit()
    assert row["outcome"] == "failed"
    assert line["text"].startswith(f"❌ failed: <@{ALICE}> ran `hangup` on `prod`, call `{short(sid)}`")


def test_on_request_announces_only_commands_typed_with_announce(make_bot: BotFactory) -> None:
    bot = make_bot({"prod": f'{ANNOUNCING}\nannounce = "on_request"'})
    bot.db.grant(ALICE, "hangup", "prod")
    quiet, told = bot.fake_twilio.add_call(call_sid(4)), bot.fake_twilio.add_call(call_sid(5))
    bot.slack.run(f"hangup prod:{quiet}")
    bot.slack.run(f"hangup prod:{told} announce")
    [line] = wait_announced(bot, 1)
    settle(make_bot)
    assert len(announced(bot)) == 1 and short(told) in line["text"]
    assert [r["command_text"] for r in bot.db.audit()] == [
        f"/call hangup prod:{quiet}",
        f"/call hangup prod:{told} announce",
    ]


def test_announce_is_refused_where_the_account_has_no_announce_channel(make_bot: BotFactory) -> None:
    bot = make_bot({"prod": ""})
    bot.db.grant(ALICE, "hangup", "prod")
    sid = bot.fake_twilio.add_call(call_sid(6))
    answer = bot.slack.command(f"hangup prod:{sid} announce").json()
    assert "`announce`: has nowhere to go: account `prod` has no announce_channel" in reply_text(answer)
    settle(make_bot)
    assert bot.fake_twilio.updates() == [] and bot.fake_slack.calls("chat.postMessage") == []
    [row] = bot.db.audit()
    assert (row["outcome"], row["account"], row["call_id"]) == ("invalid", "prod", sid)


def test_a_bulk_hangup_is_announced_once_for_the_whole_batch(make_bot: BotFactory) -> None:
    bot = make_bot({"prod": f'{ANNOUNCING}\nannounce = "on_request"'})
    bot.db.grant(ALICE, "bulk", "prod")
    sids = [bot.fake_twilio.add_call(call_sid(n), to_number=NUMBER) for n in range(10, 15)]
    before = len(bot.fake_slack.responses())
    bot.slack.command(f"hangup-all prod to={NUMBER}")
    prompt = bot.fake_slack.wait_responses(before + 1)[before].json
    [confirm] = [
        e for b in prompt["blocks"] if b["type"] == "actions" for e in b["elements"] if "Hang up" in e["text"]["text"]
    ]
    click(bot, confirm)
    [line] = wait_announced(bot, 1)
    settle(make_bot)
    assert len(announced(bot)) == 1
    batch_row = next(r for r in bot.db.audit() if r["action"] == "hangup-all")
    assert line["text"] == (
        f"✅ succeeded: <@{ALICE}> ran `hangup-all` on `prod`: 5 of 5 calls ended, 0 failed (audit #{batch_row['id']})"
    )
    assert all(bot.fake_twilio.hangups[sid] == 1 for sid in sids)
    assert NUMBER not in line["text"] and NUMBER[1:] not in line["text"]


def test_a_channel_callbot_cannot_post_in_never_breaks_the_action(
    make_bot: BotFactory, caplog: pytest.LogCaptureFixture
) -> None:
    bot = make_bot({"prod": ANNOUNCING})
    bot.db.grant(ALICE, "hangup", "prod")
    bot.fake_slack.closed_channels.add(INCIDENTS)
    sid = bot.fake_twilio.add_call(call_sid(7))
    with caplog.at_level(logging.WARNING):
        _, outcome = bot.slack.run(f"hangup prod:{sid}")
        bot.fake_slack.wait_for(lambda reqs: any(r.path == "/api/chat.postMessage" for r in reqs))
        settle(make_bot)
    assert f"Hung up prod:{sid}" in reply_text(outcome)
    assert bot.fake_twilio.hangups[sid] == 1 and bot.db.audit()[0]["outcome"] == "succeeded"
    [warning] = [r for r in caplog.records if "could not announce" in r.getMessage()]
    assert warning.levelno == logging.WARNING and "not_in_channel" in warning.getMessage()
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


def test_no_announcement_carries_a_secret_or_a_whole_number(make_bot: BotFactory) -> None:
    bot = make_bot({"prod": ANNOUNCING})
    for action in ("hangup", "redirect"):
        bot.db.grant(ALICE, action, "prod")
    sid, other = bot.fake_twilio.add_call(call_sid(8)), bot.fake_twilio.add_call(call_sid(9))
    bot.slack.run(f'hangup prod:{sid} reason="token {AUTH_TOKEN} caller {NUMBER}"')
    bot.slack.run(f"redirect prod:{other} https://example.com/hold.xml?to={NUMBER}&key={AUTH_TOKEN}")
    lines = wait_announced(bot, 2)
    text = json.dumps(lines, ensure_ascii=False)
    assert traces(text, [*bot.settings.secrets(), NUMBER, NUMBER[1:], sid, other]) == []


def test_a_message_in_the_announce_channel_gets_one_reply_in_its_thread_sent_to_the_channel(
    make_bot: BotFactory,
) -> None:
    bot = make_bot({"prod": f'announce_channel = "{CHANNEL}"'})
    bot.db.grant(ALICE, "redirect", "prod")
    sid = bot.fake_twilio.add_call(call_sid(11))
    payload = json.loads((PAYLOADS / "message_action.json").read_text())
    payload["user"]["id"] = ALICE
    payload["message"]["text"] = f"alert: {sid}"
    del payload["message"]["blocks"], payload["message"]["attachments"]
    assert bot.slack.interact(payload).status_code == 200
    bot.fake_slack.wait_for(lambda reqs: any(r.path == "/api/views.update" for r in reqs))
    view = bot.fake_slack.calls("views.update")[-1]["view"]
    submission = json.loads((PAYLOADS / "view_submission.json").read_text())
    submission["user"]["id"] = ALICE
    submission["view"].update(
        {
            "callback_id": "call_action",
            "private_metadata": view["private_metadata"],
            "state": {
                "values": {
                    "account": {"account": {"type": "static_select", "selected_option": {"value": "prod"}}},
                    "call_id": {"call_choice": {"type": "static_select", "selected_option": {"value": sid}}},
                    "action": {"action": {"type": "static_select", "selected_option": {"value": "redirect"}}},
                    "url": {"value": {"type": "plain_text_input", "value": "https://example.com/hold.xml"}},
                }
            },
        }
    )
    assert bot.slack.interact(submission).status_code == 200
    [reply] = wait_announced(bot, 1, CHANNEL)
    settle(make_bot)
    assert len(bot.fake_slack.calls("chat.postMessage")) == 1
    assert reply["thread_ts"] == payload["message_ts"] and reply["reply_broadcast"] in (True, "true", "1")
    assert bot.db.audit()[0]["source"] == "message_shortcut"


def test_an_action_run_on_approval_is_announced_once_it_runs(make_bot: BotFactory) -> None:
    approvers = "C0APPROVE1"
    bot = make_bot({"prod": f'{ANNOUNCING}\napproval = ["hangup"]\napprovers_channel = "{approvers}"'})
    bot.db.grant(ALICE, "hangup", "prod")
    bot.db.grant(BOB, "approve", "prod")
    sid = bot.fake_twilio.add_call(call_sid(12))
    bot.slack.command(f"hangup prod:{sid}")
    [request] = wait_announced(bot, 1, approvers)
    bot.db.wait_audit(lambda rows: rows and rows[0]["outcome"] == "pending_approval")
    settle(make_bot)
    assert announced(bot) == []  # waiting for a second person: nothing happened to the call yet
    with bot.db.engine.connect() as conn:
        assert conn.execute(text("SELECT message_ts FROM approvals")).scalar_one()
    blocks = request["blocks"] if isinstance(request["blocks"], list) else json.loads(request["blocks"])
    [approve] = [e for b in blocks if b["type"] == "actions" for e in b["elements"] if e["text"]["text"] == "Approve"]
    click(bot, approve, BOB)
    [line] = wait_announced(bot, 1)
    ran = bot.db.audit()[-1]
    assert (ran["source"], ran["outcome"]) == ("approval", "succeeded")
    assert line["text"] == f"✅ succeeded: <@{ALICE}> ran `hangup` on `prod`, call `{short(sid)}` (audit #{ran['id']})"


@pytest.mark.parametrize(
    ("setting", "expected"),
    [
        ('announce = "on_request"', "announce_channel (a Slack channel id"),
        ('announce_channel = "#incidents"', "accounts.prod.announce_channel: has the wrong shape"),
        (
            'announce_channel = "C0INCIDENT"\nannounce = "sometimes"',
            "announce: Input should be 'always' or 'on_request'",
        ),
    ],
)
def test_announce_settings_are_checked(tmp_path: Path, setting: str, expected: str) -> None:
    path = write_config(tmp_path / "bad.toml", "https://api.twilio.com")
    path.write_text(path.read_text().replace("[accounts.prod]\n", f"[accounts.prod]\n{textwrap.dedent(setting)}\n"))
    with pytest.raises(ConfigError) as raised:
        Settings.from_env({"CALLBOT_CONFIG": str(path), "TEST_TWILIO_AUTH_TOKEN": "t"})
    assert expected in str(raised.value) and "accounts.prod" in str(raised.value)


def click(bot: Bot, button: dict[str, Any], user: str = ALICE) -> None:
    payload = json.loads((PAYLOADS / "block_actions.json").read_text())
    payload["user"] = {"id": user, "username": user.lower(), "name": user.lower(), "team_id": "T0001"}
    payload["response_url"] = bot.fake_slack.response_url("click")
    payload["trigger_id"] = f"12321423423.333649436676.{int(time.time() * 1000):x}"
    payload["actions"] = [{**button, "block_id": "b", "type": "button", "action_ts": "1.2"}]
    assert bot.slack.interact(payload).status_code == 200


def test_announce_is_a_flag_of_every_call_action_and_a_saved_flow_keeps_it() -> None:
    sid = call_sid(13)
    hangup = grammar.parse(f"hangup prod:{sid} announce")
    assert isinstance(hangup, CallCommand) and hangup.announce and not hangup.dry_run
    assert not cast(CallCommand, grammar.parse(f"hangup prod:{sid}")).announce
    document = grammar.parse(f"twiml prod:{sid} '<Response><Hangup/></Response>' announce dry-run")
    assert isinstance(document, DocumentCall) and grammar.read_document(document).announce
    saved = grammar.parse(f"flow bird:{bird_call_id(1)} hold-music announce")
    assert isinstance(saved, SavedFlowCommand) and saved.announce
    with pytest.raises(InvalidInput):  # the builder takes no flags
        grammar.parse(f"flow bird:{bird_call_id(1)} announce")
    with pytest.raises(InvalidInput):
        grammar.parse("list prod announce")
