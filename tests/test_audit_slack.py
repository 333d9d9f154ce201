"""Audit review in Slack, end to end through signed requests: `/call audit` filters, pages of 10
with Next / Previous (keyset, both ways over a boundary), the Details modal, the own-rows
restriction (crafted button values included), and `/call audit export` uploaded as a DM."""

from __future__ import annotations

import csv
import io
import json
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import text as sqltext

from bot.db import confirmations
from bot.domain.confirmation import Seen, Via
from bot.service import audit as audit_review
from bot.service import audit_export
from tests.fakes import bandwidth, bird
from tests.fakes.server import Answer
from tests.fakes.slack import FakeSlack, dm_channel
from tests.fakes.twilio import AUTH_TOKEN, FakeTwilio, call_sid
from tests.support.bots import ALICE, BOB, CAROL, PAYLOADS, Bot, BotFactory, SlackDriver, reply_text
from tests.support.clock import FakeClock
from tests.support.database import DbHelper, on_database
from tests.test_approval import ApprovalBot, start

# The worker's one default bot, lent to each test (tests/support/bots.py SharedBot).
pytestmark = pytest.mark.shared_bot

__all__ = ["start"]  # test_approval's fixture: a bot whose `prod` needs two-person approval

# -- driving Slack ---------------------------------------------------------------------------------


def ask(driver: SlackDriver, text: str, user: str = ALICE) -> dict[str, Any]:
    response = driver.command(text, user)
    assert response.status_code == 200, response.text
    return dict(response.json())


def shown(message: dict[str, Any]) -> list[int]:
    """The audit ids a page shows, top to bottom (each row's section is `audit_row_<id>`)."""
    return [
        int(block["block_id"].removeprefix("audit_row_"))
        for block in message.get("blocks") or []
        if str(block.get("block_id", "")).startswith("audit_row_")
    ]


def page_buttons(message: dict[str, Any]) -> dict[str, dict[str, Any]]:
    for block in message.get("blocks") or []:
        if block.get("block_id") == "audit_page":
            return {element["text"]["text"]: element for element in block["elements"]}
    return {}


def row_section(message: dict[str, Any], audit_id: int) -> dict[str, Any]:
    [block] = [b for b in message["blocks"] if b.get("block_id") == f"audit_row_{audit_id}"]
    return dict(block)


_clicks = iter(range(1, 1_000_000))


def click(slack: FakeSlack, driver: SlackDriver, element: dict[str, Any], user: str = ALICE) -> None:
    payload = json.loads((PAYLOADS / "block_actions.json").read_text())
    n = next(_clicks)
    payload["user"]["id"] = user
    payload["response_url"] = slack.response_url(f"click{n}")
    payload["trigger_id"] = f"12321423423.333649436676.{n:08x}{int(time.time() * 1000):x}"
    action = {k: element[k] for k in ("action_id", "value") if k in element}
    payload["actions"] = [{**action, "block_id": "b", "type": "button", "action_ts": "1.2"}]
    assert driver.interact(payload).status_code == 200


def click_page(slack: FakeSlack, driver: SlackDriver, element: dict[str, Any], user: str = ALICE) -> dict[str, Any]:
    """Next / Previous: the new page arrives through the click's response_url."""
    before = len(slack.responses())
    click(slack, driver, element, user)
    return dict(slack.wait_responses(before + 1)[before].json)


def open_details(slack: FakeSlack, driver: SlackDriver, audit_id: int | str, user: str = ALICE) -> dict[str, Any]:
    """Details: the modal opens at once (loading), then shows the row (or why not) in views.update."""
    opened, updated = len(slack.calls("views.open")), len(slack.calls("views.update"))
    click(slack, driver, {"action_id": "audit_details:0", "value": str(audit_id)}, user)
    slack.wait_for(lambda reqs: sum(r.path == "/api/views.update" for r in reqs) > updated)
    loading = slack.calls("views.open")[opened]
    first = json.loads(loading["view"]) if isinstance(loading["view"], str) else loading["view"]
    assert "Reading the audit row" in json.dumps(first)
    update = slack.calls("views.update")[updated]
    view = update["view"]
    return dict(json.loads(view) if isinstance(view, str) else view)


