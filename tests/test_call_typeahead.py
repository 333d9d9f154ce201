"""The action form's call field: an external_select whose options come from the account's live
calls, through signed `block_suggestion` requests (tests/payloads/block_suggestion.json)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl

import pytest

from tests.fakes.bird import bird_call_id
from tests.fakes.twilio import call_sid, twilio_error
from tests.support.bots import ALICE, BOB, PAYLOADS, Bot
from tests.test_modal import blocks, change, grant_all, open_modal, state, submit

# The worker's one default bot, lent to each test (tests/support/bots.py SharedBot).
pytestmark = pytest.mark.shared_bot


def two_hours_ago() -> datetime:
    """Ages in whole minutes: the labels stay the same however long the test takes (< 1 min)."""
    return datetime.now(UTC).replace(microsecond=0) - timedelta(hours=2)


def suggest(
    bot: Bot, typed: str, *, account: str | None = "prod", metadata: dict[str, Any] | None = None, user: str = ALICE
) -> Any:
    payload = json.loads((PAYLOADS / "block_suggestion.json").read_text())
    payload["user"]["id"] = user
    payload["value"] = typed
    values = state(account=account) if account else {}
    payload["view"]["state"] = {"values": values}
    payload["view"]["private_metadata"] = json.dumps(metadata or {"channel": "C2147483705"})
    response = bot.slack.interact(payload)
    assert response.status_code == 200, response.text
    return response.json()


def option(text: str, value: str) -> dict[str, Any]:
    return {"text": {"type": "plain_text", "text": text, "emoji": True}, "value": value}


def two_calls(bot: Bot) -> tuple[str, str]:
    start = two_hours_ago()
    one = bot.fake_twilio.add_call(call_sid(0xEF), "in-progress", started_at=start)
    two = bot.fake_twilio.add_call(
        call_sid(0x1F),
        "ringing",
        from_number="+447700900123",
        to_number="+442071234456",
        started_at=start - timedelta(minutes=5),
    )
    return one, two


def test_the_call_field_is_a_type_ahead(bot: Bot) -> None:
    grant_all(bot)
    open_modal(bot)
    view = change(bot, "account", state(account="prod"))
    element = blocks(view)["call_id"]["element"]
    assert element["type"] == "external_select"
    assert (element["action_id"], element["min_query_length"]) == ("call_picker", 0)
    assert json.loads(view["private_metadata"]) == {"channel": "C2147483705", "account": "prod"}


def test_options_list_the_accounts_live_calls_exactly(bot: Bot) -> None:
    one, two = two_calls(bot)
    bot.db.grant(ALICE, "hangup", "prod")
    answer = suggest(bot, "")
    assert answer == {
        "options": [
            option("CA00…1f  +4477…123 → +4420…456  2h 05m", two),
            option("CA00…ef  +141…308 → +141…309  2h 00m", one),
        ]
    }
    # Twilio lists each live status in turn, 100 a page (Slack shows at most 100 options).
    queries = [dict(parse_qsl(r.query)) for r in bot.fake_twilio.lists()]
    assert queries == [
        {"Status": "queued", "PageSize": "100"},
        {"Status": "ringing", "PageSize": "100"},
        {"Status": "in-progress", "PageSize": "100"},
    ]
    assert [r["action"] for r in bot.db.audit()] == []  # keystrokes are not audited


def test_options_filter_by_number_digits_or_call_id(bot: Bot) -> None:
    one, two = two_calls(bot)
    bot.db.grant(ALICE, "hangup", "prod")
    assert [o["value"] for o in suggest(bot, "7700 900")["options"]] == [two]
    assert [o["value"] for o in suggest(bot, "ef")["options"]] == [one]
    assert suggest(bot, "nothing like it") == {"options": []}


def test_a_typed_call_id_that_is_not_listed_is_offered_as_itself(bot: Bot) -> None:
    two_calls(bot)
    bot.db.grant(ALICE, "hangup", "prod")
    other = call_sid(0x77)
    assert suggest(bot, other) == {"options": [option(f"Use {other}", other)]}


def test_a_typed_upper_case_call_sid_is_offered_as_itself(bot: Bot) -> None:
    two_calls(bot)
    bot.db.grant(ALICE, "hangup", "prod")
    other = "CA" + "FEDCBA9876543210" * 2
    assert suggest(bot, other) == {"options": [option(f"Use {other}", other)]}


def test_provider_failure_answers_an_empty_list(bot: Bot) -> None:
    two_calls(bot)
    bot.db.grant(ALICE, "hangup", "prod")
    bot.fake_twilio.script(twilio_error(500, 20500, "Internal Server Error"))
    assert suggest(bot, "") == {"options": []}
    bot.fake_twilio.script(twilio_error(401, 20003, "Authenticate"))
    typed = call_sid(0x77)  # a whole call id is still offered: it does not come from the provider
    assert suggest(bot, typed) == {"options": [option(f"Use {typed}", typed)]}


def test_no_call_action_no_options(bot: Bot) -> None:
    two_calls(bot)
    bot.db.grant(BOB, "hangup", "prod")
    assert suggest(bot, "") == {"options": []}
    assert bot.fake_twilio.requests == []


def test_no_account_picked_yet_no_options(bot: Bot) -> None:
    bot.db.grant(ALICE, "hangup", "prod")
    assert suggest(bot, "", account=None) == {"options": []}


def test_the_account_preselected_in_the_metadata_counts(bot: Bot) -> None:
    cid = bot.fake_bird.add_call(bird_call_id(5), "ongoing", started_at=two_hours_ago())
    bot.db.grant(ALICE, "flow", "bird")
    answer = suggest(bot, "", account=None, metadata={"channel": "C2147483705", "account": "bird"})
    assert [o["value"] for o in answer["options"]] == [cid]


def test_a_picked_call_is_submitted_like_a_typed_one(bot: Bot) -> None:
    sid = bot.fake_twilio.add_call(call_sid(3))
    bot.db.grant(ALICE, "redirect", "prod")
    values = state(account="prod", action="redirect", url="https://e.com/x", dry_run="x")
    values["call_id"] = {"call_picker": {"type": "external_select", "selected_option": {"value": sid}}}
    assert submit(bot, values) == {"response_action": "clear"}
    bot.db.wait_audit(lambda rows: len(rows) == 1)
    [row] = bot.db.audit()
    assert (row["call_id"], row["outcome"], row["source"]) == (sid, "dry_run", "modal")
