"""Closing the loop (issue 15): after an action callbot reads the call back until the provider shows
what the action should produce, records it as a chain entry on the attempt's audit row, and updates
the person's message. `unknown` outcomes are read back too, right away and after a restart."""

from __future__ import annotations

import re
import signal
from datetime import timedelta
from pathlib import Path

import pytest

from bot.db import chain
from tests.fakes.bandwidth import bw_call_id
from tests.fakes.bird import bird_call_id
from tests.fakes.server import Answer
from tests.fakes.slack import FakeSlack
from tests.fakes.twilio import ACCOUNT_SID, FakeTwilio, call_sid
from tests.processes import spawn, wait_healthy
from tests.support.bots import ALICE, Bot, BotFactory, SlackDriver, reply_text, write_config
from tests.support.database import DbHelper, on_database
from tests.test_recovery import backdate

READ_BACK = {"prod": "read_back = 4", "bw": "read_back = 4", "bird": "read_back = 4"}


def call_path(sid: str) -> str:
    return f"/2010-04-01/Accounts/{ACCOUNT_SID}/Calls/{sid}.json"


def confirmed_message(bot: Bot, count: int = 2) -> dict[str, object]:
    """The outcome, rewritten in place once the call was read back (the `count`th response)."""
    return bot.fake_slack.wait_responses(count)[count - 1].json


def test_a_hangup_is_confirmed_by_read_back_and_the_message_updated(make_bot: BotFactory) -> None:
    bot = make_bot(READ_BACK)
    sid = bot.fake_twilio.add_call(call_sid(1))
    bot.db.grant(ALICE, "hangup", "prod")

    _, outcome = bot.slack.run(f"hangup prod:{sid}")
    assert "confirms" not in reply_text(outcome)
    confirmed = confirmed_message(bot)

    assert confirmed["replace_original"] is True
    text = reply_text(confirmed)
    assert f"Hung up prod:{sid}." in text  # the outcome, kept
    # Twilio gives the end to the second: the fake's call ended as the hang-up came.
    assert "Twilio confirms: the call ended (`completed`) within a second of the hang-up." in text
    post, read = bot.fake_twilio.requests
    assert (post.method, post.path, read.method, read.path) == ("POST", call_path(sid), "GET", call_path(sid))
    [row] = bot.db.audit()
    assert row["outcome"] == "succeeded"
    assert (row["confirmed_status"], row["confirmed_word"], row["confirmed_via"]) == ("completed", "completed", "read")
    # When the call ended, as Twilio's end_time says (to the second), not when callbot read it.
    assert not re.search(r"\.\d*[1-9]", str(row["confirmed_at"]))  # whole seconds: not the time of a read
    assert row["confirm_seq"] == 3
    report = on_database(bot.db.url, chain.verify)
    assert report.ok and report.entries == 3


def test_a_redirect_is_confirmed_live(make_bot: BotFactory) -> None:
    bot = make_bot(READ_BACK)
    sid = bot.fake_twilio.add_call(call_sid(2))
    bot.db.grant(ALICE, "redirect", "prod")

    bot.slack.run(f"redirect prod:{sid} https://example.com/hold.xml")

    text = reply_text(confirmed_message(bot))
    # Read once the provider had the time to act on it (SETTLE_AFTER): a read right after the 200
    # shows the call live whether or not it fetched the new URL.
    assert re.search(r"Twilio shows the call is still live \(`in-progress`\) \d+ s after the redirect\.", text)
    [post, read] = bot.fake_twilio.requests
    assert (read.at - post.at) >= 1.9
    [row] = bot.db.audit()
    assert (row["confirmed_status"], row["confirmed_via"]) == ("in-progress", "read")


