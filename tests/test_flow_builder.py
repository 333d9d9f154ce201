"""The callFlow builder, driven with signed interactivity payloads exactly as Slack sends them:
`/call flow bird:ID` opens it; block actions and view submissions build, reorder, preview, edit as
JSON, save and apply a callFlow. Every view the bot sends is validated by the fake Slack with
slack_sdk's View model (Slack's length and count limits); the fake Bird validates the PATCH body
against Bird's own OpenAPI schema, and the tests assert the exact body."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from slack_sdk.models.views import View
from sqlalchemy import text

from bot.db.models import utcnow
from tests.fakes.bird import CHANNEL_ID, WORKSPACE_ID, bird_call_id, schema_errors
from tests.processes import callbot
from tests.support.bots import ALICE, BOB, PAYLOADS, Bot, reply_text

# The worker's one default bot, lent to each test (tests/support/bots.py SharedBot).
pytestmark = pytest.mark.shared_bot


@pytest.fixture
def fb(bot: Bot) -> Bot:
    """Alice may apply callFlows on the Bird account and manage saved flows."""
    bot.db.grant(ALICE, "flow", "bird")
    bot.db.grant(ALICE, "flow:manage", "*")
    return bot


class Builder:
    """One person's builder modal: the root view and the view pushed on top of it."""

    def __init__(self, bot: Bot, call_id: str, user: str = ALICE) -> None:
        self.bot, self.call_id, self.user = bot, call_id, user
        self.root_id = ""
        self.root: dict[str, Any] = {}
        self.top_id = ""
        self.top: dict[str, Any] = {}

    # -- what Slack records -------------------------------------------------------------------------

    def _count(self, method: str) -> int:
        return len(self.bot.fake_slack.calls(method))

    def _next(self, method: str, before: int) -> dict[str, Any]:
        self.bot.fake_slack.wait_for(lambda reqs: sum(r.path == f"/api/{method}" for r in reqs) > before)
        return self.bot.fake_slack.calls(method)[-1]

    def _track(self, method: str, call: dict[str, Any]) -> dict[str, Any]:
        view = call["view"]
        if method == "views.push":
            self.top = view
            self.top_id = f"V{self._count('views.open') + self._count('views.push'):010d}"
        elif call.get("view_id") == self.root_id:
            self.root = view
        else:
            self.top = view
        return dict(view)

    # -- what the person does -----------------------------------------------------------------------

    def open(self, text: str | None = None) -> dict[str, Any]:
        before = self._count("views.update")
        response = self.bot.slack.command(text or f"flow bird:{self.call_id}", self.user)
        assert response.status_code == 200 and response.text == ""  # Slack shows nothing: a modal opens
        update = self._next("views.update", before)
        self.root_id, self.root = update["view_id"], update["view"]
        return self.root

    def click(
        self,
        action_id: str,
        *,
        on: str = "root",
        block_id: str = "b",
        value: str | None = None,
        selected: str | None = None,
        state: dict[str, Any] | None = None,
        expect: str | None = "views.update",
    ) -> dict[str, Any]:
        view, view_id = (self.root, self.root_id) if on == "root" else (self.top, self.top_id)
        payload = json.loads((PAYLOADS / "block_actions.json").read_text())
        for key in ("channel", "response_url"):
            payload.pop(key)
        payload["user"]["id"] = self.user
        payload["container"] = {"type": "view", "view_id": view_id}
        payload["view"] = {
            "id": view_id,
            "hash": "1.1",
            "type": "modal",
            "callback_id": view["callback_id"],
            "private_metadata": view.get("private_metadata", ""),
            "state": {"values": state or {}},
            "blocks": view["blocks"],
            "root_view_id": self.root_id,
        }
        action: dict[str, Any] = {"action_id": action_id, "block_id": block_id, "action_ts": "1.2"}
        if selected is not None:
            action.update(type="static_select", selected_option={"value": selected})
        elif action_id == "fb_cmd":
            action["type"] = "overflow"
        else:
            action.update(type="button", value=value or "")
        if action_id == "fb_cmd":
            action["selected_option"] = {"value": value}
        payload["actions"] = [action]
        before = self._count(expect) if expect else 0
        assert self.bot.slack.interact(payload).status_code == 200
        if expect is None:
            return {}
        return self._track(expect, self._next(expect, before))

    def submit(self, values: dict[str, Any], *, on: str = "top") -> Any:
        """Submit a view with `values` filled in, by block id (element types read from the view)."""
        view, view_id = (self.root, self.root_id) if on == "root" else (self.top, self.top_id)
        payload = json.loads((PAYLOADS / "view_submission.json").read_text())
        payload["user"]["id"] = self.user
        payload["view"].update(
            {
                "id": view_id,
                "callback_id": view["callback_id"],
                "private_metadata": view.get("private_metadata", ""),
                "state": {"values": fill(view, values)},
                "blocks": view["blocks"],
                "root_view_id": self.root_id,
                "hash": f"h{len(self.bot.fake_slack.requests)}",
            }
        )
        before = self._count("views.update")
        response = self.bot.slack.interact(payload)
        assert response.status_code == 200, response.text
        answer = response.json() if response.text else None
        if answer is None and view["callback_id"] in ("flow_command", "flow_json", "flow_save"):
            self.root = self._next("views.update", before)["view"]  # back on the list, redrawn
        return answer

    # -- journeys -----------------------------------------------------------------------------------

    def add(self, command: str, values: dict[str, Any] | None = None, conditions: int = 1) -> Any:
        self.click("fb_add", block_id="fb_tools", expect="views.push")
        self.click(
            "fb_type", on="top", block_id="command", selected=command, state=fill(self.top, {"command": command})
        )
        for _ in range(conditions - 1):
            self.click("fb_cond", on="top", block_id="fb_conditions", state=fill(self.top, {"command": command}))
        return self.submit({"command": command, **(values or {})})

    def menu(self, verb: str, index: int, root: dict[str, Any] | None = None) -> dict[str, Any]:
        """Picks `verb` in the ⋯ menu of command `index`, as drawn in `root` (default: the current
        drawing): the value is the option's own, as Slack sends it back."""
        expect = "views.push" if verb == "edit" else "views.update"
        return self.click("fb_cmd", block_id=f"fb_cmd_{index}", value=self.option(verb, index, root), expect=expect)

    def option(self, verb: str, index: int, root: dict[str, Any] | None = None) -> str:
        block = next(b for b in (root or self.root)["blocks"] if b.get("block_id") == f"fb_cmd_{index}")
        return next(o["value"] for o in block["accessory"]["options"] if o["value"].startswith(f"{verb}:"))

    def lines(self) -> list[str]:
        return [
            b["text"]["text"].split(" ", 1)[1]
            for b in self.root["blocks"]
            if b.get("block_id", "").startswith("fb_cmd_")
        ]

    def draft(self) -> list[dict[str, Any]]:
        with self.bot.db.engine.connect() as conn:
            rows = conn.execute(text("SELECT commands FROM flow_drafts ORDER BY id")).scalars().all()
        value = rows[-1]
        return json.loads(value) if isinstance(value, str) else value