def view_texts(view: dict[str, Any]) -> list[str]:
    texts = []
    for block in view["blocks"]:
        if isinstance(block.get("text"), dict):
            texts.append(block["text"]["text"])
        for element in block.get("elements") or []:
            if isinstance(element, dict) and "text" in element:
                texts.append(str(element["text"]))
    return texts


def crafted(**fields: Any) -> str:
    return json.dumps(fields, separators=(",", ":"))


def by_call(rows: list[dict[str, Any]], call: str) -> dict[str, Any]:
    [row] = [r for r in rows if r["call_id"] == call]
    return row


def moment(value: Any) -> datetime:
    """A timestamp as the database driver returns it (SQLite: text) as an aware datetime."""
    at = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    return at if at.tzinfo else at.replace(tzinfo=UTC)


def stamp(value: Any) -> str:
    return moment(value).astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


def expected_line(row: dict[str, Any], emoji: str) -> str:
    at = stamp(row["created_at"])
    target = f"`{row['account']}:{row['call_id']}`"
    text = f"`{at}` #{row['id']} <@{row['user_id']}> *{row['action']}* {target} {emoji} {row['outcome']}"
    error = row["error_message"]
    if error and row["outcome"] not in ("succeeded", "dry_run"):
        text += "\n> " + (error if len(error) <= 90 else error[:89] + "…")
    return text


# -- a bot whose clock the test moves (audit rows are stamped with it) ------------------------------


class ClockBot:
    def __init__(self, driver: SlackDriver, slack: FakeSlack, twilio: FakeTwilio, db: DbHelper, clock: FakeClock):
        self.slack, self.fake_slack, self.twilio, self.db, self.clock = driver, slack, twilio, db, clock


@pytest.fixture
def clock_bot(make_bot: BotFactory) -> ClockBot:
    clock = FakeClock()
    bot = make_bot(clock=clock)
    return ClockBot(bot.slack, bot.fake_slack, bot.fake_twilio, bot.db, clock)


# -- filters ----------------------------------------------------------------------------------------


def test_each_filter_and_combinations(clock_bot: ClockBot) -> None:
    b = clock_bot
    real_now = datetime.now(UTC)
    b.db.grant(BOB, "operator", "prod")
    sid2, sid3 = b.twilio.add_call(call_sid(2)), call_sid(3)  # sid3 is unknown to Twilio: failed
    b.clock.now = real_now - timedelta(days=10)
    ask(b.slack, f"hangup prod:{call_sid(1)}")  # alice, denied
    b.clock.now = real_now - timedelta(days=3)
    b.slack.run(f"hangup prod:{sid2}", user=BOB)  # succeeded
    b.clock.now = real_now - timedelta(hours=1)
    b.slack.run(f"hangup prod:{sid3}", user=BOB)  # failed (20404)
    b.clock.now = real_now - timedelta(minutes=50)
    ask(b.slack, f"hangup bw:{bandwidth.bw_call_id(4)}", user=CAROL)  # denied
    b.clock.now = real_now - timedelta(minutes=40)
    ask(b.slack, f"twiml prod:{call_sid(5)} '&lt;Response/&gt;'")  # alice, denied
    b.clock.now = real_now
    rows = b.db.audit()
    assert len(rows) == 5
    old, ok, failed, carol, twiml = (r["id"] for r in rows)
    b.db.grant(ALICE, "audit", "*")

    def ids(text: str) -> list[int]:
        return shown(ask(b.slack, text))

    assert ids("audit") == [twiml, carol, failed, ok, old]
    assert ids(f"audit user=<@{BOB}>") == [failed, ok]
    assert ids(f"audit user={BOB}") == [failed, ok]
    assert ids("audit account=bw") == [carol]
    assert ids(f"audit call={sid2}") == [ok]
    assert ids("audit action=twiml") == [twiml]
    assert ids("audit outcome=failed") == [failed]
    assert ids("audit outcome=denied") == [twiml, carol, old]
    assert ids("audit since=2h") == [twiml, carol, failed]
    assert ids("audit since=7d") == [twiml, carol, failed, ok]
    assert ids("audit until=2h") == [ok, old]
    five_days_ago = (real_now - timedelta(days=5)).date().isoformat()
    assert ids(f"audit until={five_days_ago}") == [old]
    assert ids(f"audit since={five_days_ago} until=2h") == [ok]
    assert ids(f"audit user=<@{BOB}> outcome=succeeded since=7d") == [ok]
    assert ids(f"audit user=<@{BOB}> account=prod until=2h") == [ok]
    assert ids("audit account=prod outcome=denied action=hangup") == [old]

    page = ask(b.slack, f"audit user=<@{BOB}>")
    assert reply_text({"blocks": page["blocks"][:1]}).startswith(
        f":information_source: *Audit (everyone's, user=<@{BOB}>): 2 attempts, newest first*"
    )
    # Each row: time, who, action, account:call, outcome with its emoji, the short error; and Details.
    section = row_section(page, failed)
    assert section["text"]["text"] == expected_line(by_call(rows, sid3), "❌")
    assert "\n> The requested resource" in section["text"]["text"]  # the short error, under the row
    assert section["accessory"] == {
        "type": "button",
        "text": {"type": "plain_text", "text": "Details", "emoji": True},
        "action_id": "audit_details:0",
        "value": str(failed),
    }
    assert row_section(page, ok)["text"]["text"] == expected_line(by_call(rows, sid2), "✅")
    assert page_buttons(page) == {}  # one page only
    nothing = ask(b.slack, "audit until=2000-01-01")
    assert shown(nothing) == [] and "No audited attempts match" in reply_text(nothing)
    bad = reply_text(ask(b.slack, "audit until=yesterday"))
    assert "`until=yesterday`: is not a duration or a date. Use e.g. `until=2h`" in bad