def test_a_hangup_the_provider_does_not_show_ended_stays_unconfirmed(make_bot: BotFactory) -> None:
    bot = make_bot({"prod": "read_back = 1"})
    sid = bot.fake_twilio.add_call(call_sid(3))
    bot.db.grant(ALICE, "hangup", "prod")
    # Twilio says it took the hang-up, but the call goes on.
    bot.fake_twilio.script(Answer.json(200, {"sid": sid, "status": "in-progress"}))

    bot.slack.run(f"hangup prod:{sid}")

    text = reply_text(confirmed_message(bot))
    assert "Not confirmed yet: Twilio shows the call is still live (`in-progress`) 1 s after the hang-up." in text
    reads = [r for r in bot.fake_twilio.requests if r.method == "GET"]
    assert len(reads) >= 2  # read again with a backoff until the bound
    [row] = bot.db.audit()
    assert row["confirmed_status"] is None and row["confirm_seq"] is None


def test_an_unknown_hangup_is_resolved_by_read_back_and_the_person_told(make_bot: BotFactory) -> None:
    bot = make_bot(READ_BACK)
    sid = bot.fake_twilio.add_call(call_sid(4))
    bot.db.grant(ALICE, "hangup", "prod")
    bot.fake_twilio.slow_updates = 3  # the hang-up takes effect; its answer comes after the 2 s timeout

    _, outcome = bot.slack.run(f"hangup prod:{sid}")
    assert "did not answer in time" in reply_text(outcome)
    text = reply_text(confirmed_message(bot))

    assert "callbot could not see Twilio's answer, but Twilio shows the call ended (`completed`) at " in text
    [row] = bot.db.audit()
    assert row["outcome"] == "unknown"  # the honest outcome stays
    assert (row["confirmed_status"], row["confirmed_via"]) == ("completed", "read")
    assert on_database(bot.db.url, chain.verify).ok


def test_read_back_off_sends_no_read(make_bot: BotFactory) -> None:
    bot = make_bot({"prod": "read_back = 0"})
    first, second = bot.fake_twilio.add_call(call_sid(5)), bot.fake_twilio.add_call(call_sid(8))
    bot.db.grant(ALICE, "hangup", "prod")

    bot.slack.run(f"hangup prod:{first}")
    bot.slack.run(f"hangup prod:{second}")  # the first's read-back would have come before this one's

    assert [r.method for r in bot.fake_twilio.requests] == ["POST", "POST"]
    assert len(bot.fake_slack.responses()) == 2
    assert all(row["confirm_seq"] is None for row in bot.db.audit())


def test_a_crashed_servers_pending_row_is_resolved_after_restart(
    env: dict[str, str], tmp_path: Path, db: DbHelper, fake_slack: FakeSlack, fake_twilio: FakeTwilio, unused_port: int
) -> None:
    config = write_config(tmp_path / "callbot.toml", fake_twilio.url, read_back=4)
    env = {**env, "PORT": str(unused_port), "CALLBOT_CONFIG": str(config)}
    url = f"http://127.0.0.1:{unused_port}"
    db.grant(ALICE, "hangup", "prod")
    sid = fake_twilio.add_call(call_sid(6))
    fake_twilio.script(Answer(200, b"{}", delay=30))  # still waiting when the process dies

    first = spawn(["serve", "--host", "127.0.0.1"], env, tmp_path)
    try:
        wait_healthy(url, first)
        assert SlackDriver(url, fake_slack).command(f"hangup prod:{sid}").status_code == 200
        fake_twilio.wait_for(lambda reqs: any(r.method == "POST" for r in reqs))
        first.send_signal(signal.SIGKILL)
        first.wait(10)
    finally:
        if first.poll() is None:
            first.kill()
        first.communicate()

    fake_twilio.calls[sid] = "completed"  # the hang-up did reach Twilio
    backdate(db, sid, timedelta(minutes=5))
    second = spawn(["serve", "--host", "127.0.0.1"], env, tmp_path)
    try:
        wait_healthy(url, second)
        [told] = fake_slack.wait_responses(1)
    finally:
        second.terminate()
        second.communicate(timeout=20)

    text = told.json["text"]
    assert f"callbot stopped before it heard back about `hangup prod:{sid}`" in text
    assert "but Twilio shows the call ended (`completed`) at " in text
    [row] = db.audit()
    assert row["outcome"] == "unknown"
    assert (row["confirmed_status"], row["confirmed_via"]) == ("completed", "read")