def fill(view: dict[str, Any], values: dict[str, Any]) -> dict[str, Any]:
    """view.state.values as Slack sends them: each input's value in the shape of its element."""
    state: dict[str, Any] = {}
    for block in view["blocks"]:
        block_id = block.get("block_id")
        if block["type"] != "input" or block_id not in values:
            continue
        element, value = block["element"], values[block_id]
        kind = element["type"]
        if kind == "static_select":
            shown: dict[str, Any] = {"type": kind, "selected_option": {"value": value}}
        elif kind == "checkboxes":
            shown = {
                "type": kind,
                "selected_options": [{"value": o["value"]} for o in element["options"]] if value else [],
            }
        else:
            shown = {"type": kind, "value": str(value)}
        state[block_id] = {element["action_id"]: shown}
    assert set(values) <= set(state) | {"command"}, f"no input block for {set(values) - set(state)}"
    return state


def call_path(call_id: str) -> str:
    return f"/workspaces/{WORKSPACE_ID}/channels/{CHANNEL_ID}/calls/{call_id}"


def all_views_valid(bot: Bot) -> None:
    """Every view the bot sent passed slack_sdk's checks; metadata holds ids, never the draft."""
    assert bot.fake_slack.view_errors == []
    for method in ("views.open", "views.update", "views.push"):
        for call in bot.fake_slack.calls(method):
            view = call["view"]
            View(**view).validate_json()
            assert len(view["blocks"]) <= 100 and len(view["title"]["text"]) <= 24
            meta = view.get("private_metadata") or ""
            assert len(meta) <= 3000 and "options" not in meta


