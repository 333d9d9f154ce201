"""Seeing calls end to end: `/call list` and `/call status` through signed slash commands against the
fake Twilio, Bandwidth and Bird (exact provider requests), their buttons through the pipeline, the
permission refusal, the audit rows (no phone numbers), masking, and the `check_state` policy."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, parse_qsl

import pytest

from bot.domain import phone
from tests.fakes import bandwidth as bw
from tests.fakes import bird
from tests.fakes.bandwidth import bw_call_id
from tests.fakes.bird import bird_call_id
from tests.fakes.twilio import CALLS_PATH, FakeTwilio, call_sid, twilio_error
from tests.processes import callbot
from tests.support.bots import ALICE, BOB, PAYLOADS, Bot, BotFactory, reply_text
from tests.support.database import DbHelper
from tests.test_modal import state, submit

# The worker's one default bot, lent to each test (tests/support/bots.py SharedBot).
pytestmark = pytest.mark.shared_bot

BW_CALLS = f"/accounts/{bw.ACCOUNT_ID}/calls"
BIRD_CALLS = f"/workspaces/{bird.WORKSPACE_ID}/channels/{bird.CHANNEL_ID}/calls"
CHANNEL = "C2147483705"


def buttons(message: dict[str, Any]) -> list[dict[str, Any]]:
    return [e for b in message["blocks"] if b["type"] == "actions" for e in b["elements"]]


def named(message: dict[str, Any], label: str) -> list[dict[str, Any]]:
    return [b for b in buttons(message) if b["text"]["text"] == label]


def click(bot: Bot, button: dict[str, Any], user: str = ALICE) -> None:
    payload = json.loads((PAYLOADS / "block_actions.json").read_text())
    payload["user"]["id"] = user
    payload["response_url"] = bot.fake_slack.response_url("live")
    payload["trigger_id"] = f"12321423423.333649436676.{button['action_id'].replace(':', '')}{id(button):x}"
    payload["actions"] = [{**button, "block_id": "live_call_0", "type": "button", "action_ts": "1.2"}]
    assert bot.slack.interact(payload).status_code == 200


def rows(bot: Bot, action: str) -> list[dict[str, Any]]:
    return [r for r in bot.db.audit() if r["action"] == action]


def no_numbers(row: dict[str, Any]) -> None:
    """No full phone number anywhere in an audit row."""
    text = json.dumps(row, default=str)
    assert phone.mask_in_text(text) == text, text


# -- /call list ---------------------------------------------------------------------------------


def test_twilio_list_pages_with_more_and_audits_each_page(bot: Bot) -> None:
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=30)
    for n in range(1, 26):
        bot.fake_twilio.add_call(call_sid(n), "in-progress", started_at=start + timedelta(seconds=n))
    bot.db.grant(ALICE, "operator", "prod")

    ack, first = bot.slack.run("list prod status=in-progress")

    assert "Asking the provider" in reply_text(ack) and ack["response_type"] == "ephemeral"
    [request] = bot.fake_twilio.lists()
    assert parse_qsl(request.query) == [("Status", "in-progress"), ("PageSize", "20")]
    text = reply_text(first)
    assert "20 live calls on `prod` (status=in-progress) (more below)" in text
    assert call_sid(25) in text and call_sid(6) in text and call_sid(5) not in text  # newest first
    assert "+14158675308 → +14158675309" in text  # ephemeral: numbers in full
    assert first["response_type"] == "ephemeral"
    assert len(named(first, "Hang up")) == 20 and len(named(first, "Redirect")) == 20
    assert named(first, "Flow") == []  # Twilio has no callFlows
    [more] = named(first, "More")
    assert json.loads(more["value"])["a"] == "prod"

    before = len(bot.fake_slack.responses())
    click(bot, more)
    second = bot.fake_slack.wait_responses(before + 1)[before].json
    page_two = bot.fake_twilio.lists()[1]
    assert dict(parse_qsl(page_two.query))["PageToken"] == f"PA{call_sid(6)}"
    assert "5 live calls on `prod`" in reply_text(second) and call_sid(5) in reply_text(second)
    assert named(second, "More") == [] and second["replace_original"] is False

    one, two = rows(bot, "calls.list")
    assert (one["outcome"], one["source"], one["decision"]) == ("succeeded", "slash", "allowed")
    assert one["request"] == {"status": "in-progress", "to": None, "from": None, "next_page": False}
    assert one["result"]["calls"] == 20 and one["result"]["more"] is True
    assert (two["source"], two["request"]["next_page"], two["result"]["calls"]) == ("button", True, 5)
    assert one["provider"] == "twilio" and one["account"] == "prod"


def test_twilio_list_without_status_reads_each_live_status_in_turn(bot: Bot) -> None:
    bot.fake_twilio.add_call(call_sid(1), "ringing")
    bot.fake_twilio.add_call(call_sid(2), "completed")
    bot.db.grant(ALICE, "hangup", "prod")
    _, outcome = bot.slack.run("list prod")
    queries = [dict(parse_qsl(r.query)) for r in bot.fake_twilio.lists()]
    assert [q["Status"] for q in queries] == ["queued", "ringing"]
    text = reply_text(outcome)
    assert "1 live call on `prod`" in text and call_sid(1) in text and call_sid(2) not in text


def test_bandwidth_list_keeps_live_calls_of_the_last_day(bot: Bot) -> None:
    bot.fake_bandwidth.add_call(bw_call_id(1), "answered", to_number="+447700900123")
    bot.fake_bandwidth.add_call(bw_call_id(2), "disconnected", to_number="+447700900123")
    bot.db.grant(ALICE, "hangup", "bw")
    _, outcome = bot.slack.run("list bw to=+447700900123")
    [request] = bot.fake_bandwidth.lists()
    assert request.path == BW_CALLS
    query = parse_qsl(request.query)
    assert [k for k, _ in query] == ["to", "minStartTime", "pageSize"]
    assert dict(query)["to"] == "+447700900123" and dict(query)["pageSize"] == "1000"
    since = datetime.fromisoformat(dict(query)["minStartTime"].replace("Z", "+00:00"))
    assert abs((datetime.now(UTC) - since) - timedelta(hours=24)) < timedelta(minutes=1)
    text = reply_text(outcome)
    assert "1 live call on `bw`" in text and bw_call_id(1) in text and bw_call_id(2) not in text
    assert "in-progress" in text
    [row] = rows(bot, "calls.list")
    assert row["request"]["to"] == "+4477•••••123"
    assert "+4477•••••123" in row["command_text"]
    no_numbers(row)


def test_bird_list_asks_for_the_live_statuses_and_offers_flow(bot: Bot) -> None:
    bot.fake_bird.add_call(bird_call_id(1), "ongoing")
    bot.fake_bird.add_call(bird_call_id(2), "ringing")
    bot.db.grant(ALICE, "operator", "bird")
    _, outcome = bot.slack.run("list bird")
    [request] = bot.fake_bird.lists()
    assert request.path == BIRD_CALLS
    assert parse_qs(request.query) == {
        "limit": ["20"],
        "status": ["accepted", "starting", "scheduled", "ringing", "ongoing"],
    }
    assert "2 live calls on `bird`" in reply_text(outcome)
    assert len(named(outcome, "Flow")) == 2 and named(outcome, "Redirect") == []  # Bird: flow, no redirect
    assert len(named(outcome, "Hang up")) == 2


def test_listing_needs_a_call_action_on_the_account_and_a_refusal_is_audited(bot: Bot) -> None:
    bot.fake_twilio.add_call(call_sid(1))
    bot.db.grant(ALICE, "hangup", "bw")  # another account
    _, outcome = bot.slack.run("list prod to=+447700900123")
    assert "Not allowed" in reply_text(outcome) and "Seeing live calls needs a call action" in reply_text(outcome)
    assert bot.fake_twilio.requests == []
    [row] = rows(bot, "calls.list")
    assert (row["outcome"], row["decision"], row["account"]) == ("denied", "denied", "prod")
    no_numbers(row)


def test_buttons_follow_the_persons_grants(bot: Bot) -> None:
    bot.fake_twilio.add_call(call_sid(1))
    bot.db.grant(ALICE, "redirect", "prod")
    _, outcome = bot.slack.run("list prod")
    assert [b["text"]["text"] for b in buttons(outcome)] == ["Redirect"]


def test_hang_up_button_runs_the_pipeline_once(bot: Bot) -> None:
    sid = bot.fake_twilio.add_call(call_sid(1))
    bot.db.grant(ALICE, "operator", "prod")
    _, listing = bot.slack.run("list prod")
    [hangup] = named(listing, "Hang up")

    before = len(bot.fake_slack.responses())
    click(bot, hangup)
    progress, outcome = [r.json for r in bot.fake_slack.wait_responses(before + 2)[before:]]
    assert f"Hanging up prod:{sid}" in reply_text(progress) and progress["replace_original"] is False
    assert f"Hung up prod:{sid}" in reply_text(outcome) and outcome["replace_original"] is False
    [update] = bot.fake_twilio.updates()
    assert update.path == f"{CALLS_PATH}/{sid}.json" and update.form_pairs == [("Status", "completed")]
    [row] = rows(bot, "hangup")
    assert (row["source"], row["outcome"], row["call_id"]) == ("button", "succeeded", sid)
    assert row["command_text"] == f"/call hangup prod:{sid}"  # the stored command the button runs

    click(bot, hangup)  # a second click does nothing
    bot.fake_slack.wait_responses(before + 3)
    assert len(bot.fake_twilio.updates()) == 1


def test_hang_up_button_asks_for_the_accounts_confirmation(make_bot: BotFactory) -> None:
    bot = make_bot({"prod": 'confirm = ["hangup"]'})
    driver, fake_slack, fake_twilio, db = bot.slack, bot.fake_slack, bot.fake_twilio, bot.db
    sid = fake_twilio.add_call(call_sid(1))
    db.grant(ALICE, "hangup", "prod")
    _, listing = driver.run("list prod")
    [hangup] = [b for b in buttons(listing) if b["text"]["text"] == "Hang up"]
    payload = json.loads((PAYLOADS / "block_actions.json").read_text())
    payload.update(user={"id": ALICE, "username": "alice"}, response_url=fake_slack.response_url("c"))
    payload["actions"] = [{**hangup, "block_id": "live_call_0", "type": "button", "action_ts": "1"}]
    before = len(fake_slack.responses())
    assert driver.interact(payload).status_code == 200
    prompt = fake_slack.wait_responses(before + 1)[before].json
    assert f"Hangup prod:{sid}?" in reply_text(prompt)
    assert [b["text"]["text"] for b in buttons(prompt)] == ["Confirm", "Cancel"]
    assert fake_twilio.updates() == []


def test_hang_up_button_goes_through_two_person_approval(make_bot: BotFactory) -> None:
    bot = make_bot({"prod": 'approval = ["hangup"]\napprovers_channel = "C0APPROVE1"'})
    driver, fake_slack, fake_twilio, db = bot.slack, bot.fake_slack, bot.fake_twilio, bot.db
    sid = fake_twilio.add_call(call_sid(1), to_number="+447700900123")
    db.grant(ALICE, "hangup", "prod")
    _, listing = driver.run("list prod")
    [hangup] = [b for b in buttons(listing) if b["text"]["text"] == "Hang up"]
    payload = json.loads((PAYLOADS / "block_actions.json").read_text())
    payload.update(user={"id": ALICE, "username": "alice"}, response_url=fake_slack.response_url("a"))
    payload["actions"] = [{**hangup, "block_id": "live_call_0", "type": "button", "action_ts": "1"}]
    before = len(fake_slack.responses())
    assert driver.interact(payload).status_code == 200
    waiting = fake_slack.wait_responses(before + 1)[before].json
    assert f"Waiting for approval #1: hangup prod:{sid}" in reply_text(waiting)
    fake_slack.wait_for(lambda reqs: any(r.path == "/api/chat.postMessage" for r in reqs))
    [posted] = fake_slack.calls("chat.postMessage")
    assert posted["channel"] == "C0APPROVE1"
    assert fake_twilio.updates() == []
    row = next(r for r in db.audit() if r["action"] == "hangup")
    assert (row["outcome"], row["source"]) == ("pending_approval", "button")


def test_redirect_button_opens_the_form_filled_in(bot: Bot) -> None:
    sid = bot.fake_twilio.add_call(call_sid(1))
    bot.db.grant(ALICE, "operator", "prod")
    _, listing = bot.slack.run("list prod")
    [redirect] = named(listing, "Redirect")
    assert redirect["value"] == f"prod:{sid}"
    click(bot, redirect)
    bot.fake_slack.wait_for(lambda reqs: any(r.path == "/api/views.update" for r in reqs))
    assert len(bot.fake_slack.calls("views.open")) == 1
    view = bot.fake_slack.calls("views.update")[-1]["view"]
    blocks = {b["block_id"]: b for b in view["blocks"] if "block_id" in b}
    assert blocks["account"]["element"]["initial_option"]["value"] == "prod"
    assert blocks["action"]["element"]["initial_option"]["value"] == "redirect"
    assert blocks["call_id"]["element"]["initial_option"]["value"] == sid
    assert "url" in blocks

    values = state(account="prod", action="redirect", url="https://example.com/hold.xml")
    values["call_id"] = {"call_picker": {"type": "external_select", "selected_option": {"value": sid}}}
    assert submit(bot, values) == {"response_action": "clear"}
    bot.fake_twilio.wait_for(lambda reqs: any(r.method == "POST" for r in reqs))
    assert bot.fake_twilio.updates()[0].form_pairs == [("Url", "https://example.com/hold.xml")]
    [row] = bot.db.wait_audit(
        lambda found: any(r["outcome"] == "succeeded" for r in found if r["action"] == "redirect")
    )[-1:]
    assert (row["action"], row["source"], row["call_id"]) == ("redirect", "modal", sid)


def test_flow_button_opens_the_builder_for_the_bird_call(bot: Bot) -> None:
    cid = bot.fake_bird.add_call(bird_call_id(1))
    bot.db.grant(ALICE, "flow", "bird")
    _, listing = bot.slack.run("list bird")
    [flow] = named(listing, "Flow")
    click(bot, flow)
    bot.fake_slack.wait_for(lambda reqs: any(r.path == "/api/views.update" for r in reqs))
    view = bot.fake_slack.calls("views.update")[-1]["view"]
    assert cid in json.dumps(view)
    assert bot.fake_bird.updates() == []


# -- /call status -------------------------------------------------------------------------------


def test_status_on_twilio(bot: Bot) -> None:
    sid = bot.fake_twilio.add_call(call_sid(1), "ringing", direction="outbound-api")
    bot.db.grant(ALICE, "cancel", "prod")
    _, outcome = bot.slack.run(f"status {sid}")
    [request] = [r for r in bot.fake_twilio.requests]
    assert (request.method, request.path, request.query) == ("GET", f"{CALLS_PATH}/{sid}.json", "")
    text = reply_text(outcome)
    assert f"prod:{sid} is `ringing`" in text
    assert "Direction: outbound" in text and "From: +14158675308" in text and "To: +14158675309" in text
    assert "Twilio's own word: `ringing`" in text and "Started: " in text
    assert buttons(outcome) == []  # cancel alone: no Hang up, no Redirect
    [row] = rows(bot, "calls.status")
    assert (row["outcome"], row["call_id"], row["account"]) == ("succeeded", sid, "prod")
    assert row["result"] == {"status": "ringing", "raw_status": "ringing", "ended": False}


def test_status_of_an_upper_case_call_sid_reads_it_as_typed(bot: Bot) -> None:
    sid = bot.fake_twilio.add_call("CA" + "0123456789ABCDEF" * 2, "in-progress")
    bot.db.grant(ALICE, "hangup", "prod")
    _, outcome = bot.slack.run(f"status {sid}")
    [request] = bot.fake_twilio.requests
    assert (request.method, request.path) == ("GET", f"{CALLS_PATH}/{sid}.json")
    assert f"prod:{sid} is `in-progress`" in reply_text(outcome)


def test_status_on_bandwidth_of_an_ended_call(bot: Bot) -> None:
    cid = bot.fake_bandwidth.add_call(bw_call_id(1), "disconnected", duration=43)
    bot.db.grant(ALICE, "hangup", "bw")
    _, outcome = bot.slack.run(f"status bw:{cid}")
    [request] = bot.fake_bandwidth.requests
    assert (request.method, request.path) == ("GET", f"{BW_CALLS}/{cid}")
    text = reply_text(outcome)
    assert f"bw:{cid} is `completed` (ended)" in text and "own word: `disconnected`" in text
    assert "Duration: 43s" in text
    assert buttons(outcome) == []  # nothing to do on an ended call


def test_status_on_bird_offers_its_buttons(bot: Bot) -> None:
    cid = bot.fake_bird.add_call(bird_call_id(1), "ongoing")
    bot.db.grant(ALICE, "operator", "bird")
    _, outcome = bot.slack.run(f"status bird:{cid}")
    [request] = bot.fake_bird.requests
    assert (request.method, request.path) == ("GET", f"{BIRD_CALLS}/{cid}")
    assert f"bird:{cid} is `in-progress`" in reply_text(outcome) and "own word: `ongoing`" in reply_text(outcome)
    assert [b["text"]["text"] for b in buttons(outcome)] == ["Hang up", "Flow"]


def test_status_of_an_unknown_call_fails_clearly(bot: Bot) -> None:
    bot.db.grant(ALICE, "hangup", "prod")
    _, outcome = bot.slack.run(f"status prod:{call_sid(9)}")
    assert "Could not read the state of" in reply_text(outcome) and "no such call" in reply_text(outcome)
    [row] = rows(bot, "calls.status")
    assert (row["outcome"], row["provider_status"]) == ("failed", 404)


def test_status_needs_a_call_action(bot: Bot) -> None:
    sid = bot.fake_twilio.add_call(call_sid(1))
    bot.db.grant(BOB, "hangup", "prod")
    _, outcome = bot.slack.run(f"status prod:{sid}")
    assert "Not allowed" in reply_text(outcome)
    assert bot.fake_twilio.requests == []
    assert rows(bot, "calls.status")[0]["outcome"] == "denied"


# -- check_state --------------------------------------------------------------------------------


@pytest.fixture
def checking(make_bot: BotFactory) -> Any:
    bot = make_bot({"prod": "check_state = true"})
    bot.db.grant(ALICE, "operator", "prod")
    return bot.slack, bot.fake_twilio, bot.db


def test_check_state_refuses_an_ended_call_and_sends_nothing(checking: Any) -> None:
    driver, fake_twilio, db = checking
    sid = fake_twilio.add_call(call_sid(1), "completed")
    _, outcome = driver.run(f"hangup prod:{sid}")
    assert "The call already ended: completed." in reply_text(outcome)
    assert "Nothing was sent" in reply_text(outcome)
    assert [r.method for r in fake_twilio.requests] == ["GET"]
    [row] = db.audit()
    assert (row["action"], row["outcome"]) == ("hangup", "invalid")
    assert row["error_message"] == "The call already ended: completed."
    assert row["result"] == {
        "state_check": {"checked": True, "status": "completed", "raw_status": "completed", "ended": True}
    }


def test_check_state_refuses_cancel_on_an_answered_call(checking: Any) -> None:
    driver, fake_twilio, db = checking
    sid = fake_twilio.add_call(call_sid(1), "in-progress")
    _, outcome = driver.run(f"cancel prod:{sid}")
    assert "is in progress (answered)" in reply_text(outcome)
    assert f"/call hangup prod:{sid}" in reply_text(outcome)
    assert fake_twilio.updates() == []
    assert db.audit()[0]["outcome"] == "invalid"


def test_check_state_lets_a_live_call_through_and_records_the_state(checking: Any) -> None:
    driver, fake_twilio, db = checking
    sid = fake_twilio.add_call(call_sid(1), "in-progress")
    _, outcome = driver.run(f"hangup prod:{sid}")
    assert f"Hung up prod:{sid}" in reply_text(outcome)
    assert [r.method for r in fake_twilio.requests] == ["GET", "POST"]
    [row] = db.audit()
    assert row["outcome"] == "succeeded" and row["result"]["state_check"]["status"] == "in-progress"


@pytest.mark.parametrize("status", ["queued", "ringing"])
@pytest.mark.parametrize(
    ("verb", "args"), [("redirect", "https://example.com/x.xml"), ("twiml", "'&lt;Response/&gt;'")]
)
def test_check_state_refuses_a_redirect_of_an_unanswered_twilio_call(
    checking: Any, status: str, verb: str, args: str
) -> None:
    # Twilio would answer 21220: a redirect (Url or Twiml) needs an answered call.
    driver, fake_twilio, db = checking
    sid = fake_twilio.add_call(call_sid(1), status)
    _, outcome = driver.run(f"{verb} prod:{sid} {args}")
    text = reply_text(outcome)
    assert (
        f"prod:{sid} is `{status}` (not answered yet): `{verb}` needs an answered call. "
        f"To end it, use `/call cancel prod:{sid}` or `/call hangup prod:{sid}`."
    ) in text
    assert "Nothing was sent" in text
    assert [r.method for r in fake_twilio.requests] == ["GET"]
    [row] = db.audit()
    assert (row["action"], row["outcome"]) == (verb, "invalid")
    assert row["result"] == {"state_check": {"checked": True, "status": status, "raw_status": status, "ended": False}}


@pytest.mark.parametrize("verb", ["hangup", "cancel"])
def test_check_state_lets_hangup_and_cancel_end_a_ringing_call(checking: Any, verb: str) -> None:
    driver, fake_twilio, db = checking
    sid = fake_twilio.add_call(call_sid(1), "ringing")
    driver.run(f"{verb} prod:{sid}")
    assert [r.method for r in fake_twilio.requests] == ["GET", "POST"]
    assert db.audit()[0]["outcome"] == "succeeded"


@pytest.mark.parametrize(("state", "status"), [("queued", "queued"), ("initiated", "ringing")])
def test_check_state_refuses_a_redirect_of_an_unanswered_bandwidth_call(
    make_bot: BotFactory, state: str, status: str
) -> None:
    # Bandwidth redirects an answered call only (it would answer 409); it has no cancel: hangup ends it.
    bot = make_bot({"prod": "", "bw": "check_state = true"})
    bot.db.grant(ALICE, "operator", "bw")
    cid = bot.fake_bandwidth.add_call(bw_call_id(1), state)
    _, outcome = bot.slack.run(f"redirect bw:{cid} https://example.com/x.xml")
    text = reply_text(outcome)
    assert (
        f"bw:{cid} is `{status}` (not answered yet): `redirect` needs an answered call. "
        f"To end it, use `/call hangup bw:{cid}`."
    ) in text
    assert [r.method for r in bot.fake_bandwidth.requests] == ["GET"]
    [row] = bot.db.audit()
    assert row["outcome"] == "invalid" and row["result"]["state_check"]["raw_status"] == state
    bot.slack.run(f"hangup bw:{cid}")
    assert bot.fake_bandwidth.updates()[0].json == {"state": "completed"}


def test_when_the_state_cannot_be_read_the_hangup_goes_ahead(checking: Any) -> None:
    driver, fake_twilio, db = checking
    sid = fake_twilio.add_call(call_sid(1), "in-progress")
    fake_twilio.script(twilio_error(500, 20500, "Internal Server Error"))
    _, outcome = driver.run(f"hangup prod:{sid}")
    text = reply_text(outcome)
    assert f"Hung up prod:{sid}" in text
    assert "could not check the call's state first" in text and "went ahead anyway" in text
    assert fake_twilio.updates()[0].form_pairs == [("Status", "completed")]
    [row] = db.audit()
    assert row["outcome"] == "succeeded" and row["result"]["state_check"]["checked"] is False


def test_dry_runs_check_the_state_too(checking: Any) -> None:
    driver, fake_twilio, db = checking
    ended = fake_twilio.add_call(call_sid(1), "canceled")
    live = fake_twilio.add_call(call_sid(2), "in-progress")
    ack, refused = driver.run(f"hangup prod:{ended} dry-run")
    assert "Checking the state" in reply_text(ack)
    assert "The call already ended: canceled." in reply_text(refused)
    _, dry = driver.run(f"redirect prod:{live} https://example.com/x.xml dry-run")
    assert "Dry run: redirect" in reply_text(dry) and "state was checked" in reply_text(dry)
    assert fake_twilio.updates() == []
    assert [r["outcome"] for r in db.audit()] == ["invalid", "dry_run"]


def test_without_check_state_nothing_is_read_first(bot: Bot) -> None:
    sid = bot.fake_twilio.add_call(call_sid(1), "in-progress")
    bot.db.grant(ALICE, "hangup", "prod")
    bot.slack.run(f"hangup prod:{sid}")
    assert [r.method for r in bot.fake_twilio.requests] == ["POST"]


# -- masking ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("number", "masked"),
    [
        ("+447700900123", "+4477•••••123"),
        ("+14158675309", "+141•••••309"),
        ("+31201234567", "+3120••••567"),
        ("+35312345678", "+35312•••678"),
        ("sip:alice@example.com", "sip•••com"),
        ("anon", "•••"),
    ],
)
def test_mask_keeps_the_country_code_two_digits_and_the_last_three(number: str, masked: str) -> None:
    assert phone.mask(number) == masked


def test_mask_in_text_leaves_ids_and_times_alone() -> None:
    text = 'bridge "to": "+31201234567" on CA0123 at 2026-11-24 10:31 UTC, audit #42'
    assert phone.mask_in_text(text) == 'bridge "to": "+3120••••567" on CA0123 at 2026-11-24 10:31 UTC, audit #42'


def test_approval_requests_posted_to_a_channel_mask_numbers(make_bot: BotFactory) -> None:
    bot = make_bot({"prod": 'approval = ["twiml"]\napprovers_channel = "C0APPROVE1"'})
    driver, fake_slack, fake_twilio, db = bot.slack, bot.fake_slack, bot.fake_twilio, bot.db
    sid = fake_twilio.add_call(call_sid(1))
    db.grant(ALICE, "twiml", "prod")
    twiml = "&lt;Response&gt;&lt;Dial&gt;+447700900123&lt;/Dial&gt;&lt;/Response&gt;"  # as Slack escapes it
    driver.command(f'twiml prod:{sid} "{twiml}"')
    fake_slack.wait_for(lambda reqs: any(r.path == "/api/chat.postMessage" for r in reqs))
    [posted] = fake_slack.calls("chat.postMessage")
    assert posted["channel"] == "C0APPROVE1"
    shown = json.dumps(posted, ensure_ascii=False)
    assert "%2B4477•••••123" in shown and "447700900123" not in shown  # the form-encoded preview


def test_grammar_refuses_a_bad_status_with_the_live_ones(bot: Bot) -> None:
    bot.db.grant(ALICE, "hangup", "prod")
    _, outcome = bot.slack.run("list prod status=completed")
    assert "is not a live call status" in reply_text(outcome)
    assert bot.fake_twilio.requests == []
    assert rows(bot, "calls.list")[0]["outcome"] == "invalid"


def test_help_lists_the_new_commands_for_holders_of_a_call_action(bot: Bot) -> None:
    bot.db.grant(ALICE, "flow", "bird")
    answer = bot.slack.command("help").json()
    assert "/call list ACCOUNT" in reply_text(answer) and "/call status CALL" in reply_text(answer)


def test_the_shell_lists_and_shows_calls_through_the_same_service(
    env: dict[str, str], tmp_path: Path, db: DbHelper, fake_twilio: FakeTwilio
) -> None:
    sid = fake_twilio.add_call(call_sid(1), "ringing")
    db.grant("U012AB3CD", "hangup", "prod")
    listed = callbot(["run", "--as", "U012AB3CD", "list prod"], env, tmp_path)
    assert listed.returncode == 0, listed.stdout + listed.stderr
    assert "1 live call on `prod`" in listed.stdout and sid in listed.stdout
    shown = callbot(["run", "--as", "U012AB3CD", f"status {sid}"], env, tmp_path)
    assert shown.returncode == 0 and f"prod:{sid} is `ringing`" in shown.stdout
    assert [(r["action"], r["source"], r["outcome"]) for r in db.audit()] == [
        ("calls.list", "cli", "succeeded"),
        ("calls.status", "cli", "succeeded"),
    ]


def test_a_number_typed_without_plus_does_not_reach_the_audit_row(bot: Bot) -> None:
    bot.db.grant(ALICE, "hangup", "prod")
    bot.slack.run("list prod from=447700900123")
    [row] = rows(bot, "calls.list")
    assert "447700900123" not in json.dumps(row, default=str, ensure_ascii=False)
    assert row["command_text"] == "/call list prod from=447•••123"
    assert dict(parse_qsl(bot.fake_twilio.lists()[0].query))["From"] == "447700900123"  # sent as typed
