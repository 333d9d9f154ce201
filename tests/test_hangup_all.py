"""Bulk hang-up end to end: `/call hangup-all` through signed slash commands and button clicks,
against the fake Twilio (exact requests, every hang-up counted) and the fake Slack (the progress
message posted once, then updated in place). Covers the count and its confirmation, failures,
the provider's 429s, Cancel, an interrupted batch and `/call batch ID resume`, permission, and
two-person approval, with the audit rows each leaves."""

from __future__ import annotations

import asyncio
import base64
import json
import re
import signal
import time
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import pytest

from bot.config import Settings
from bot.db import batches
from bot.db.models import BatchItemRow, BatchRow, utcnow
from bot.db.session import Database
from bot.runtime import Runtime
from bot.service.core import Invocation
from tests.fakes import bandwidth as bw
from tests.fakes import bird
from tests.fakes.bandwidth import bw_call_id
from tests.fakes.bird import bird_call_id
from tests.fakes.slack import FakeSlack, dm_channel
from tests.fakes.twilio import AUTH_TOKEN, CALLS_PATH, FakeTwilio, call_sid, twilio_error
from tests.processes import callbot, spawn, wait_healthy
from tests.support.bots import ALICE, BOB, PAYLOADS, Bot, BotFactory, SlackDriver, reply_text, write_config
from tests.support.database import DbHelper, on_database
from tests.test_observability import scrape, value

CHANNEL = "C2147483705"  # the channel of the slash-command sample
FRAUD = "+88213000777"  # the premium destination of the simulated toll fraud
OTHER = "+442071838750"
APPROVERS = "C0APPROVE1"
BW_BASIC = "Basic " + base64.b64encode(f"{bw.USERNAME}:{bw.PASSWORD}".encode()).decode()


class Harness:
    """The bot under uvicorn with a given callbot.toml extra, and helpers to click like Slack."""

    def __init__(self, slack: SlackDriver, fake_slack: FakeSlack, twilio: FakeTwilio, db: DbHelper) -> None:
        self.slack, self.fake_slack, self.twilio, self.db = slack, fake_slack, twilio, db

    def ask(self, text: str, user: str = ALICE) -> tuple[dict[str, Any], dict[str, Any]]:
        """The acknowledgement, and the answer: on response_url when the command went on after
        acknowledging (counting, a batch), else the acknowledgement itself (refused at once)."""
        before = len(self.fake_slack.responses())
        response = self.slack.command(text, user)
        assert response.status_code == 200, response.text
        ack = response.json()
        if not any(word in reply_text(ack) for word in ("Counting", "Looking up")):
            return ack, ack
        return ack, self.fake_slack.wait_responses(before + 1)[before].json

    def click(self, button: dict[str, Any], user: str = ALICE, name: str = "click") -> None:
        payload = json.loads((PAYLOADS / "block_actions.json").read_text())
        payload["user"] = {"id": user, "username": user.lower(), "name": user.lower(), "team_id": "T0001"}
        payload["response_url"] = self.fake_slack.response_url(name)
        payload["trigger_id"] = f"12321423423.333649436676.{abs(hash((button['action_id'], time.time()))):x}"
        payload["actions"] = [{**button, "block_id": "b", "type": "button", "action_ts": "1.2"}]
        assert self.slack.interact(payload).status_code == 200

    def updates(self) -> list[dict[str, Any]]:
        return self.fake_slack.calls("chat.update")

    def wait_update(self, text: str, timeout: float = 20.0) -> dict[str, Any]:
        """The first chat.update whose text contains `text`."""

        def found(requests: list[Any]) -> bool:
            return any(text in reply_text(u) for u in self.updates())

        self.fake_slack.wait_for(lambda requests: found(requests), timeout)
        return next(u for u in self.updates() if text in reply_text(u))

    def rows(self, action: str) -> list[dict[str, Any]]:
        return [r for r in self.db.audit() if r["action"] == action]


@pytest.fixture
def start(make_bot: BotFactory) -> Any:
    """`start(extra_toml, **server_options)`: the bot with one Twilio account, prod, with those settings."""

    def launch(extra: str = "", **options: Any) -> Harness:
        bot = make_bot({"prod": extra}, **options)
        return Harness(bot.slack, bot.fake_slack, bot.fake_twilio, bot.db)

    return launch


def buttons(message: dict[str, Any]) -> list[dict[str, Any]]:
    return [e for b in message.get("blocks") or [] if b["type"] == "actions" for e in b["elements"]]


def named(message: dict[str, Any], label: str) -> dict[str, Any]:
    [button] = [b for b in buttons(message) if b["text"]["text"] == label]
    return button


def fraud_calls(twilio: FakeTwilio, count: int, first: int = 1) -> list[str]:
    return [twilio.add_call(call_sid(n), to_number=FRAUD) for n in range(first, first + count)]


