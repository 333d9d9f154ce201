"""The per-account safety policy end to end, through signed Slack requests and the provider fakes:
URL and bridge-number allowlists, required reasons, confirmation buttons, rate limits (with a
controllable clock), freeze / unfreeze and break-glass; and bad policy settings failing start-up."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from bot.config import Settings
from bot.domain.errors import ConfigError
from bot.domain.permissions import Grant, allowed_actions, decide
from tests.fakes.bandwidth import FakeBandwidth, bw_call_id
from tests.fakes.bird import FakeBird, bird_call_id
from tests.fakes.slack import FakeSlack
from tests.fakes.twilio import FakeTwilio, call_sid
from tests.processes import callbot
from tests.support.bots import ALICE, BOB, CAROL, PAYLOADS, BotFactory, SlackDriver, reply_text, write_config
from tests.support.clock import FakeClock
from tests.support.database import DbHelper

ALLOWED_URLS = 'allowed_urls = ["https://twiml.example.com/", "https://media.example.com/audio"]'
EVIL = "https://evil.example.net"


@dataclass
class PolicyBot:
    slack: SlackDriver
    fake_slack: FakeSlack
    twilio: FakeTwilio
    bandwidth: FakeBandwidth
    bird: FakeBird
    db: DbHelper
    clock: FakeClock

    def say(self, command: str, user: str = ALICE) -> dict[str, Any]:
        response = self.slack.command(command, user)
        assert response.status_code == 200, response.text
        return dict(response.json())

    def run(self, command: str, user: str = ALICE) -> str:
        """A call action that is sent: the outcome posted to response_url."""
        _, outcome = self.slack.run(command, user)
        return reply_text(outcome)

    def click(self, button: dict[str, Any], user: str = ALICE, expect: int = 2) -> list[dict[str, Any]]:
        before = len(self.fake_slack.responses())
        payload = json.loads((PAYLOADS / "block_actions.json").read_text())
        payload["user"]["id"] = user
        payload["response_url"] = self.fake_slack.response_url("confirm")
        payload["actions"] = [{**button, "block_id": "choose_account", "type": "button", "action_ts": "1.2"}]
        assert self.slack.interact(payload).status_code == 200
        return [r.json for r in self.fake_slack.wait_responses(before + expect)[before:]]

    def sent(self) -> int:
        return len(self.twilio.updates()) + len(self.bandwidth.updates()) + len(self.bird.updates())

    def freezes(self) -> list[dict[str, Any]]:
        with self.db.engine.connect() as conn:
            return [dict(r) for r in conn.execute(text("SELECT * FROM freezes ORDER BY id")).mappings()]


Start = Callable[..., PolicyBot]


@pytest.fixture
def start(make_bot: BotFactory) -> Start:
    """Start the bot with policy settings added to the accounts prod (Twilio), bw and bird."""

    def go(prod: str = "", bw: str = "", bird: str = "") -> PolicyBot:
        clock = FakeClock()
        bot = make_bot({"prod": prod, "bw": bw, "bird": bird}, clock=clock)
        for action in ("hangup", "cancel", "redirect", "twiml", "flow"):
            bot.db.grant(ALICE, action, "*")
        return PolicyBot(bot.slack, bot.fake_slack, bot.fake_twilio, bot.fake_bandwidth, bot.fake_bird, bot.db, clock)

    return go


def buttons(message: dict[str, Any]) -> list[dict[str, Any]]:
    return [e for b in message.get("blocks", []) if b["type"] == "actions" for e in b["elements"]]


def assert_refused(bot: PolicyBot, answer: dict[str, Any], *needles: str, outcome: str = "denied") -> dict[str, Any]:
    """Refused at once, nothing sent, and the refusal audited with the rule."""
    shown = reply_text(answer)
    for needle in needles:
        assert needle in shown, shown
    assert bot.sent() == 0
    row = bot.db.audit()[-1]
    assert row["outcome"] == outcome
    for needle in needles:
        assert needle in row["error_message"]
    return row


# -- URL allowlists ---------------------------------------------------------------------------------


def flow(commands: list[dict[str, Any]]) -> str:
    return f"'{json.dumps(commands)}'"


def playback(url: str) -> dict[str, Any]:
    return {"command": "playback", "options": {"media": [url]}}


REFUSED_URLS = [
    pytest.param(f"redirect prod:{call_sid(1)} {EVIL}/x.xml", f"`{EVIL}/x.xml`", id="twilio-url"),
    pytest.param(
        f"redirect prod:{call_sid(1)} https://twiml.example.com/a.xml fallback={EVIL}/f.xml",
        f"`fallback={EVIL}/f.xml`",
        id="twilio-fallback",
    ),
    pytest.param(
        f"redirect prod:{call_sid(1)} https://twiml.example.com/a.xml status-callback={EVIL}/s",
        f"`status-callback={EVIL}/s`",
        id="twilio-status-callback",
    ),
    pytest.param(
        f"twiml prod:{call_sid(1)} '&lt;Response&gt;&lt;Play&gt;<{EVIL}/a.mp3>&lt;/Play&gt;&lt;/Response&gt;'",
        f"`<Play>={EVIL}/a.mp3`",
        id="twilio-inline-twiml",
    ),
    pytest.param(
        f"redirect prod:{call_sid(1)} https://media.example.com/audio2/a.xml",
        "`https://media.example.com/audio2/a.xml`",
        id="prefix-is-whole-path-segments",
    ),
    pytest.param(
        f"redirect prod:{call_sid(1)} https://twiml.example.com/../admin",
        "`https://twiml.example.com/../admin`",
        id="dot-segments",
    ),
    pytest.param(f"redirect bw:{bw_call_id(1)} {EVIL}/x.xml", f"`{EVIL}/x.xml`", id="bandwidth-url"),
    pytest.param(
        f"redirect bw:{bw_call_id(1)} https://twiml.example.com/a.xml fallback={EVIL}/f.xml",
        f"`fallback={EVIL}/f.xml`",
        id="bandwidth-fallback",
    ),
    pytest.param(
        f"flow bird:{bird_call_id(1)} {flow([playback(EVIL + '/a.mp3')])}",
        f"`callFlow[0].playback.media[0]={EVIL}/a.mp3`",
        id="bird-playback",
    ),
    pytest.param(
        f"flow bird:{bird_call_id(1)} "
        + flow([{"command": "gather", "options": {"maxNumKeys": 1, "playback": {"media": [EVIL + "/p.mp3"]}}}]),
        f"`callFlow[0].gather.playback.media[0]={EVIL}/p.mp3`",
        id="bird-gather-playback",
    ),
    pytest.param(
        f"flow bird:{bird_call_id(1)} "
        + flow([{"command": "bridge", "options": {"to": "+14155550100", "callFlow": [playback(EVIL + "/w.mp3")]}}]),
        f"`callFlow[0].bridge.callFlow[0].playback.media[0]={EVIL}/w.mp3`",
        id="bird-bridge-callflow",
    ),
    pytest.param(
        f"flow bird:{bird_call_id(1)} "
        + flow([{"command": "bridge", "options": {"to": "+14155550100", "notification": {"url": EVIL + "/n"}}}]),
        f"`callFlow[0].bridge.notification.url={EVIL}/n`",
        id="bird-bridge-notification",
    ),
]


@pytest.mark.parametrize(("command", "shown"), REFUSED_URLS)
def test_every_url_carrying_option_is_checked_against_allowed_urls(start: Start, command: str, shown: str) -> None:
    bot = start(prod=ALLOWED_URLS, bw=ALLOWED_URLS, bird=ALLOWED_URLS)
    answer = bot.say(command)
    account = command.split()[1].split(":")[0]
    row = assert_refused(bot, answer, shown, f"not in allowed_urls of account `{account}`")
    assert "https://twiml.example.com/, https://media.example.com/audio" in row["error_message"]
    assert row["decision"] == "denied" and "refused by allowed_urls" in row["decision_basis"]
    assert row["account"] == account


def test_urls_under_an_allowed_prefix_are_sent(start: Start) -> None:
    bot = start(prod=ALLOWED_URLS, bw=ALLOWED_URLS, bird=ALLOWED_URLS)
    sid = bot.twilio.add_call(call_sid(2))
    outcome = bot.run(
        f"redirect prod:{sid} https://twiml.example.com/ivr/a.xml fallback=https://media.example.com/audio/f.xml "
        "status-callback=https://twiml.example.com/status"
    )
    assert "Redirected" in outcome
    cid = bot.bandwidth.add_call(bw_call_id(2))
    assert "Redirected" in bot.run(f"redirect bw:{cid} https://TWIML.example.com:443/b.xml")
    bird_id = bot.bird.add_call(bird_call_id(2))
    commands = [
        playback("https://media.example.com/audio/hold.mp3"),
        {
            "command": "bridge",
            "options": {
                "to": "+14155550100",
                "callFlow": [playback("https://media.example.com/audio/whisper.mp3")],
                "notification": {"url": "https://twiml.example.com/notify"},
            },
        },
    ]
    assert "Applied a callFlow of 2 commands" in bot.run(f"flow bird:{bird_id} {flow(commands)}")
    assert bot.sent() == 3
    assert [r["outcome"] for r in bot.db.audit()] == ["succeeded"] * 3


def test_plain_http_is_refused_unless_listed(start: Start) -> None:
    bot = start(bw='allowed_urls = ["http://intranet.example.com/bxml/"]')
    answer = bot.say(f"redirect prod:{call_sid(3)} http://twiml.example.com/a.xml")
    assert_refused(bot, answer, "`http://twiml.example.com/a.xml`: plain http:// is refused", "account `prod`")
    # Without allowed_urls, https goes anywhere.
    sid = bot.twilio.add_call(call_sid(3))
    assert "Redirected" in bot.run(f"redirect prod:{sid} https://anywhere.example.org/a.xml")
    cid = bot.bandwidth.add_call(bw_call_id(3))
    assert "Redirected" in bot.run(f"redirect bw:{cid} http://intranet.example.com/bxml/hold.xml")
    refused = bot.say(f"redirect bw:{cid} https://intranet.example.com/bxml/hold.xml")
    assert "not in allowed_urls of account `bw`" in reply_text(refused)


def test_dry_run_is_checked_too(start: Start) -> None:
    bot = start(prod=ALLOWED_URLS)
    answer = bot.say(f"redirect prod:{call_sid(4)} {EVIL}/x.xml dry-run")
    assert_refused(bot, answer, "not in allowed_urls")


# -- bridge numbers ---------------------------------------------------------------------------------


def bridge(to: str) -> str:
    return flow([{"command": "bridge", "options": {"to": to}}])


def test_bridge_targets_must_match_allowed_bridge_numbers(start: Start) -> None:
    bot = start(bird='allowed_bridge_numbers = ["+1*", "+44*"]')
    call_id = bot.bird.add_call(bird_call_id(5))
    answer = bot.say(f"flow bird:{call_id} {bridge('+33612345678')}")
    row = assert_refused(
        bot, answer, "`callFlow[0].bridge.to=+33612345678`: not in allowed_bridge_numbers of account `bird` (+1*, +44*)"
    )
    assert "refused by allowed_bridge_numbers" in row["decision_basis"]
    assert "Applied a callFlow" in bot.run(f"flow bird:{call_id} {bridge('+442071234567')}")
    assert len(bot.bird.updates()) == 1


# -- reasons ----------------------------------------------------------------------------------------


def test_require_reason_refuses_without_one(start: Start) -> None:
    bot = start(prod='require_reason = ["hangup"]')
    sid = bot.twilio.add_call(call_sid(6))
    row = assert_refused(bot, bot.say(f"hangup prod:{sid}"), "needs a reason (require_reason in callbot.toml)")
    assert (row["action"], row["decision"]) == ("hangup", "denied")
    assert "refused by require_reason" in row["decision_basis"]
    assert "Reason: caller asked" in bot.run(f'hangup prod:{sid} reason="caller asked"')
    assert bot.db.audit()[-1]["outcome"] == "succeeded"


# -- confirmation -----------------------------------------------------------------------------------


def test_confirm_answers_with_buttons_and_confirm_runs_once(start: Start) -> None:
    bot = start(prod='confirm = ["hangup", "cancel"]')
    sid = bot.twilio.add_call(call_sid(7))
    answer = bot.say(f'hangup prod:{sid} reason="fraud"')
    assert f"Hangup prod:{sid}?" in reply_text(answer)
    assert "reason: fraud" in reply_text(answer)
    confirm, cancel = buttons(answer)
    assert (confirm["text"]["text"], confirm["style"], cancel["text"]["text"]) == ("Confirm", "danger", "Cancel")
    assert confirm["confirm"]["title"]["text"] == f"Hangup prod:{sid}?"
    assert confirm["confirm"]["confirm"]["text"] == "Yes, hangup"
    assert bot.sent() == 0 and bot.db.audit() == []  # nothing happened yet

    [other] = bot.click(confirm, user=BOB, expect=1)  # someone else's click: refused, button still live
    assert "Only the person who asked" in reply_text(other)
    assert bot.sent() == 0
    [refused] = bot.db.audit()  # audited, with why
    assert (refused["user_id"], refused["action"], refused["outcome"]) == (BOB, "hangup", "denied")
    assert "Only the person who asked" in refused["error_message"] and refused["idempotency_key"] is None

    progress, outcome = bot.click(confirm)
    assert f"Hanging up prod:{sid}" in reply_text(progress)
    assert f"Hung up prod:{sid}." in reply_text(outcome)
    [_, row] = bot.db.audit()
    assert (row["source"], row["outcome"], row["action"]) == ("button", "succeeded", "hangup")
    assert row["idempotency_key"].startswith("choice:")

    [again] = bot.click(confirm, expect=1)  # double click: nothing sent twice
    assert "already handled" in reply_text(again)
    assert len(bot.twilio.updates()) == 1


def test_cancel_drops_the_command(start: Start) -> None:
    bot = start(prod='confirm = ["hangup"]')
    sid = bot.twilio.add_call(call_sid(8))
    confirm, cancel = buttons(bot.say(f"hangup prod:{sid}"))
    [other] = bot.click(cancel, user=BOB, expect=1)
    assert "Only the person who asked" in reply_text(other)
    [canceled] = bot.click(cancel, expect=1)
    assert "Canceled: nothing was sent." in reply_text(canceled)
    [late] = bot.click(confirm, expect=1)
    assert "expired or was already used" in reply_text(late)
    [refused] = bot.db.audit()  # only someone else's click is recorded: canceling your own is not
    assert (refused["user_id"], refused["action"], refused["outcome"]) == (BOB, "hangup", "denied")
    assert bot.sent() == 0


def test_unlisted_actions_and_dry_runs_are_not_asked(start: Start) -> None:
    bot = start(prod='confirm = ["hangup"]')
    sid = bot.twilio.add_call(call_sid(9))
    assert "Dry run" in reply_text(bot.say(f"hangup prod:{sid} dry-run"))
    assert "Redirected" in bot.run(f"redirect prod:{sid} https://twiml.example.com/a.xml")


def test_a_confirmation_click_checks_the_policy_again(start: Start) -> None:
    bot = start(prod='confirm = ["hangup"]')
    bot.db.grant(CAROL, "admin", "*")
    sid = bot.twilio.add_call(call_sid(10))
    confirm, _ = buttons(bot.say(f"hangup prod:{sid}"))
    bot.say('freeze on=prod reason="incident"', user=CAROL)
    [refused] = bot.click(confirm, expect=1)
    assert "is frozen" in reply_text(refused)
    assert bot.sent() == 0 and bot.db.audit()[-1]["outcome"] == "denied"


# -- rate limits ------------------------------------------------------------------------------------


def test_rate_limit_per_person_with_wait_time(start: Start) -> None:
    bot = start(prod="max_actions_per_minute = 2")
    bot.db.grant(BOB, "hangup", "prod")
    sids = [bot.twilio.add_call(call_sid(20 + i)) for i in range(5)]
    bot.run(f"hangup prod:{sids[0]}")
    bot.clock.advance(20)
    bot.run(f"hangup prod:{sids[1]}")
    bot.clock.advance(10)
    assert "Dry run" in reply_text(bot.say(f"hangup prod:{sids[2]} dry-run"))  # not limited, not counted
    answer = bot.say(f"hangup prod:{sids[2]}")
    assert "Too many actions" in reply_text(answer)
    assert "Try again in 30 s" in reply_text(answer)
    row = bot.db.audit()[-1]
    assert (row["outcome"], row["decision"]) == ("rate_limited", "denied")
    assert (
        "max_actions_per_minute = 2 per person" in row["error_message"] and "Try again in 30 s" in row["error_message"]
    )
    assert len(bot.twilio.updates()) == 2

    assert "Hung up" in bot.run(f"hangup prod:{sids[2]}", user=BOB)  # per person: Bob is not limited

    listed = reply_text(bot.say("audit outcome=rate_limited"))
    assert "rate_limited" in listed and f"#{row['id']}" in listed

    bot.clock.advance(29)  # one second short of the wait given
    assert "Try again in 1 s" in reply_text(bot.say(f"hangup prod:{sids[3]}"))
    bot.clock.advance(1)  # the first attempt is now a minute old
    assert "Hung up" in bot.run(f"hangup prod:{sids[3]}")


def test_rate_limit_per_account(start: Start) -> None:
    bot = start(prod="max_account_actions_per_minute = 2")
    for user in (BOB, CAROL):
        bot.db.grant(user, "hangup", "prod")
    sids = [bot.twilio.add_call(call_sid(30 + i)) for i in range(4)]
    bot.run(f"hangup prod:{sids[0]}")
    bot.run(f"hangup prod:{sids[1]}", user=BOB)
    answer = bot.say(f"hangup prod:{sids[2]}", user=CAROL)
    assert "max_account_actions_per_minute = 2, everyone together" in reply_text(answer)
    assert bot.db.audit()[-1]["outcome"] == "rate_limited"
    bot.clock.advance(61)
    assert "Hung up" in bot.run(f"hangup prod:{sids[2]}", user=CAROL)


# -- freeze and break-glass -------------------------------------------------------------------------


def test_freeze_refuses_everyone_until_unfreeze(start: Start) -> None:
    bot = start()
    bot.db.grant(CAROL, "admin", "*")
    sid = bot.twilio.add_call(call_sid(40))

    frozen = reply_text(bot.say('freeze on=prod reason="fraud wave"', user=CAROL))
    assert "Frozen: `prod`." in frozen
    [freeze] = bot.freezes()
    assert (freeze["account"], freeze["reason"], freeze["frozen_by"], freeze["lifted_at"]) == (
        "prod",
        "fraud wave",
        CAROL,
        None,
    )
    row = bot.db.audit()[-1]
    assert (row["action"], row["account"], row["outcome"]) == ("freeze", "prod", "succeeded")

    refused = assert_refused(bot, bot.say(f'hangup prod:{sid} reason="x"'), "is frozen", "fraud wave")
    assert f"<@{CAROL}>" in refused["error_message"]
    assert f"freeze #{freeze['id']}" in refused["decision_basis"]
    # Admin does not imply break-glass: the admin is refused too.
    assert "is frozen" in reply_text(bot.say(f'hangup prod:{sid} reason="x"', user=CAROL))
    # Other accounts are not frozen.
    cid = bot.bandwidth.add_call(bw_call_id(40))
    assert "Hung up" in bot.run(f"hangup bw:{cid}")

    assert "Unfrozen: `prod`." in reply_text(bot.say("unfreeze on=prod", user=CAROL))
    [lifted] = bot.freezes()
    assert lifted["lifted_by"] == CAROL and lifted["lifted_at"] is not None
    assert "Hung up" in bot.run(f"hangup prod:{sid}")


def test_only_admins_freeze(start: Start) -> None:
    bot = start()
    bot.db.grant(BOB, "admin", "bw")
    answer = bot.say('freeze on=prod reason="x"')
    assert "You are not allowed to `freeze` on account `prod`" in reply_text(answer)
    answer = bot.say('freeze on=prod reason="x"', user=BOB)  # admin elsewhere only
    assert "not allowed" in reply_text(answer)
    assert [(r["action"], r["outcome"]) for r in bot.db.audit()] == [("freeze", "denied")] * 2
    assert bot.freezes() == []
    assert "needs a reason" in reply_text(bot.say("freeze on=bw", user=BOB))
    assert "Frozen: `bw`" in reply_text(bot.say('freeze on=bw reason="maintenance"', user=BOB))


def test_break_glass_acts_on_a_frozen_account_with_a_reason_and_is_flagged(start: Start) -> None:
    bot = start()
    bot.db.grant(CAROL, "admin", "*")
    granted = reply_text(bot.say(f"grant <@{ALICE}> break-glass on=prod", user=CAROL))
    assert "Granted to" in granted and "break-glass on prod" in granted
    sid = bot.twilio.add_call(call_sid(41))
    bot.say('freeze on=prod reason="fraud wave"', user=CAROL)

    row = assert_refused(bot, bot.say(f"hangup prod:{sid}"), "Your break-glass grant lets you act anyway")
    assert row["break_glass"] in (1, True)

    assert "Hung up" in bot.run(f'hangup prod:{sid} reason="customer in danger"')
    row = bot.db.audit()[-1]
    assert (row["outcome"], row["decision"]) == ("succeeded", "allowed")
    assert row["break_glass"] in (1, True)
    assert "break-glass (grant #" in row["decision_basis"] and "during freeze #" in row["decision_basis"]
    # Outside a freeze, the same grant changes nothing and flags nothing.
    bot.say("unfreeze on=prod", user=CAROL)
    sid2 = bot.twilio.add_call(call_sid(42))
    bot.run(f"hangup prod:{sid2}")
    assert bot.db.audit()[-1]["break_glass"] in (0, False)


def test_admin_does_not_imply_break_glass() -> None:
    admin = [Grant(1, ALICE, "admin", "*")]
    assert decide(admin, "hangup", "prod").allowed
    assert not decide(admin, "break-glass", "prod").allowed
    assert "break-glass" not in allowed_actions(admin)
    assert decide([Grant(2, ALICE, "break-glass", "prod")], "break-glass", "prod").allowed


# -- configuration ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("setting", "expected"),
    [
        (
            'allowed_urls = ["ftp://files.example.com/"]',
            "accounts.prod.allowed_urls: 'ftp://files.example.com/' is not",
        ),
        ('allowed_urls = ["https://x.example.com/?a=1"]', "accounts.prod.allowed_urls: 'https://x.example.com/?a=1'"),
        ('allowed_bridge_numbers = ["44*"]', "accounts.prod.allowed_bridge_numbers: '44*' is not an E.164"),
        ('confirm = ["hangpu"]', "accounts.prod.confirm: 'hangpu' is not a call action"),
        ('require_reason = ["admin"]', "accounts.prod.require_reason: 'admin' is not a call action"),
        ("max_actions_per_minute = 0", "accounts.prod.max_actions_per_minute: Input should be greater than"),
        ("max_acions_per_minute = 5", "accounts.prod.max_acions_per_minute: is not a known setting"),
    ],
)
def test_bad_policy_settings_name_file_and_key(tmp_path: Path, setting: str, expected: str) -> None:
    path = write_config(tmp_path / "bad.toml", "https://api.twilio.com")
    path.write_text(path.read_text().replace("[accounts.prod]\n", f"[accounts.prod]\n{setting}\n"))
    with pytest.raises(ConfigError) as raised:
        Settings.from_env({"CALLBOT_CONFIG": str(path), "TEST_TWILIO_AUTH_TOKEN": "t"})
    message = str(raised.value)
    assert message.startswith(f"{path}: ") and expected in message and "\n" not in message


def test_serve_refuses_to_start_on_a_bad_rule(tmp_path: Path, env: dict[str, str]) -> None:
    path = write_config(tmp_path / "bad.toml", "https://api.twilio.com")
    path.write_text(path.read_text().replace("[accounts.prod]\n", '[accounts.prod]\nallowed_bridge_numbers = ["x"]\n'))
    result = callbot(["serve", "--port", "0"], {**env, "CALLBOT_CONFIG": str(path)}, tmp_path)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    [line] = [line for line in result.stderr.splitlines() if line.strip()]
    assert line.startswith(f"callbot: {path}: accounts.prod.allowed_bridge_numbers: 'x' is not an E.164")
