"""Deny by default, grants, revokes, perms and help at the service level: the use cases called with
an Invocation (tests/support/service.py), no HTTP. The signed end-to-end cases are in
tests/test_permissions.py."""

from __future__ import annotations

import pytest

from bot.domain.replies import Tone
from tests.fakes.bandwidth import bw_call_id
from tests.fakes.bird import bird_call_id
from tests.fakes.twilio import call_sid
from tests.support.bots import ALICE, BOB, CAROL
from tests.support.service import ServiceBot

# Every call action, on each account whose provider has it, as a dry run: the whole permission
# check, no provider request.
CALL_ACTIONS = {
    ("hangup", "prod"): f"hangup prod:{call_sid(1)} dry-run",
    ("cancel", "prod"): f"cancel prod:{call_sid(1)} dry-run",
    ("redirect", "prod"): f"redirect prod:{call_sid(1)} https://example.com/a.xml dry-run",
    ("twiml", "prod"): f'twiml prod:{call_sid(1)} "<Response><Hangup/></Response>" dry-run',
    ("hangup", "bw"): f"hangup bw:{bw_call_id(1)} dry-run",
    ("redirect", "bw"): f"redirect bw:{bw_call_id(1)} https://example.com/a.xml dry-run",
    ("hangup", "bird"): f"hangup bird:{bird_call_id(1)} dry-run",
    ("flow", "bird"): f"""flow bird:{bird_call_id(1)} '[{{"command": "hangup"}}]' dry-run""",
}


# -- moved from tests/test_permissions.py ---------------------------------------------------------


def test_a_grant_on_another_account_or_action_does_not_help(service: ServiceBot) -> None:
    service.db.grant(ALICE, "hangup", "staging")
    service.db.grant(ALICE, "redirect", "prod")
    reply = service.say(f"hangup prod:{call_sid(2)}")
    assert "not allowed" in reply.as_text()
    assert service.fakes.twilio.requests == []


def test_non_admin_cannot_grant(service: ServiceBot) -> None:
    service.db.grant(ALICE, "hangup", "*")
    reply = service.say(f"grant <@{BOB}> hangup")
    assert "not allowed" in reply.as_text()
    assert (BOB, "hangup", "*") not in service.db.grants()
    assert service.audit()[0]["outcome"] == "denied"


def test_an_account_admin_cannot_grant_more_than_they_hold(service: ServiceBot) -> None:
    service.db.grant(ALICE, "admin", "prod")
    everywhere = service.say(f"grant <@{BOB}> hangup on=*")
    assert "not allowed" in everywhere.as_text()
    on_prod = service.say(f"grant <@{BOB}> admin on=prod")
    assert "Granted" in on_prod.as_text()
    assert service.db.grants()[-1] == (BOB, "admin", "prod")


def test_revoke_takes_a_grant_away(service: ServiceBot) -> None:
    service.db.grant(ALICE, "admin", "*")
    service.db.grant(BOB, "hangup", "prod")
    text = service.say(f"revoke <@{BOB}> hangup,cancel on=prod").as_text()
    assert f"Revoked from <@{BOB}>: hangup on prod." in text
    assert "nothing to revoke: cancel on prod" in text
    assert (BOB, "hangup", "prod") not in service.db.grants()
    denied = service.say(f"hangup prod:{call_sid(4)}", BOB)
    assert "not allowed" in denied.as_text()


def test_grant_on_an_unknown_account_suggests_the_right_one(service: ServiceBot) -> None:
    service.db.grant(ALICE, "admin", "*")
    reply = service.say(f"grant <@{BOB}> hangup on=prd")
    assert "`on=prd`: is not a configured account. Did you mean `prod`?" in reply.as_text()
    assert service.audit()[0]["outcome"] == "invalid"


def test_perms_shows_own_grants_and_others_only_to_admins(service: ServiceBot) -> None:
    service.db.grant(BOB, "hangup", "prod")
    own = service.say("perms", BOB).as_text()
    assert "`hangup` on account `prod`" in own
    nothing = service.say("perms").as_text()
    assert "may not do anything yet" in nothing
    refused = service.say(f"perms <@{BOB}>", CAROL).as_text()
    assert "needs `admin`" in refused
    service.db.grant(ALICE, "admin", "*")
    seen = service.say(f"perms <@{BOB}>").as_text()
    assert f"<@{BOB}> may:" in seen and "`hangup` on account `prod`" in seen


def test_help_topic_and_bare_call(service: ServiceBot) -> None:
    topic = service.say("help redirect").as_text()
    assert "/call redirect CALL URL" in topic and "time-limit" in topic and "Bandwidth (BXML)" in topic
    # A bare `/call` opens the action modal (tests/test_modal.py); `help` is the text answer.
    assert "callbot: control live calls" in service.say("help").as_text()


