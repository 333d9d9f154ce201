"""`/call audit`: your own rows, or everyone's with the `audit` action; filters enforced in the query."""

from __future__ import annotations

import pytest

from tests.fakes.twilio import call_sid
from tests.support.bots import ALICE, BOB, Bot, reply_text

# The worker's one default bot, lent to each test (tests/support/bots.py SharedBot).
pytestmark = pytest.mark.shared_bot


def test_audit_shows_only_own_rows_without_the_audit_action(bot: Bot) -> None:
    bot.slack.command(f"hangup prod:{call_sid(1)}")  # alice, denied
    bot.slack.command(f"redirect prod:{call_sid(2)} https://example.com/x", user=BOB)  # bob, denied
    mine = reply_text(bot.slack.command("audit").json())
    assert "(yours)" in mine
    assert f"*hangup* `prod:{call_sid(1)}` ⛔ denied" in mine
    assert call_sid(2) not in mine
    refused = reply_text(bot.slack.command(f"audit user=<@{BOB}>").json())
    assert "reading others' needs `audit`" in refused


def test_audit_holders_see_everyone_and_can_filter(bot: Bot) -> None:
    bot.db.grant(ALICE, "audit", "*")
    bot.db.grant(BOB, "hangup", "prod")
    sid = bot.fake_twilio.add_call(call_sid(3))
    bot.slack.run(f"hangup prod:{sid}", user=BOB)
    bot.slack.command(f"twiml prod:{call_sid(4)} '&lt;Response/&gt;'", user=BOB)  # denied
    everyone = reply_text(bot.slack.command("audit").json())
    assert "everyone's" in everyone and f"<@{BOB}> *hangup* `prod:{sid}`" in everyone and "succeeded" in everyone
    denied_only = reply_text(bot.slack.command("audit outcome=denied").json())
    assert "twiml" in denied_only and f"`prod:{sid}`" not in denied_only
    by_call = reply_text(bot.slack.command(f"audit call={sid} since=1h").json())
    assert f"*hangup* `prod:{sid}`" in by_call and "twiml" not in by_call
    nothing = reply_text(bot.slack.command("audit since=2099-01-01").json())
    assert "No audited attempts match" in nothing


def test_audit_lists_ten_a_page_newest_first(bot: Bot) -> None:
    for n in range(23):
        bot.slack.command(f"hangup prod:{call_sid(100 + n)}")
    text = reply_text(bot.slack.command("audit").json())
    assert "10 attempts, newest first" in text
    assert call_sid(122) in text and call_sid(113) in text and call_sid(112) not in text
    assert text.index(call_sid(122)) < text.index(call_sid(121))