def test_a_bulk_hangup_confirms_each_call_with_one_listing_after_the_batch(make_bot: BotFactory) -> None:
    from tests.test_hangup_all import FRAUD, Harness, fraud_calls, named

    bot = make_bot(READ_BACK)
    harness = Harness(bot.slack, bot.fake_slack, bot.fake_twilio, bot.db)
    fraud = fraud_calls(bot.fake_twilio, 12)
    stubborn = fraud[3]
    # Twilio takes this hang-up but the call goes on: the listing after the batch still shows it.
    bot.fake_twilio.refusing[stubborn] = Answer.json(200, {"sid": stubborn, "status": "in-progress"})
    bot.db.grant(ALICE, "bulk", "prod")

    _, prompt = harness.ask(f"hangup-all prod to={FRAUD}")
    harness.click(named(prompt, "Hang up 12 calls"))
    summary = harness.wait_update("Batch #1 finished")

    assert "Twilio confirms 11 of these calls ended (one listing of live calls after the batch)." in reply_text(summary)
    assert "1 still show as live: `/call list prod`." in reply_text(summary)
    # One listing (Twilio lists each live status in turn), no read per call.
    assert [r for r in bot.fake_twilio.requests if r.method == "GET" and "/Calls/" in r.path] == []
    last_hangup = max(r.at for r in bot.fake_twilio.updates())
    assert len([r for r in bot.fake_twilio.lists() if r.at > last_hangup]) == 3
    calls = {r["call_id"]: r for r in harness.rows("hangup")}
    assert calls[stubborn]["confirm_seq"] is None
    ended = [r for sid, r in calls.items() if sid != stubborn]
    assert all((r["confirmed_status"], r["confirmed_via"]) == ("completed", "listing") for r in ended)
    [batch_row] = harness.rows("hangup-all")
    # The batch's row was complete before the listing (after the batch ends, the sweep no longer
    # spares a pending batch row): its closing entry comes before the calls' confirmations.
    assert batch_row["outcome"] == "succeeded"
    assert batch_row["outcome_seq"] < min(r["confirm_seq"] for r in ended)
    assert on_database(bot.db.url, chain.verify).ok


def test_callbot_run_reads_back_before_it_prints(
    env: dict[str, str], tmp_path: Path, db: DbHelper, fake_twilio: FakeTwilio
) -> None:
    from tests.processes import callbot

    config = write_config(tmp_path / "callbot.toml", fake_twilio.url, read_back=4)
    env = {**env, "CALLBOT_CONFIG": str(config)}
    db.grant("U012AB3CD", "hangup", "prod")
    sid = fake_twilio.add_call(call_sid(7))

    ran = callbot(["run", "--as", "U012AB3CD", f"hangup prod:{sid}"], env, tmp_path)

    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert f"Hung up prod:{sid}." in ran.stdout
    assert "Twilio confirms: the call ended (`completed`)" in ran.stdout
    assert [r.method for r in fake_twilio.requests] == ["POST", "GET"]
    assert db.audit()[0]["confirmed_via"] == "read"


@pytest.mark.parametrize("provider", ["bandwidth", "bird"])
def test_each_provider_confirms_with_its_own_end_time(make_bot: BotFactory, provider: str) -> None:
    bot = make_bot(READ_BACK)
    if provider == "bandwidth":
        account, name, fake = "bw", "Bandwidth", bot.fake_bandwidth
        call_id = fake.add_call(bw_call_id(5))
    else:
        account, name, fake = "bird", "Bird", bot.fake_bird
        call_id = fake.add_call(bird_call_id(5))
    bot.db.grant(ALICE, "hangup", account)

    bot.slack.run(f"hangup {account}:{call_id}")

    text = reply_text(confirmed_message(bot))
    assert re.search(rf"{name} confirms: the call ended \(`\w+`\) within a second of the hang-up\.", text), text
    [update, read] = fake.requests
    assert read.method == "GET" and read.path == update.path
    [row] = bot.db.audit()
    assert row["confirmed_via"] == "read" and row["confirmed_status"] == "completed"
    assert on_database(bot.db.url, chain.verify).ok
