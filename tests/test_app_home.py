"""The App Home tab, end to end: a signed `app_home_opened` event publishes the person's recent
attempts (and, for `audit` holders, the team's with quick filters); a call action's outcome
re-publishes it; Slack refusing the publish changes nothing else."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from bot.domain.confirmation import Seen, Via
from bot.slack.notify import HOME_DEBOUNCE
from tests.fakes.slack import dm_channel
from tests.fakes.twilio import call_sid
from tests.support.bots import ALICE, BOB, CAROL, Bot, reply_text
from tests.test_audit_slack import ClockBot, ask, click, clock_bot, confirm, expected_line, moment, open_details
from tests.test_modal import state, submit

__all__ = ["clock_bot"]  # the fixture, shared with test_audit_slack

_events = iter(range(1, 1_000_000))


def home_opened(bot: Bot | ClockBot, user: str, tab: str = "home") -> None:
    """What Slack sends when someone opens the app: an Events API callback, JSON, signed."""
    n = next(_events)
    body = json.dumps(
        {
            "token": "gIkuvaNzQIHg97ATvDxqgjtO",
            "team_id": "T0001",
            "api_app_id": "A123456",
            "event": {
                "type": "app_home_opened",
                "user": user,
                "channel": dm_channel(user),
                "tab": tab,
                "event_ts": f"{time.time():.6f}",
            },
            "type": "event_callback",
            "event_id": f"Ev{n:08d}",
            "event_time": int(time.time()),
            "authorizations": [
                {
                    "enterprise_id": None,
                    "team_id": "T0001",
                    "user_id": "U0BOT",
                    "is_bot": True,
                    "is_enterprise_install": False,
                }
            ],
            "is_ext_shared_channel": False,
        }
    )
    response = bot.slack.post(body, bot.slack.sign(body), "application/json")
    assert response.status_code == 200, response.text


def wait_home(bot: Bot | ClockBot, user: str, count: int) -> dict[str, Any]:
    """The `count`-th view published for `user` (1-based), once it arrives."""
    deadline = time.monotonic() + 10
    while len(bot.fake_slack.home_views.get(user, [])) < count:
        assert time.monotonic() < deadline, f"no home view #{count} for {user}: {bot.fake_slack.home_views}"
        time.sleep(0.02)
    return bot.fake_slack.home_views[user][count - 1]


def homes(bot: Bot | ClockBot, user: str) -> int:
    return len(bot.fake_slack.home_views.get(user, []))


def rows_in(view: dict[str, Any], prefix: str) -> list[int]:
    return [
        int(block["block_id"].removeprefix(f"{prefix}_"))
        for block in view["blocks"]
        if str(block.get("block_id", "")).startswith(f"{prefix}_") and block["block_id"][len(prefix) + 1 :].isdigit()
    ]


def texts(view: dict[str, Any]) -> str:
    return reply_text({"blocks": view["blocks"]})


def test_home_shows_own_last_ten_only_without_audit(bot: Bot) -> None:
    for n in range(12):
        ask(bot.slack, f"hangup prod:{call_sid(100 + n)}")
    ask(bot.slack, f"hangup prod:{call_sid(200)}", user=BOB)
    rows = bot.db.audit()
    mine = [r["id"] for r in rows if r["user_id"] == ALICE][::-1]
    home_opened(bot, ALICE)
    view = wait_home(bot, ALICE, 1)
    assert view["type"] == "home"
    assert view["blocks"][0] == {
        "type": "header",
        "text": {"type": "plain_text", "text": "Your recent actions", "emoji": True},
    }
    assert rows_in(view, "own") == mine[:10]
    assert rows_in(view, "team") == []
    newest = next(b for b in view["blocks"] if b.get("block_id") == f"own_{mine[0]}")
    assert newest["text"]["text"] == expected_line(rows[-2], "⛔")
    assert newest["accessory"]["action_id"] == "audit_details:own0"
    assert newest["accessory"]["value"] == str(mine[0])
    assert "Reading the team's audit needs `audit`" in texts(view)
    assert call_sid(200) not in json.dumps(view)
    assert bot.fake_slack.view_errors == []
    # Details from the Home tab open the same modal.
    details = open_details(bot.fake_slack, bot.slack, mine[0])
    assert details["title"]["text"] == f"Audit #{mine[0]}"


def test_messages_tab_publishes_nothing(bot: Bot) -> None:
    home_opened(bot, ALICE, tab="messages")
    home_opened(bot, BOB)
    wait_home(bot, BOB, 1)
    assert homes(bot, ALICE) == 0


def test_audit_holders_see_the_team_with_quick_filters(clock_bot: ClockBot) -> None:
    bot = clock_bot
    now = datetime.now(UTC)
    bot.db.grant(ALICE, "audit", "*")
    bot.db.grant(BOB, "operator", "prod")
    bot.clock.now = now - timedelta(days=1)
    bot.slack.run(f"hangup prod:{call_sid(2)}", user=BOB)  # yesterday, failed: no such call
    bot.clock.now = now
    sid = bot.twilio.add_call(call_sid(1))
    bot.slack.run(f"hangup prod:{sid}", user=BOB)  # succeeded
    for n in range(21):
        ask(bot.slack, f"hangup prod:{call_sid(300 + n)}", user=CAROL)  # denied
    rows = bot.db.audit()
    every = [r["id"] for r in rows][::-1]
    yesterday, ok = rows[0]["id"], rows[1]["id"]
    denied = [r["id"] for r in rows if r["outcome"] == "denied"][::-1]

    home_opened(bot, ALICE)
    view = wait_home(bot, ALICE, 1)
    assert rows_in(view, "own") == []
    assert "Nothing audited for you yet" in texts(view)
    assert rows_in(view, "team") == every[:20]
    filters = next(b for b in view["blocks"] if b.get("block_id") == "home_filter")["elements"]
    assert [(f["text"]["text"], f["action_id"], f.get("style")) for f in filters] == [
        ("All", "home_filter:all", "primary"),
        ("Failed only", "home_filter:failed", None),
        ("Denied only", "home_filter:denied", None),
        ("Today", "home_filter:today", None),
    ]
    assert "Showing: *All*, the last 20 (everyone's)." in texts(view)

    click(bot.fake_slack, bot.slack, filters[1])
    failed_only = wait_home(bot, ALICE, 2)
    assert rows_in(failed_only, "team") == [yesterday]
    assert "Showing: *Failed only*, the last 1 (everyone's)." in texts(failed_only)
    selected = next(b for b in failed_only["blocks"] if b.get("block_id") == "home_filter")["elements"]
    assert [f.get("style") for f in selected] == [None, "primary", None, None]

    click(bot.fake_slack, bot.slack, filters[2])
    assert rows_in(wait_home(bot, ALICE, 3), "team") == denied[:20]

    click(bot.fake_slack, bot.slack, filters[3])
    today = wait_home(bot, ALICE, 4)
    assert rows_in(today, "team") == [i for i in every if i != yesterday][:20]
    assert ok in rows_in(today, "team") or len(every) - 1 > 20

    click(bot.fake_slack, bot.slack, filters[0])
    assert rows_in(wait_home(bot, ALICE, 5), "team") == every[:20]
    assert bot.fake_slack.view_errors == []
    # A crafted filter name falls back to "all".
    click(bot.fake_slack, bot.slack, {"action_id": "home_filter:bogus", "value": "bogus"})
    assert rows_in(wait_home(bot, ALICE, 6), "team") == every[:20]


def test_audit_on_one_account_home_shows_that_account(bot: Bot) -> None:
    ask(bot.slack, f"hangup prod:{call_sid(1)}", user=BOB)
    ask(bot.slack, "hangup bw:c-00000002-1331029c-2cb0-4a07-b215-b22865662d85", user=BOB)
    bob_prod, bob_bw = (r["id"] for r in bot.db.audit())
    bot.db.grant(ALICE, "audit", "bw")
    home_opened(bot, ALICE)
    view = wait_home(bot, ALICE, 1)
    assert rows_in(view, "team") == [bob_bw]
    assert bob_prod not in rows_in(view, "team")
    assert "(visible to you)" in texts(view)


def test_home_lines_show_what_the_provider_confirmed(bot: Bot) -> None:
    """Own and team lines alike gain the confirmation after the outcome; an unconfirmed row none."""
    bot.db.grant(ALICE, "audit", "*")
    bot.db.grant(BOB, "operator", "prod")
    ended, live = bot.fake_twilio.add_call(call_sid(41)), bot.fake_twilio.add_call(call_sid(42))
    bot.slack.run(f"hangup prod:{ended}", user=BOB)
    bot.slack.run(f"redirect prod:{live} https://example.com/hold.xml", user=BOB)
    ask(bot.slack, f"hangup prod:{call_sid(43)}")  # alice, denied: nothing to confirm
    hangup, redirect, denied = bot.db.audit()
    at = moment(hangup["created_at"]) + timedelta(seconds=1)
    confirm(bot, hangup["id"], Seen("completed", "completed", at, Via.READ))
    confirm(bot, redirect["id"], Seen("in-progress", "in-progress", at, Via.CALLBACK))
    home_opened(bot, ALICE)
    view = wait_home(bot, ALICE, 1)

    def line(prefix: str, row: dict[str, Any]) -> str:
        return str(next(b for b in view["blocks"] if b.get("block_id") == f"{prefix}_{row['id']}")["text"]["text"])

    assert line("team", hangup) == expected_line(hangup, "✅").replace(
        "✅ succeeded", "✅ succeeded → confirmed ended (`completed`)"
    )
    assert line("team", redirect).endswith("✅ succeeded → confirmed live (`in-progress`)")
    assert line("own", denied) == expected_line(denied, "⛔")
    assert bot.fake_slack.view_errors == []


def test_home_is_republished_after_a_call_action(bot: Bot) -> None:
    bot.db.grant(BOB, "operator", "prod")
    home_opened(bot, BOB)
    assert rows_in(wait_home(bot, BOB, 1), "own") == []
    sid = bot.fake_twilio.add_call(call_sid(5))
    _, outcome = bot.slack.run(f"hangup prod:{sid}", user=BOB)
    assert reply_text(outcome).startswith(":white_check_mark:")
    view = wait_home(bot, BOB, 2)
    [row] = bot.db.audit()
    assert row["outcome"] == "succeeded"
    assert rows_in(view, "own") == [row["id"]]
    own = next(b for b in view["blocks"] if b.get("block_id") == f"own_{row['id']}")
    assert own["text"]["text"] == expected_line(row, "✅")
    # A refused command is no call action outcome: no new publish.
    refused = ask(bot.slack, "hangup bw:c-00000006-1331029c-2cb0-4a07-b215-b22865662d85", user=BOB)
    assert reply_text(refused).startswith(":no_entry:")
    time.sleep(0.3)
    assert homes(bot, BOB) == 2


def test_a_refused_publish_does_not_disturb_the_action(bot: Bot) -> None:
    bot.db.grant(BOB, "operator", "prod")
    bot.fake_slack.publish_failing = True
    sid = bot.fake_twilio.add_call(call_sid(9))
    _, outcome = bot.slack.run(f"hangup prod:{sid}", user=BOB)
    bot.fake_slack.wait_for(lambda reqs: any(r.path == "/api/views.publish" for r in reqs))
    assert homes(bot, BOB) == 0
    [row] = bot.db.audit()
    assert row["outcome"] == "succeeded"
    assert f"audit #{row['id']}" in reply_text(outcome)
    # Opening the Home tab while publishing fails: acknowledged, logged, nothing else breaks.
    home_opened(bot, BOB)
    bot.fake_slack.wait_for(lambda reqs: sum(r.path == "/api/views.publish" for r in reqs) == 2)
    assert [call["user_id"] for call in bot.fake_slack.calls("views.publish")] == [BOB, BOB]
    assert reply_text(ask(bot.slack, "audit", BOB)).startswith(":information_source: *Audit (yours): 1 attempt,")


def test_home_is_republished_after_an_action_from_the_form(bot: Bot) -> None:
    bot.db.grant(ALICE, "redirect", "prod")
    sid = bot.fake_twilio.add_call(call_sid(11))
    values = state(account="prod", action="redirect", call_id=sid, url="https://example.com/hold.xml")
    assert submit(bot, values) == {"response_action": "clear"}
    view = wait_home(bot, ALICE, 1)
    [row] = bot.db.audit()
    assert (row["source"], row["outcome"]) == ("modal", "succeeded")
    assert rows_in(view, "own") == [row["id"]]
    # The outcome was delivered first, then the Home tab published.
    paths = [r.path for r in bot.fake_slack.requests if r.path in ("/api/chat.postEphemeral", "/api/views.publish")]
    assert paths == ["/api/chat.postEphemeral", "/api/views.publish"]


def test_event_subscription_url_verification(bot: Bot) -> None:
    """Enabling Event Subscriptions: Slack checks the request URL with a signed challenge first."""
    body = json.dumps(
        {
            "token": "gIkuvaNzQIHg97ATvDxqgjtO",
            "challenge": "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmd",
            "type": "url_verification",
        }
    )
    answer = bot.slack.post(body, bot.slack.sign(body), "application/json")
    assert answer.status_code == 200 and answer.json() == {"challenge": "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmd"}
    forged = bot.slack.post(body, {**bot.slack.sign(body), "X-Slack-Signature": "v0=" + "0" * 64}, "application/json")
    assert forged.status_code == 401


def test_the_team_filter_stays_when_an_action_refreshes_the_home(bot: Bot) -> None:
    bot.db.grant(ALICE, "supervisor", "prod")
    ask(bot.slack, f"hangup prod:{call_sid(700)}", user=CAROL)  # denied: what "Denied only" shows
    home_opened(bot, ALICE)
    view = wait_home(bot, ALICE, 1)
    filters = next(b for b in view["blocks"] if b.get("block_id") == "home_filter")["elements"]
    click(bot.fake_slack, bot.slack, filters[2])
    assert "Showing: *Denied only*" in texts(wait_home(bot, ALICE, 2))

    sid = bot.fake_twilio.add_call(call_sid(701))
    bot.slack.run(f"hangup prod:{sid}", user=ALICE)
    refreshed = wait_home(bot, ALICE, 3)
    assert "Showing: *Denied only*" in texts(refreshed)
    selected = next(b for b in refreshed["blocks"] if b.get("block_id") == "home_filter")["elements"]
    assert [f.get("style") for f in selected] == [None, None, "primary", None]
    assert len(rows_in(refreshed, "own")) == 1  # Alice's own hangup, whatever the team filter


def test_a_burst_of_actions_refreshes_the_home_tab_once_more_not_once_each(bot: Bot) -> None:
    """Debounced: the first outcome publishes at once, the rest of the burst once, after a second,
    and that last publish shows every action of the burst."""
    bot.db.grant(BOB, "operator", "prod")
    for n in range(4):
        sid = bot.fake_twilio.add_call(call_sid(40 + n))
        _, outcome = bot.slack.run(f"hangup prod:{sid}", user=BOB)
        assert reply_text(outcome).startswith(":white_check_mark:")
    time.sleep(HOME_DEBOUNCE + 0.5)  # past the window: a trailing refresh has been published
    published = homes(bot, BOB)
    assert 2 <= published < 4
    last = bot.fake_slack.home_views[BOB][-1]
    assert sorted(rows_in(last, "own")) == sorted(r["id"] for r in bot.db.audit())
