"""A call id that fits several accounts: the bot asks which, with buttons that run the command."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from bot.db import repo
from tests.fakes.twilio import ACCOUNT_SID, call_sid
from tests.support.bots import ALICE, BOB, PAYLOADS, TWILIO_ONLY, BotFactory, SlackDriver, reply_text
from tests.support.database import on_database

STAGING = f"""
[accounts.staging]
provider = "twilio"
account_sid = "AC{"f" * 32}"
auth_token = "${{TEST_TWILIO_AUTH_TOKEN}}"
base_url = "{{url}}"
"""


@pytest.fixture
def two_twilio(make_bot: BotFactory) -> Any:
    bot = make_bot(TWILIO_ONLY, extra=STAGING.replace("{url}", make_bot.fakes.twilio.url))
    bot.db.grant(ALICE, "hangup", "*")
    return bot.slack, bot.fake_slack, bot.fake_twilio, bot.db


def click(driver: SlackDriver, button: dict[str, Any], user: str = ALICE) -> None:
    payload = json.loads((PAYLOADS / "block_actions.json").read_text())
    payload["user"]["id"] = user
    payload["response_url"] = driver.slack.response_url("choice")
    payload["actions"] = [{**button, "block_id": "choose_account", "type": "button", "action_ts": "1.2"}]
    assert driver.interact(payload).status_code == 200


def buttons(message: dict[str, Any]) -> list[dict[str, Any]]:
    return [e for b in message["blocks"] if b["type"] == "actions" for e in b["elements"]]


def test_ambiguous_call_offers_accounts_and_a_click_runs_the_command(two_twilio: Any) -> None:
    driver, fake_slack, fake_twilio, db = two_twilio
    sid = fake_twilio.add_call(call_sid(1))
    answer = driver.command(f'hangup {sid} reason="fraud"').json()
    assert "Which account is this call on?" in reply_text(answer)
    offered = buttons(answer)
    assert [b["text"]["text"] for b in offered] == [f"prod:{sid}", f"staging:{sid}"]
    assert fake_twilio.requests == []
    assert db.audit()[0]["outcome"] == "invalid"

    click(driver, offered[0])
    progress, outcome = [r.json for r in fake_slack.wait_responses(2)]
    assert f"Hanging up prod:{sid}" in reply_text(progress) and progress["replace_original"] is True
    assert f"Hung up prod:{sid}." in reply_text(outcome) and "Reason: fraud" in reply_text(outcome)
    [request] = fake_twilio.updates()
    assert request.path == f"/2010-04-01/Accounts/{ACCOUNT_SID}/Calls/{sid}.json"
    row = db.audit()[-1]
    assert (row["source"], row["account"], row["outcome"]) == ("button", "prod", "succeeded")
    assert row["idempotency_key"].startswith("choice:")


def test_double_click_or_second_button_runs_once(two_twilio: Any) -> None:
    driver, fake_slack, fake_twilio, _db = two_twilio
    sid = fake_twilio.add_call(call_sid(2))
    offered = buttons(driver.command(f"hangup {sid}").json())
    click(driver, offered[0])
    fake_slack.wait_responses(2)
    click(driver, offered[0])
    click(driver, offered[1])
    later = [r.json for r in fake_slack.wait_responses(4)][2:]
    assert all("already handled" in reply_text(m) for m in later)
    assert len(fake_twilio.updates()) == 1


def test_someone_else_cannot_use_the_buttons(two_twilio: Any) -> None:
    driver, fake_slack, fake_twilio, db = two_twilio
    db.grant(BOB, "hangup", "*")
    sid = fake_twilio.add_call(call_sid(3))
    offered = buttons(driver.command(f"hangup {sid}").json())
    click(driver, offered[0], user=BOB)
    [reply] = fake_slack.wait_responses(1)
    assert "expired or was already used" in reply_text(reply.json)
    assert fake_twilio.requests == []


def test_two_takes_of_one_choice_at_once_give_it_to_exactly_one(db: Any) -> None:
    """Two clicks at once on a one-shot button: one gets the command, the other "already used" —
    neither an internal error (the take used to read, then delete, and the second delete failed)."""

    async def race(database: Any) -> list[Any]:
        results = []
        for n in range(10):
            await repo.save_choice(database, "T0001", f"tok{n}", ALICE, "hangup CA1", ["prod"], purpose="confirm")
            results.append(
                await asyncio.gather(*(repo.take_choice(database, "T0001", f"tok{n}", ALICE) for _ in range(3)))
            )
        return results

    for takes in on_database(db.url, race):
        assert [t is not None for t in takes].count(True) == 1
