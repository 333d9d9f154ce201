"""Slack's Block Kit limits (docs.slack.dev/reference/block-kit), each at the limit and one past it.

First the fake Slack itself: it takes what Slack takes and refuses the rest as Slack does
(`invalid_arguments` for a view, `invalid_blocks` for a message, the reasons in
`response_metadata.messages`), which is what lets every other test fail when callbot sends Slack
something it would refuse (tests/support/fixtures.py). Then callbot, at each limit it can reach:
what the person sees is whole at the limit, and one past it still shows, saying what was left out.
The menus of the action form (100 accounts, saved flows, live calls) are in tests/test_forms_scale.py.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from tests.fakes.bandwidth import bw_call_id
from tests.fakes.bird import bird_call_id
from tests.fakes.slack import BOT_TOKEN, FakeSlack
from tests.fakes.twilio import call_sid
from tests.support.bots import ALICE, PAYLOADS, Bot, reply_text
from tests.support.wide import BANDWIDTH, BIRD, BW_AT_LIMIT, BW_PAST_LIMIT

CHANNEL = "C2147483705"


# -- the fake refuses what Slack refuses -------------------------------------------------------------


def plain(text: str) -> dict[str, Any]:
    return {"type": "plain_text", "text": text}


def section(text: str = "x") -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}}


def option(text: str = "x", value: str = "x") -> dict[str, Any]:
    return {"text": plain(text), "value": value}


def modal(*blocks: dict[str, Any], **fields: Any) -> dict[str, Any]:
    view = {"type": "modal", "title": plain("Call action"), "close": plain("Cancel"), "blocks": list(blocks)}
    return {**view, **fields}


def select_in_input(**element: Any) -> dict[str, Any]:
    return {
        "type": "input",
        "block_id": "account",
        "label": plain("Account"),
        "element": {"type": "static_select", "action_id": "account", **element},
    }


def buttons(count: int, text: str = "Go") -> dict[str, Any]:
    return {
        "type": "actions",
        "elements": [{"type": "button", "action_id": f"b{n}", "text": plain(text)} for n in range(count)],
    }


# Each limit: (what, a view or message at the limit, the same one past it, Slack's pointer to it).
VIEWS: list[tuple[str, Any, Any, str]] = [
    ("blocks in a view: 100", modal(*[section()] * 100), modal(*[section()] * 101), "/view/blocks"),
    ("a modal's title: 24", modal(title=plain("t" * 24)), modal(title=plain("t" * 25)), "/view/title/text"),
    ("a modal's submit: 24", modal(submit=plain("s" * 24)), modal(submit=plain("s" * 25)), "/view/submit/text"),
    (
        "private_metadata: 3000",
        modal(private_metadata="m" * 3000),
        modal(private_metadata="m" * 3001),
        "/view/private_metadata",
    ),
    (
        "an input's label: 2000",
        modal(
            {"type": "input", "label": plain("l" * 2000), "element": {"type": "plain_text_input"}}, submit=plain("Run")
        ),
        modal(
            {"type": "input", "label": plain("l" * 2001), "element": {"type": "plain_text_input"}}, submit=plain("Run")
        ),
        "/view/blocks/0/label/text",
    ),
    (
        "options of a static_select: 100",
        modal(select_in_input(options=[option(value=str(n)) for n in range(100)]), submit=plain("Run")),
        modal(select_in_input(options=[option(value=str(n)) for n in range(101)]), submit=plain("Run")),
        "/view/blocks/0/element/options",
    ),
    (
        "option groups of a static_select: 100",
        modal(select_in_input(option_groups=[{"label": plain("g"), "options": [option()]}] * 100), submit=plain("Run")),
        modal(select_in_input(option_groups=[{"label": plain("g"), "options": [option()]}] * 101), submit=plain("Run")),
        "/view/blocks/0/element/option_groups",
    ),
    (
        "an option's text: 75",
        modal(select_in_input(options=[option("o" * 75)]), submit=plain("Run")),
        modal(select_in_input(options=[option("o" * 76)]), submit=plain("Run")),
        "/view/blocks/0/element/options/0/text/text",
    ),
    (
        "an option's value: 150",
        modal(select_in_input(options=[option(value="v" * 150)]), submit=plain("Run")),
        modal(select_in_input(options=[option(value="v" * 151)]), submit=plain("Run")),
        "/view/blocks/0/element/options/0/value",
    ),
    (
        "a menu's placeholder: 150",
        modal(select_in_input(options=[option()], placeholder=plain("p" * 150)), submit=plain("Run")),
        modal(select_in_input(options=[option()], placeholder=plain("p" * 151)), submit=plain("Run")),
        "/view/blocks/0/element/placeholder/text",
    ),
    (
        "a modal with inputs has a submit button",
        modal(select_in_input(options=[option()]), submit=plain("Run")),
        modal(select_in_input(options=[option()])),
        "/view/submit",
    ),
    (
        "a header's text: 150",
        modal({"type": "header", "text": plain("h" * 150)}),
        modal({"type": "header", "text": plain("h" * 151)}),
        "/view/blocks/0/text/text",
    ),
]
MESSAGES: list[tuple[str, Any, Any, str]] = [
    ("blocks in a message: 50", [section()] * 50, [section()] * 51, "/blocks"),
    ("a section's text: 3000", [section("s" * 3000)], [section("s" * 3001)], "/blocks/0/text/text"),
    ("a section's text: at least 1", [section("s")], [section("")], "/blocks/0/text/text"),
    ("buttons in an actions block: 25", [buttons(25)], [buttons(26)], "/blocks/0/elements"),
    ("a button's text: 75", [buttons(1, "b" * 75)], [buttons(1, "b" * 76)], "/blocks/0/elements/0/text/text"),
    (
        "elements of a context block: 10",
        [{"type": "context", "elements": [{"type": "mrkdwn", "text": "c"}] * 10}],
        [{"type": "context", "elements": [{"type": "mrkdwn", "text": "c"}] * 11}],
        "/blocks/0/elements",
    ),
]


def web_api(slack: FakeSlack, method: str, body: dict[str, Any]) -> dict[str, Any]:
    response = httpx.post(slack.api_url + method, json=body, headers={"Authorization": f"Bearer {BOT_TOKEN}"})
    answer: dict[str, Any] = response.json()
    return answer


@pytest.mark.slack_refusals
@pytest.mark.parametrize(("what", "at_limit", "past_it", "pointer"), VIEWS, ids=[v[0] for v in VIEWS])
def test_the_fake_takes_a_view_at_each_limit_and_refuses_it_one_past(
    fake_slack: FakeSlack, what: str, at_limit: Any, past_it: Any, pointer: str
) -> None:
    assert web_api(fake_slack, "views.open", {"trigger_id": "1.2.3", "view": at_limit})["ok"] is True
    assert fake_slack.refusals == []
    refused = web_api(fake_slack, "views.update", {"view_id": "V1", "view": past_it})
    assert (refused["ok"], refused["error"]) == (False, "invalid_arguments")
    [reason] = refused["response_metadata"]["messages"]
    assert reason.startswith("[ERROR] ") and reason.endswith(f"[json-pointer:{pointer}]")
    [kept] = fake_slack.refusals
    assert (kept.where, kept.messages) == ("views.update", (reason,))


@pytest.mark.slack_refusals
@pytest.mark.parametrize(("what", "at_limit", "past_it", "pointer"), MESSAGES, ids=[m[0] for m in MESSAGES])
def test_the_fake_takes_a_message_at_each_limit_and_refuses_it_one_past(
    fake_slack: FakeSlack, what: str, at_limit: Any, past_it: Any, pointer: str
) -> None:
    for method in ("chat.postMessage", "chat.postEphemeral"):
        body = {"channel": CHANNEL, "user": ALICE, "text": "t"}
        assert web_api(fake_slack, method, {**body, "blocks": at_limit})["ok"] is True
        refused = web_api(fake_slack, method, {**body, "blocks": past_it})
        assert (refused["ok"], refused["error"]) == (False, "invalid_blocks")
        [reason] = refused["response_metadata"]["messages"]
        assert reason.endswith(f"[json-pointer:{pointer}]")
    # A response_url answers a message Slack cannot show with a 400, `invalid_blocks`.
    assert httpx.post(fake_slack.response_url(), json={"blocks": at_limit}).status_code == 200
    answer = httpx.post(fake_slack.response_url(), json={"blocks": past_it})
    assert (answer.status_code, answer.text) == (400, "invalid_blocks")
    assert [r.where for r in fake_slack.refusals] == ["chat.postMessage", "chat.postEphemeral", "response_url"]


def test_an_unrefused_test_leaves_no_refusal(fake_slack: FakeSlack) -> None:
    """What every unmarked test checks at teardown: here, nothing was refused."""
    assert web_api(fake_slack, "views.open", {"trigger_id": "1.2.3", "view": modal(section())})["ok"] is True
    assert fake_slack.refusals == []


# -- callbot at the limits it can reach ---------------------------------------------------------------


@pytest.fixture
def bot(wide_bot: Bot) -> Bot:
    return wide_bot


def action_buttons(message: dict[str, Any]) -> list[list[str]]:
    """The buttons' texts, actions block by actions block."""
    return [[e["text"]["text"] for e in b["elements"]] for b in message["blocks"] if b["type"] == "actions"]


