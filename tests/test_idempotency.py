"""A request delivered twice (replays, double clicks) reaches the provider once: a signed body
replayed, and simultaneous duplicates over HTTP. Each kind of first outcome replayed is tested on
the service itself in tests/test_service_idempotency.py."""

from __future__ import annotations

import threading

import pytest

from tests.fakes.server import Answer
from tests.fakes.twilio import call_sid
from tests.support.bots import ALICE, Bot, reply_text

# The worker's one default bot, lent to each test (tests/support/bots.py SharedBot).
pytestmark = pytest.mark.shared_bot


def test_a_replayed_slash_command_is_not_sent_twice(bot: Bot) -> None:
    bot.db.grant(ALICE, "hangup", "prod")
    sid = bot.fake_twilio.add_call(call_sid(1))
    body = bot.slack.command_body(f"hangup prod:{sid}")
    first = bot.slack.post(body, bot.slack.sign(body), "application/x-www-form-urlencoded")
    assert "Hanging up" in reply_text(first.json())
    bot.fake_slack.wait_responses(1)
    replay = bot.slack.post(body, bot.slack.sign(body), "application/x-www-form-urlencoded")
    assert "already handled" in reply_text(replay.json()) and "succeeded" in reply_text(replay.json())
    assert len(bot.fake_twilio.updates()) == 1
    assert len(bot.db.audit()) == 1


def test_simultaneous_duplicates_reach_the_provider_once(bot: Bot) -> None:
    bot.db.grant(ALICE, "hangup", "prod")
    sid = bot.fake_twilio.add_call(call_sid(2))
    bot.fake_twilio.script(Answer(200, b"{}", delay=0.5))
    body = bot.slack.command_body(f"hangup prod:{sid}")
    answers: list[str] = []

    def send() -> None:
        response = bot.slack.post(body, bot.slack.sign(body), "application/x-www-form-urlencoded")
        answers.append(reply_text(response.json()))

    threads = [threading.Thread(target=send) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    bot.fake_slack.wait_responses(1)
    bot.db.wait_audit(lambda rows: rows and rows[0]["outcome"] != "pending")
    assert len(bot.fake_twilio.updates()) == 1
    assert len(bot.db.audit()) == 1
    assert sum("Hanging up" in a for a in answers) == 1
    assert sum("already" in a for a in answers) == 3