# -- paging -----------------------------------------------------------------------------------------


def test_pages_of_ten_next_next_previous(bot: Bot) -> None:
    for n in range(23):
        ask(bot.slack, f"hangup prod:{call_sid(100 + n)}")
    ids = [r["id"] for r in bot.db.audit()][::-1]  # newest first
    assert len(ids) == 23

    first = ask(bot.slack, "audit")
    assert shown(first) == ids[0:10]
    assert set(page_buttons(first)) == {"Next"}

    second = click_page(bot.fake_slack, bot.slack, page_buttons(first)["Next"])
    assert second["replace_original"] is True
    assert shown(second) == ids[10:20]
    assert set(page_buttons(second)) == {"Previous", "Next"}

    third = click_page(bot.fake_slack, bot.slack, page_buttons(second)["Next"])
    assert shown(third) == ids[20:23]
    assert set(page_buttons(third)) == {"Previous"}

    back = click_page(bot.fake_slack, bot.slack, page_buttons(third)["Previous"])
    assert shown(back) == ids[10:20]
    assert set(page_buttons(back)) == {"Previous", "Next"}

    top = click_page(bot.fake_slack, bot.slack, page_buttons(back)["Previous"])
    assert shown(top) == ids[0:10]
    assert set(page_buttons(top)) == {"Next"}
    # The button value is compact: the filter and a cursor, far below Slack's 2,000 characters.
    assert len(page_buttons(second)["Next"]["value"]) < 200


def test_paging_keeps_the_filter(bot: Bot) -> None:
    bot.db.grant(ALICE, "audit", "*")
    for n in range(12):
        ask(bot.slack, f"hangup prod:{call_sid(200 + n)}", user=BOB)
        ask(bot.slack, f"hangup prod:{call_sid(300 + n)}", user=CAROL)
    bob_rows = [r["id"] for r in bot.db.audit() if r["user_id"] == BOB][::-1]
    first = ask(bot.slack, f"audit user=<@{BOB}>")
    assert shown(first) == bob_rows[:10]
    second = click_page(bot.fake_slack, bot.slack, page_buttons(first)["Next"])
    assert shown(second) == bob_rows[10:]
    assert set(page_buttons(second)) == {"Previous"}


# -- details ----------------------------------------------------------------------------------------