IVR = [
    {"command": "answer"},
    {"command": "say", "options": {"text": "Welcome to Example. Press 1 for sales, 2 for support.", "locale": "en-GB"}},
    {
        "command": "gather",
        "options": {
            "maxNumKeys": 1,
            "endKey": "#",
            "timeout": 5,
            "input": "dtmf",
            "say": {"text": "Press 1 or 2.", "locale": "en-GB"},
        },
    },
    {
        "command": "bridge",
        "options": {"to": "+31201234567", "ringTimeout": 30, "record": True, "recordStart": "record-from-answer"},
        "conditions": [{"variable": "keys", "operator": "==", "value": "1"}],
    },
    {
        "command": "bridge",
        "options": {"to": "+31207654321"},
        "conditions": [{"variable": "keys", "operator": "eq", "value": "2"}],
    },
    {"command": "hangup"},
]


def build_ivr(b: Builder) -> None:
    """Six commands, a gather with a spoken prompt, two conditional bridges: no JSON typed."""
    assert b.add("answer") is None
    assert b.add("say", {"o:text": IVR[1]["options"]["text"], "o:locale": "en-GB"}) is None
    assert (
        b.add(
            "gather",
            {
                "o:maxNumKeys": 1,
                "o:endKey": "#",
                "o:timeout": 5,
                "o:input": "dtmf",
                "o:say.text": "Press 1 or 2.",
                "o:say.locale": "en-GB",
            },
        )
        is None
    )
    bridge = {"o:to": "+31201234567", "o:ringTimeout": 30, "o:record": True, "o:recordStart": "record-from-answer"}
    assert b.add("bridge", {**bridge, "c0:variable": "keys", "c0:operator": "==", "c0:value": "1"}) is None
    assert b.add("hangup") is None
    assert (
        b.add("bridge", {"o:to": "+31207654321", "c0:variable": "keys", "c0:operator": "eq", "c0:value": "2"}) is None
    )
    b.menu("up", 5)  # the second bridge before the hangup


def test_an_operator_builds_previews_saves_and_applies_a_six_command_ivr(fb: Bot) -> None:
    call_id = fb.fake_bird.add_call(bird_call_id(1))
    b = Builder(fb, call_id)
    root = b.open()
    assert root["callback_id"] == "flow_builder" and root["submit"]["text"] == "Apply"
    assert json.loads(root["private_metadata"]).keys() == {"draft", "channel"}
    build_ivr(b)
    assert b.draft() == IVR
    assert b.lines() == [
        "answer",
        'say "Welcome to Example. Press 1 f…" en-GB',
        'gather 1 key, end #, dtmf, prompt "Press 1 or 2."',
        "bridge to +31201234567, record if keys == 1",
        "bridge to +31207654321 if keys eq 2",
        "hangup",
    ]

    b.click("fb_end", block_id="apply", state=fill(b.root, {"apply": True}), expect=None)
    fb.db.wait_audit(lambda _: _draft_end_call(fb))
    preview = b.click("fb_preview", block_id="fb_tools", expect="views.push")
    shown = "".join(blk["text"]["text"] for blk in preview["blocks"][1:]).replace("```", "")
    assert json.loads(shown) == {"status": "completed", "callFlow": IVR}
    assert schema_errors(json.loads(shown)) == []

    b.click("fb_save", block_id="fb_tools", expect="views.push")
    assert b.submit({"name": "ivr-main"}) is None
    assert ":floppy_disk: Saved `ivr-main` v1 (6 commands)." in json.dumps(b.root)

    answer = b.submit({"apply": True}, on="root")
    assert answer == {"response_action": "clear"}
    fb.fake_slack.wait_for(lambda reqs: sum(r.path == "/api/chat.postEphemeral" for r in reqs) >= 2)
    [request] = fb.fake_bird.updates()
    assert request.path == call_path(call_id)
    assert request.json == {"status": "completed", "callFlow": IVR}
    posted = reply_text(fb.fake_slack.calls("chat.postEphemeral")[-1])
    assert f"Applied a callFlow of 6 commands to bird:{call_id}." in posted
    row = fb.db.audit()[-1]
    assert (row["source"], row["action"], row["outcome"]) == ("modal", "flow", "succeeded")
    assert row["request"]["body"] == {"status": "completed", "callFlow": IVR}
    assert row["request"]["params"]["flow"] == IVR
    assert row["command_text"] == f"/call flow bird:{call_id} <callFlow> (then end the call)"
    with fb.db.engine.connect() as conn:  # applied: the draft is gone
        assert conn.execute(text("SELECT count(*) FROM flow_drafts")).scalar() == 0
    all_views_valid(fb)


