"""Forms that scale (issue 16, item 5): above 100 accounts, or 100 saved flows, the action form's
menus are type-aheads (`external_select`), filled through signed `block_suggestion` requests with
what the person may use and what they typed, at most 100 options and a "type to narrow" heading
beyond. Driven against the worker's bot with 101 accounts (tests/support/wide.py).

The fake Slack refuses what real Slack refuses (tests/fakes/blockkit.py): any form or answer here
Slack would not show fails the test at teardown."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.fakes.bird import bird_call_id
from tests.fakes.twilio import ACCOUNT_SID, call_sid
from tests.support.bots import ALICE, BOB, PAYLOADS, Bot, reply_text
from tests.support.wide import ACCOUNTS

CHANNEL = "C2147483705"
FLOW = [{"command": "say", "options": {"text": "Please hold", "locale": "en-GB"}}, {"command": "hangup"}]


@pytest.fixture
def bot(wide_bot: Bot) -> Bot:
    return wide_bot


# -- driving the form as Slack does -----------------------------------------------------------------


def open_form(bot: Bot, user: str = ALICE) -> dict[str, Any]:
    """`/call` alone: the modal opens ("Loading…"), then is filled in with views.update."""
    response = bot.slack.command("", user=user)
    assert response.status_code == 200 and response.text == ""
    bot.fake_slack.wait_for(lambda reqs: any(r.path == "/api/views.update" for r in reqs))
    return bot.fake_slack.calls("views.update")[-1]["view"]


def blocks(view: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {b["block_id"]: b for b in view["blocks"] if "block_id" in b}


def picked(kind: str, value: str | None) -> dict[str, Any]:
    return {"type": kind, "selected_option": {"value": value} if value else None}


def values(
    account: str | None, action: str | None = None, *, menu: str = "external_select", **fields: Any
) -> dict[str, Any]:
    """view.state.values as Slack sends them: every input of the form, picked or not."""
    state: dict[str, Any] = {
        "account": {"account": picked(menu, account)},
        "action": {"action": picked("static_select", action)},
    }
    for block_id, value in fields.items():
        state[block_id] = value
    return state


def change(bot: Bot, action_id: str, state: dict[str, Any], kind: str = "external_select") -> dict[str, Any]:
    """A menu with dispatch_action picked: the bot redraws the form (views.update)."""
    before = len(bot.fake_slack.calls("views.update"))
    payload = json.loads((PAYLOADS / "block_actions.json").read_text())
    payload["user"]["id"] = ALICE
    payload["container"] = {"type": "view", "view_id": "V0000000001"}
    payload["view"] = {
        "id": "V0000000001",
        "hash": "1.2",
        "type": "modal",
        "callback_id": "call_action",
        "private_metadata": json.dumps({"channel": CHANNEL}),
        "state": {"values": state},
        "blocks": [],
    }
    payload["actions"] = [{"action_id": action_id, "block_id": action_id, "type": kind, "action_ts": "1"}]
    assert bot.slack.interact(payload).status_code == 200
    bot.fake_slack.wait_for(lambda reqs: sum(r.path == "/api/views.update" for r in reqs) > before)
    return bot.fake_slack.calls("views.update")[-1]["view"]


def suggest(
    bot: Bot, action_id: str, typed: str, *, user: str = ALICE, state: dict[str, Any] | None = None
) -> dict[str, Any]:
    """A type-ahead's options request, as Slack sends it while the person types."""
    payload = json.loads((PAYLOADS / "block_suggestion.json").read_text())
    payload["user"]["id"] = user
    payload["action_id"] = payload["block_id"] = action_id
    payload["value"] = typed
    payload["view"]["state"] = {"values": state or {}}
    payload["view"]["private_metadata"] = json.dumps({"channel": CHANNEL})
    response = bot.slack.interact(payload)
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


def offered(answer: dict[str, Any]) -> list[str]:
    """The values of an options answer, in order, whether grouped or not."""
    listed = answer.get("options") or [o for g in answer.get("option_groups") or [] for o in g["options"]]
    return [o["value"] for o in listed]