def no_full_number(text: str) -> None:
    assert FRAUD not in text and FRAUD[1:] not in text, text


# -- the count, the confirmation, the run --------------------------------------------------------


def test_hangup_all_counts_asks_then_ends_each_matching_call_once(start: Any) -> None:
    bot = start()
    fraud = fraud_calls(bot.twilio, 25)
    bystanders = [bot.twilio.add_call(call_sid(n), to_number=OTHER) for n in range(100, 105)]
    bot.db.grant(ALICE, "bulk", "prod")

    ack, prompt = bot.ask(f'hangup-all prod to={FRAUD} reason="toll fraud"')
    assert "Counting the matching live calls" in reply_text(ack)
    assert "Hang up 25 calls on `prod`?" in reply_text(prompt)
    assert [b["text"]["text"] for b in buttons(prompt)] == ["Hang up 25 calls", "Cancel"]
    assert bot.twilio.updates() == []  # nothing ended before the click
    [listing] = bot.twilio.lists()[:1]
    assert parse_qs(listing.query)["To"] == [FRAUD]

    before = len(bot.fake_slack.responses())
    metrics_before = scrape(bot.slack.base_url)
    bot.click(named(prompt, "Hang up 25 calls"))
    summary = bot.wait_update("Batch #1 finished")
    assert "25 / 25 ended, 0 failed" in reply_text(summary)
    listing_again = bot.fake_slack.wait_responses(before + 1)[before].json
    assert "Listing the matching calls again" in reply_text(listing_again) and listing_again["replace_original"]

    # One channel message, then updates of that message only.
    [posted] = bot.fake_slack.calls("chat.postMessage")
    assert posted["channel"] == CHANNEL and "Hanging up calls on `prod`" in reply_text(posted)
    assert [b["text"]["text"] for b in buttons(posted)] == ["Cancel"]
    assert {(u["channel"], u["ts"]) for u in bot.updates()} == {(CHANNEL, "1700000000.000100")}
    for message in [posted, *bot.updates()]:
        no_full_number(json.dumps(message))

    # Every matching call ended exactly once, the others untouched; each request is Twilio's own.
    assert {sid: bot.twilio.hangups[sid] for sid in fraud} == dict.fromkeys(fraud, 1)
    assert all(bot.twilio.hangups[sid] == 0 for sid in bystanders)
    for update in bot.twilio.updates():
        assert update.path.startswith(f"{CALLS_PATH}/CA") and update.form_pairs == [("Status", "completed")]

    # The audit: the count, the batch's own row, and one row per call linked to the batch.
    [count] = bot.rows("calls.list")
    assert count["outcome"] == "succeeded" and count["request"]["for"] == "hangup-all"
    [batch_row] = bot.rows("hangup-all")
    assert (batch_row["outcome"], batch_row["source"], batch_row["user_id"]) == ("succeeded", "button", ALICE)
    assert batch_row["result"]["total"] == 25 and batch_row["result"]["ended"] == 25
    assert batch_row["request"]["reason"] == "toll fraud"
    no_full_number(json.dumps(batch_row, default=str))
    calls = bot.rows("hangup")
    assert sorted(r["call_id"] for r in calls) == sorted(fraud)
    assert all(r["source"] == "bulk" and r["request"]["batch"] == 1 and r["outcome"] == "succeeded" for r in calls)
    assert all(r["completed_at"] is not None for r in calls)

    # Operators see each call once in /metrics (the group commits report each row once).
    bot.db.wait_audit(lambda rows: all(r["outcome"] != "pending" for r in rows))
    metrics_after = scrape(bot.slack.base_url)

    def delta(name: str, **labels: str) -> float:
        return value(metrics_after, name, **labels) - value(metrics_before, name, **labels)

    assert delta("callbot_bulk_calls_ended_total") == 25
    assert delta("callbot_attempts_total", action="hangup", outcome="succeeded", provider="twilio") == 25
    assert delta("callbot_attempts_total", action="hangup-all", outcome="succeeded", provider="twilio") == 1


def test_the_confirmed_count_is_never_exceeded_and_max_caps_it(start: Any) -> None:
    bot = start()
    fraud_calls(bot.twilio, 12)
    bot.db.grant(ALICE, "bulk", "prod")
    _, prompt = bot.ask(f"hangup-all prod to={FRAUD} max=10")
    assert "Hang up 10 calls on `prod`?" in reply_text(prompt)
    assert "`max=10` ends the first 10 listed" in reply_text(prompt)
    fraud_calls(bot.twilio, 5, first=50)  # the dialler keeps going while the person reads
    bot.click(named(prompt, "Hang up 10 calls"))
    bot.wait_update("Batch #1 finished")
    assert sum(bot.twilio.hangups.values()) == 10