def test_details_modal_shows_the_whole_row(bot: Bot) -> None:
    grant = bot.db.grant(BOB, "operator", "prod")
    bot.db.grant(ALICE, "audit", "*")
    sid = bot.fake_twilio.add_call(call_sid(7))
    bot.slack.run(f'hangup prod:{sid} reason="caller asked"', user=BOB)
    [row] = bot.db.audit()
    view = open_details(bot.fake_slack, bot.slack, row["id"])
    assert view["type"] == "modal" and view["title"]["text"] == f"Audit #{row['id']}"
    facts = view_texts(view)[0].split("\n")
    created, completed = stamp(row["created_at"]), stamp(row["completed_at"])
    assert facts == [
        f"*When:* {created} UTC, closed {completed}",
        f"*Who:* <@{BOB}> (bob)",
        f"*Source:* slash in <#{row['channel_id']}>",
        "*Action:* hangup",
        f"*Account:call:* prod:{sid} (twilio)",
        "*Outcome:* ✅ succeeded",
        "*Confirmed:* not confirmed (callbot has not seen the call's state since)",
        f"*Decision:* allowed, grant #{grant} ({row['decision_basis']})",
        "*Break-glass:* no",
        "*Provider status:* 200",
        "*Error code:* —",
        f"*Provider request id:* {row['provider_request_id']}",
        f"*Latency:* {row['latency_ms']} ms",
        "*Approver:* — (no two-person approval)",
        f"*Chain entry:* #{row['chain_seq']} ({row['chain_hash'][:12]}…), "
        f"outcome #{row['outcome_seq']} ({row['outcome_hash'][:12]}…)",
    ]
    assert row["provider_request_id"].startswith("RQ")
    texts = view_texts(view)[1:]
    assert texts[0] == f"*Command*\n```{row['command_text']}```"
    request = json.dumps(row["request"], indent=2, ensure_ascii=False, sort_keys=True)
    assert texts[1] == f"*Request (normalised, secrets redacted)*\n```{request}```"
    assert '"Status",\n      "completed"' in request or '"Status": "completed"' in request
    assert texts[2] == f"*Result*\n```{json.dumps(row['result'], indent=2, ensure_ascii=False, sort_keys=True)}```"
    assert AUTH_TOKEN not in json.dumps(view)
    assert bot.fake_slack.view_errors == []


def test_details_truncates_long_values_visibly(bot: Bot) -> None:
    bot.db.grant(ALICE, "twiml", "prod")
    twiml = "&lt;Response&gt;&lt;Say&gt;" + "Please hold, " * 280 + "&lt;/Say&gt;&lt;/Response&gt;"
    ask(bot.slack, f"twiml prod:{call_sid(8)} '{twiml}' dry-run")
    [row] = bot.db.audit()
    assert row["outcome"] == "dry_run"
    view = open_details(bot.fake_slack, bot.slack, row["id"])
    assert bot.fake_slack.view_errors == []
    sections = [b["text"]["text"] for b in view["blocks"] if b["type"] == "section"]
    assert all(len(text) <= 3000 for text in sections)
    [command] = [t for t in sections if t.startswith("*Command*")]
    assert len(row["command_text"]) > 3000
    cut = 3000 - len("*Command*\n```") - len("```") - 160
    assert command.startswith("*Command*\n```" + row["command_text"][:cut] + "\n… [truncated: ")
    assert command.endswith(f" more characters of {len(row['command_text']):,}]```")
    assert view["blocks"][-1]["elements"][0]["text"].startswith("Long values are truncated to fit Slack.")


def confirm(bot: Bot, audit_id: int, seen: Seen) -> None:
    """What a read-back or a provider's callback records on the row (bot/db/confirmations.py)."""
    assert on_database(bot.db.url, lambda database: confirmations.confirm(database, {audit_id: seen.fields()})) == [
        audit_id
    ]


