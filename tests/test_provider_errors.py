"""Each way Twilio can fail, as the person in Slack and the audit row see it."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from tests.fakes.server import Answer
from tests.fakes.twilio import AUTH_TOKEN, call_sid, twilio_error
from tests.support.bots import ALICE, Bot, BotFactory, reply_text, write_config

# The worker's one default bot, lent to each test (tests/support/bots.py SharedBot).
pytestmark = pytest.mark.shared_bot


@pytest.fixture
def allowed(bot: Bot) -> Bot:
    for action in ("hangup", "cancel", "redirect", "twiml"):
        bot.db.grant(ALICE, action, "prod")
    return bot


def test_unknown_call_20404(allowed: Bot) -> None:
    sid = call_sid(404)  # never added to the fake
    _, outcome = allowed.slack.run(f"hangup prod:{sid}")
    text = reply_text(outcome)
    assert "Unknown call" in text and "no such call" in text and "20404" in text
    [row] = allowed.db.audit()
    assert (row["outcome"], row["provider_status"], row["error_code"]) == ("failed", 404, "20404")
    assert "was not found" in row["error_message"]


NOT_IN_PROGRESS = "Call is not in-progress. Cannot redirect."  # Twilio's own message for 21220


def test_call_not_in_progress_21220_on_an_ended_call_says_it_ended(allowed: Bot) -> None:
    sid = allowed.fake_twilio.add_call(call_sid(1), "completed")
    _, outcome = allowed.slack.run(f"redirect prod:{sid} https://example.com/x.xml")
    text = reply_text(outcome)
    assert "Twilio refused (Twilio 21220, not in progress): the call already ended: completed." in text
    # The refusal, then the read that tells which: nothing else.
    assert [r.method for r in allowed.fake_twilio.requests] == ["POST", "GET"]
    [row] = allowed.db.audit()
    assert (row["outcome"], row["provider_status"], row["error_code"]) == ("failed", 400, "21220")
    assert row["error_message"] == NOT_IN_PROGRESS
    assert row["result"] == {
        "state_check": {
            "after_refusal": True,
            "checked": True,
            "status": "completed",
            "raw_status": "completed",
            "ended": True,
        }
    }


@pytest.mark.parametrize("status", ["queued", "ringing"])
@pytest.mark.parametrize(
    ("verb", "args"),
    [("redirect", "https://example.com/x.xml"), ("twiml", "'&lt;Response&gt;&lt;Hangup/&gt;&lt;/Response&gt;'")],
)
def test_call_not_in_progress_21220_on_an_unanswered_call_says_so(
    allowed: Bot, status: str, verb: str, args: str
) -> None:
    # Twilio answers 21220 for a redirect of a call not answered yet too: "it ended" would be wrong.
    sid = allowed.fake_twilio.add_call(call_sid(2), status)
    _, outcome = allowed.slack.run(f"{verb} prod:{sid} {args}")
    text = reply_text(outcome)
    assert (
        f"Twilio refused (Twilio 21220, not in progress): prod:{sid} is `{status}` (not answered yet): "
        f"`{verb}` needs an answered call. To end it, use `/call cancel prod:{sid}` or `/call hangup prod:{sid}`."
    ) in text
    assert "ended" not in text
    [row] = allowed.db.audit()
    assert (row["outcome"], row["error_code"], row["error_message"]) == ("failed", "21220", NOT_IN_PROGRESS)
    assert row["result"]["state_check"] == {
        "after_refusal": True,
        "checked": True,
        "status": status,
        "raw_status": status,
        "ended": False,
    }
    assert allowed.fake_twilio.calls[sid] == status  # the call was left as it was


def test_call_not_in_progress_21220_then_answered_says_to_try_again(allowed: Bot) -> None:
    sid = allowed.fake_twilio.add_call(call_sid(3), "in-progress")
    allowed.fake_twilio.script(twilio_error(400, 21220, NOT_IN_PROGRESS))  # it was still ringing then
    _, outcome = allowed.slack.run(f"redirect prod:{sid} https://example.com/x.xml")
    assert "the call was not in progress then; it is `in-progress` now: try again." in reply_text(outcome)
    assert allowed.db.audit()[0]["result"]["state_check"]["status"] == "in-progress"


@pytest.mark.parametrize(
    ("read", "why"),
    [
        (twilio_error(500, 20500, "Internal Server Error"), "failed with a server error"),
        (Answer(200, b"<html>proxy</html>", {"Content-Type": "text/html"}), "the body is not JSON"),
        (Answer(200, b'{"sid": "x", "status": "completed"}', {"Content-Type": "application/json"}, 4), "within 2 s"),
    ],
    ids=["5xx", "unreadable", "no-answer-in-time"],
)
def test_call_not_in_progress_21220_when_the_read_fails_says_either(allowed: Bot, read: Answer, why: str) -> None:
    # The read is bounded (here by the account's 2 s timeout) and its failure is told, not raised.
    sid = allowed.fake_twilio.add_call(call_sid(4), "ringing")
    allowed.fake_twilio.script(twilio_error(400, 21220, NOT_IN_PROGRESS), read)
    _, outcome = allowed.slack.run(f"redirect prod:{sid} https://example.com/x.xml")
    text = reply_text(outcome)
    assert "Twilio refused (Twilio 21220, not in progress): the call has either ended or not been answered yet" in text
    assert f"`/call status prod:{sid}` shows it." in text and why in text
    assert "Traceback" not in text
    [row] = allowed.db.audit()
    assert (row["outcome"], row["error_code"], row["error_message"]) == ("failed", "21220", NOT_IN_PROGRESS)
    check = row["result"]["state_check"]
    assert (check["after_refusal"], check["checked"]) == (True, False) and why in check["error"]


def test_other_refusals_are_not_followed_by_a_read(allowed: Bot) -> None:
    _, outcome = allowed.slack.run(f"hangup prod:{call_sid(404)}")
    assert "no such call" in reply_text(outcome)
    assert [r.method for r in allowed.fake_twilio.requests] == ["POST"]
    assert allowed.db.audit()[0]["result"] is None


def test_hangup_retries_a_429_honouring_retry_after_then_succeeds(allowed: Bot) -> None:
    sid = allowed.fake_twilio.add_call(call_sid(2))
    allowed.fake_twilio.script(twilio_error(429, 20429, "Too Many Requests", **{"Retry-After": "0"}))
    _, outcome = allowed.slack.run(f"hangup prod:{sid}")
    assert [r.form_pairs for r in allowed.fake_twilio.updates()] == [[("Status", "completed")]] * 2
    assert "Hung up" in reply_text(outcome)
    assert allowed.db.audit()[0]["outcome"] == "succeeded"


def test_hangup_gives_up_after_three_rate_limited_tries_20429(allowed: Bot) -> None:
    sid = allowed.fake_twilio.add_call(call_sid(3))
    allowed.fake_twilio.script(*[twilio_error(429, 20429, "Too Many Requests", **{"Retry-After": "0"})] * 3)
    _, outcome = allowed.slack.run(f"hangup prod:{sid}")
    assert len(allowed.fake_twilio.updates()) == 3
    assert "Rate limited" in reply_text(outcome) and "20429" in reply_text(outcome)
    row = allowed.db.audit()[0]
    assert (row["outcome"], row["error_code"]) == ("failed", "20429")


@pytest.mark.parametrize("answer", [twilio_error(429, 20429, "Too Many Requests"), Answer(503, b"")])
def test_redirect_is_never_retried(allowed: Bot, answer: Answer) -> None:
    sid = allowed.fake_twilio.add_call(call_sid(4))
    allowed.fake_twilio.script(answer, answer, answer)
    _, outcome = allowed.slack.run(f"redirect prod:{sid} https://example.com/x.xml")
    assert len(allowed.fake_twilio.updates()) == 1
    assert allowed.db.audit()[0]["outcome"] == "failed"
    assert "nothing was changed" in reply_text(outcome)


def test_server_error_leaves_the_outcome_unknown(allowed: Bot) -> None:
    sid = allowed.fake_twilio.add_call(call_sid(5))
    allowed.fake_twilio.script(Answer(502, b"<html>Bad Gateway</html>", {"Content-Type": "text/html"}))
    _, outcome = allowed.slack.run(f"twiml prod:{sid} '&lt;Response&gt;&lt;Hangup/&gt;&lt;/Response&gt;'")
    assert "may or may not have changed" in reply_text(outcome)
    row = allowed.db.audit()[0]
    assert (row["outcome"], row["provider_status"]) == ("unknown", 502)


def test_timeout_after_sending_is_unknown_not_failed(allowed: Bot) -> None:
    sid = allowed.fake_twilio.add_call(call_sid(6))
    allowed.fake_twilio.script(Answer(200, b"{}", delay=4))  # the account's timeout is 2 s
    _, outcome = allowed.slack.run(f"redirect prod:{sid} https://example.com/x.xml")
    assert "did not answer in time" in reply_text(outcome)
    assert allowed.db.audit()[0]["outcome"] == "unknown"


@pytest.mark.parametrize(
    ("answer", "problem"),
    [
        (Answer(200, b"<html><body>Welcome to the proxy</body></html>", {"Content-Type": "text/html"}), "not JSON"),
        (Answer(200, b"", {"Content-Type": "application/json"}), "an empty body"),
        (
            Answer(200, b'{"sid": "CA00000000000000000000000000000007", "sta', {"Content-Type": "application/json"}),
            "not JSON",
        ),
        (Answer.json(200, ["completed"]), "JSON that is not the call"),
    ],
    ids=["html", "empty", "truncated", "not-an-object"],
)
def test_a_2xx_that_is_not_what_twilio_returns_is_unknown_not_succeeded(
    allowed: Bot, answer: Answer, problem: str
) -> None:
    sid = allowed.fake_twilio.add_call(call_sid(7))
    allowed.fake_twilio.script(answer)
    _, outcome = allowed.slack.run(f"hangup prod:{sid}")
    text = reply_text(outcome)
    assert "Unreadable answer from the provider" in text
    assert "Twilio answered 200 but not with what its API returns" in text and problem in text
    assert "may or may not have changed" in text and "/call status" in text
    assert len(allowed.fake_twilio.updates()) == 1
    [row] = allowed.db.audit()
    assert (row["outcome"], row["provider_status"]) == ("unknown", 200)
    assert problem in row["error_message"]


def test_an_answer_dribbled_past_the_timeout_is_unknown(allowed: Bot) -> None:
    # Every byte comes well within the 2 s timeout of a single read, the whole answer only after 5 s.
    sid = allowed.fake_twilio.add_call(call_sid(10))
    body = b'{"sid": "%s", "status": "completed", "direction": "inbound"}' % sid.encode()
    allowed.fake_twilio.script(Answer(200, body, {"Content-Type": "application/json"}, dribble=5))
    _, outcome = allowed.slack.run(f"hangup prod:{sid}")
    text = reply_text(outcome)
    assert "did not answer in time" in text and "within 2 s (the account's timeout)" in text
    assert "The request was sent" in text and "Hung up" not in text
    assert len(allowed.fake_twilio.updates()) == 1
    [row] = allowed.db.audit()
    assert row["outcome"] == "unknown" and "within 2 s" in row["error_message"]


@pytest.mark.parametrize("wait", ["3", "30"])
def test_a_retry_after_longer_than_callbot_waits_is_the_answer_never_resent_early(allowed: Bot, wait: str) -> None:
    # 3 s does not fit in the account's 2 s timeout, 30 s is past MAX_RETRY_WAIT: no second request.
    sid = allowed.fake_twilio.add_call(call_sid(11))
    allowed.fake_twilio.script(*[twilio_error(429, 20429, "Too Many Requests", **{"Retry-After": wait})] * 3)
    _, outcome = allowed.slack.run(f"hangup prod:{sid}")
    assert len(allowed.fake_twilio.updates()) == 1
    text = reply_text(outcome)
    assert "Rate limited" in text and f"Twilio asked to wait {wait} s before trying again" in text
    row = allowed.db.audit()[0]
    assert (row["outcome"], row["error_code"]) == ("failed", "20429")


def test_bad_credentials_20003(make_bot: BotFactory) -> None:
    bot = make_bot(env={"TEST_TWILIO_AUTH_TOKEN": "wrong-token-value-123"})
    fake_twilio, db = bot.fake_twilio, bot.db
    sid = fake_twilio.add_call(call_sid(8))
    db.grant(ALICE, "hangup", "prod")
    ack, outcome = bot.slack.run(f"hangup prod:{sid}")
    text = reply_text(outcome)
    assert "rejected the credentials" in text and "20003" in text
    assert "wrong-token-value-123" not in str(outcome) + str(ack) + str(db.audit())
    row = db.audit()[0]
    assert (row["outcome"], row["provider_status"], row["error_code"]) == ("failed", 401, "20003")


def test_provider_down_fails_clearly(make_bot: BotFactory, tmp_path: Path) -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{sock.getsockname()[1]}"
    config = write_config(tmp_path / "down.toml", dead)
    bot = make_bot(env={"CALLBOT_CONFIG": str(config)})
    db = bot.db
    db.grant(ALICE, "hangup", "prod")
    _, outcome = bot.slack.run(f"hangup prod:{call_sid(9)}")
    text = reply_text(outcome)
    assert "Could not reach twilio" in text and "nothing was sent" in text
    assert db.audit()[0]["outcome"] == "failed"
    assert AUTH_TOKEN not in str(outcome)
