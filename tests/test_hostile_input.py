"""Hostile input through the real app (issue 14, items 2 and 3): a document is read only once the
person may act, bounded; text no database stores still leaves exactly one audit row and a clean
answer. Run on PostgreSQL too (CALLBOT_TEST_DATABASE_URL): that is where U+0000 used to fail."""

from __future__ import annotations

from typing import Any

import pytest

from tests.fakes.bird import bird_call_id
from tests.fakes.twilio import call_sid
from tests.support.bots import ALICE, BOB, Bot, reply_text
from tests.test_modal import state, submit

pytestmark = pytest.mark.shared_bot

SID = call_sid(1)
BOMB = "[" * 2000 + "]" * 2000  # PyYAML read this for 1.3 s, on the event loop, before any permission check
TOO_DEEP = "is nested more than 10 levels deep"


def answered(bot: Bot, text: str, user: str = ALICE, **fields: str) -> str:
    response = bot.slack.command(text, user=user, **fields)
    assert response.status_code == 200, response.text
    shown = reply_text(response.json())
    assert "internal error" not in shown and "Traceback" not in shown
    return shown


def only_row(bot: Bot) -> dict[str, Any]:
    [row] = bot.db.audit()
    return row


@pytest.mark.parametrize(
    "text",
    [f"flow bird:{bird_call_id(1)} '{BOMB}'", f"twiml prod:{SID} '&lt;Response&gt;" + "&lt;Say&gt;" * 600 + "'"],
)
def test_a_person_without_the_permission_is_denied_before_the_document_is_read(bot: Bot, text: str) -> None:
    shown = answered(bot, text, user=BOB)
    assert "Not allowed." in shown and TOO_DEEP not in shown
    row = only_row(bot)
    assert (row["user_id"], row["outcome"], row["decision"]) == (BOB, "denied", "denied")
    assert bot.fake_bird.requests == [] and bot.fake_twilio.requests == []


def test_a_permitted_person_is_told_the_document_is_too_deep_and_it_is_audited_with_the_account(bot: Bot) -> None:
    bot.db.grant(ALICE, "flow", "bird")
    shown = answered(bot, f"flow bird:{bird_call_id(1)} '{BOMB}'")
    assert f"`callFlow`: {TOO_DEEP}; a callFlow never is." in shown
    row = only_row(bot)
    assert (row["outcome"], row["decision"], row["action"], row["account"]) == ("invalid", "allowed", "flow", "bird")
    assert TOO_DEEP in row["error_message"]
    assert bot.fake_bird.requests == []


def test_saving_a_flow_without_flow_manage_is_denied_before_the_callflow_is_read(bot: Bot) -> None:
    shown = answered(bot, f"flows save hold-music '{BOMB}'", user=BOB)
    assert "not allowed to `flows save`" in shown
    row = only_row(bot)
    assert (row["action"], row["outcome"], row["request"]) == ("flows.save", "denied", {"name": "hold-music"})


@pytest.mark.parametrize(
    ("user", "text"),
    [
        (ALICE, f"hangpu\x00 prod:{SID}"),  # invalid anyway
        (BOB, f"hangup prod:{SID} reason=a\x00b"),  # BOB holds nothing
        (ALICE, f"hangup prod:{SID} reason=a\x00b"),  # ALICE may hang up
        (ALICE, f'flow bird:{bird_call_id(1)} \'[{{"command":"say","options":{{"text":"a\x00"}}}}]\''),
    ],
)
def test_a_nul_byte_is_refused_clearly_and_the_attempt_audited(bot: Bot, user: str, text: str) -> None:
    bot.db.grant(ALICE, "hangup", "prod")
    bot.db.grant(ALICE, "flow", "bird")
    bot.fake_twilio.add_call(SID)
    shown = answered(bot, text, user=user)
    assert "The command contains a NUL character (U+0000), which callbot cannot use." in shown
    row = only_row(bot)
    assert (row["user_id"], row["outcome"]) == (user, "invalid")
    assert row["command_text"] == "/call " + text.replace("\x00", "\ufffd")
    assert bot.fake_twilio.updates() == [] and bot.fake_bird.requests == []


def test_a_nul_in_what_slack_says_about_the_person_does_not_stop_a_permitted_action(bot: Bot) -> None:
    bot.db.grant(ALICE, "hangup", "prod")
    bot.fake_twilio.add_call(SID)
    before = len(bot.fake_slack.responses())
    shown = answered(bot, f"hangup prod:{SID}", user_name="ali\x00ce")
    outcome = reply_text(bot.fake_slack.wait_responses(before + 1)[before].json)
    assert f"Hanging up prod:{SID}" in shown and "internal error" not in outcome
    [update] = bot.fake_twilio.updates()
    assert update.form_pairs == [("Status", "completed")]
    row = bot.db.wait_audit(lambda rows: rows and rows[0]["outcome"] != "pending")[0]
    assert (row["outcome"], row["user_name"]) == ("succeeded", "ali\ufffdce")


def test_a_call_id_longer_than_its_column_is_still_audited(bot: Bot) -> None:
    # PostgreSQL refuses text longer than a varchar column; the form lets any length through.
    bot.db.grant(ALICE, "redirect", "prod")
    long_id = "CA" + "f" * 300
    answer = submit(bot, state(account="prod", action="redirect", call_id=long_id, url="https://example.com/x"))
    assert "is not a twilio call id" in answer["errors"]["call_id"]
    row = only_row(bot)
    assert row["outcome"] == "invalid"
    assert row["call_id"] == long_id[:127] + "…"


def test_a_lone_surrogate_from_a_form_is_refused_under_the_form_and_audited(bot: Bot) -> None:
    bot.db.grant(ALICE, "redirect", "prod")
    bot.fake_twilio.add_call(SID)
    values = state(account="prod", action="redirect", call_id=SID, url="https://example.com/x", reason="a\ud800b")
    answer = submit(bot, values)
    assert answer["response_action"] == "errors"
    assert any("half of a surrogate pair (U+D800)" in error for error in answer["errors"].values())
    row = only_row(bot)
    assert (row["source"], row["outcome"], row["account"]) == ("modal", "invalid", "prod")
    assert "\ufffd" in row["command_text"]
    assert bot.fake_twilio.updates() == []