def test_confirmations_on_the_page_and_in_details(bot: Bot) -> None:
    """`/call audit outcome=unknown` marks the rows the provider has since shown ended; Details say
    what was seen, when and how (read-back, or the provider's signed callback in its own word)."""
    bot.db.grant(ALICE, "operator", "prod")
    bot.db.grant(ALICE, "operator", "bw")
    gateway = Answer(502, b"<html>Bad Gateway</html>", {"Content-Type": "text/html"})
    resolved, still_open = bot.fake_twilio.add_call(call_sid(31)), bot.fake_twilio.add_call(call_sid(32))
    bot.fake_twilio.script(gateway)
    bot.slack.run(f"hangup prod:{resolved}")
    bot.fake_twilio.script(gateway)
    bot.slack.run(f"hangup prod:{still_open}")
    bw = bandwidth.bw_call_id(33)
    bot.fake_bandwidth.add_call(bw)
    bot.slack.run(f"hangup bw:{bw}")
    rows = bot.db.audit()
    assert [(r["call_id"], r["outcome"]) for r in rows] == [
        (resolved, "unknown"),
        (still_open, "unknown"),
        (bw, "succeeded"),
    ]
    first, second, third = rows
    read_at = moment(first["created_at"]).replace(microsecond=0)  # the row's day, whenever the test runs
    confirm(bot, first["id"], Seen("completed", "completed", read_at, Via.READ))
    called_at = moment(third["created_at"]) + timedelta(days=1)  # a late callback: its date is said
    confirm(bot, third["id"], Seen("completed", "disconnected", called_at, Via.CALLBACK))

    page = ask(bot.slack, "audit outcome=unknown")
    assert shown(page) == [second["id"], first["id"]]
    assert row_section(page, first["id"])["text"]["text"] == (
        expected_line(first, "❓").replace(" ❓ unknown", " ❓ unknown → confirmed ended (`completed`)", 1)
    )
    assert row_section(page, second["id"])["text"]["text"] == expected_line(second, "❓")  # not resolved
    everything = ask(bot.slack, "audit")
    assert (
        f"`bw:{bw}` ✅ succeeded → confirmed ended (`disconnected`)"
        in row_section(everything, third["id"])["text"]["text"]
    )
    assert "❓ unknown → confirmed ended (`completed`)" in everything["text"]  # the plain-text fallback

    def confirmed_fact(audit_id: int) -> str:
        facts = view_texts(open_details(bot.fake_slack, bot.slack, audit_id))[0].split("\n")
        [fact] = [f for f in facts if f.startswith("*Confirmed:* ")]
        assert facts.index(fact) == next(i for i, f in enumerate(facts) if f.startswith("*Outcome:* ")) + 1
        return fact.removeprefix("*Confirmed:* ")

    clock = read_at.astimezone(UTC).strftime("%H:%M:%S")
    assert confirmed_fact(first["id"]) == f"the call ended (`completed`) at {clock} UTC, by read-back"
    assert confirmed_fact(second["id"]) == "not confirmed (callbot has not seen the call's state since)"
    assert confirmed_fact(third["id"]) == (
        f"the call ended (`disconnected`) at {stamp(called_at)} UTC, by Bandwidth's signed callback"
    )
    assert bot.fake_slack.view_errors == []


# -- who sees what ----------------------------------------------------------------------------------


def test_without_audit_only_own_rows_even_with_crafted_buttons(bot: Bot) -> None:
    for n in range(12):
        ask(bot.slack, f"hangup prod:{call_sid(400 + n)}")  # alice, denied
        ask(bot.slack, f"redirect prod:{call_sid(500 + n)} https://example.com/x", user=BOB)  # bob, denied
    rows = bot.db.audit()
    mine = [r["id"] for r in rows if r["user_id"] == ALICE][::-1]
    bobs = [r["id"] for r in rows if r["user_id"] == BOB][::-1]

    page = ask(bot.slack, "audit")
    assert "(yours)" in reply_text(page) and shown(page) == mine[:10]
    page2 = click_page(bot.fake_slack, bot.slack, page_buttons(page)["Next"])
    assert shown(page2) == mine[10:]

    refused = reply_text(ask(bot.slack, f"audit user=<@{BOB}>"))
    assert "reading others' needs `audit`" in refused
    assert bot.db.audit()[-1]["action"] == "audit" and bot.db.audit()[-1]["outcome"] == "denied"

    # A hand-made Next asking for Bob's rows is refused and audited like the command.
    forged = {"action_id": "audit_page:older", "value": crafted(u=BOB, d="o", k=["2999-01-01T00:00:00+00:00", 1])}
    answer = click_page(bot.fake_slack, bot.slack, forged)
    assert shown(answer) == [] and "reading others' needs `audit`" in reply_text(answer)
    assert answer["replace_original"] is False  # said under the page, which stays
    last = bot.db.audit()[-1]
    assert (last["user_id"], last["action"], last["outcome"]) == (ALICE, "audit", "denied")
    assert last["command_text"] == f"/call audit user={BOB}"
    # Without a user filter, a forged cursor still only reaches Alice's own rows.
    # (Her two refusals just now are her rows too.)
    forged = {"action_id": "audit_page:older", "value": crafted(d="o", k=["2999-01-01T00:00:00+00:00", 1])}
    mine_now = [r["id"] for r in bot.db.audit() if r["user_id"] == ALICE][::-1]
    assert shown(click_page(bot.fake_slack, bot.slack, forged)) == mine_now[:10]
    forged = {"action_id": "audit_page:older", "value": crafted(a="prod", x="redirect", d="o", k=["2999-01-01", 9])}
    assert shown(click_page(bot.fake_slack, bot.slack, forged)) == []
    garbage = click_page(bot.fake_slack, bot.slack, {"action_id": "audit_page:older", "value": "{not json"})
    assert "This button is no longer active" in reply_text(garbage)

    # Details of Bob's row: refused (audited), nothing of the row shown.
    before = len(bot.db.audit())
    view = open_details(bot.fake_slack, bot.slack, bobs[0])
    text = "\n".join(view_texts(view))
    assert f"Audit row #{bobs[0]} does not exist or is not yours to see" in text
    assert "redirect" not in text and call_sid(511) not in text
    after = bot.db.audit()
    assert len(after) == before + 1 and after[-1]["outcome"] == "denied"
    assert after[-1]["command_text"] == f"/call audit details #{bobs[0]}"
    # Her own row opens.
    own = open_details(bot.fake_slack, bot.slack, mine[0])
    assert own["title"]["text"] == f"Audit #{mine[0]}"