def test_nothing_matching_asks_nothing(start: Any) -> None:
    bot = start()
    bot.twilio.add_call(call_sid(1), to_number=OTHER)
    bot.db.grant(ALICE, "bulk", "prod")
    _, reply = bot.ask(f"hangup-all prod to={FRAUD} status=ringing")
    assert "No live calls on `prod`" in reply_text(reply) and "nothing to hang up" in reply_text(reply)
    assert buttons(reply) == []
    assert parse_qs(bot.twilio.lists()[0].query)["Status"] == ["ringing"]


def test_cancel_on_the_count_sends_nothing(start: Any) -> None:
    bot = start()
    fraud_calls(bot.twilio, 3)
    bot.db.grant(ALICE, "bulk", "prod")
    _, prompt = bot.ask("hangup-all prod")
    before = len(bot.fake_slack.responses())
    bot.click(named(prompt, "Cancel"))
    dropped = bot.fake_slack.wait_responses(before + 1)[before].json
    assert "nothing was sent" in reply_text(dropped).lower()
    bot.click(named(prompt, "Hang up 3 calls"))  # the spent confirmation does nothing
    stale = bot.fake_slack.wait_responses(before + 2)[before + 1].json
    assert "expired or was already used" in reply_text(stale)
    assert bot.twilio.updates() == [] and bot.rows("hangup-all") == []


def test_failures_are_listed_and_audited_per_call(start: Any) -> None:
    bot = start()
    fraud = fraud_calls(bot.twilio, 8)
    bot.twilio.refusing[fraud[2]] = twilio_error(400, 21220, "Call is not in-progress. Cannot redirect.")
    bot.twilio.refusing[fraud[5]] = twilio_error(404, 20404, "The requested resource was not found")
    bot.db.grant(ALICE, "bulk", "prod")
    _, prompt = bot.ask("hangup-all prod")
    bot.click(named(prompt, "Hang up 8 calls"))
    summary = reply_text(bot.wait_update("Batch #1 finished"))
    assert "6 / 8 ended, 2 failed" in summary and "These calls could not be hung up" in summary
    assert f"`{fraud[2]}`" in summary and f"`{fraud[5]}`" in summary
    [batch_row] = bot.rows("hangup-all")
    assert batch_row["outcome"] == "failed" and "2 of 8 calls" in batch_row["error_message"]
    failed = {r["call_id"]: r for r in bot.rows("hangup") if r["outcome"] != "succeeded"}
    assert set(failed) == {fraud[2], fraud[5]}
    assert failed[fraud[2]]["error_code"] == "21220"
    assert all(bot.twilio.hangups[sid] == 1 for sid in fraud)


def test_calls_that_end_on_their_own_meanwhile_count_as_ended_not_failed(start: Any) -> None:
    bot = start()
    fraud = fraud_calls(bot.twilio, 6)
    bot.twilio.ending = {fraud[1]: 2, fraud[4]: 2}  # listed by the count and by the run, then gone
    bot.db.grant(ALICE, "bulk", "prod")
    _, prompt = bot.ask("hangup-all prod")
    bot.click(named(prompt, "Hang up 6 calls"))
    summary = reply_text(bot.wait_update("Batch #1 finished"))
    assert "6 / 6 ended (2 had already ended), 0 failed" in summary and summary.startswith(":white_check_mark:")
    rows = {r["call_id"]: r for r in bot.rows("hangup")}
    # Their rows keep what the provider answered; a read confirmed the call had ended.
    for sid in (fraud[1], fraud[4]):
        assert rows[sid]["outcome"] == "failed" and rows[sid]["error_code"] == "21220"
        assert rows[sid]["result"] == {"already_ended": True}
    reads = [r.path for r in bot.twilio.requests if r.method == "GET" and r.path != f"{CALLS_PATH}.json"]
    assert sorted(reads) == sorted(f"{CALLS_PATH}/{sid}.json" for sid in (fraud[1], fraud[4]))
    [batch_row] = bot.rows("hangup-all")
    assert batch_row["outcome"] == "succeeded" and batch_row["result"]["already_ended"] == 2


def test_429s_slow_the_whole_batch_and_every_call_still_ends_once(start: Any) -> None:
    bot = start("bulk_concurrency = 8\n")
    bot.twilio.max_concurrency = 3
    bot.twilio.retry_after = 0.2
    bot.twilio.latency = 0.05
    fraud = fraud_calls(bot.twilio, 60)
    bot.db.grant(ALICE, "bulk", "prod")
    _, prompt = bot.ask("hangup-all prod")
    bot.click(named(prompt, "Hang up 60 calls"))
    summary = reply_text(bot.wait_update("Batch #1 finished", timeout=60))
    assert "60 / 60 ended, 0 failed" in summary
    assert bot.twilio.rate_limited > 0  # the provider did push back…
    assert {bot.twilio.hangups[sid] for sid in fraud} == {1}  # …and nothing was lost or doubled
    assert bot.twilio.peak_concurrency <= 3
    assert all(r["outcome"] == "succeeded" for r in bot.rows("hangup"))


