"""Freeze, break-glass and confirmations at the service level, case by case: the use cases called
with an Invocation (tests/support/service.py), a confirmation's buttons as the buttons listener
hands them over, no HTTP; an allowed action is still sent to the fake Twilio. One case of each
through signed Slack requests and real button payloads is in tests/test_policy.py."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from sqlalchemy import text

from bot.domain.outcomes import Source
from bot.domain.replies import Reply, Tone
from tests.fakes.bandwidth import bw_call_id
from tests.fakes.twilio import call_sid
from tests.support.bots import ALICE, BOB, CAROL
from tests.support.service import ServiceBot

SID = call_sid(1)
FROZEN = "is frozen"
Lend = Callable[..., ServiceBot]


def frozen_prod(service: ServiceBot) -> None:
    service.db.grant(CAROL, "admin", "*")
    assert service.say('freeze on=prod reason="fraud wave"', CAROL).title.startswith("Frozen: `prod`.")


def active_freezes(service: ServiceBot) -> list[str]:
    with service.db.engine.connect() as conn:
        rows = conn.execute(text("SELECT account FROM freezes WHERE lifted_at IS NULL ORDER BY account"))
        return [str(account) for account in rows.scalars()]


# -- freeze and break-glass ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("grants", "command", "outcome", "shown"),
    [
        ([("operator", "prod")], f"hangup prod:{SID}", "denied", FROZEN),
        ([("operator", "prod")], f'hangup prod:{SID} reason="x"', "denied", FROZEN),
        ([("operator", "prod")], f"hangup prod:{SID} dry-run", "denied", FROZEN),  # a dry run too
        ([("admin", "*")], f'hangup prod:{SID} reason="x"', "denied", FROZEN),  # admin is not break-glass
        ([("operator", "prod"), ("break-glass", "bw")], f'hangup prod:{SID} reason="x"', "denied", FROZEN),
        ([("operator", "prod"), ("break-glass", "prod")], f"hangup prod:{SID}", "denied", "act anyway"),
        ([("operator", "prod"), ("break-glass", "prod")], f'hangup prod:{SID} reason="danger"', "succeeded", ""),
        ([("operator", "prod"), ("break-glass", "*")], f'hangup prod:{SID} reason="danger"', "succeeded", ""),
        (
            [("break-glass", "prod")],
            f'hangup prod:{SID} reason="danger"',
            "denied",
            "not allowed",
        ),  # not a grant to act
        ([("operator", "*")], f"hangup bw:{bw_call_id(1)}", "succeeded", ""),  # another account is not frozen
    ],
)
def test_who_may_act_on_a_frozen_account(
    service: ServiceBot, grants: list[tuple[str, str]], command: str, outcome: str, shown: str
) -> None:
    frozen_prod(service)
    for action, account in grants:
        service.db.grant(ALICE, action, account)
    service.fakes.twilio.add_call(SID)
    service.fakes.bandwidth.add_call(bw_call_id(1))
    reply = service.say(command)
    row = service.last_audit()
    assert row["outcome"] == outcome, reply
    assert shown in reply.as_text()
    glass = any(action == "break-glass" and account in ("prod", "*") for action, account in grants)
    on_prod = command.split()[1].startswith("prod:")
    assert bool(row["break_glass"]) is (glass and on_prod and "operator" in dict(grants))
    if outcome == "succeeded":
        assert service.sent() == 1
        if row["break_glass"]:
            assert "break-glass (grant #" in row["decision_basis"] and "during freeze #" in row["decision_basis"]
    else:
        assert service.sent() == 0
    if shown == FROZEN:
        assert "fraud wave" in reply.as_text() and f"<@{CAROL}>" in row["error_message"]


@pytest.mark.parametrize(
    ("held", "command", "outcome", "frozen"),
    [
        (("admin", "*"), 'freeze on=prod reason="r"', "succeeded", ["prod"]),
        (("admin", "*"), 'freeze on=prod,bw reason="r"', "succeeded", ["bw", "prod"]),
        (("admin", "prod"), 'freeze on=prod reason="r"', "succeeded", ["prod"]),
        (("admin", "prod"), 'freeze on=prod,bw reason="r"', "denied", []),
        (("admin", "bw"), 'freeze on=prod reason="r"', "denied", []),
        (("operator", "*"), 'freeze on=prod reason="r"', "denied", []),
        (("break-glass", "*"), 'freeze on=prod reason="r"', "denied", []),
        (("admin", "*"), "freeze on=prod", "invalid", []),
        (("admin", "*"), 'freeze on=* reason="r"', "invalid", []),
        (("admin", "*"), 'freeze on=prd reason="r"', "invalid", []),
        (("admin", "*"), 'freeze reason="r"', "invalid", []),
    ],
)
def test_who_may_freeze_what(
    service: ServiceBot, held: tuple[str, str], command: str, outcome: str, frozen: list[str]
) -> None:
    service.db.grant(ALICE, *held)
    reply = service.say(command)
    row = service.last_audit()
    assert (row["action"], row["outcome"]) == ("freeze", outcome), reply
    assert active_freezes(service) == frozen
    if outcome == "denied":
        assert "not allowed to `freeze`" in reply.as_text()


def test_freeze_twice_and_unfreeze_say_what_changed(service: ServiceBot) -> None:
    frozen_prod(service)
    again = service.say('freeze on=prod,bw reason="more"', CAROL)
    assert again.title.startswith("Frozen: `bw`.") and "Already frozen (unchanged): prod." in again.lines
    assert service.say("unfreeze on=prod", CAROL).title == "Unfrozen: `prod`."
    assert service.say("unfreeze on=prod", CAROL).title == "Nothing to unfreeze."
    assert active_freezes(service) == ["bw"]
    service.db.grant(ALICE, "hangup", "prod")
    service.fakes.twilio.add_call(SID)
    assert service.say(f"hangup prod:{SID}").tone == Tone.SUCCESS
    assert [r["outcome"] for r in service.audit() if r["action"] in ("freeze", "unfreeze")] == ["succeeded"] * 4


# -- confirmations ---------------------------------------------------------------------------------------


CONFIRM = 'confirm = ["hangup", "cancel"]'


def confirming(shared_service_for: Lend) -> ServiceBot:
    service = shared_service_for({"prod": CONFIRM})
    service.db.grant(ALICE, "operator", "prod")
    return service


def cancel(service: ServiceBot, reply: Reply, user: str) -> Reply | None:
    """Cancel as the buttons listener handles it: drop the command, or refuse someone else's click."""
    token = reply.choices[1].value.partition("|")[0]
    dropped = service.call(service.service.dismiss_choice("T0001", user, token))
    if dropped is not None:
        return dropped
    inv = service.invocation("", user, source=Source.BUTTON)
    return service.call(service.service.refuse_foreign_choice(inv, token))