def _draft_end_call(bot: Bot) -> bool:
    with bot.db.engine.connect() as conn:
        return bool(conn.execute(text("SELECT end_call FROM flow_drafts")).scalar())


EVERY_COMMAND = [
    {"command": "answer"},
    {"command": "ringing"},
    {
        "command": "playback",
        "options": {
            "media": ["https://example.com/a.mp3", "https://example.com/b.mp3"],
            "loop": 2,
            "pauseMilliseconds": 500,
        },
        "conditions": [
            {"variable": "keys", "operator": "ne", "value": "9"},
            {"variable": "speech", "operator": "contains", "value": "agent"},
        ],
    },
    {"command": "say", "options": {"text": "Hello", "locale": "nl-NL", "voice": "Ruben", "loop": 1, "timeout": 3}},
    {
        "command": "gather",
        "options": {
            "maxNumKeys": 4,
            "endKey": "*",
            "retries": 2,
            "input": "dtmf speech",
            "speechLocale": "en-US",
            "playback": {"media": ["https://example.com/prompt.mp3"]},
        },
    },
    {
        "command": "record",
        "options": {"endKey": "#", "maxLength": 60, "beep": True, "transcribe": True, "transcribeLocale": "nl-NL"},
    },
    {
        "command": "bridge",
        "options": {
            "from": "+31201234567",
            "to": "+31612345678",
            "maxDuration": 3600,
            "ringTone": "uk",
            "hangupAfterBridge": True,
            "recordStereo": True,
            "callFlow": [
                {"command": "say", "options": {"text": "Connecting"}},
                {"command": "pause", "options": {"pauseSeconds": 1}},
            ],
            "notification": {"url": "https://example.com/bridged"},
            "amdSettings": {
                "enabled": True,
                "wordCount": 5,
                "speechTimeout": 2.5,
                "speechLocale": "en-GB",
                "ifMachineNotifyAfter": "beep",
            },
        },
    },
    {"command": "pause", "options": {"pauseSeconds": 2}},
    {"command": "hangup", "options": {"cause": "busy"}},
]


def test_each_of_the_nine_commands_with_its_options_and_conditions(fb: Bot) -> None:
    call_id = fb.fake_bird.add_call(bird_call_id(2))
    b = Builder(fb, call_id)
    b.open()
    assert b.add("answer") is None
    assert b.add("ringing") is None
    playback = {
        "o:media": "https://example.com/a.mp3\n\nhttps://example.com/b.mp3\n",
        "o:loop": 2,
        "o:pauseMilliseconds": 500,
    }
    conditions = {"c0:variable": "keys", "c0:operator": "ne", "c0:value": "9"}
    conditions |= {"c1:variable": "speech", "c1:operator": "contains", "c1:value": "agent"}
    assert b.add("playback", {**playback, **conditions}, conditions=2) is None
    say = {"o:text": "Hello", "o:locale": "nl-NL", "o:voice": "Ruben", "o:loop": 1, "o:timeout": 3}
    assert b.add("say", say) is None
    gather = {"o:maxNumKeys": 4, "o:endKey": "*", "o:retries": 2, "o:input": "dtmf speech", "o:speechLocale": "en-US"}
    assert b.add("gather", {**gather, "o:playback.media": "https://example.com/prompt.mp3"}) is None
    record = {"o:endKey": "#", "o:maxLength": 60, "o:beep": True, "o:transcribe": True, "o:transcribeLocale": "nl-NL"}
    assert b.add("record", record) is None
    bridge = {
        "o:from": "+31201234567",
        "o:to": "+31612345678",
        "o:maxDuration": 3600,
        "o:ringTone": "uk",
        "o:hangupAfterBridge": True,
        "o:recordStereo": True,
        "o:callFlow": json.dumps(EVERY_COMMAND[6]["options"]["callFlow"]),
        "o:notification.url": "https://example.com/bridged",
        "o:amdSettings.enabled": True,
        "o:amdSettings.wordCount": 5,
        "o:amdSettings.speechTimeout": "2.5",
        "o:amdSettings.speechLocale": "en-GB",
        "o:amdSettings.ifMachineNotifyAfter": "beep",
    }
    assert b.add("bridge", bridge) is None
    assert b.add("pause", {"o:pauseSeconds": 2}) is None
    assert b.add("hangup", {"o:cause": "busy"}) is None
    assert b.draft() == EVERY_COMMAND
    assert schema_errors({"callFlow": EVERY_COMMAND}) == []

    # The forms carry the schema: ranges on number inputs, enums as selects, booleans as checkboxes.
    b.menu("edit", 6)
    form = {blk["block_id"]: blk for blk in b.top["blocks"] if "block_id" in blk}
    ring = form["o:ringTimeout"]["element"]
    assert (ring["type"], ring["min_value"], ring["max_value"]) == ("number_input", "3", "120")
    assert form["o:to"]["optional"] is False and form["o:from"]["optional"] is True
    assert [o["value"] for o in form["o:recordStart"]["element"]["options"]] == [
        "-",
        "record-from-answer",
        "record-from-ringing",
    ]
    assert form["o:record"]["element"]["type"] == "checkboxes"
    assert form["o:amdSettings.speechTimeout"]["element"]["is_decimal_allowed"] is True
    assert form["o:callFlow"]["element"]["initial_value"] == json.dumps(EVERY_COMMAND[6]["options"]["callFlow"])
    assert b.top["title"]["text"] == "Edit command 7"
    # Saving the form unchanged keeps the command exactly.
    prefilled = {
        bid: _initial(blk) for bid, blk in form.items() if blk["type"] == "input" and _initial(blk) is not None
    }
    assert b.submit(prefilled) is None
    assert b.draft() == EVERY_COMMAND

    b.menu("remove", 0)
    b.menu("down", 0)
    assert [c["command"] for c in b.draft()] == [
        "playback",
        "ringing",
        "say",
        "gather",
        "record",
        "bridge",
        "pause",
        "hangup",
    ]
    all_views_valid(fb)


