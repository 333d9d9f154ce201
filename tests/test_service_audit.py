"""Audit search at the service level: who sees which rows of `/call audit`, and what each filter
keeps. The use cases are called with an Invocation (tests/support/service.py), no HTTP. The pages,
buttons, Details modal and exports as Slack shows them are end to end in tests/test_audit_slack.py."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from bot.db import confirmations
from bot.domain.confirmation import Seen, Via
from bot.domain.replies import AuditDetail, Reply, Tone
from tests.fakes.bandwidth import bw_call_id
from tests.fakes.bird import bird_call_id
from tests.fakes.server import Answer
from tests.fakes.twilio import AUTH_TOKEN, call_sid
from tests.support.bots import ALICE, BOB, CAROL
from tests.support.service import ServiceBot

# Four attempts, two hours apart: who, what, and how each ends.
BOB_PROD, BOB_BW, CAROL_BIRD, ALICE_PROD = range(4)
SEEDS = [
    (BOB, f"hangup prod:{call_sid(1)}"),  # denied: no grant
    (BOB, f"redirect bw:{bw_call_id(2)} https://example.com/a.xml dry-run"),  # dry_run
    (CAROL, f"hangup bird:{bird_call_id(3)} dry-run"),  # dry_run
    (ALICE, f"hangup prod:{call_sid(4)} dry-run"),  # dry_run
]


@pytest.fixture
def seeded(service: ServiceBot) -> tuple[ServiceBot, list[int]]:
    # Eight hours ago, so that the last seed is two hours old by the real clock, which `since=` and
    # `until=` count back from (the grammar reads the real time, not the service's clock).
    service.clock.advance(hours=-8)
    service.db.grant(BOB, "redirect", "bw")
    service.db.grant(CAROL, "hangup", "bird")
    service.db.grant(ALICE, "hangup", "prod")
    for user, text in SEEDS:
        service.say(text, user)
        service.clock.advance(hours=2)
    ids = [row["id"] for row in service.audit()]
    assert [r["outcome"] for r in service.audit()] == ["denied", "dry_run", "dry_run", "dry_run"]
    return service, ids


def shown(reply: Reply) -> list[int]:
    """The audit ids on the page, newest first; none when nothing matched."""
    if reply.listing is None:
        assert reply.tone == Tone.INFO and reply.title.startswith("No audited attempts match"), reply
        return []
    return [entry.id for entry in reply.listing.entries]


@pytest.mark.parametrize(
    ("grants", "visible", "label"),
    [
        ([], [ALICE_PROD], "yours"),
        ([("hangup", "*")], [ALICE_PROD], "yours"),  # acting is not reading
        ([("audit", "bw")], [ALICE_PROD, BOB_BW], "visible to you"),
        ([("audit", "prod")], [ALICE_PROD, BOB_PROD], "visible to you"),
        ([("audit", "bw"), ("audit", "bird")], [ALICE_PROD, CAROL_BIRD, BOB_BW], "visible to you"),
        ([("supervisor", "bird")], [ALICE_PROD, CAROL_BIRD], "visible to you"),
        ([("admin", "bw")], [ALICE_PROD, BOB_BW], "visible to you"),
        ([("audit", "*")], [ALICE_PROD, CAROL_BIRD, BOB_BW, BOB_PROD], "everyone's"),
        ([("admin", "*")], [ALICE_PROD, CAROL_BIRD, BOB_BW, BOB_PROD], "everyone's"),
    ],
)
def test_who_sees_which_rows(
    seeded: tuple[ServiceBot, list[int]], grants: list[tuple[str, str]], visible: list[int], label: str
) -> None:
    service, ids = seeded
    for action, account in grants:
        service.db.grant(ALICE, action, account)
    page = service.say("audit")
    assert shown(page) == [ids[i] for i in visible]
    assert page.title.startswith(f"Audit ({label})")
    assert len(service.audit()) == len(SEEDS)  # reading is not an attempt


@pytest.mark.parametrize(
    ("grant", "allowed", "rows"),
    [
        (None, False, []),
        (("audit", "bw"), True, [BOB_BW]),
        (("audit", "*"), True, [BOB_BW, BOB_PROD]),
    ],
)
def test_asking_for_someone_elses_rows(
    seeded: tuple[ServiceBot, list[int]], grant: tuple[str, str] | None, allowed: bool, rows: list[int]
) -> None:
    service, ids = seeded
    if grant is not None:
        service.db.grant(ALICE, *grant)
    page = service.say(f"audit user=<@{BOB}>")
    if allowed:
        assert shown(page) == [ids[i] for i in rows]
    else:
        assert page.tone == Tone.DENIED and "reading others' needs `audit`" in page.as_text()
        row = service.last_audit()
        assert (row["action"], row["outcome"], row["user_id"]) == ("audit", "denied", ALICE)
    # Asking for your own rows by name is never refused (the refusal above is one of them).
    own = shown(service.say(f"audit user=<@{ALICE}>"))
    assert own[-1] == ids[ALICE_PROD] and len(own) == (1 if allowed else 2)


@pytest.mark.parametrize(
    ("query", "rows"),
    [
        ("audit", [ALICE_PROD, CAROL_BIRD, BOB_BW, BOB_PROD]),
        ("audit account=prod", [ALICE_PROD, BOB_PROD]),
        ("audit account=bird", [CAROL_BIRD]),
        ("audit action=hangup", [ALICE_PROD, CAROL_BIRD, BOB_PROD]),
        ("audit action=redirect", [BOB_BW]),
        ("audit action=cancel", []),
        ("audit outcome=denied", [BOB_PROD]),
        ("audit outcome=dry_run", [ALICE_PROD, CAROL_BIRD, BOB_BW]),
        (f"audit user=<@{BOB}>", [BOB_BW, BOB_PROD]),
        (f"audit user=<@{CAROL}> account=prod", []),
        (f"audit call={call_sid(1)}", [BOB_PROD]),
        (f"audit call={bw_call_id(2)}", [BOB_BW]),
        ("audit since=3h", [ALICE_PROD]),
        ("audit since=5h", [ALICE_PROD, CAROL_BIRD]),
        ("audit until=5h", [BOB_BW, BOB_PROD]),
        ("audit since=7h until=3h", [CAROL_BIRD, BOB_BW]),
        (f"audit user=<@{BOB}> action=hangup outcome=denied account=prod", [BOB_PROD]),
    ],
)
def test_each_filter_keeps_what_matches(seeded: tuple[ServiceBot, list[int]], query: str, rows: list[int]) -> None:
    service, ids = seeded
    service.db.grant(ALICE, "audit", "*")
    # The seeds are 8 h, 6 h, 4 h and 2 h old now.
    assert shown(service.say(query)) == [ids[i] for i in rows]


def test_a_filter_never_widens_what_someone_may_see(seeded: tuple[ServiceBot, list[int]]) -> None:
    service, ids = seeded
    service.db.grant(ALICE, "audit", "bw")
    assert shown(service.say("audit account=prod")) == [ids[ALICE_PROD]]
    assert shown(service.say("audit account=bird")) == []
    assert shown(service.say("audit outcome=denied")) == []
    assert shown(service.say(f"audit call={call_sid(1)}")) == []


# -- confirmations ----------------------------------------------------------------------------------


def test_a_confirmation_shows_on_the_list_and_in_the_details(service: ServiceBot) -> None:
    """An `unknown` hang-up the provider later showed ended is marked resolved on the page (and in
    its plain-text lines); Details say what was seen, when and how. The provider's word is masked
    like any text that leaves, here a word that happens to be a configured secret."""
    service.clock.now = datetime(2026, 12, 4, 12, 3, 1, tzinfo=UTC)
    service.db.grant(ALICE, "hangup", "prod")
    service.db.grant(ALICE, "redirect", "prod")
    resolved, open_ = service.fakes.twilio.add_call(call_sid(21)), service.fakes.twilio.add_call(call_sid(22))
    service.fakes.twilio.script(Answer(502, b"<html>Bad Gateway</html>", {"Content-Type": "text/html"}))
    service.say(f"hangup prod:{resolved}")
    service.fakes.twilio.script(Answer(502, b"<html>Bad Gateway</html>", {"Content-Type": "text/html"}))
    service.say(f"redirect prod:{open_} https://example.com/hold.xml")
    service.say(f"hangup prod:{call_sid(23)} dry-run")
    hangup, redirect, dry = (row["id"] for row in service.audit())
    assert [r["outcome"] for r in service.audit()] == ["unknown", "unknown", "dry_run"]
    seen = datetime(2026, 12, 4, 12, 3, 4, tzinfo=UTC)
    assert service.call(
        confirmations.confirm(service.service.db, {hangup: Seen("completed", AUTH_TOKEN, seen, Via.READ).fields()})
    ) == [hangup]

    page = service.say("audit outcome=unknown")
    assert page.listing is not None
    marks = {entry.id: entry.confirmed for entry in page.listing.entries}
    assert marks == {hangup: "confirmed ended (`***`)", redirect: None}
    [line] = [line for line in page.lines if f"#{hangup} " in line]
    assert f"hangup prod:{resolved} ❓ unknown → confirmed ended (`***`) — " in line  # the error after it
    assert AUTH_TOKEN not in page.as_text()

    def confirmed_fact(audit_id: int) -> str:
        detail = service.call(service.service.audit.details(service.invocation("audit"), audit_id))
        assert isinstance(detail, AuditDetail)
        facts = dict(detail.facts)
        assert list(facts).index("Confirmed") == list(facts).index("Outcome") + 1
        return facts["Confirmed"]

    assert confirmed_fact(hangup) == "the call ended (`***`) at 12:03:04 UTC, by read-back"
    assert confirmed_fact(redirect) == "not confirmed (callbot has not seen the call's state since)"
    assert confirmed_fact(dry) == "— (nothing to confirm: the request did not change the call)"