@pytest.mark.parametrize(
    ("command", "source", "asks"),
    [
        (f"hangup prod:{SID}", Source.SLASH, True),
        (f"cancel prod:{SID}", Source.SLASH, True),
        (f"hangup prod:{SID}", Source.BUTTON, True),  # an account picked with a button: still asked
        (f"redirect prod:{SID} https://example.com/a.xml", Source.SLASH, False),
        (f"hangup prod:{SID} dry-run", Source.SLASH, False),
        (f"hangup prod:{SID}", Source.CLI, False),  # the shell has no buttons
        (f"hangup prod:{SID}", Source.MODAL, False),  # the modal has its own confirmation step
    ],
)
def test_which_actions_ask_to_confirm(shared_service_for: Lend, command: str, source: str, asks: bool) -> None:
    service = confirming(shared_service_for)
    service.fakes.twilio.add_call(SID, "ringing")
    reply = service.say(command, source=source)
    if asks:
        verb = command.split()[0]
        assert reply.title == f"{verb.capitalize()} prod:{SID}?"
        confirm, dismiss = reply.choices
        assert (confirm.label, confirm.style, dismiss.label, dismiss.dismiss) == ("Confirm", "danger", "Cancel", True)
        assert confirm.confirm is not None and confirm.confirm.confirm == f"Yes, {verb}"
        assert service.audit() == [] and service.sent() == 0  # nothing happened yet
    else:
        assert not reply.choices and len(service.audit()) == 1