def _initial(block: dict[str, Any]) -> Any:
    element = block["element"]
    if "initial_option" in element:
        return element["initial_option"]["value"]
    if "initial_options" in element:
        return True
    return element.get("initial_value")


def test_invalid_values_are_shown_under_their_own_fields_and_nothing_is_kept(fb: Bot) -> None:
    b = Builder(fb, bird_call_id(3))
    b.open()
    cases: list[tuple[str, dict[str, Any], str, str]] = [
        ("say", {"o:locale": "en-GB"}, "o:text", "is missing"),
        ("say", {"o:text": "   "}, "o:text", "is missing"),
        ("pause", {"o:pauseSeconds": 31}, "o:pauseSeconds", "must be ≤ 30"),
        ("pause", {"o:pauseSeconds": "soon"}, "o:pauseSeconds", "Give a whole number."),
        (
            "playback",
            {"o:media": "https://e.com/a.mp3\nnot-a-url"},
            "o:media",
            "`media[1]`: is not an absolute http(s) URL",
        ),
        ("playback", {"o:media": "\n".join(f"https://e.com/{i}.mp3" for i in range(81))}, "o:media", "at most 80"),
        ("bridge", {"o:to": "+3120", "o:ringTimeout": 2}, "o:ringTimeout", "must be ≥ 3"),
        (
            "bridge",
            {"o:to": "+3120", "o:callFlow": '[{"command":"record"}]'},
            "o:callFlow",
            "cannot be used inside a bridge",
        ),
        ("bridge", {"o:to": "+3120", "o:callFlow": "[{"}, "o:callFlow", "not valid JSON"),
        ("bridge", {"o:to": "+3120", "o:amdSettings.wordCount": 3}, "o:amdSettings.speechTimeout", "is missing"),
        ("gather", {"o:say.locale": "en-GB", "o:maxNumKeys": 2}, "o:say.text", "is missing"),
        ("gather", {"o:endKey": "#"}, "o:maxNumKeys", "ambiguous"),
        ("hangup", {"c0:variable": "keys", "c0:value": "1"}, "c0:operator", "is missing"),
    ]
    for command, values, block, expected in cases:
        answer = b.add(command, values)
        assert answer["response_action"] == "errors", (command, values)
        assert list(answer["errors"]) == [block], (command, values, answer)
        assert expected in answer["errors"][block], (command, answer)
        assert block in {blk.get("block_id") for blk in b.top["blocks"] if blk["type"] == "input"}
    no_type = b.click("fb_add", block_id="fb_tools", expect="views.push")
    assert no_type["submit"]["text"] == "Add"
    assert b.submit({}) == {"response_action": "errors", "errors": {"command": "Pick a command."}}
    assert b.draft() == []
    assert fb.fake_bird.requests == []
    all_views_valid(fb)