def test_progress_goes_to_a_direct_message_when_the_bot_is_not_in_the_channel(start: Any) -> None:
    bot = start()
    fraud_calls(bot.twilio, 2)
    bot.fake_slack.closed_channels.add(CHANNEL)
    bot.db.grant(ALICE, "bulk", "prod")
    _, prompt = bot.ask("hangup-all prod")
    bot.click(named(prompt, "Hang up 2 calls"))
    summary = bot.wait_update("Batch #1 finished")
    assert [p["channel"] for p in bot.fake_slack.calls("chat.postMessage")] == [CHANNEL, ALICE]
    assert summary["channel"] == dm_channel(ALICE)


# -- Cancel ---------------------------------------------------------------------------------------


def test_cancel_stops_the_batch_between_requests(start: Any) -> None:
    bot = start("bulk_concurrency = 2\n")
    bot.twilio.latency = 0.25
    fraud = fraud_calls(bot.twilio, 40)
    bot.db.grant(ALICE, "bulk", "prod")
    bot.db.grant(BOB, "hangup", "prod")
    _, prompt = bot.ask("hangup-all prod")
    bot.click(named(prompt, "Hang up 40 calls"))
    bot.fake_slack.wait_for(lambda reqs: any(r.path == "/api/chat.postMessage" for r in reqs))
    [posted] = bot.fake_slack.calls("chat.postMessage")
    cancel = named(posted, "Cancel")

    before = len(bot.fake_slack.responses())
    bot.click(cancel, user=BOB, name="bob")  # hangup alone does not let Bob stop Alice's batch
    refused = bot.fake_slack.wait_responses(before + 1)[before].json
    assert "Not allowed" in reply_text(refused) and refused["replace_original"] is False

    bot.click(cancel, name="alice")
    stopping = bot.fake_slack.wait_responses(before + 2)[before + 1].json
    assert "Stopping batch #1" in reply_text(stopping)
    summary = reply_text(bot.wait_update("Batch #1 cancelled"))
    ended = sum(bot.twilio.hangups.values())
    assert 0 < ended < 40 and f"{ended} / 40 ended" in summary
    assert f"{40 - ended} calls were not touched" in summary
    assert all(bot.twilio.hangups[sid] <= 1 for sid in fraud)
    [batch_row] = bot.rows("hangup-all")
    assert batch_row["outcome"] == "cancelled" and batch_row["result"]["not_touched"] == 40 - ended
    outcomes = {r["user_id"]: r["outcome"] for r in bot.rows("batch.cancel")}
    assert outcomes == {BOB: "denied", ALICE: "succeeded"}
    # Calls that were waiting for a free slot when Cancel came were not sent: audited as cancelled.
    calls = bot.rows("hangup")
    assert sum(r["outcome"] == "succeeded" for r in calls) == ended
    assert all(r["outcome"] == "succeeded" or "not sent" in r["error_message"] for r in calls)

    # The count went down in the one message, at most once a second (the summary included).
    stamps = [r.at for r in bot.fake_slack.requests if r.path == "/api/chat.update"]
    # Counted, not spaced: one update delayed on a loaded machine arrives close to the next, but
    # sending once a second still cannot fit more than one per second of the span (and one more).
    assert 2 <= len(stamps) <= (stamps[-1] - stamps[0]) + 2
    progress = [reply_text(u) for u in bot.updates() if "Hanging up calls" in reply_text(u)]
    assert progress and all(re.search(r"\d+ / 40 ended, 0 failed, ~\d+ s left", text) for text in progress)


# -- an interrupted batch and resume -------------------------------------------------------------


def _leave_interrupted(db: DbHelper, calls: list[str], ended: int, sending: int) -> int:
    """What a process killed mid-batch leaves: a running batch with a stale heartbeat, its first
    `ended` items done, the next `sending` in flight, the rest to do (tests/test_batches.py kills
    a real process to show this is what it leaves)."""

    async def go(database: Database) -> int:
        batch = await batches.create(
            database,
            "T0001",
            account="prod",
            action="hangup",
            requested_by=ALICE,
            channel_id=CHANNEL,
            filter={"to": "+88•••••777"},
            reason="toll fraud",
            call_ids=calls,
        )
        await batches.set_message(database, batch.id, CHANNEL, "1700000000.000100")
        async with database.session() as session:
            for index, item in enumerate(await batches.items(database, batch.id)):
                if index < ended + sending:
                    stored = await session.get(BatchItemRow, item.id)
                    assert stored is not None
                    stored.state = batches.ENDED if index < ended else batches.SENDING
            row = await session.get(BatchRow, batch.id)
            assert row is not None
            row.heartbeat_at = utcnow() - timedelta(minutes=5)
            row.ended = ended
        return batch.id

    return on_database(db.url, go)