def test_audit_on_one_account_shows_that_account_and_own_rows(bot: Bot) -> None:
    ask(bot.slack, f"hangup prod:{call_sid(1)}", user=BOB)
    ask(bot.slack, f"hangup bw:{bandwidth.bw_call_id(2)}", user=BOB)
    ask(bot.slack, f"hangup prod:{call_sid(3)}")
    bob_prod, bob_bw, alice_prod = (r["id"] for r in bot.db.audit())
    bot.db.grant(ALICE, "audit", "bw")
    page = ask(bot.slack, "audit")
    assert "(visible to you)" in reply_text(page)
    assert shown(page) == [alice_prod, bob_bw]
    assert shown(ask(bot.slack, f"audit user=<@{BOB}>")) == [bob_bw]
    assert "not yours to see" in "\n".join(view_texts(open_details(bot.fake_slack, bot.slack, bob_prod)))
    assert open_details(bot.fake_slack, bot.slack, bob_bw)["title"]["text"] == f"Audit #{bob_bw}"
    bot.db.grant(ALICE, "audit", "*")
    assert shown(ask(bot.slack, f"audit user=<@{BOB}>")) == [bob_bw, bob_prod]


# -- export -----------------------------------------------------------------------------------------

TRICKY = 'Müller, "VIP" — ☎ 日本\nsecond line'


def seed_for_export(bot: Bot) -> None:
    bot.db.grant(ALICE, "audit", "*")
    ask(bot.slack, f"hangup prod:{call_sid(1)} reason='{TRICKY}'", user=BOB)
    ask(bot.slack, f"hangup prod:{call_sid(2)}", user=CAROL)
    ask(bot.slack, f"redirect bw:{bandwidth.bw_call_id(3)} https://example.com/x, y", user=BOB)


def export(bot: Bot, text: str, user: str = ALICE) -> tuple[dict[str, Any], str, dict[str, Any]]:
    """The acknowledgement, the final answer (through response_url) and the file the fake got."""
    before = len(bot.fake_slack.responses())
    ack = ask(bot.slack, text, user)
    [answer] = bot.fake_slack.wait_responses(before + 1)[before:]
    uploads = [u for u in bot.fake_slack.uploads.values() if u.completed]
    return ack, reply_text(answer.json), {"uploads": uploads}