def submit(
    bot: Bot, state: dict[str, Any], *, callback: str = "call_action", meta: dict[str, Any] | None = None
) -> Any:
    payload = json.loads((PAYLOADS / "view_submission.json").read_text())
    payload["user"]["id"] = ALICE
    payload["view"].update(
        {
            "id": "V0000000001",
            "callback_id": callback,
            "private_metadata": json.dumps(meta or {"channel": CHANNEL}),
            "state": {"values": state},
        }
    )
    response = bot.slack.interact(payload)
    assert response.status_code == 200
    return response.json() if response.text else None


def text_input(value: str) -> dict[str, Any]:
    return {"value": {"type": "plain_text_input", "value": value}}


# -- 101 accounts ------------------------------------------------------------------------------------


def test_101_accounts_give_a_working_form(bot: Bot) -> None:
    """The account menu is a type-ahead; picking from it, the form goes on as ever, through the
    confirmation to the hang-up, on the account picked."""
    bot.db.grant(ALICE, "hangup")
    form = open_form(bot)
    assert form["submit"]["text"] == "Run"
    account = blocks(form)["account"]
    assert account["element"]["type"] == "external_select"
    assert (account["element"]["action_id"], account["element"]["min_query_length"]) == ("account", 0)
    assert account["hint"]["text"] == "101 accounts: type part of a name to find one."
    assert account["dispatch_action"] is True

    everything = suggest(bot, "account", "")
    [group] = everything["option_groups"]
    assert group["label"]["text"] == "100 of 101 accounts: type to narrow"
    assert offered(everything) == list(ACCOUNTS[:100])
    assert offered(suggest(bot, "account", "tw-4")) == [f"tw-{n}" for n in range(40, 50)]

    on_tw07 = change(bot, "account", values("tw-07"))
    assert on_tw07["submit"]["text"] == "Run"
    initial = blocks(on_tw07)["account"]["element"]["initial_option"]
    assert initial == {"text": {"type": "plain_text", "text": "tw-07 (Twilio)", "emoji": True}, "value": "tw-07"}
    assert [o["value"] for o in blocks(on_tw07)["action"]["element"]["options"]] == ["hangup"]

    sid = bot.fake_twilio.add_call(call_sid(0x107))
    asked = submit(bot, values("tw-07", "hangup", call_id=text_input(sid)))
    assert asked["response_action"] == "update"
    assert f"Hang up tw-07:{sid}?" in json.dumps(asked["view"])
    meta = json.loads(asked["view"]["private_metadata"])
    assert submit(bot, {}, callback="call_confirm", meta=meta) == {"response_action": "clear"}
    bot.fake_slack.wait_for(lambda reqs: any(r.path == "/api/chat.postEphemeral" for r in reqs))
    [hangup] = bot.fake_twilio.updates()
    assert hangup.path == f"/2010-04-01/Accounts/{ACCOUNT_SID}/Calls/{sid}.json"
    assert f"Hung up tw-07:{sid}" in reply_text(bot.fake_slack.calls("chat.postEphemeral")[0])
    [row] = bot.db.audit()
    assert (row["account"], row["action"], row["outcome"], row["source"]) == ("tw-07", "hangup", "succeeded", "modal")


def test_typed_words_narrow_the_accounts_and_a_whole_name_comes_first(bot: Bot) -> None:
    bot.db.grant(ALICE, "hangup")
    assert offered(suggest(bot, "account", "BIRD-2")) == [f"bird-{n}" for n in range(20, 26)]
    assert offered(suggest(bot, "account", "bird"))[:2] == ["bird", "bird-01"]  # the name typed, first
    assert offered(suggest(bot, "account", "twilio 4")) == [a for a in ACCOUNTS if a.startswith("tw-") and "4" in a]
    assert offered(suggest(bot, "account", "bandwidth")) == sorted(a for a in ACCOUNTS if a.startswith("bw"))
    assert suggest(bot, "account", "nothing like it") == {"options": []}