def test_an_interrupted_batch_is_announced_and_resume_finishes_only_what_is_left(start: Any) -> None:
    bot = start(batch_sweep_every=0.2)
    fraud = fraud_calls(bot.twilio, 10)
    # Calls 0-3 were ended by the dead process; 4 was in flight and the provider did end it.
    for sid in fraud[:5]:
        bot.twilio.calls[sid] = "completed"
    batch_id = _leave_interrupted(bot.db, fraud, ended=4, sending=1)

    notice = bot.wait_update(f"Batch #{batch_id} on `prod` was interrupted")
    assert "4 / 10 ended" in reply_text(notice) and [b["text"]["text"] for b in buttons(notice)] == ["Resume"]

    bot.db.grant(ALICE, "bulk", "prod")
    before = len(bot.fake_slack.responses())
    bot.click(named(notice, "Resume"))
    summary = reply_text(bot.wait_update(f"Batch #{batch_id} finished"))
    assert "10 / 10 ended, 0 failed" in summary
    # Untouched: the four ended before; the one in doubt was read first (GET) and found ended.
    assert all(bot.twilio.hangups[sid] == 0 for sid in fraud[:5])
    assert all(bot.twilio.hangups[sid] == 1 for sid in fraud[5:])
    reads = [r.path for r in bot.twilio.requests if r.method == "GET" and r.path != f"{CALLS_PATH}.json"]
    assert reads == [f"{CALLS_PATH}/{fraud[4]}.json"]
    [resumed] = bot.rows("batch.resume")
    assert (resumed["outcome"], resumed["user_id"]) == ("succeeded", ALICE)
    assert resumed["result"]["ended"] == 10
    [resuming] = [r.json for r in bot.fake_slack.responses()[before:]]
    assert f"Resuming batch #{batch_id} on `prod`: 6 of 10 calls left" in reply_text(resuming)
    restarted = bot.fake_slack.calls("chat.postMessage")[-1]  # a new progress message, counting from 4
    assert "4 / 10 ended, 0 failed" in reply_text(restarted) and "Resumed by" in reply_text(restarted)

    # Twice is once: the batch is finished now.
    _, again = bot.ask(f"batch {batch_id} resume")
    assert "only an interrupted batch can resume" in reply_text(again)


def test_resume_needs_bulk_and_show_tells_the_state(start: Any) -> None:
    bot = start(batch_sweep_every=0.2)
    fraud = fraud_calls(bot.twilio, 3)
    batch_id = _leave_interrupted(bot.db, fraud, ended=1, sending=0)
    bot.wait_update("was interrupted")
    bot.db.grant(BOB, "hangup", "prod")
    _, refused = bot.ask(f"batch {batch_id} resume", user=BOB)
    assert "Not allowed" in reply_text(refused)
    assert sum(bot.twilio.hangups.values()) == 0
    bot.db.grant(BOB, "bulk", "prod")
    _, shown = bot.ask(f"batch {batch_id}", user=BOB)
    assert f"Batch #{batch_id} on `prod`" in reply_text(shown) and "interrupted" in reply_text(shown)
    assert "1 / 3 ended" in reply_text(shown)
    _, unknown = bot.ask("batch 999 resume", user=BOB)
    assert "There is no batch #999" in reply_text(unknown)


def test_a_batch_does_not_resume_on_an_account_no_longer_shared_with_its_workspace(start: Any) -> None:
    # Since the batch ran, callbot.toml shared prod with another workspace only.
    bot = start('workspaces = ["T0OTHER01"]', batch_sweep_every=0.2)
    fraud = fraud_calls(bot.twilio, 3)
    batch_id = _leave_interrupted(bot.db, fraud, ended=1, sending=0)
    bot.db.grant(ALICE, "bulk", "*")
    _, refused = bot.ask(f"batch {batch_id} resume")
    assert "is no longer a configured account: the batch cannot resume there" in reply_text(refused)
    assert sum(bot.twilio.hangups.values()) == 0
    [row] = bot.rows("batch.resume")
    assert row["outcome"] == "invalid"


# -- permission and approval ---------------------------------------------------------------------