def test_export_csv_to_a_dm(bot: Bot) -> None:
    seed_for_export(bot)
    rows = bot.db.audit()
    ack, answer, got = export(bot, "audit export")
    assert reply_text(ack) == (
        ":hourglass_flowing_sand: *Preparing your export…*\nThe file arrives as a direct message from callbot."
    )
    [upload] = got["uploads"]
    assert upload.filename.startswith("callbot-audit-") and upload.filename.endswith(".csv")
    assert upload.channel_id == dm_channel(ALICE)
    assert bot.fake_slack.calls("conversations.open")[-1]["users"] == ALICE
    assert upload.initial_comment.startswith(f"Audit export `{upload.filename}`: 3 rows, oldest first, as of ")
    assert upload.initial_comment.endswith(" UTC (no filter).")
    assert upload.data is not None and len(upload.data) == upload.length
    text = upload.data.decode("utf-8")
    # Quotes doubled inside a quoted field; the newline and the non-ASCII kept as they are.
    assert f'"/call hangup prod:{call_sid(1)} reason=\'Müller, ""VIP"" — ☎ 日本\nsecond line\'"' in text
    parsed = list(csv.reader(io.StringIO(text, newline="")))
    assert tuple(parsed[0]) == audit_export.COLUMNS
    body = [dict(zip(parsed[0], line, strict=True)) for line in parsed[1:]]
    assert [int(r["id"]) for r in body] == [r["id"] for r in rows]  # oldest first, the export's own row left out
    first = body[0]
    assert first["command_text"] == rows[0]["command_text"]
    assert TRICKY in first["command_text"]
    assert first["user_id"] == BOB and first["outcome"] == "denied" and first["action"] == "hangup"
    assert body[2]["command_text"] == rows[2]["command_text"] and "https://example.com/x, y" in body[2]["command_text"]
    assert json.loads(first["request"] or "null") == rows[0]["request"]
    assert first["created_at"] == moment(rows[0]["created_at"]).isoformat(timespec="microseconds")
    assert AUTH_TOKEN not in text and bandwidth.PASSWORD not in text and bird.ACCESS_KEY not in text

    assert answer.startswith(f":white_check_mark: *Sent you `{upload.filename}` as a direct message: 3 rows (CSV).*")
    audit = bot.db.audit()[-1]
    assert (audit["user_id"], audit["action"], audit["outcome"]) == (ALICE, "audit.export", "succeeded")
    assert audit["result"] == {"rows": 3, "matching": 3, "capped": False, "format": "csv", "file": upload.filename}
    assert audit["request"]["format"] == "csv" and audit["request"]["scope"] == "everyone's"
    assert audit["request"]["user_id"] is None and audit["request"]["until"] is not None
    assert f"audit #{audit['id']}" in answer


def test_export_jsonl_with_filters(bot: Bot) -> None:
    seed_for_export(bot)
    rows = [r for r in bot.db.audit() if r["user_id"] == BOB]
    _, answer, got = export(bot, f"audit export user=<@{BOB}> format=jsonl since=1h")
    [upload] = got["uploads"]
    assert upload.filename.endswith(".jsonl")
    lines = upload.data.decode("utf-8").splitlines() if upload.data else []
    assert len(lines) == 2
    parsed = [json.loads(line) for line in lines]
    assert [tuple(p) for p in parsed] == [audit_export.COLUMNS] * 2
    assert [p["id"] for p in parsed] == [r["id"] for r in rows]
    assert parsed[0]["command_text"] == rows[0]["command_text"] and TRICKY in parsed[0]["command_text"]
    assert "日本" in lines[0]  # UTF-8 as is, not \\u escapes
    assert parsed[0]["request"] == rows[0]["request"]
    assert "2 rows (JSONL)" in answer
    assert (upload.initial_comment or "").endswith(f" UTC (user=<@{BOB}>, since {stamp(audit_since(bot))}).")
    audit = bot.db.audit()[-1]
    assert audit["action"] == "audit.export" and audit["request"]["user_id"] == BOB
    assert audit["request"]["format"] == "jsonl" and audit["result"]["rows"] == 2


def audit_since(bot: Bot) -> datetime:
    """The `since` the last export was asked with, as its audit row keeps it."""
    return moment(bot.db.audit()[-1]["request"]["since"])


def test_export_sees_only_what_the_person_may_see(bot: Bot) -> None:
    ask(bot.slack, f"hangup prod:{call_sid(1)}", user=BOB)
    ask(bot.slack, f"hangup prod:{call_sid(2)}")
    mine = [r["id"] for r in bot.db.audit() if r["user_id"] == ALICE]
    _, answer, got = export(bot, "audit export")
    [upload] = got["uploads"]
    parsed = list(csv.DictReader(io.StringIO(upload.data.decode("utf-8") if upload.data else "", newline="")))
    assert [int(r["id"]) for r in parsed] == mine
    assert "1 rows (CSV)" in answer

    _, refused, got = export(bot, f"audit export user=<@{BOB}>")
    assert "reading others' needs `audit`" in refused
    assert len(got["uploads"]) == 1  # nothing more uploaded
    last = bot.db.audit()[-1]
    assert (last["action"], last["outcome"], last["user_id"]) == ("audit.export", "denied", ALICE)