@pytest.mark.parametrize(
    ("clicks", "sent", "outcomes"),
    [
        ([("confirm", ALICE)], 1, ["succeeded"]),
        ([("confirm", ALICE), ("confirm", ALICE)], 1, ["succeeded"]),  # a double click sends once
        ([("confirm", BOB)], 0, ["denied"]),  # someone else's click: refused and audited
        ([("confirm", BOB), ("confirm", ALICE)], 1, ["denied", "succeeded"]),  # …the button still works
        ([("cancel", ALICE)], 0, []),  # canceling your own is not an attempt
        ([("cancel", ALICE), ("confirm", ALICE)], 0, []),
        ([("cancel", BOB), ("cancel", ALICE)], 0, ["denied"]),
        ([("confirm", ALICE), ("cancel", ALICE)], 1, ["succeeded"]),
    ],
)
def test_only_the_asker_confirms_or_cancels_and_only_once(
    shared_service_for: Lend, clicks: list[tuple[str, str]], sent: int, outcomes: list[str]
) -> None:
    service = confirming(shared_service_for)
    service.fakes.twilio.add_call(SID)
    asked = service.say(f'hangup prod:{SID} reason="fraud"')
    for button, user in clicks:
        if button == "confirm":
            service.choose(asked, user)
        else:
            cancel(service, asked, user)
    assert len(service.fakes.twilio.updates()) == sent
    rows = service.audit()
    assert [r["outcome"] for r in rows] == outcomes
    for row in rows:
        if row["outcome"] == "denied":
            assert row["user_id"] == BOB and "Only the person who asked" in row["error_message"]
            assert row["idempotency_key"] is None
        else:
            assert (row["user_id"], row["source"]) == (ALICE, "button")
            assert row["idempotency_key"].startswith("choice:")


def test_what_each_click_says(shared_service_for: Lend) -> None:
    service = confirming(shared_service_for)
    service.fakes.twilio.add_call(SID)
    asked = service.say(f"hangup prod:{SID}")
    assert "Only the person who asked" in service.choose(asked, BOB).as_text()
    assert service.choose(asked, ALICE).title == f"Hung up prod:{SID}."
    assert "already handled" in service.choose(asked, ALICE).title
    other = service.say(f"cancel prod:{SID}")
    dropped = cancel(service, other, ALICE)
    assert dropped is not None and dropped.title == "Canceled: nothing was sent."
    assert "expired or was already used" in service.choose(other, ALICE).title


def test_a_confirmation_click_checks_everything_again(shared_service_for: Lend) -> None:
    service = confirming(shared_service_for)
    service.fakes.twilio.add_call(SID)
    hangup, cancel_it = service.say(f"hangup prod:{SID}"), service.say(f"cancel prod:{SID}")
    frozen_prod(service)  # since asked: frozen
    assert FROZEN in service.choose(hangup, ALICE).as_text()
    service.say("unfreeze on=prod", CAROL)
    with service.db.engine.begin() as conn:  # since asked: the grant taken away
        conn.execute(text("DELETE FROM grants WHERE user_id = :u"), {"u": ALICE})
    assert "not allowed to `cancel`" in service.choose(cancel_it, ALICE).as_text()
    assert service.sent() == 0
    assert [r["outcome"] for r in service.audit() if r["user_id"] == ALICE] == ["denied", "denied"]
