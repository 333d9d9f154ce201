"""Two-person approval end to end (signed Slack requests, fake Slack and providers, a test clock):
the request posted to the approvers' channel, approved by someone else and run once (double click
included), the expiry sweep of a running server, a flagged grant, the shell's refusal and grant, and
the configuration check. The decisions case by case (self-approval, no `approve` grant, deny,
expiry, tampered request, what is held) are tested on the service itself in
tests/test_service_approval.py."""

from __future__ import annotations

import json
import textwrap
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from bot.config import Settings
from bot.domain.errors import ConfigError
from tests.fakes.slack import FakeSlack
from tests.fakes.twilio import AUTH_TOKEN, FakeTwilio, call_sid
from tests.processes import callbot
from tests.support.bots import ALICE, BOB, CAROL, PAYLOADS, BotFactory, SlackDriver, reply_text, write_config
from tests.support.clock import FakeClock
from tests.support.database import DbHelper

APPROVERS = "C0APPROVE1"
POLICY = f'approval = ["hangup", "redirect"]\napprovers_channel = "{APPROVERS}"'


class ApprovalBot:
    def __init__(self, slack: SlackDriver, fake_slack: FakeSlack, twilio: FakeTwilio, db: DbHelper, clock: FakeClock):
        self.slack, self.fake_slack, self.twilio, self.db, self.clock = slack, fake_slack, twilio, db, clock

    def say(self, command: str, user: str = ALICE) -> dict[str, Any]:
        response = self.slack.command(command, user)
        assert response.status_code == 200, response.text
        return dict(response.json())

    def request(self, command: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """Ask for an action that needs approval: the answer, and the buttons posted to the approvers."""
        answer = self.say(command)
        self.fake_slack.wait_for(lambda reqs: any(r.path == "/api/chat.postMessage" for r in reqs))
        [posted] = self.fake_slack.calls("chat.postMessage")
        # An approver can only click once Slack has answered the post and the bot has kept its ts.
        deadline = time.monotonic() + 10
        while not self._message_ts() and time.monotonic() < deadline:
            time.sleep(0.02)
        blocks = posted["blocks"] if isinstance(posted["blocks"], list) else json.loads(posted["blocks"])
        buttons = [e for b in blocks if b["type"] == "actions" for e in b["elements"]]
        return answer, [{**posted, "blocks": blocks}, *buttons]

    def click(self, button: dict[str, Any], user: str) -> str:
        before = len(self.fake_slack.responses())
        payload = json.loads((PAYLOADS / "block_actions.json").read_text())
        payload["user"]["id"] = user
        payload["response_url"] = self.fake_slack.response_url("approval")
        payload["actions"] = [{**button, "block_id": "choose_account", "type": "button", "action_ts": "1.2"}]
        assert self.slack.interact(payload).status_code == 200
        return reply_text(self.fake_slack.wait_responses(before + 1)[before].json)

    def wait_method(self, method: str, count: int = 1) -> list[dict[str, Any]]:
        self.fake_slack.wait_for(lambda reqs: sum(r.path == f"/api/{method}" for r in reqs) >= count)
        return self.fake_slack.calls(method)

    def _message_ts(self) -> str | None:
        with self.db.engine.connect() as conn:
            return conn.execute(text("SELECT message_ts FROM approvals")).scalar_one_or_none()

    def status(self) -> str:
        with self.db.engine.connect() as conn:
            return str(conn.execute(text("SELECT status FROM approvals")).scalar_one())


@pytest.fixture
def start(make_bot: BotFactory) -> Callable[..., ApprovalBot]:
    """The bot with one Twilio account, prod, whose settings are `policy`; a FakeClock."""

    def go(policy: str = POLICY, **options: Any) -> ApprovalBot:
        bot = make_bot({"prod": policy}, clock=FakeClock(), **options)
        bot.db.grant(ALICE, "operator", "prod")
        bot.db.grant(BOB, "approve", "prod")
        assert bot.clock is not None
        return ApprovalBot(bot.slack, bot.fake_slack, bot.fake_twilio, bot.db, bot.clock)

    return go


def test_request_then_approval_by_someone_else_runs_it_once(start: Callable[..., ApprovalBot]) -> None:
    bot = start()
    sid = bot.twilio.add_call(call_sid(1))
    answer, (posted, approve, deny) = bot.request(f'hangup prod:{sid} reason="fraud"')
    assert "Waiting for approval" in reply_text(answer) and f"<#{APPROVERS}>" in reply_text(answer)
    shown = reply_text(posted)
    assert posted["channel"] == APPROVERS
    assert "Approval needed #" in shown and f"<@{ALICE}>" in shown and "Reason: fraud" in shown
    assert "Status=completed" in shown and "Authorization: Basic ***" in shown and AUTH_TOKEN not in shown
    assert (approve["text"]["text"], deny["text"]["text"]) == ("Approve", "Deny")
    assert bot.twilio.updates() == [] and bot.status() == "pending"
    [requested] = bot.db.audit()
    assert (requested["outcome"], requested["user_id"], requested["action"]) == ("pending_approval", ALICE, "hangup")

    assert "Approved #" in bot.click(approve, BOB)
    [update] = bot.wait_method("chat.update")
    assert update["channel"] == APPROVERS and update["ts"] == posted_ts(bot)
    assert f"by <@{BOB}>" in str(update["text"]) and "succeeded" in str(update["text"])
    told = bot.wait_method("chat.postEphemeral")
    assert told[-1]["user"] == ALICE and "Hung up" in str(told[-1]["text"])
    [sent] = bot.twilio.updates()
    assert sent.form == {"Status": "completed"}
    rows = bot.db.audit()
    assert [(r["action"], r["outcome"], r["user_id"], r["source"]) for r in rows] == [
        ("hangup", "pending_approval", ALICE, "slash"),
        ("approval.approve", "succeeded", BOB, "button"),
        ("hangup", "succeeded", ALICE, "approval"),
    ]
    assert f"approved by {BOB}" in rows[-1]["decision_basis"]
    assert bot.status() == "executed"
    with bot.db.engine.connect() as conn:  # the command as typed is not kept once it has run
        assert conn.execute(text("SELECT text FROM approvals")).scalar_one() == ""

    again = bot.click(approve, BOB)  # double click: already handled, nothing sent twice
    assert "already handled" in again
    assert len(bot.twilio.updates()) == 1 and bot.db.audit()[-1]["outcome"] == "denied"


def posted_ts(bot: ApprovalBot) -> str:
    with bot.db.engine.connect() as conn:
        return str(conn.execute(text("SELECT message_ts FROM approvals")).scalar_one())


def test_an_undecided_request_expires_by_itself(start: Callable[..., ApprovalBot]) -> None:
    """The server's sweep expires it without any click: audited, message updated, requester told."""
    bot = start(POLICY + "\napproval_expiry_minutes = 5", approval_sweep_every=0.05)
    sid = bot.twilio.add_call(call_sid(9))
    _, (_, approve, _) = bot.request(f"hangup prod:{sid}")
    time.sleep(0.3)  # several sweeps: nothing is due yet
    assert bot.status() == "pending" and bot.fake_slack.calls("chat.update") == []
    bot.clock.advance(5 * 60 + 1)
    [update] = bot.wait_method("chat.update")
    assert update["channel"] == APPROVERS and update["ts"] == posted_ts(bot)
    assert "Expired" in str(update["text"])
    told = bot.wait_method("chat.postEphemeral")
    assert told[-1]["user"] == ALICE and "expired" in str(told[-1]["text"])
    assert bot.status() == "expired" and bot.twilio.updates() == []
    time.sleep(0.3)  # later sweeps find nothing more to do
    rows = bot.db.audit()
    assert [(r["action"], r["outcome"], r["user_id"], r["source"]) for r in rows] == [
        ("hangup", "pending_approval", ALICE, "slash"),
        ("approval.expire", "expired", ALICE, "approval"),
    ]
    assert "with no decision" in rows[-1]["error_message"]
    assert len(bot.fake_slack.calls("chat.update")) == 1
    assert "already handled (expired" in bot.click(approve, BOB)
    assert bot.twilio.updates() == []


def test_a_grant_flagged_needs_approval_holds_what_it_allows(start: Callable[..., ApprovalBot]) -> None:
    """Per grant: the account's `approval` list names nothing, the flagged grant still holds."""
    bot = start(f'approvers_channel = "{APPROVERS}"')
    bot.db.grant(ALICE, "admin", "prod")
    granted = reply_text(bot.say(f"grant <@{CAROL}> hangup on=prod needs_approval=yes"))
    assert "Granted to" in granted and "two-person approval" in granted
    assert "needs approval" in reply_text(bot.say(f"perms <@{CAROL}>"))
    assert "Granted to" in reply_text(bot.say(f"grant <@{BOB}> hangup on=prod"))

    sid, other = bot.twilio.add_call(call_sid(10)), bot.twilio.add_call(call_sid(11))
    _, outcome = bot.slack.run(f"hangup prod:{other}", BOB)  # an unflagged grant: not held
    assert "Hung up" in reply_text(outcome) and len(bot.twilio.updates()) == 1
    assert bot.fake_slack.calls("chat.postMessage") == []

    answer = reply_text(bot.say(f"hangup prod:{sid}", CAROL))
    assert "Waiting for approval" in answer and "Your grant" in answer
    bot.fake_slack.wait_for(lambda reqs: any(r.path == "/api/chat.postMessage" for r in reqs))
    [posted] = bot.fake_slack.calls("chat.postMessage")
    assert posted["channel"] == APPROVERS and len(bot.twilio.updates()) == 1 and bot.status() == "pending"
    held = bot.db.audit()[-1]
    assert (held["action"], held["outcome"], held["user_id"]) == ("hangup", "pending_approval", CAROL)
    blocks = posted["blocks"] if isinstance(posted["blocks"], list) else json.loads(posted["blocks"])
    approve = next(e for b in blocks if b["type"] == "actions" for e in b["elements"])
    deadline = time.monotonic() + 10
    while not bot._message_ts() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert "Approved #" in bot.click(approve, BOB)  # approved: runs once, not held again
    bot.wait_method("chat.update")
    assert len(bot.twilio.updates()) == 2 and bot.status() == "executed"
    assert (bot.db.audit()[-1]["action"], bot.db.audit()[-1]["outcome"]) == ("hangup", "succeeded")


def test_the_shell_refuses_actions_that_need_approval(
    tmp_path: Path, env: dict[str, str], fake_twilio: FakeTwilio, db: DbHelper
) -> None:
    path = write_config(tmp_path / "approval.toml", fake_twilio.url)
    path.write_text(path.read_text().replace("[accounts.prod]\n", f"[accounts.prod]\n{POLICY}\n"))
    sid = fake_twilio.add_call(call_sid(8))
    db.grant(ALICE, "hangup", "prod")
    result = callbot(["run", "--as", ALICE, f"hangup prod:{sid}"], {**env, "CALLBOT_CONFIG": str(path)}, tmp_path)
    assert "needs two-person approval: run it from Slack" in result.stdout + result.stderr
    assert fake_twilio.updates() == []
    assert db.audit()[-1]["outcome"] == "denied"


def test_the_shell_grants_with_needs_approval(
    tmp_path: Path, env: dict[str, str], fake_twilio: FakeTwilio, db: DbHelper
) -> None:
    path = write_config(tmp_path / "approval.toml", fake_twilio.url)
    path.write_text(path.read_text().replace("[accounts.prod]\n", f"[accounts.prod]\n{POLICY}\n"))
    result = callbot(
        ["grant", CAROL, "redirect", "--on", "prod", "--needs-approval"], {**env, "CALLBOT_CONFIG": str(path)}, tmp_path
    )
    assert "two-person approval" in result.stdout + result.stderr
    with db.engine.connect() as conn:
        assert conn.execute(text("SELECT action, needs_approval FROM grants")).all() == [("redirect", True)]
    assert db.audit()[-1]["request"]["needs_approval"] is True


@pytest.mark.parametrize(
    ("setting", "expected"),
    [
        ('approval = ["hangup"]', "approvers_channel (a Slack channel id"),
        ('approval = ["hangup"]\napprovers_channel = "#ops"', "approvers_channel"),
        ('approval = ["dance"]\napprovers_channel = "C0APPROVE1"', "'dance' is not a call action"),
    ],
)
def test_approval_settings_are_checked(tmp_path: Path, setting: str, expected: str) -> None:
    path = write_config(tmp_path / "bad.toml", "https://api.twilio.com")
    path.write_text(path.read_text().replace("[accounts.prod]\n", f"[accounts.prod]\n{textwrap.dedent(setting)}\n"))
    with pytest.raises(ConfigError) as raised:
        Settings.from_env({"CALLBOT_CONFIG": str(path), "TEST_TWILIO_AUTH_TOKEN": "t"})
    assert expected in str(raised.value)
