"""Only requests signed with the signing secret, and fresh, reach the bot."""

from __future__ import annotations

import time

import pytest

from tests.fakes.twilio import call_sid
from tests.support.bots import ALICE, Bot

# The worker's one default bot, lent to each test (tests/support/bots.py SharedBot).
pytestmark = pytest.mark.shared_bot


def _prepare(bot: Bot) -> str:
    bot.db.grant(ALICE, "hangup", "prod")
    sid = bot.fake_twilio.add_call(call_sid(1))
    return bot.slack.command_body(f"hangup prod:{sid}")


def test_forged_signature_is_refused_with_401_and_nothing_happens(bot: Bot) -> None:
    body = _prepare(bot)
    headers = bot.slack.sign(body)
    headers["X-Slack-Signature"] = "v0=" + "0" * 64
    response = bot.slack.post(body, headers, "application/x-www-form-urlencoded")
    assert response.status_code == 401
    assert bot.db.audit() == []
    assert bot.fake_twilio.requests == []


def test_body_changed_after_signing_is_refused(bot: Bot) -> None:
    body = _prepare(bot)
    headers = bot.slack.sign(body)
    response = bot.slack.post(body.replace("hangup", "cancel"), headers, "application/x-www-form-urlencoded")
    assert response.status_code == 401
    assert bot.db.audit() == []


def test_stale_timestamp_is_refused(bot: Bot) -> None:
    body = _prepare(bot)
    headers = bot.slack.sign(body, timestamp=int(time.time()) - 6 * 60)
    response = bot.slack.post(body, headers, "application/x-www-form-urlencoded")
    assert response.status_code == 401
    assert bot.db.audit() == []
    assert bot.fake_twilio.requests == []


def test_missing_signature_headers_are_refused(bot: Bot) -> None:
    body = _prepare(bot)
    response = bot.slack.post(body, {}, "application/x-www-form-urlencoded")
    assert response.status_code == 401
    assert bot.db.audit() == []


def test_healthz_answers_ok(bot: Bot) -> None:
    response = bot.slack.http.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
