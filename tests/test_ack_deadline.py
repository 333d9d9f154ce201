"""Ack in time, or do nothing: when the database holds a command past Slack's 3 s, the person is
told at once that nothing was sent, and nothing ever is (bot/slack/drive.py)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from sqlalchemy import text

from tests.fakes.twilio import call_sid
from tests.support.bots import ALICE, Bot, reply_text
from tests.support.database import DbHelper

pytestmark = pytest.mark.shared_bot


@contextmanager
def chain_held(db: DbHelper, seconds: float) -> Iterator[None]:
    """Another session holds the audit chain's head (as a stuck writer would) for `seconds`."""
    taken = threading.Event()

    def hold() -> None:
        with db.engine.connect() as conn, conn.begin():
            conn.execute(text("UPDATE audit_chain SET seq = seq"))
            taken.set()
            time.sleep(seconds)

    holder = threading.Thread(target=hold)
    holder.start()
    assert taken.wait(10)
    try:
        yield
    finally:
        holder.join()


def test_a_command_the_database_holds_past_the_deadline_is_never_sent(bot: Bot) -> None:
    sid = bot.fake_twilio.add_call(call_sid(71))
    bot.db.grant(ALICE, "hangup", "prod")

    with chain_held(bot.db, 4.0):
        ack = bot.slack.command(f"hangup prod:{sid}")
        assert ack.status_code == 200
        assert "could not answer within Slack's 3 seconds" in reply_text(ack.json())
        assert "nothing was sent" in reply_text(ack.json())

    [later] = [r.json for r in bot.fake_slack.wait_responses(1)]
    assert f"Not sent: hangup prod:{sid}" in reply_text(later)
    assert "Slack stopped waiting" in reply_text(later)
    [row] = bot.db.wait_audit(lambda rows: rows and rows[0]["outcome"] != "pending")
    assert row["outcome"] == "expired"
    assert "nothing was sent" in row["error_message"]
    assert bot.fake_twilio.updates() == []
    # Later commands run as usual once the database answers again.
    _ack, outcome = bot.slack.run(f"hangup prod:{sid}")
    assert f"Hung up prod:{sid}" in reply_text(outcome)
    assert len(bot.fake_twilio.updates()) == 1