def test_export_is_capped_and_says_so(bot: Bot, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(audit_review, "EXPORT_CAP", 3)
    for n in range(5):
        ask(bot.slack, f"hangup prod:{call_sid(600 + n)}")
    ids = [r["id"] for r in bot.db.audit()]
    _, answer, got = export(bot, "audit export format=jsonl")
    [upload] = got["uploads"]
    parsed = [json.loads(line) for line in (upload.data or b"").decode().splitlines()]
    assert [p["id"] for p in parsed] == ids[2:]  # the newest 3, oldest first
    assert "Capped: the file holds the newest 3 of the 5 matching rows (at most 3 per file)." in answer
    assert "Capped: the file holds the newest 3 of the 5" in (upload.initial_comment or "")
    audit = bot.db.audit()[-1]
    assert audit["result"] == {"rows": 3, "matching": 5, "capped": True, "format": "jsonl", "file": upload.filename}


def test_export_failure_is_audited(bot: Bot) -> None:
    ask(bot.slack, f"hangup prod:{call_sid(1)}")
    bot.fake_slack.unknown_users = True
    _, answer, got = export(bot, "audit export")
    assert answer.startswith(":x: *The export failed: no file was sent.*")
    assert got["uploads"] == []
    last = bot.db.audit()[-1]
    assert (last["action"], last["outcome"]) == ("audit.export", "failed")
    assert "user_not_found" in last["error_message"]


def test_export_options_are_checked(bot: Bot) -> None:
    assert "`format=xml`: is not an export format" in reply_text(ask(bot.slack, "audit export format=xml"))
    assert "`format=`: is only for `/call audit export`" in reply_text(ask(bot.slack, "audit format=csv"))
    assert "`exprot`: is not a word `audit` knows. Did you mean `export`?" in reply_text(ask(bot.slack, "audit exprot"))
    backwards = reply_text(ask(bot.slack, "audit since=1h until=2h"))
    assert "`until=2h`: is not after `since=1h`: nothing could match." in backwards


def test_details_name_the_approver(start: Callable[..., ApprovalBot]) -> None:
    """A two-person approval: the request, the Approve click and the executed action all show who
    approved (approvals.request_audit_id / result_audit_id → decided_by)."""
    bot = start()
    bot.db.grant(CAROL, "audit", "*")
    sid = bot.twilio.add_call(call_sid(1))
    _, (_, approve, _) = bot.request(f"hangup prod:{sid}")
    assert "Approved #" in bot.click(approve, BOB)
    bot.wait_method("chat.update")
    deadline = time.monotonic() + 10
    while bot.status() != "executed":
        assert time.monotonic() < deadline
        time.sleep(0.02)
    with bot.db.engine.connect() as conn:
        approval = conn.execute(sqltext("SELECT id, request_audit_id, result_audit_id FROM approvals")).one()
    requested, decided, executed = bot.db.audit()
    assert (approval.request_audit_id, approval.result_audit_id) == (requested["id"], executed["id"])
    for row in (requested, decided, executed):
        facts = view_texts(open_details(bot.fake_slack, bot.slack, row["id"], CAROL))[0].split("\n")
        assert f"*Approver:* <@{BOB}> (approval #{approval.id}, executed)" in facts, (row["action"], facts)
    assert bot.fake_slack.view_errors == []
    # The requester's App Home was re-published once their approved action ran.
    deadline = time.monotonic() + 10
    while not bot.fake_slack.home_views.get(ALICE):
        assert time.monotonic() < deadline, "the requester's home was never published"
        time.sleep(0.02)
    [home] = bot.fake_slack.home_views[ALICE]
    own = [b["block_id"] for b in home["blocks"] if str(b.get("block_id", "")).startswith("own_")]
    assert own == [f"own_{executed['id']}", f"own_{requested['id']}"]
