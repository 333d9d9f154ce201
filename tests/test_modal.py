"""The action modal, driven with signed interactivity payloads exactly as Slack sends them."""

from __future__ import annotations

import json
from typing import Any

import pytest
from slack_sdk.models.views import View

from tests.fakes.bandwidth import bw_call_id
from tests.fakes.twilio import ACCOUNT_SID, call_sid
from tests.support.bots import ALICE, PAYLOADS, Bot, reply_text

# The worker's one default bot, lent to each test (tests/support/bots.py SharedBot).
pytestmark = pytest.mark.shared_bot


def open_modal(bot: Bot, user: str = ALICE) -> dict[str, Any]:
    response = bot.slack.command("", user=user)
    assert response.status_code == 200
    assert response.text == ""  # an empty ack: Slack shows nothing, the modal opens
    bot.fake_slack.wait_for(lambda reqs: any(r.path == "/api/views.update" for r in reqs))
    [opened] = bot.fake_slack.calls("views.open")
    assert opened["trigger_id"].startswith("13345224609.")
    return bot.fake_slack.calls("views.update")[-1]["view"]


def blocks(view: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {b["block_id"]: b for b in view["blocks"] if "block_id" in b}


def options_of(block: dict[str, Any]) -> list[str]:
    return [o["value"] for o in block["element"]["options"]]


def state(**fields: str) -> dict[str, Any]:
    """view.state.values as Slack sends them, for the fields given (block id = field)."""
    values: dict[str, Any] = {}
    for block_id, value in fields.items():
        key = block_id.replace("_", "-") if block_id in ("time_limit", "fallback_method") else block_id
        if key in ("account", "action"):
            values[key] = {key: {"type": "static_select", "selected_option": {"value": value}}}
        elif key in ("method", "fallback-method", "status-callback-method"):
            values[key] = {"value": {"type": "static_select", "selected_option": {"value": value}}}
        elif key == "dry_run":
            values[key] = {"value": {"type": "checkboxes", "selected_options": [{"value": "dry-run"}]}}
        elif key == "time-limit":
            values[key] = {"value": {"type": "number_input", "value": value}}
        else:
            values[key] = {"value": {"type": "plain_text_input", "value": value}}
    return values


def submit(
    bot: Bot,
    values: dict[str, Any],
    *,
    callback: str = "call_action",
    metadata: dict[str, Any] | None = None,
    user: str = ALICE,
    view_id: str = "V0000000001",
) -> Any:
    payload = json.loads((PAYLOADS / "view_submission.json").read_text())
    payload["user"]["id"] = user
    payload["view"].update(
        {
            "id": view_id,
            "callback_id": callback,
            "private_metadata": json.dumps(metadata if metadata is not None else {"channel": "C2147483705"}),
            "state": {"values": values},
        }
    )
    response = bot.slack.interact(payload)
    assert response.status_code == 200
    return response.json() if response.text else None


def change(bot: Bot, action_id: str, values: dict[str, Any]) -> dict[str, Any]:
    """Picking an account or an action (dispatch_action) → the bot updates the view."""
    before = len(bot.fake_slack.calls("views.update"))
    payload = json.loads((PAYLOADS / "block_actions.json").read_text())
    payload["user"]["id"] = ALICE
    payload["container"] = {"type": "view", "view_id": "V0000000001"}
    payload["view"] = {
        "id": "V0000000001",
        "hash": "1.2",
        "type": "modal",
        "callback_id": "call_action",
        "private_metadata": json.dumps({"channel": "C2147483705"}),
        "state": {"values": values},
        "blocks": [],
    }
    payload["actions"] = [{"action_id": action_id, "block_id": action_id, "type": "static_select", "action_ts": "1"}]
    assert bot.slack.interact(payload).status_code == 200
    bot.fake_slack.wait_for(lambda reqs: sum(r.path == "/api/views.update" for r in reqs) > before)
    update = bot.fake_slack.calls("views.update")[-1]
    assert update["view_id"] == "V0000000001"
    return update["view"]


def grant_all(bot: Bot) -> None:
    for action in ("hangup", "cancel", "redirect", "twiml"):
        bot.db.grant(ALICE, action, "prod")
    bot.db.grant(ALICE, "hangup", "bw")
    bot.db.grant(ALICE, "redirect", "bw")


def test_slash_call_alone_opens_the_form_with_only_the_accounts_the_user_may_use(bot: Bot) -> None:
    grant_all(bot)
    view = open_modal(bot)
    assert view["callback_id"] == "call_action"
    assert options_of(blocks(view)["account"]) == ["bw", "prod"]  # not bird: no grant there
    assert blocks(view)["account"]["dispatch_action"] is True
    assert "call_id" in blocks(view)
    assert bot.fake_slack.view_errors == []


def test_without_any_grant_the_form_says_so(bot: Bot) -> None:
    view = open_modal(bot)
    assert "may not run any call action yet" in json.dumps(view)
    assert "submit" not in view


def test_the_form_shows_exactly_the_options_of_the_provider_and_action(bot: Bot) -> None:
    grant_all(bot)
    open_modal(bot)
    on_prod = change(bot, "account", state(account="prod"))
    assert options_of(blocks(on_prod)["action"]) == ["hangup", "cancel", "redirect", "twiml"]
    twilio_redirect = blocks(change(bot, "action", state(account="prod", action="redirect", call_id=call_sid(1))))
    assert {
        "url",
        "method",
        "fallback",
        "fallback-method",
        "status-callback",
        "status-callback-method",
        "time-limit",
    } <= set(twilio_redirect)
    assert "tag" not in twilio_redirect and "password" not in twilio_redirect
    # what was picked is kept (the call field is a type-ahead: bot/service/live.py)
    assert twilio_redirect["call_id"]["element"]["initial_option"]["value"] == call_sid(1)
    assert [o["value"] for o in twilio_redirect["method"]["element"]["options"]] == ["GET", "POST"]
    bw_redirect = blocks(change(bot, "action", state(account="bw", action="redirect")))
    assert {"tag", "username", "password", "fallback-username", "fallback-password"} <= set(bw_redirect)
    assert "time-limit" not in bw_redirect and "status-callback" not in bw_redirect
    assert options_of(blocks(change(bot, "account", state(account="bw")))["action"]) == ["hangup", "redirect"]
    assert bot.fake_slack.view_errors == []


def test_a_valid_redirect_closes_the_form_and_runs_the_pipeline(bot: Bot) -> None:
    grant_all(bot)
    sid = bot.fake_twilio.add_call(call_sid(2))
    answer = submit(
        bot,
        state(
            account="prod",
            action="redirect",
            call_id=sid,
            url="https://example.com/hold.xml",
            method="GET",
            time_limit="600",
            reason="queue overflow",
        ),
    )
    assert answer == {"response_action": "clear"}
    bot.fake_slack.wait_for(lambda reqs: any(r.path == "/api/chat.postEphemeral" for r in reqs))
    [request] = bot.fake_twilio.updates()
    assert request.path == f"/2010-04-01/Accounts/{ACCOUNT_SID}/Calls/{sid}.json"
    assert request.form_pairs == [("Url", "https://example.com/hold.xml"), ("Method", "GET"), ("TimeLimit", "600")]
    [posted] = bot.fake_slack.calls("chat.postEphemeral")
    assert (posted["channel"], posted["user"]) == ("C2147483705", ALICE)
    assert f"Redirected prod:{sid}" in reply_text(posted)
    [row] = bot.db.audit()
    assert (row["source"], row["outcome"], row["action"]) == ("modal", "succeeded", "redirect")
    assert row["command_text"] == (
        f"/call redirect prod:{sid} https://example.com/hold.xml method=GET time-limit=600 reason='queue overflow'"
    )


def test_field_errors_appear_under_the_right_input_blocks(bot: Bot) -> None:
    grant_all(bot)
    answer = submit(
        bot, state(account="prod", action="redirect", call_id=call_sid(3), url="not a url", fallback="ftp://x")
    )
    assert answer["response_action"] == "errors"
    assert set(answer["errors"]) == {"url", "fallback"}
    assert "absolute http(s) URL" in answer["errors"]["fallback"]
    assert bot.fake_twilio.requests == []
    [row] = bot.db.audit()
    assert (row["source"], row["outcome"]) == ("modal", "invalid")


def test_provider_refusals_land_under_the_field_concerned(bot: Bot) -> None:
    grant_all(bot)
    wrong_shape = submit(bot, state(account="prod", action="hangup", call_id="CA123", dry_run="x"))
    assert wrong_shape["response_action"] == "errors"
    assert "is not a twilio call id" in wrong_shape["errors"]["call_id"]
    no_password = submit(
        bot, state(account="bw", action="redirect", call_id=bw_call_id(1), url="https://e.com/b", username="u")
    )
    assert set(no_password["errors"]) == {"username"}
    missing = submit(bot, state(call_id=call_sid(4)))
    assert set(missing["errors"]) == {"account", "action"}


def test_hangup_asks_for_confirmation_naming_call_and_account(bot: Bot) -> None:
    grant_all(bot)
    sid = bot.fake_twilio.add_call(call_sid(5))
    answer = submit(bot, state(account="prod", action="hangup", call_id=sid, reason="fraud"))
    assert answer["response_action"] == "update"
    confirm = answer["view"]
    View(**confirm).validate_json()
    assert confirm["callback_id"] == "call_confirm"
    assert f"Hang up prod:{sid}?" in json.dumps(confirm) and "fraud" in json.dumps(confirm)
    assert bot.fake_twilio.requests == []

    done = submit(bot, {}, callback="call_confirm", metadata=json.loads(confirm["private_metadata"]), view_id="V2")
    assert done == {"response_action": "clear"}
    bot.fake_slack.wait_for(lambda reqs: any(r.path == "/api/chat.postEphemeral" for r in reqs))
    assert bot.fake_twilio.updates()[0].form_pairs == [("Status", "completed")]
    assert f"Hung up prod:{sid}" in reply_text(bot.fake_slack.calls("chat.postEphemeral")[0])
    row = bot.db.audit()[-1]
    assert (row["source"], row["command_text"]) == ("modal", f"/call hangup prod:{sid} reason=fraud")


def test_permission_is_checked_again_on_submit(bot: Bot) -> None:
    grant_all(bot)
    open_modal(bot)
    with bot.db.engine.begin() as conn:
        from sqlalchemy import text

        conn.execute(text("DELETE FROM grants WHERE action = 'redirect'"))
    answer = submit(bot, state(account="prod", action="redirect", call_id=call_sid(6), url="https://e.com/x"))
    assert answer["response_action"] == "errors"
    assert "not allowed to `redirect` on account `prod`" in answer["errors"]["action"]
    assert bot.db.audit()[-1]["outcome"] == "denied"
    assert bot.fake_twilio.requests == []


def test_outcome_falls_back_to_a_dm_when_the_channel_cannot_be_posted_to(bot: Bot) -> None:
    grant_all(bot)
    bot.fake_slack.unreachable_channels.add("C0PRIVATE")
    answer = submit(
        bot,
        state(account="prod", action="redirect", call_id=call_sid(7), url="https://e.com/x", dry_run="x"),
        metadata={"channel": "C0PRIVATE"},
    )
    assert answer == {"response_action": "clear"}
    bot.fake_slack.wait_for(lambda reqs: any(r.path == "/api/chat.postMessage" for r in reqs))
    [dm] = bot.fake_slack.calls("chat.postMessage")
    assert dm["channel"] == ALICE
    assert "Dry run" in reply_text(dm)


def test_a_replayed_submission_runs_once(bot: Bot) -> None:
    grant_all(bot)
    sid = bot.fake_twilio.add_call(call_sid(8))
    values = state(account="prod", action="redirect", call_id=sid, url="https://e.com/x")
    submit(bot, values)
    submit(bot, values)
    bot.fake_slack.wait_for(lambda reqs: sum(r.path == "/api/chat.postEphemeral" for r in reqs) >= 2)
    assert len(bot.fake_twilio.updates()) == 1
    # The duplicate may be answered before the original's outcome arrives: order is not fixed.
    posted = sorted(reply_text(m) for m in bot.fake_slack.calls("chat.postEphemeral"))
    assert sum("Redirected" in p for p in posted) == 1
    assert sum("already" in p and "nothing was sent twice" in p.lower() for p in posted) == 1


def test_help_offers_the_form_and_its_button_opens_it(bot: Bot) -> None:
    grant_all(bot)
    help_message = bot.slack.command("help").json()
    [button] = [e for b in help_message["blocks"] if b["type"] == "actions" for e in b["elements"]]
    assert button["action_id"] == "open_form" and button["text"]["text"] == "Open form"
    payload = json.loads((PAYLOADS / "block_actions.json").read_text())
    payload["user"]["id"] = ALICE
    payload["actions"] = [{"action_id": "open_form", "block_id": "open_form", "type": "button", "action_ts": "1"}]
    assert bot.slack.interact(payload).status_code == 200
    bot.fake_slack.wait_for(lambda reqs: any(r.path == "/api/views.update" for r in reqs))
    assert bot.fake_slack.calls("views.open")[0]["trigger_id"] == payload["trigger_id"]
    assert options_of(blocks(bot.fake_slack.calls("views.update")[0]["view"])["account"]) == ["bw", "prod"]