# -- deny by default, table-driven ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "action", "account"),
    [pytest.param(text, action, account, id=f"{action}-{account}") for (action, account), text in CALL_ACTIONS.items()]
    + [
        pytest.param(f"grant <@{BOB}> hangup on=prod", "grant", None, id="grant"),
        pytest.param(f"revoke <@{BOB}> hangup on=prod", "revoke", None, id="revoke"),
        pytest.param("role create incident hangup", "role", None, id="role-create"),
        pytest.param('freeze on=prod reason="x"', "freeze", "prod", id="freeze"),
        pytest.param("unfreeze on=prod", "unfreeze", "prod", id="unfreeze"),
    ],
)
def test_without_a_grant_every_action_is_refused_and_audited(
    service: ServiceBot, text: str, action: str, account: str | None
) -> None:
    reply = service.say(text)
    assert reply.tone == Tone.DENIED and "not allowed" in reply.as_text().lower(), reply
    assert service.sent() == 0
    [row] = service.audit()
    assert (row["action"], row["outcome"], row["decision"]) == (action, "denied", "denied")
    if account is not None:
        assert row["account"] == account
    assert row["error_message"] and "not allowed" in row["error_message"].lower()


@pytest.mark.parametrize(("action", "account"), list(CALL_ACTIONS))
def test_a_grant_allows_exactly_its_action_on_exactly_its_account(
    service: ServiceBot, action: str, account: str
) -> None:
    """One grant, every call action on every account tried: only the granted pair is allowed, and
    the allowed attempt names the grant it rests on."""
    grant_id = service.db.grant(ALICE, action, account)
    allowed = {key for key, text in CALL_ACTIONS.items() if service.say(text).tone == Tone.DRY_RUN}
    assert allowed == {(action, account)}
    rows = service.audit()
    [dry] = [r for r in rows if r["outcome"] == "dry_run"]
    assert (dry["action"], dry["account"], dry["grant_id"]) == (action, account, grant_id)
    assert dry["decision_basis"] == f"grant #{grant_id}: {action} on account {account}"
    assert {r["outcome"] for r in rows if r is not dry} == {"denied"}
    assert service.sent() == 0


@pytest.mark.parametrize("account", ["prod", "bw", "bird"])
def test_a_grant_on_every_account_allows_the_action_on_each(service: ServiceBot, account: str) -> None:
    service.db.grant(ALICE, "hangup", "*")
    reply = service.say(CALL_ACTIONS[("hangup", account)])
    assert reply.tone == Tone.DRY_RUN
    assert service.last_audit()["decision_basis"].endswith("hangup on all accounts")


@pytest.mark.parametrize(
    ("held", "text", "granted"),
    [
        (("admin", "*"), f"grant <@{BOB}> hangup on=*", True),
        (("admin", "*"), f"grant <@{BOB}> admin on=prod,bw", True),
        (("admin", "prod"), f"grant <@{BOB}> hangup on=prod", True),
        (("admin", "prod"), f"grant <@{BOB}> hangup on=prod,bw", False),
        (("admin", "prod"), f"grant <@{BOB}> hangup", False),  # no on=: every account
        (("admin", "bw"), f"grant <@{BOB}> hangup on=prod", False),
        (("hangup", "*"), f"grant <@{BOB}> hangup on=prod", False),
        (("operator", "*"), f"grant <@{BOB}> hangup on=prod", False),
        (("supervisor", "*"), f"grant <@{BOB}> hangup on=prod", False),
    ],
)
def test_who_may_grant_what(service: ServiceBot, held: tuple[str, str], text: str, granted: bool) -> None:
    service.db.grant(ALICE, *held)
    reply = service.say(text)
    row = service.last_audit()
    assert row["action"] == "grant"
    if granted:
        assert reply.tone == Tone.SUCCESS and "Granted to" in reply.title, reply
        assert row["outcome"] == "succeeded" and row["request"]["user"] == BOB
    else:
        assert reply.tone == Tone.DENIED and "not allowed to `grant`" in reply.as_text(), reply
        assert row["outcome"] == "denied"
        assert [g for g in service.db.grants() if g[0] == BOB] == []


def test_grant_and_revoke_are_audited_with_what_changed(service: ServiceBot) -> None:
    service.db.grant(ALICE, "admin", "*")
    service.say(f"grant <@{BOB}> hangup,redirect on=prod,bw")
    service.say(f"grant <@{BOB}> hangup on=prod")  # held already: nothing changes
    service.say(f"revoke <@{BOB}> redirect on=bw")
    grant, again, revoke = service.audit()
    assert grant["request"]["changed"] == ["hangup on prod", "hangup on bw", "redirect on prod", "redirect on bw"]
    assert again["outcome"] == "succeeded" and again["request"]["changed"] == []
    assert (revoke["action"], revoke["request"]["changed"]) == ("revoke", ["redirect on bw"])
    assert sorted(g for g in service.db.grants() if g[0] == BOB) == [
        (BOB, "hangup", "bw"),
        (BOB, "hangup", "prod"),
        (BOB, "redirect", "prod"),
    ]