def test_hangup_all_needs_bulk_and_the_refusal_is_audited(start: Any) -> None:
    bot = start()
    fraud_calls(bot.twilio, 3)
    bot.db.grant(ALICE, "operator", "prod")  # every single-call action, but not bulk
    _, reply = bot.ask(f"hangup-all prod to={FRAUD}")
    assert "Not allowed" in reply_text(reply) and "needs the `bulk` action" in reply_text(reply)
    assert bot.twilio.requests == []  # not even counted
    [row] = bot.rows("hangup-all")
    assert (row["outcome"], row["decision"]) == ("denied", "denied")
    no_full_number(json.dumps(row, default=str))


def test_bulk_with_approval_runs_once_someone_else_approves(start: Any) -> None:
    bot = start(f'approval = ["bulk"]\napprovers_channel = "{APPROVERS}"\n')
    fraud = fraud_calls(bot.twilio, 6)
    bot.db.grant(ALICE, "bulk", "prod")
    bot.db.grant(BOB, "supervisor", "prod")
    _, prompt = bot.ask(f'hangup-all prod to={FRAUD} reason="fraud wave"')
    before = len(bot.fake_slack.responses())
    bot.click(named(prompt, "Hang up 6 calls"))
    waiting = bot.fake_slack.wait_responses(before + 1)[before].json
    assert "Waiting for approval #1: hangup-all 6 calls on `prod`" in reply_text(waiting)
    bot.fake_slack.wait_for(lambda reqs: any(r.path == "/api/chat.postMessage" for r in reqs))
    [request] = bot.fake_slack.calls("chat.postMessage")
    assert request["channel"] == APPROVERS and "hang up at most 6 live calls on prod" in reply_text(request)
    no_full_number(json.dumps(request))
    assert bot.twilio.updates() == []

    bot.click(named(request, "Approve"), name="self")  # the requester cannot approve
    bot.fake_slack.wait_responses(before + 2)
    assert bot.twilio.updates() == []

    bot.click(named(request, "Approve"), user=BOB, name="bob")
    bot.wait_update("Batch #1 finished")
    assert {bot.twilio.hangups[sid] for sid in fraud} == {1}
    posts = bot.fake_slack.calls("chat.postMessage")
    assert [p["channel"] for p in posts] == [APPROVERS, CHANNEL]  # progress in the requester's channel
    executed = bot.wait_update("Approved #1 by")
    assert executed["channel"] == APPROVERS and "succeeded" in reply_text(executed)
    [batch_row] = [r for r in bot.rows("hangup-all") if r["outcome"] == "succeeded"]
    assert batch_row["source"] == "approval" and f"approved by {BOB}" in batch_row["decision_basis"]
    assert bot.rows("approval.approve")[-1]["outcome"] == "succeeded"


def test_a_bulk_batch_does_not_use_up_the_persons_rate_limit(start: Any) -> None:
    bot = start("max_actions_per_minute = 5\n")
    fraud = fraud_calls(bot.twilio, 12)
    other = bot.twilio.add_call(call_sid(500), to_number=OTHER)
    bot.db.grant(ALICE, "supervisor", "prod")
    _, prompt = bot.ask(f"hangup-all prod to={FRAUD}")
    bot.click(named(prompt, "Hang up 12 calls"))
    bot.wait_update("Batch #1 finished")
    assert {bot.twilio.hangups[sid] for sid in fraud} == {1}
    _, outcome = bot.slack.run(f"hangup prod:{other}")
    assert "Hung up" in reply_text(outcome)


def test_bad_hangup_all_input_gets_clear_errors(start: Any) -> None:
    bot = start()
    bot.db.grant(ALICE, "bulk", "prod")
    cases = {
        "hangup-all": "`hangup-all` needs ACCOUNT",
        "hangup-all nowhere": "is not a configured account",
        "hangup-all prod status=completed": "completed",
        "hangup-all prod max=0": "is not a number of calls from 1 to 10,000",
        "hangup-all prod max=lots": "is not a number of calls",
        'hangup-all prod reason=""': "is empty",
        "hangup-all prod colour=red": "is not an option of `hangup-all`",
        "batch twelve": "is not a batch number",
        "batch 3 restart": "is not something `batch` does",
    }
    for text, expected in cases.items():
        _, reply = bot.ask(text)
        assert expected in reply_text(reply), (text, reply_text(reply))
    assert bot.twilio.requests == []


# -- the shell, and the pending-row sweep ----------------------------------------------------------