def click(bot: Bot, button: dict[str, Any]) -> None:
    payload = json.loads((PAYLOADS / "block_actions.json").read_text())
    payload["user"]["id"] = ALICE
    payload["response_url"] = bot.fake_slack.response_url("choice")
    payload["actions"] = [{**button, "block_id": "choose_account_1", "type": "button", "action_ts": "1.2"}]
    assert bot.slack.interact(payload).status_code == 200


def test_25_accounts_for_one_call_id_are_one_row_of_buttons_and_26_are_two(bot: Bot) -> None:
    """A call id that fits many accounts asks which: one button each, 25 to an actions block."""
    bot.db.grant(ALICE, "hangup")
    bw = bot.slack.command(f"hangup {bw_call_id(0x25)}").json()
    assert "Which account is this call on?" in reply_text(bw)
    [row] = action_buttons(bw)
    assert len(row) == len(BANDWIDTH) == 25
    birds = bot.slack.command(f"hangup {bird_call_id(0x26)}").json()
    rows = action_buttons(birds)
    assert [len(r) for r in rows] == [25, 1] and len(BIRD) == 26
    assert [text.partition(":")[0] for text in rows[0] + rows[1]] == sorted(BIRD)
    # The 26th works like the first.
    last = [e for b in birds["blocks"] if b["type"] == "actions" for e in b["elements"]][-1]
    call = bot.fake_bird.add_call(bird_call_id(0x26))
    click(bot, last)
    bot.fake_slack.wait_responses(2)
    [hangup] = bot.fake_bird.updates()
    assert call in hangup.path
    assert bot.db.audit()[-1]["account"] == "bird-25"


