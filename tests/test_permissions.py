"""Deny by default, a grant and help through signed slash commands, and the decision itself. The rules
case by case (who may grant what, revoke, perms, help topics) are tested on the service itself in
tests/test_service_permissions.py."""

from __future__ import annotations

import pytest

from bot.domain.permissions import Grant, decide, decide_management
from tests.fakes.twilio import call_sid
from tests.support.bots import ALICE, BOB, CAROL, Bot, reply_text

# The worker's one default bot, lent to each test (tests/support/bots.py SharedBot).
pytestmark = pytest.mark.shared_bot


def test_nobody_may_act_without_a_grant(bot: Bot) -> None:
    sid = bot.fake_twilio.add_call(call_sid(1))
    response = bot.slack.command(f"hangup prod:{sid}")
    text = reply_text(response.json())
    assert "not allowed to `hangup` on account `prod`" in text
    assert bot.fake_twilio.requests == []
    [row] = bot.db.audit()
    assert (row["outcome"], row["decision"], row["action"], row["account"]) == ("denied", "denied", "hangup", "prod")
    assert row["decision_basis"] == "no matching grant"


def test_admin_grants_then_the_grantee_can_act_and_both_steps_are_audited(bot: Bot) -> None:
    bot.db.grant(ALICE, "admin", "*")
    response = bot.slack.command(f"grant <@{BOB}|bob> hangup,redirect on=prod")
    assert f"Granted to <@{BOB}>: hangup on prod, redirect on prod." in reply_text(response.json())
    assert (BOB, "hangup", "prod") in bot.db.grants() and (BOB, "redirect", "prod") in bot.db.grants()

    sid = bot.fake_twilio.add_call(call_sid(3))
    _, outcome = bot.slack.run(f"hangup prod:{sid}", user=BOB)
    assert "Hung up" in reply_text(outcome)

    grant_row, hangup_row = bot.db.audit()
    assert (grant_row["action"], grant_row["user_id"], grant_row["outcome"]) == ("grant", ALICE, "succeeded")
    assert grant_row["request"]["user"] == BOB
    assert grant_row["request"]["changed"] == ["hangup on prod", "redirect on prod"]
    assert "admin on all accounts" in grant_row["decision_basis"]
    assert hangup_row["user_id"] == BOB and hangup_row["outcome"] == "succeeded"


def test_help_shows_only_what_the_user_may_run(bot: Bot) -> None:
    bot.db.grant(BOB, "hangup", "prod")
    text = reply_text(bot.slack.command("help", user=BOB).json())
    assert "/call hangup" in text
    assert "/call redirect" not in text and "/call grant" not in text
    stranger = reply_text(bot.slack.command("help", user=CAROL).json())
    assert "/call hangup" not in stranger and "may not run any call action yet" in stranger
    assert "prod (twilio)" in stranger
    bot.db.grant(ALICE, "admin", "*")
    admin = reply_text(bot.slack.command("help").json())
    for verb in ("hangup", "cancel", "redirect", "twiml", "grant", "revoke", "audit", "perms"):
        assert f"/call {verb}" in admin
    assert "[username=… password=…]" in admin  # placeholders are not mistaken for secrets


@pytest.mark.parametrize(
    ("grants", "action", "account", "allowed", "basis"),
    [
        ([], "hangup", "prod", False, None),
        ([Grant(1, "U", "hangup", "prod")], "hangup", "prod", True, 1),
        ([Grant(1, "U", "hangup", "*"), Grant(2, "U", "hangup", "prod")], "hangup", "prod", True, 2),
        ([Grant(1, "U", "admin", "*"), Grant(2, "U", "hangup", "*")], "hangup", "prod", True, 2),
        ([Grant(1, "U", "admin", "prod")], "twiml", "prod", True, 1),
        ([Grant(1, "U", "admin", "prod")], "twiml", "staging", False, None),
        ([Grant(1, "U", "redirect", "*")], "hangup", "prod", False, None),
    ],
)
def test_decide_picks_the_most_specific_grant(grants, action, account, allowed, basis) -> None:  # type: ignore[no-untyped-def]
    decision = decide(grants, action, account)
    assert decision.allowed is allowed
    assert (decision.grant.id if decision.grant else None) == basis


def test_management_needs_admin_on_every_account_named() -> None:
    grants = [Grant(1, "U", "admin", "prod")]
    assert decide_management(grants, ["prod"]).allowed
    assert not decide_management(grants, ["prod", "staging"]).allowed
    assert not decide_management(grants, ["*"]).allowed
    assert decide_management([Grant(2, "U", "admin", "*")], ["*", "prod"]).allowed