def test_the_account_type_ahead_offers_only_the_accounts_the_person_may_use(bot: Bot) -> None:
    for account in ("tw-03", "bird-04", "bw-05"):
        bot.db.grant(BOB, "hangup", account)
    bot.db.grant(BOB, "redirect", "tw-31", channel="C0ELSEWHERE")  # a channel's grant: offered, decided on submit
    assert offered(suggest(bot, "account", "", user=BOB)) == ["bird-04", "bw-05", "tw-03", "tw-31"]
    assert offered(suggest(bot, "account", "tw", user=BOB)) == ["tw-03", "tw-31"]
    assert suggest(bot, "account", "", user="U0NOBODY1") == {"options": []}
    assert bot.db.audit() == []  # keystrokes are not audited


def test_100_accounts_are_a_static_menu(bot: Bot) -> None:
    """The person may use 100 of the 101 accounts: exactly what a static menu holds."""
    for account in ACCOUNTS[:100]:
        bot.db.grant(ALICE, "hangup", account)
    account = blocks(open_form(bot))["account"]
    assert account["element"]["type"] == "static_select" and "hint" not in account
    assert [o["value"] for o in account["element"]["options"]] == list(ACCOUNTS[:100])


# -- saved flows ----------------------------------------------------------------------------------------


def names(count: int) -> list[str]:
    return [f"flow-{n:03d}" for n in range(count)]


def flow_form(bot: Bot) -> dict[str, Any]:
    return change(bot, "action", values("bird", "flow", call_id=text_input(bird_call_id(7))), kind="static_select")


def test_100_saved_flows_are_a_static_menu(bot: Bot) -> None:
    bot.db.grant(ALICE, "flow", "bird")
    bot.db.save_flows(names(100), FLOW)
    form = flow_form(bot)
    saved = blocks(form)["saved_flow"]
    assert saved["element"]["type"] == "static_select"
    assert [o["value"] for o in saved["element"]["options"]] == names(100)
    first = saved["element"]["options"][0]["text"]["text"]
    assert first == "flow-000 · v1 · 2 commands"
    assert saved["hint"]["text"] == "Run shows it before anything is sent."
    assert form["submit"]["text"] == "Run" and "Build the callFlow" in json.dumps(form)


def test_101_saved_flows_are_a_type_ahead(bot: Bot) -> None:
    bot.db.grant(ALICE, "flow", "bird")
    bot.db.save_flows(names(101), FLOW)
    saved = blocks(flow_form(bot))["saved_flow"]
    assert saved["element"]["type"] == "external_select" and saved["element"]["action_id"] == "saved_flow"
    assert saved["hint"]["text"].startswith("101 saved flows: type part of a name to find one.")
    state = values("bird", "flow")
    everything = suggest(bot, "saved_flow", "", state=state)
    assert everything["option_groups"][0]["label"]["text"] == "100 of 101 saved flows: type to narrow"
    assert offered(everything) == names(100)
    assert offered(suggest(bot, "saved_flow", "flow-10", state=state)) == ["flow-100"]
    assert offered(suggest(bot, "saved_flow", "09", state=state)) == ["flow-009", "flow-090", *names(100)[91:100]]


def test_saved_flows_are_offered_only_to_who_may_apply_one_on_the_account(bot: Bot) -> None:
    bot.db.save_flows(names(101), FLOW)
    bot.db.grant(BOB, "hangup", "bird")  # may act on the account, not apply a callFlow there
    bot.db.grant(BOB, "flow", "bird-02")
    assert suggest(bot, "saved_flow", "", user=BOB, state=values("bird", "flow")) == {"options": []}
    assert len(offered(suggest(bot, "saved_flow", "", user=BOB, state=values("bird-02", "flow")))) == 100
    assert suggest(bot, "saved_flow", "", user=BOB, state=values(None)) == {"options": []}