def test_a_button_of_75_characters_is_whole_and_one_of_76_is_visibly_cut(bot: Bot) -> None:
    bot.db.grant(ALICE, "hangup")
    call = bw_call_id(0x75)
    texts = action_buttons(bot.slack.command(f"hangup {call}").json())[0]
    at_limit, past_it = f"{BW_AT_LIMIT}:{call}", f"{BW_PAST_LIMIT}:{call}"
    assert (len(at_limit), len(past_it)) == (75, 76)
    assert at_limit in texts
    assert past_it[:74] + "…" in texts and past_it not in texts


def test_an_option_of_75_characters_is_whole_and_one_of_76_is_visibly_cut(bot: Bot) -> None:
    """A saved flow's option: `NAME · v1 · 2 commands`, 20 characters more than its name."""
    bot.db.grant(ALICE, "flow", "bird")
    suffix = " · v1 · 2 commands"
    whole, cut = "a" + "-x" * 28, "b" + "-x" * 28 + "y"  # flow names: words joined by dashes
    assert (len(whole + suffix), len(cut + suffix)) == (75, 76)
    bot.db.save_flows([whole, cut], [{"command": "say", "options": {"text": "Hold"}}, {"command": "hangup"}])
    form = form_with(bot, "bird", "flow")
    [saved] = [b for b in form["blocks"] if b.get("block_id") == "saved_flow"]
    assert [(o["value"], o["text"]["text"]) for o in saved["element"]["options"]] == [
        (whole, whole + suffix),
        (cut, (cut + suffix)[:74] + "…"),
    ]