def test_json_editor_shows_the_flow_takes_pasted_json_and_names_the_exact_path_of_errors(fb: Bot) -> None:
    b = Builder(fb, bird_call_id(4))
    b.open()
    b.add("say", {"o:text": "Hi"})
    shown = b.click("fb_json", block_id="fb_tools", expect="views.push")
    assert json.loads(shown["blocks"][0]["element"]["initial_value"]) == [{"command": "say", "options": {"text": "Hi"}}]
    bad = '[{"command":"say","options":{"text":"Hi"}},{"command":"pause","options":{"pauseSeconds":45}}]'
    answer = b.submit({"json": bad})
    assert answer["response_action"] == "errors"
    assert answer["errors"]["json"].startswith("`callFlow[1].options.pauseSeconds`: must be ≤ 30")
    typo = b.submit({"json": '[{"command":"sya"}]'})
    assert "Did you mean `say`?" in typo["errors"]["json"]
    assert b.submit({"json": json.dumps(IVR)}) is None
    assert b.draft() == IVR
    assert len(b.lines()) == 6 and b.lines()[0] == "answer"  # a list again, not JSON
    all_views_valid(fb)


def test_twenty_commands_fit_and_a_twenty_first_is_refused(fb: Bot) -> None:
    b = Builder(fb, bird_call_id(5))
    b.open()
    b.add("say", {"o:text": "x"})
    b.click("fb_json", block_id="fb_tools", expect="views.push")
    many = [{"command": "pause", "options": {"pauseSeconds": i}} for i in range(21)]
    answer = b.submit({"json": json.dumps(many)})
    assert "has 21 commands; Bird accepts at most 20" in answer["errors"]["json"]
    assert b.submit({"json": json.dumps(many[:20])}) is None
    assert len(b.lines()) == 20 and len(b.root["blocks"]) < 30
    assert "Add command" not in json.dumps(b.root) and "Bird's limit" in json.dumps(b.root)
    # A form opened before the list filled up is refused on submit.
    b.top = {
        "callback_id": "flow_command",
        "private_metadata": json.dumps(json.loads(b.root["private_metadata"]) | {"root": b.root_id}),
        "blocks": [],
    }
    assert "already has 20 commands" in b.submit({})["errors"]["command"]
    all_views_valid(fb)


def test_a_menu_or_form_from_an_older_drawing_changes_nothing(fb: Bot) -> None:
    b = Builder(fb, bird_call_id(6))
    b.open()
    b.add("say", {"o:text": "one"})
    b.add("pause", {"o:pauseSeconds": 1})
    b.add("hangup", {"o:cause": "busy"})
    old = b.root
    b.menu("down", 0)
    moved = b.draft()
    assert [c["command"] for c in moved] == ["pause", "say", "hangup"]

    # A double click: the same choice again, from the drawing before the move.
    b.menu("down", 0, root=old)
    assert b.draft() == moved
    assert "The list had changed since that menu was drawn" in json.dumps(b.root)
    b.menu("remove", 2, root=old)  # hangup is still third, and the same command: this one acts
    assert [c["command"] for c in b.draft()] == ["pause", "say"]

    # An edit form open while its command moves: saving it is refused, nothing is overwritten.
    b.menu("edit", 0)
    form = b.top
    b.menu("down", 0)
    b.top = form
    answer = b.submit({"command": "pause", "o:pauseSeconds": 9})
    assert "changed or moved since the form opened" in answer["errors"]["command"]
    assert b.draft() == [
        {"command": "say", "options": {"text": "one"}},
        {"command": "pause", "options": {"pauseSeconds": 1}},
    ]
    all_views_valid(fb)


