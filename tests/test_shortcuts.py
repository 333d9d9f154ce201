"""The shortcuts, driven with signed `message_action` and `shortcut` payloads as Slack sends them:
"Act on this call" opens the action form with the message's call ids (shortened) to pick from,
the global shortcut opens the form; both offer only what the person may do, and the action they
run is audited with the shortcut as its source. An action run from a message answers in its
thread, masked."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from bot.slack.listeners.shortcuts import GLOBAL_SHORTCUT, MESSAGE_SHORTCUT
from tests.fakes.bandwidth import bw_call_id
from tests.fakes.bird import bird_call_id
from tests.fakes.twilio import AUTH_TOKEN, call_sid
from tests.support.bots import ALICE, BOB, PAYLOADS, Bot, reply_text
from tests.support.leaks import traces

pytestmark = pytest.mark.shared_bot

CHANNEL = "C2147483705"  # the channel of the message_action sample
MESSAGE_TS = "1700000100.000200"
NUMBER = "+447700900123"


def message_shortcut(bot: Bot, text: str, *, user: str = ALICE, **message: Any) -> dict[str, Any]:
    """ "Act on this call" on a message saying `text` (the sample's blocks and attachments
    replaced by `message`'s, if given) → the form as the bot filled it in (views.update)."""
    payload = json.loads((PAYLOADS / "message_action.json").read_text())
    payload["user"]["id"] = user
    payload["response_url"] = bot.fake_slack.response_url("shortcut")
    payload["message"] = {"type": "message", "text": text, "ts": MESSAGE_TS, "bot_id": "B0MONITOR1", **message}
    return _opened(bot, payload)


def global_shortcut(bot: Bot, user: str = ALICE) -> dict[str, Any]:
    payload = json.loads((PAYLOADS / "shortcut.json").read_text())
    payload["user"]["id"] = user
    return _opened(bot, payload)


def _opened(bot: Bot, payload: dict[str, Any]) -> dict[str, Any]:
    response = bot.slack.interact(payload)
    assert response.status_code == 200 and response.text == ""
    bot.fake_slack.wait_for(lambda reqs: any(r.path == "/api/views.update" for r in reqs))
    [opened] = bot.fake_slack.calls("views.open")
    assert opened["trigger_id"] == payload["trigger_id"]
    assert bot.fake_slack.view_errors == []
    return dict(bot.fake_slack.calls("views.update")[-1]["view"])


def blocks(view: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {b["block_id"]: b for b in view["blocks"] if "block_id" in b}


def call_menu(view: dict[str, Any]) -> list[tuple[str, str]]:
    element = blocks(view)["call_id"]["element"]
    assert element["type"] == "static_select" and element["action_id"] == "call_choice"
    return [(o["value"], o["text"]["text"]) for o in element["options"]]


def note(view: dict[str, Any]) -> str:
    return " ".join(e["text"] for b in view["blocks"] if b["type"] == "context" for e in b["elements"])


def selected(view: dict[str, Any], block: str) -> str | None:
    initial = blocks(view)[block]["element"].get("initial_option")
    return initial["value"] if initial else None


def submit(bot: Bot, view: dict[str, Any], values: dict[str, Any], *, callback: str = "call_action") -> Any:
    payload = json.loads((PAYLOADS / "view_submission.json").read_text())
    payload["user"]["id"] = ALICE
    payload["view"].update(
        {
            "id": "V0000000001",
            "callback_id": callback,
            "private_metadata": view["private_metadata"],
            "state": {"values": values},
        }
    )
    response = bot.slack.interact(payload)
    assert response.status_code == 200
    return response.json() if response.text else None


def picked(account: str, call_id: str, action: str, **typed: str) -> dict[str, Any]:
    """view.state.values: the account and the call picked from their menus, the action, fields typed."""
    values: dict[str, Any] = {
        "account": {"account": {"type": "static_select", "selected_option": {"value": account}}},
        "call_id": {"call_choice": {"type": "static_select", "selected_option": {"value": call_id}}},
        "action": {"action": {"type": "static_select", "selected_option": {"value": action}}},
    }
    for block, value in typed.items():
        values[block] = {"value": {"type": "plain_text_input", "value": value}}
    return values


def change_account(bot: Bot, view: dict[str, Any], account: str) -> dict[str, Any]:
    """Picking another account (dispatch_action) → the bot updates the form."""
    before = len(bot.fake_slack.calls("views.update"))
    payload = json.loads((PAYLOADS / "block_actions.json").read_text())
    payload["user"]["id"] = ALICE
    payload["container"] = {"type": "view", "view_id": "V0000000001"}
    payload["view"] = {
        "id": "V0000000001",
        "hash": "1.2",
        "type": "modal",
        "callback_id": "call_action",
        "private_metadata": view["private_metadata"],
        "state": {"values": {"account": {"account": {"type": "static_select", "selected_option": {"value": account}}}}},
        "blocks": [],
    }
    payload["actions"] = [{"action_id": "account", "block_id": "account", "type": "static_select", "action_ts": "1"}]
    assert bot.slack.interact(payload).status_code == 200
    bot.fake_slack.wait_for(lambda reqs: sum(r.path == "/api/views.update" for r in reqs) > before)
    return dict(bot.fake_slack.calls("views.update")[-1]["view"])


def thread_replies(bot: Bot, count: int = 1) -> list[dict[str, Any]]:
    bot.fake_slack.wait_for(lambda reqs: sum(r.path == "/api/chat.postMessage" for r in reqs) >= count)
    return [m for m in bot.fake_slack.calls("chat.postMessage") if m.get("thread_ts")]


def grant(bot: Bot, *actions: str, account: str = "prod", user: str = ALICE) -> None:
    for action in actions:
        bot.db.grant(user, action, account)


# -- "Act on this call" -----------------------------------------------------------------------------


def test_the_message_shortcut_opens_the_form_with_the_call_ids_of_the_message_shortened(bot: Bot) -> None:
    grant(bot, "hangup", "redirect")
    first, second = call_sid(1), call_sid(2)
    view = message_shortcut(
        bot,
        f"[FIRING] Long call on {NUMBER}: {first}",
        blocks=[
            {
                "type": "section",
                "block_id": "b1",
                "text": {
                    "type": "mrkdwn",
                    "text": f"Also look at <https://console.twilio.com/calls/{second}|this one>",
                },
            }
        ],
        attachments=[{"fallback": "alert", "fields": [{"title": "Call", "value": first}]}],
    )
    assert view["callback_id"] == "call_action"
    # Both ids, in the order of the message, each once; shown shortened, used whole.
    assert call_menu(view) == [
        (first, f"{first[:4]}…{first[-2:]}"),
        (second, f"{second[:4]}…{second[-2:]}"),
    ]
    assert "2 call ids found in that message" in note(view)
    # Both are Twilio ids and the person's one Twilio account is prod: it is picked already.
    assert selected(view, "account") == "prod"
    assert first not in note(view) and NUMBER not in json.dumps(view)
    meta = json.loads(view["private_metadata"])
    assert meta["source"] == "message_shortcut" and meta["calls"] == [first, second]
    assert meta["thread"] == [CHANNEL, MESSAGE_TS]


def test_submitting_the_form_runs_the_action_audited_with_its_source_and_answers_in_the_thread(bot: Bot) -> None:
    grant(bot, "redirect")
    sid = bot.fake_twilio.add_call(call_sid(3))
    view = message_shortcut(bot, f"Stuck call {sid} from {NUMBER}")
    assert selected(view, "call_id") == sid  # the only one: picked already

    answer = submit(bot, view, picked("prod", sid, "redirect", url="https://example.com/hold.xml"))
    assert answer == {"response_action": "clear"}
    [reply] = thread_replies(bot)
    [request] = bot.fake_twilio.updates()
    assert request.path.endswith(f"/Calls/{sid}.json") and ("Url", "https://example.com/hold.xml") in request.form_pairs
    [row] = bot.db.audit()
    assert (row["source"], row["action"], row["call_id"], row["outcome"]) == (
        "message_shortcut",
        "redirect",
        sid,
        "succeeded",
    )
    # The thread of the message hears of it, visibly, in one masked line.
    assert (reply["channel"], reply["thread_ts"]) == (CHANNEL, MESSAGE_TS)
    assert reply["text"] == (
        f"✅ succeeded: <@{ALICE}> ran `redirect` on `prod`, call `{sid[:4]}…{sid[-2:]}` (audit #{row['id']})"
    )
    assert sid not in reply["text"] and reply.get("reply_broadcast") in (None, "false", False)
    # The person's own outcome stays ephemeral, in the channel of the message.
    bot.fake_slack.wait_for(lambda reqs: any(r.path == "/api/chat.postEphemeral" for r in reqs))
    [ephemeral] = bot.fake_slack.calls("chat.postEphemeral")
    assert (ephemeral["channel"], ephemeral["user"]) == (CHANNEL, ALICE)
    assert f"Redirected prod:{sid}" in reply_text(ephemeral)


def test_a_hangup_from_the_message_keeps_its_source_through_the_confirmation(bot: Bot) -> None:
    grant(bot, "hangup")
    sid = bot.fake_twilio.add_call(call_sid(4))
    view = message_shortcut(bot, f"{sid} reason=fraud password={AUTH_TOKEN}")
    confirm = submit(bot, view, picked("prod", sid, "hangup", reason=f"fraud from {NUMBER}"))
    assert confirm["response_action"] == "update" and confirm["view"]["callback_id"] == "call_confirm"
    assert bot.fake_twilio.updates() == []

    done = submit(bot, confirm["view"], {}, callback="call_confirm")
    assert done == {"response_action": "clear"}
    [reply] = thread_replies(bot)
    assert bot.fake_twilio.hangups[sid] == 1
    [row] = bot.db.audit()
    assert (row["source"], row["outcome"]) == ("message_shortcut", "succeeded")
    assert reply["thread_ts"] == MESSAGE_TS and f"ran `hangup` on `prod`, call `{sid[:4]}…" in reply["text"]
    # The reason (free text: a number, maybe a secret) is not in the line.
    assert NUMBER not in reply["text"] and "fraud" not in reply["text"]
    assert traces(json.dumps(reply), [AUTH_TOKEN]) == []


def test_a_reply_in_a_thread_answers_in_that_thread(bot: Bot) -> None:
    grant(bot, "redirect")
    sid = bot.fake_twilio.add_call(call_sid(5))
    view = message_shortcut(bot, f"still ringing: {sid}", thread_ts="1700000000.000001")
    submit(bot, view, picked("prod", sid, "redirect", url="https://example.com/hold.xml"))
    [reply] = thread_replies(bot)
    assert (reply["channel"], reply["thread_ts"]) == (CHANNEL, "1700000000.000001")


def test_a_dry_run_or_a_refusal_from_the_message_says_nothing_in_the_thread(bot: Bot) -> None:
    grant(bot, "redirect")
    sid = call_sid(6)
    view = message_shortcut(bot, sid)
    values = picked("prod", sid, "redirect", url="https://example.com/hold.xml")
    values["dry_run"] = {"value": {"type": "checkboxes", "selected_options": [{"value": "dry-run"}]}}
    assert submit(bot, view, values) == {"response_action": "clear"}
    bot.fake_slack.wait_for(lambda reqs: any(r.path == "/api/chat.postEphemeral" for r in reqs))
    refused = submit(bot, view, picked("prod", sid, "twiml", twiml="<Response><Hangup/></Response>"))  # no grant
    assert refused["response_action"] == "errors"
    assert [r["outcome"] for r in bot.db.audit()] == ["dry_run", "denied"]
    assert {r["source"] for r in bot.db.audit()} == {"message_shortcut"}
    assert bot.fake_slack.calls("chat.postMessage") == []


def test_ids_of_several_providers_let_the_person_pick_the_account(bot: Bot) -> None:
    grant(bot, "hangup")
    grant(bot, "hangup", account="bird")
    twilio, bird = call_sid(7), bird_call_id(7)
    view = message_shortcut(bot, f"{twilio} and {bird}")
    assert selected(view, "account") is None  # the ids point to two of the person's accounts
    assert [label for _, label in call_menu(view)] == [
        f"{twilio[:4]}…{twilio[-2:]} · prod",
        f"{bird[:4]}…{bird[-2:]} · bird",
    ]
    on_bird = change_account(bot, view, "bird")
    assert call_menu(on_bird) == [(bird, f"{bird[:4]}…{bird[-2:]}")]
    assert json.loads(on_bird["private_metadata"])["calls"] == [twilio, bird]


def test_a_bird_uuid_inside_a_bandwidth_id_is_not_a_call_of_its_own(bot: Bot) -> None:
    grant(bot, "hangup", account="bw")
    grant(bot, "hangup", account="bird")
    bandwidth = bw_call_id(8)  # c-00000008-<a UUID>
    view = message_shortcut(bot, f"bandwidth call {bandwidth} dropped")
    assert [value for value, _ in call_menu(view)] == [bandwidth]
    assert selected(view, "account") == "bw"


def test_no_call_id_in_the_message_opens_the_form_with_a_note(bot: Bot) -> None:
    grant(bot, "hangup")
    view = message_shortcut(bot, f"Customer {NUMBER} says the line is noisy (ticket CA-1234)")
    assert "No call id found in that message" in note(view)
    # The usual call field: a type-ahead over the account's live calls.
    assert blocks(view)["call_id"]["element"]["type"] == "external_select"
    assert "calls" in json.loads(view["private_metadata"])  # still opened on a message: source, thread


def test_only_accounts_the_person_may_act_on_are_offered(bot: Bot) -> None:
    nothing = message_shortcut(bot, call_sid(9), user=BOB)
    assert "may not run any call action yet" in json.dumps(nothing)
    assert "submit" not in nothing
    bot.fake_slack.reset()
    grant(bot, "hangup", account="bw")
    elsewhere = message_shortcut(bot, f"{call_sid(9)} is stuck")
    assert [o["value"] for o in blocks(elsewhere)["account"]["element"]["options"]] == ["bw"]
    assert "(`CA00…09`) do not fit account `bw`" in note(elsewhere)
    assert blocks(elsewhere)["call_id"]["element"]["type"] == "external_select"
    bot.fake_slack.reset()
    grant(bot, "hangup", account="bird")
    neither = message_shortcut(bot, f"{call_sid(9)} is stuck")
    assert selected(neither, "account") is None
    assert "(`CA00…09`) do not fit any account you may act on" in note(neither)


def test_the_samples_message_gives_its_two_twilio_ids(bot: Bot) -> None:
    """Slack's own shape of a monitoring tool's alert: ids in rich text, a button's URL and a
    legacy attachment's field; the one in two places is offered once."""
    grant(bot, "hangup")
    payload = json.loads((PAYLOADS / "message_action.json").read_text())
    payload["user"]["id"] = ALICE
    view = _opened(bot, payload)
    assert [value for value, _ in call_menu(view)] == [
        "CA0123456789abcdef0123456789abcdef",
        "CAfedcba9876543210fedcba9876543210",
    ]


# -- the global shortcut ----------------------------------------------------------------------------


def test_the_global_shortcut_opens_the_form_and_its_action_is_audited_as_a_shortcut(bot: Bot) -> None:
    grant(bot, "redirect")
    grant(bot, "hangup", account="bw")
    view = global_shortcut(bot)
    assert [o["value"] for o in blocks(view)["account"]["element"]["options"]] == ["bw", "prod"]
    assert blocks(view)["call_id"]["element"]["type"] == "external_select" and note(view) == ""
    assert json.loads(view["private_metadata"]) == {"channel": None, "account": None, "source": "shortcut"}

    sid = bot.fake_twilio.add_call(call_sid(10))
    values = picked("prod", sid, "redirect", url="https://example.com/hold.xml")
    values["call_id"] = {"call_picker": {"type": "external_select", "selected_option": {"value": sid}}}
    assert submit(bot, view, values) == {"response_action": "clear"}
    # No channel: the outcome comes as a direct message; nothing is posted anywhere else.
    bot.fake_slack.wait_for(lambda reqs: any(r.path == "/api/chat.postMessage" for r in reqs))
    [dm] = bot.fake_slack.calls("chat.postMessage")
    assert dm["channel"] == ALICE and f"Redirected prod:{sid}" in reply_text(dm)
    [row] = bot.db.audit()
    assert (row["source"], row["outcome"], row["channel_id"]) == ("shortcut", "succeeded", None)


def test_the_manifest_declares_both_shortcuts_with_the_callback_ids_callbot_answers() -> None:
    manifest = yaml.safe_load((Path(__file__).resolve().parents[1] / "manifest.yml").read_text())
    declared = {s["callback_id"]: s for s in manifest["features"]["shortcuts"]}
    assert {(cid, s["type"]) for cid, s in declared.items()} == {
        (MESSAGE_SHORTCUT, "message"),
        (GLOBAL_SHORTCUT, "global"),
    }
    assert declared[MESSAGE_SHORTCUT]["name"] == "Act on this call"
    # Slack's limits for a shortcut (kept well within): a short name and a one-line description.
    assert all(0 < len(s["name"]) <= 24 and 0 < len(s["description"]) <= 150 for s in declared.values())
    assert manifest["settings"]["interactivity"]["is_enabled"] is True
    assert "commands" in manifest["oauth_config"]["scopes"]["bot"]  # shortcuts need it too