def form_with(bot: Bot, account: str, action: str | None = None) -> dict[str, Any]:
    """The form redrawn after picking `account` (and `action`)."""
    before = len(bot.fake_slack.calls("views.update"))
    payload = json.loads((PAYLOADS / "block_actions.json").read_text())
    payload["user"]["id"] = ALICE
    payload["view"] = {
        "id": "V0000000001",
        "hash": "1.2",
        "type": "modal",
        "callback_id": "call_action",
        "private_metadata": json.dumps({"channel": CHANNEL}),
        "state": {
            "values": {
                "account": {"account": {"type": "external_select", "selected_option": {"value": account}}},
                "action": {
                    "action": {"type": "static_select", "selected_option": {"value": action} if action else None}
                },
            }
        },
        "blocks": [],
    }
    payload["actions"] = [{"action_id": "account", "block_id": "account", "type": "external_select", "action_ts": "1"}]
    assert bot.slack.interact(payload).status_code == 200
    bot.fake_slack.wait_for(lambda reqs: sum(r.path == "/api/views.update" for r in reqs) > before)
    view: dict[str, Any] = bot.fake_slack.calls("views.update")[-1]["view"]
    return view


def test_the_form_always_has_its_run_button(bot: Bot) -> None:
    """Slack refuses a modal with input blocks and no submit button: the form never lacks one,
    whatever is picked yet (the fake refusing it would fail this test too)."""
    bot.db.grant(ALICE, "hangup", "prod")
    bot.db.grant(ALICE, "flow", "bird")
    bot.slack.command("")
    bot.fake_slack.wait_for(lambda reqs: any(r.path == "/api/views.update" for r in reqs))
    opened = bot.fake_slack.calls("views.update")[-1]["view"]
    assert [b["block_id"] for b in opened["blocks"]] == ["account", "call_id"]  # nothing picked yet
    stages = [opened, form_with(bot, "prod"), form_with(bot, "prod", "hangup"), form_with(bot, "bird", "flow")]
    bot.db.save_flows(["hold-music"], [{"command": "hangup"}])
    stages.append(form_with(bot, "bird", "flow"))
    assert [view["submit"]["text"] for view in stages] == ["Run"] * 5
    assert bot.fake_slack.refusals == []


def test_a_line_of_3000_characters_is_whole_and_one_of_3001_is_visibly_cut(bot: Bot) -> None:
    """`Reason: …` in the confirmation of a saved flow: a section of Slack's 3,000 characters."""
    bot.db.grant(ALICE, "flow", "bird")
    bot.db.save_flows(["hold-music"], [{"command": "hangup"}])
    call = bird_call_id(0x3000)
    at_limit = bot.slack.command(f"flow bird:{call} hold-music reason={'r' * 2992}").json()
    assert "Reason: " + "r" * 2992 in [b["text"]["text"] for b in at_limit["blocks"] if b["type"] == "section"]
    past_it = bot.slack.command(f"flow bird:{call} hold-music reason={'r' * 2993}").json()
    sections = [b["text"]["text"] for b in past_it["blocks"] if b["type"] == "section"]
    assert "Reason: " + "r" * 2991 + "…" in sections
    assert "Apply hold-music v1" in json.dumps(past_it)  # the rest of the message is all there