def test_a_closed_modal_keeps_the_draft_and_reopening_offers_to_resume(fb: Bot) -> None:
    call_id = bird_call_id(6)
    b = Builder(fb, call_id)
    b.open()
    b.add("say", {"o:text": "Please hold"})
    b.add("pause", {"o:pauseSeconds": 2})
    # The modal is closed by accident; the same person reopens `/call flow` on the same call.
    again = Builder(fb, call_id)
    offer = again.open()
    assert offer["callback_id"] == "flow_resume"
    [resume, restart] = [e for blk in offer["blocks"] if blk["type"] == "actions" for e in blk["elements"]]
    assert resume["text"]["text"].startswith("Resume draft (2 commands, edited ")
    assert restart["text"]["text"] == "Start over"
    resumed = again.click("fb_resume", block_id="fb_resume", value=resume["value"])
    assert resumed["callback_id"] == "flow_builder" and again.lines() == ['say "Please hold"', "pause 2s"]

    other = Builder(fb, call_id, user=BOB)  # someone else's draft is not offered to Bob
    fb.db.grant(BOB, "flow", "bird")
    assert other.open()["callback_id"] == "flow_builder" and other.lines() == []

    third = Builder(fb, call_id)
    third.open()
    third.click("fb_restart", block_id="fb_resume", value=resume["value"])
    assert third.lines() == []
    third.add("hangup")
    with fb.db.engine.begin() as conn:  # a day later the draft has expired
        conn.execute(text("UPDATE flow_drafts SET updated_at = :t"), {"t": utcnow() - timedelta(hours=25)})
    fourth = Builder(fb, call_id)
    assert fourth.open()["callback_id"] == "flow_builder" and fourth.lines() == []
    # …and the old modal's buttons say so instead of failing silently.
    answer = third.submit({}, on="root")
    assert answer["response_action"] == "errors" and "expired" in answer["errors"]["apply"]
    all_views_valid(fb)


def test_permission_is_checked_again_on_apply(fb: Bot) -> None:
    call_id = fb.fake_bird.add_call(bird_call_id(7))
    b = Builder(fb, call_id)
    b.open()
    b.add("hangup")
    with fb.db.engine.begin() as conn:  # revoked while the modal was open
        conn.execute(text("DELETE FROM grants WHERE action = 'flow'"))
    answer = b.submit({}, on="root")
    assert answer["response_action"] == "errors"
    assert "not allowed to `flow` on account `bird`" in answer["errors"]["apply"]
    row = fb.db.audit()[-1]
    assert (row["source"], row["outcome"], row["action"], row["account"]) == ("modal", "denied", "flow", "bird")
    assert fb.fake_bird.requests == []


def test_apply_without_ending_the_call_sends_only_the_callflow_and_an_empty_draft_is_refused(fb: Bot) -> None:
    call_id = fb.fake_bird.add_call(bird_call_id(8))
    b = Builder(fb, call_id)
    b.open()
    empty = b.submit({}, on="root")
    assert empty == {"response_action": "errors", "errors": {"apply": "Add at least one command first."}}
    assert fb.db.audit()[-1]["outcome"] == "invalid"
    b.add("say", {"o:text": "Goodbye"})
    b.add("hangup")
    assert b.submit({}, on="root") == {"response_action": "clear"}
    fb.fake_slack.wait_for(lambda reqs: any(r.path == "/api/chat.postEphemeral" for r in reqs))
    [request] = fb.fake_bird.updates()
    assert request.json == {"callFlow": [{"command": "say", "options": {"text": "Goodbye"}}, {"command": "hangup"}]}


def test_no_grant_no_builder(bot: Bot) -> None:
    b = Builder(bot, bird_call_id(9))
    shown = b.open()
    assert "not allowed to `flow` on account `bird`" in json.dumps(shown)
    assert "submit" not in shown
    row = bot.db.audit()[-1]
    assert (row["outcome"], row["action"]) == ("denied", "flow")