def test_the_shell_refuses_hangup_all_and_finishes_an_interrupted_batch(
    env: dict[str, str], tmp_path: Path, db: DbHelper, fake_twilio: FakeTwilio
) -> None:
    fraud = fraud_calls(fake_twilio, 4)
    db.grant("U012AB3CD", "bulk", "prod")
    refused = callbot(["run", "--as", "U012AB3CD", "hangup-all prod"], env, tmp_path)
    assert refused.returncode != 0 and "runs from Slack" in refused.stdout + refused.stderr
    assert fake_twilio.requests == []

    batch_id = _leave_interrupted(db, fraud, ended=1, sending=0)  # its heartbeat stopped 5 min ago
    fake_twilio.calls[fraud[0]] = "completed"
    resumed = callbot(["run", "--as", "U012AB3CD", f"batch {batch_id} resume"], env, tmp_path)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert f"Batch #{batch_id} finished on `prod`: 4 / 4 ended, 0 failed" in resumed.stdout
    assert [fake_twilio.hangups[sid] for sid in fraud] == [0, 1, 1, 1]
    assert {(r["action"], r["source"]) for r in db.audit()} == {
        ("hangup-all", "cli"),
        ("batch.resume", "cli"),
        ("hangup", "bulk"),
    }


def test_a_running_batch_keeps_its_audit_row_pending_until_it_is_interrupted(env: dict[str, str], db: DbHelper) -> None:
    async def go() -> tuple[int, int, str, str]:
        runtime = await Runtime.start(Settings.from_env(env))
        try:
            service = runtime.service
            inv = Invocation("slash", ALICE, "hangup-all prod", team_id="T0001", channel_id=CHANNEL)
            row = await service.recorder.record(inv, outcome="pending", action="hangup-all", account="prod")
            batch = await batches.create(
                runtime.db,
                "T0001",
                account="prod",
                action="hangup",
                requested_by=ALICE,
                channel_id=CHANNEL,
                filter={},
                reason=None,
                call_ids=[call_sid(1)],
                audit_id=row.id,
            )
            while_running = len(await service.recover_pending(0))
            running_outcome = db.audit()[0]["outcome"]
            async with runtime.db.session() as session:
                stored = await session.get(BatchRow, batch.id)
                assert stored is not None
                stored.heartbeat_at = utcnow() - timedelta(minutes=5)
            await service.bulk.interrupted()
            once_interrupted = len(await service.recover_pending(0))
            return while_running, once_interrupted, running_outcome, db.audit()[0]["outcome"]
        finally:
            await runtime.close()

    assert asyncio.run(go()) == (0, 1, "pending", "unknown")


def test_help_shows_the_bulk_commands_to_holders_of_bulk_only(start: Any) -> None:
    bot = start()
    bot.db.grant(ALICE, "operator", "prod")
    bot.db.grant(BOB, "bulk", "prod")
    without = reply_text(bot.slack.command("help").json())
    with_bulk = reply_text(bot.slack.command("help", user=BOB).json())
    assert "/call hangup" in without and "hangup-all" not in without
    assert "/call hangup-all ACCOUNT" in with_bulk and "/call batch ID" in with_bulk
    topic = reply_text(bot.slack.command("help hangup-all", user=BOB).json())
    assert "Needs `bulk` on the account" in topic


# -- Bandwidth and Bird: the same batch, each provider's own wire format --------------------------


def _run_batch(bot: Bot, account: str, count: int) -> dict[str, Any]:
    bot.db.grant(ALICE, "bulk", account)
    before = len(bot.fake_slack.responses())
    response = bot.slack.command(f"hangup-all {account}")
    assert response.status_code == 200 and "Counting" in reply_text(response.json())
    prompt = bot.fake_slack.wait_responses(before + 1)[before].json
    payload = json.loads((PAYLOADS / "block_actions.json").read_text())
    payload["user"] = {"id": ALICE, "username": "alice", "name": "alice", "team_id": "T0001"}
    payload["response_url"] = bot.fake_slack.response_url("bulk")
    payload["actions"] = [{**named(prompt, f"Hang up {count} calls"), "block_id": "b", "type": "button"}]
    assert bot.slack.interact(payload).status_code == 200
    bot.fake_slack.wait_for(
        lambda reqs: any("finished" in reply_text(u) for u in bot.fake_slack.calls("chat.update")), 20
    )
    return next(u for u in bot.fake_slack.calls("chat.update") if "finished" in reply_text(u))


def test_hangup_all_on_bandwidth_posts_state_completed_to_each_call(bot: Bot) -> None:
    ids = [bot.fake_bandwidth.add_call(bw_call_id(n)) for n in range(1, 6)]
    summary = _run_batch(bot, "bw", 5)
    assert "5 / 5 ended, 0 failed" in reply_text(summary)
    updates = bot.fake_bandwidth.updates()
    assert sorted(r.path for r in updates) == sorted(f"/accounts/{bw.ACCOUNT_ID}/calls/{cid}" for cid in ids)
    for request in updates:
        assert request.method == "POST" and request.json == {"state": "completed"}
        assert request.header("content-type") == "application/json"
        assert request.header("authorization") == BW_BASIC
    assert all(bot.fake_bandwidth.calls[cid] == "disconnected" for cid in ids)