def test_a_message_of_50_blocks_is_whole_and_one_past_says_what_was_left_out(bot: Bot) -> None:
    """`/call flows` lists every saved flow, its lines packed into sections of at most 3,000
    characters: with names of one length every line has one length, so the number of flows that
    fill exactly the title and 49 sections is known, and one more section is one past the limit."""
    bot.db.grant(ALICE, "flow", "bird")
    names = [f"f{n:04d}-" + "x" * 58 for n in range(2000)]  # every name 64 characters
    bot.db.save_flows(names[:1], [{"command": "hangup"}])
    one = bot.slack.command("flows").json()
    line, footer = one["blocks"][1]["text"]["text"].split("\n")
    per_section = 3001 // (len(line) + 1)  # n lines joined by newlines fit in 3,000 characters
    assert len(line) + 1 + len(footer) <= 3000  # the last section: one line and the footer

    def listing(flows: int) -> dict[str, Any]:
        with bot.db.engine.begin() as conn:
            conn.exec_driver_sql("DELETE FROM saved_flows")
        bot.db.save_flows(names[:flows], [{"command": "hangup"}])
        answer: dict[str, Any] = bot.slack.command("flows").json()
        return answer

    full = listing(48 * per_section + 1)  # 48 full sections, then one line and the footer
    assert len(full["blocks"]) == 50
    last = full["blocks"][-1]["text"]["text"]
    assert last.startswith(f"`f{48 * per_section:04d}-") and last.endswith(f"\n{footer}") and last.count("\n") == 1
    over = listing(49 * per_section + 1)  # 49 full sections and one more: 51 blocks
    assert len(over["blocks"]) == 50
    assert over["blocks"][-1] == {
        "type": "context",
        "elements": [
            {
                "type": "mrkdwn",
                "text": f":scissors: {per_section + 2} more lines not shown: Slack shows at most 50 blocks in a message.",
            }
        ],
    }


def test_20_call_ids_in_a_message_are_all_offered_and_21_say_there_are_more(bot: Bot) -> None:
    """ "Act on this call": a menu of the message's ids, at most 20 (its view's metadata keeps them)."""
    bot.db.grant(ALICE, "hangup", "prod")
    ids = [call_sid(0x2000 + n) for n in range(21)]
    twenty = shortcut_on(bot, " ".join(ids[:20]))
    assert [o["value"] for o in call_menu(twenty)] == ids[:20]
    assert "20 call ids found in that message" in notes(twenty) and "has more" not in notes(twenty)
    bot.fake_slack.reset()
    more = shortcut_on(bot, " ".join(ids))
    assert [o["value"] for o in call_menu(more)] == ids[:20]
    assert "20 call ids of the first 20 found in that message; it has more" in notes(more)
    assert json.loads(more["private_metadata"])["more"] is True


def shortcut_on(bot: Bot, text: str) -> dict[str, Any]:
    payload = json.loads((PAYLOADS / "message_action.json").read_text())
    payload["user"]["id"] = ALICE
    payload["message"] = {"type": "message", "text": text, "ts": "1700000100.000200"}
    assert bot.slack.interact(payload).status_code == 200
    bot.fake_slack.wait_for(lambda reqs: any(r.path == "/api/views.update" for r in reqs))
    view: dict[str, Any] = bot.fake_slack.calls("views.update")[-1]["view"]
    return view


def call_menu(view: dict[str, Any]) -> list[dict[str, Any]]:
    [block] = [b for b in view["blocks"] if b.get("block_id") == "call_id"]
    options: list[dict[str, Any]] = block["element"]["options"]
    return options


def notes(view: dict[str, Any]) -> str:
    return " ".join(e["text"] for b in view["blocks"] if b["type"] == "context" for e in b["elements"])