def test_a_saved_flow_picked_in_the_form_is_shown_with_its_apply_button(bot: Bot) -> None:
    bot.db.grant(ALICE, "flow", "bird")
    bot.db.save_flows(names(101), FLOW)
    call = bot.fake_bird.add_call(bird_call_id(8))
    state = values(
        "bird", "flow", call_id=text_input(call), saved_flow={"saved_flow": picked("external_select", "flow-100")}
    )
    assert submit(bot, state) == {"response_action": "clear"}
    bot.fake_slack.wait_for(lambda reqs: any(r.path == "/api/chat.postEphemeral" for r in reqs))
    [shown] = bot.fake_slack.calls("chat.postEphemeral")
    assert f"Apply saved flow `flow-100` v1 to bird:{call}?" in reply_text(shown)
    apply = [e for b in shown["blocks"] if b["type"] == "actions" for e in b["elements"]]
    assert [b["text"]["text"] for b in apply] == ["Apply flow-100 v1"]
    assert bot.fake_bird.updates() == []  # nothing is sent before the click
    assert bot.db.audit() == []  # as typed: the confirmation is not audited, the click is


def test_flow_without_a_saved_flow_picked_is_refused_in_the_form(bot: Bot) -> None:
    bot.db.grant(ALICE, "flow", "bird")
    call = {"call_id": text_input(bird_call_id(9))}
    none_saved = submit(bot, values("bird", "flow", **call))
    assert none_saved == {
        "response_action": "errors",
        "errors": {"action": "Pick a saved flow, or build a callFlow with the button."},
    }
    bot.db.save_flows(names(3), FLOW)
    unpicked = submit(bot, values("bird", "flow", saved_flow={"saved_flow": picked("static_select", None)}, **call))
    assert unpicked["errors"] == {"saved_flow": "Pick a saved flow, or build a callFlow with the button."}
    unknown = submit(bot, values("bird", "flow", saved_flow={"saved_flow": picked("static_select", "gone")}, **call))
    assert unknown["errors"] == {"saved_flow": "`gone`: is not a saved flow. See `/call flows` for the saved flows."}
    assert [row["outcome"] for row in bot.db.audit()] == ["invalid", "invalid", "invalid"]
    assert bot.fake_bird.updates() == []


# -- the call menu: at most 100 live calls -------------------------------------------------------------


def live_calls(bot: Bot, count: int) -> list[str]:
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
    return [bot.fake_twilio.add_call(call_sid(0x1000 + n), started_at=start) for n in range(count)]


@pytest.mark.parametrize(("count", "grouped"), [(99, False), (100, True), (101, True)])
def test_the_call_menu_shows_100_live_calls_and_says_to_type_when_there_may_be_more(
    bot: Bot, count: int, grouped: bool
) -> None:
    bot.db.grant(ALICE, "hangup", "prod")
    live_calls(bot, count)
    answer = suggest(bot, "call_picker", "", state=values("prod", menu="static_select"))
    assert len(offered(answer)) == min(count, 100)
    if grouped:
        [group] = answer["option_groups"]
        assert group["label"]["text"] == "The first 100 live calls: type digits or an id to narrow"
    else:
        assert "option_groups" not in answer


# -- never a silent stall ----------------------------------------------------------------------------


@pytest.mark.parametrize("failure", ["invalid_arguments", "internal"])
def test_a_form_that_cannot_be_shown_says_so_instead_of_loading_forever(bot: Bot, failure: str) -> None:
    bot.db.grant(ALICE, "hangup")
    if failure == "internal":  # callbot's own failure: here, its database gone
        with bot.db.engine.begin() as conn:
            conn.exec_driver_sql("ALTER TABLE grants RENAME TO grants_away")
    else:
        bot.fake_slack.failures["views.update"] = [failure]
    try:
        bot.slack.command("")
        bot.fake_slack.wait_for(
            lambda reqs: sum(r.path == "/api/views.update" for r in reqs) >= (2 if failure != "internal" else 1)
        )
    finally:
        if failure == "internal":
            with bot.db.engine.begin() as conn:
                conn.exec_driver_sql("ALTER TABLE grants_away RENAME TO grants")
    shown = bot.fake_slack.calls("views.update")[-1]["view"]
    why = "Slack refused it: `invalid_arguments`" if failure != "internal" else "callbot hit an internal error"
    assert f"callbot could not show the form ({why}" in json.dumps(shown)
    assert "Loading" not in json.dumps(shown) and "submit" not in shown