def test_hangup_all_on_bird_patches_status_completed_on_each_call(bot: Bot) -> None:
    ids = [bot.fake_bird.add_call(bird_call_id(n)) for n in range(1, 6)]
    summary = _run_batch(bot, "bird", 5)
    assert "5 / 5 ended, 0 failed" in reply_text(summary)
    updates = bot.fake_bird.updates()
    prefix = f"/workspaces/{bird.WORKSPACE_ID}/channels/{bird.CHANNEL_ID}/calls"
    assert sorted(r.path for r in updates) == sorted(f"{prefix}/{cid}" for cid in ids)
    for request in updates:
        assert request.method == "PATCH" and request.json == {"status": "completed"}
        assert request.header("authorization") == f"AccessKey {bird.ACCESS_KEY}"
    assert {r["source"] for r in bot.db.audit() if r["action"] == "hangup"} == {"bulk"}


def test_a_batch_killed_mid_run_resumes_after_restart_and_ends_each_call_exactly_once(
    env: dict[str, str], tmp_path: Path, db: DbHelper, fake_slack: FakeSlack, fake_twilio: FakeTwilio, unused_port: int
) -> None:
    """The real executable, SIGKILLed in the middle of a batch, started again: `/call batch 1
    resume` finishes it, and the fake provider saw every call hung up exactly once."""
    config = write_config(tmp_path / "kill.toml", fake_twilio.url, "bulk_concurrency = 2\n")
    env = {**env, "PORT": str(unused_port), "CALLBOT_CONFIG": str(config), "CALLBOT_BATCH_STALE_AFTER": "2"}
    url = f"http://127.0.0.1:{unused_port}"
    fake_twilio.latency = 0.05
    fraud = fraud_calls(fake_twilio, 120)
    db.grant(ALICE, "bulk", "prod")

    first = spawn(["serve", "--host", "127.0.0.1"], env, tmp_path)
    try:
        wait_healthy(url)
        bot = Harness(SlackDriver(url, fake_slack), fake_slack, fake_twilio, db)
        _, prompt = bot.ask("hangup-all prod")
        bot.click(named(prompt, "Hang up 120 calls"))
        fake_twilio.wait_for(lambda reqs: sum(fake_twilio.hangups.values()) >= 30, 20)
        first.send_signal(signal.SIGKILL)
        first.wait(10)
    finally:
        if first.poll() is None:
            first.kill()
        first.communicate()
    killed_at = sum(fake_twilio.hangups.values())
    assert 30 <= killed_at < 120

    second = spawn(["serve", "--host", "127.0.0.1"], env, tmp_path)
    try:
        wait_healthy(url)
        bot = Harness(SlackDriver(url, fake_slack), fake_slack, fake_twilio, db)
        time.sleep(2.5)  # the dead process's heartbeat goes stale (CALLBOT_BATCH_STALE_AFTER)
        ack, _ = bot.ask("batch 1 resume")
        assert "Looking up the batch" in reply_text(ack)
        summary = reply_text(bot.wait_update("Batch #1 finished", timeout=30))
        assert "120 / 120 ended, 0 failed" in summary
    finally:
        second.terminate()
        second.communicate(timeout=20)

    assert {fake_twilio.hangups[sid] for sid in fraud} == {1}  # none lost, none twice
    calls = [r for r in db.audit() if r["action"] == "hangup"]
    assert {r["call_id"] for r in calls} == set(fraud)
    # A request in flight when the process died stays on record as `unknown` (checked, not re-sent).
    assert {r["outcome"] for r in calls} <= {"succeeded", "unknown"}
    [resumed] = [r for r in db.audit() if r["action"] == "batch.resume"]
    assert resumed["outcome"] == "succeeded" and resumed["result"]["ended"] == 120


def test_a_refused_look_at_a_batch_is_audited_and_a_reason_with_a_secret_is_masked(start: Any) -> None:
    bot = start()
    fraud_calls(bot.twilio, 2)
    bot.db.grant(ALICE, "bulk", "prod")
    _, prompt = bot.ask(f'hangup-all prod reason="the token is {AUTH_TOKEN}"')
    bot.click(named(prompt, "Hang up 2 calls"))
    bot.wait_update("Batch #1 finished")
    for message in [*bot.fake_slack.calls("chat.postMessage"), *bot.updates()]:
        assert AUTH_TOKEN not in json.dumps(message)
    assert AUTH_TOKEN not in json.dumps(bot.db.audit(), default=str)

    _, refused = bot.ask("batch 1", user=BOB)
    assert "Not allowed" in reply_text(refused)
    [row] = bot.rows("batch.show")
    assert (row["user_id"], row["outcome"], row["request"]) == (BOB, "denied", {"batch": 1})