def test_saved_flows_from_the_builder_are_versioned_listed_and_applied(fb: Bot) -> None:
    call_id = fb.fake_bird.add_call(bird_call_id(10))
    b = Builder(fb, call_id)
    b.open()
    b.add("say", {"o:text": "Please hold"})
    b.click("fb_save", block_id="fb_tools", expect="views.push")
    assert "is not a valid flow name" in b.submit({"name": "Hold Music"})["errors"]["name"]
    assert b.submit({"name": "hold-music"}) is None
    b.add("hangup")
    b.click("fb_save", block_id="fb_tools", expect="views.push")
    assert b.submit({"name": "hold-music"}) is None
    assert "Saved `hold-music` v2 (2 commands)." in json.dumps(b.root)
    saves = [r for r in fb.db.audit() if r["action"] == "flows.save"]
    assert [r["outcome"] for r in saves] == ["invalid", "succeeded", "succeeded"]  # the bad name too
    assert {r["source"] for r in saves} == {"modal"}

    listed = reply_text(fb.slack.command("flows").json())
    assert "`hold-music` v2 · 2 commands" in listed and "2 versions" in listed
    confirm = fb.slack.command(f"flow bird:{call_id} hold-music@1").json()
    [button] = [e for blk in confirm["blocks"] if blk["type"] == "actions" for e in blk["elements"]]
    payload = json.loads((PAYLOADS / "block_actions.json").read_text())
    payload["user"]["id"] = ALICE
    payload["response_url"] = fb.fake_slack.response_url("confirm")
    payload["actions"] = [{**button, "block_id": "choose_account", "type": "button", "action_ts": "1.2"}]
    assert fb.slack.interact(payload).status_code == 200
    fb.fake_bird.wait_for(lambda reqs: any(r.method == "PATCH" for r in reqs))
    assert fb.fake_bird.updates()[0].json == {"callFlow": [{"command": "say", "options": {"text": "Please hold"}}]}

    # Without flow:manage, "Save as…" is refused under the name field.
    with fb.db.engine.begin() as conn:
        conn.execute(text("DELETE FROM grants WHERE action = 'flow:manage'"))
    b.click("fb_save", block_id="fb_tools", expect="views.push")
    assert "needs `flow:manage`" in b.submit({"name": "hold-music"})["errors"]["name"]
    all_views_valid(fb)


def test_the_action_modal_hands_a_bird_flow_to_the_builder(fb: Bot) -> None:
    response = fb.slack.command("")
    assert response.status_code == 200
    fb.fake_slack.wait_for(lambda reqs: any(r.path == "/api/views.update" for r in reqs))
    payload = json.loads((PAYLOADS / "block_actions.json").read_text())
    payload["user"]["id"] = ALICE
    payload["container"] = {"type": "view", "view_id": "V0000000001"}
    values = {
        "account": {"account": {"type": "static_select", "selected_option": {"value": "bird"}}},
        "action": {"action": {"type": "static_select", "selected_option": {"value": "flow"}}},
        "call_id": {"value": {"type": "plain_text_input", "value": bird_call_id(11)}},
    }
    payload["view"] = {
        "id": "V0000000001",
        "hash": "1.2",
        "type": "modal",
        "callback_id": "call_action",
        "private_metadata": json.dumps({"channel": "C2147483705"}),
        "state": {"values": values},
        "blocks": [],
    }
    payload["actions"] = [{"action_id": "action", "block_id": "action", "type": "static_select", "action_ts": "1"}]
    fb.slack.interact(payload)
    fb.fake_slack.wait_for(lambda reqs: sum(r.path == "/api/views.update" for r in reqs) >= 2)
    form = fb.fake_slack.calls("views.update")[-1]["view"]
    # Run is there (Slack refuses a modal with inputs and no submit), for a saved flow; with none
    # saved yet the form says so, and the builder is the way.
    assert form["submit"]["text"] == "Run" and "callflow" not in json.dumps(form)
    assert "Build the callFlow" in json.dumps(form) and "No saved flow yet" in json.dumps(form)
    payload["actions"] = [{"action_id": "fb_build", "block_id": "fb_build", "type": "button", "action_ts": "2"}]
    fb.slack.interact(payload)
    fb.fake_slack.wait_for(lambda reqs: sum(r.path == "/api/views.update" for r in reqs) >= 3)
    update = fb.fake_slack.calls("views.update")[-1]
    assert update["view_id"] == "V0000000001"  # the action modal became the builder: nothing pushed
    assert update["view"]["callback_id"] == "flow_builder"
    assert f"bird:{bird_call_id(11)}" in json.dumps(update["view"])
    assert fb.fake_slack.calls("views.push") == []
    all_views_valid(fb)


def test_flow_without_a_callflow_outside_slack_says_the_builder_is_a_slack_modal(
    fb: Bot, env: dict[str, str], tmp_path: Path
) -> None:
    ran = callbot(["run", "--as", ALICE, f"flow bird:{bird_call_id(12)}"], env, tmp_path)
    out = ran.stdout + ran.stderr
    assert ran.returncode != 0
    assert "`flow` needs CALLFLOW." in out and "The callFlow builder is a Slack modal" in out
    assert fb.fake_bird.requests == []
