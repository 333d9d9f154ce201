"""Two-person approval decisions at the service level: the use cases called with an Invocation
(tests/support/service.py), Approve / Deny as the approvals listener hands them over, no HTTP; the
approved action is still sent to the fake Twilio. What crosses the wire (the request posted to the
approvers' channel, its message updated, the requester told, the expiry sweep of a running server,
the shell) is end to end in tests/test_approval.py."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from sqlalchemy import text

from bot.domain.replies import Tone
from tests.fakes.twilio import call_sid
from tests.support.bots import ALICE, BOB, CAROL
from tests.support.service import ServiceBot

APPROVERS = "C0APPROVE1"
POLICY = f'approval = ["hangup", "redirect"]\napprovers_channel = "{APPROVERS}"'
DAVE = "U0DAVE004"


def start(shared_service_for: Callable[..., ServiceBot], policy: str = POLICY) -> ServiceBot:
    """One Twilio account, prod, whose settings are `policy`; Alice operates, Bob approves."""
    service = shared_service_for({"prod": policy})
    service.db.grant(ALICE, "operator", "prod")
    service.db.grant(BOB, "approve", "prod")
    return service


def status(service: ServiceBot) -> str:
    with service.db.engine.connect() as conn:
        return str(conn.execute(text("SELECT status FROM approvals")).scalar_one())


# -- moved from tests/test_approval.py ------------------------------------------------------------


def test_self_approval_and_approval_without_the_grant_are_refused(
    shared_service_for: Callable[..., ServiceBot],
) -> None:
    service = start(shared_service_for)
    service.db.grant(ALICE, "approve", "prod")  # holding `approve` does not let you approve your own request
    sid = service.fakes.twilio.add_call(call_sid(2))
    _, approval = service.ask_approval(f"hangup prod:{sid}")
    assert "someone else" in service.decide(approval, ALICE).reply.as_text()
    assert "needs `approve` on account `prod`" in service.decide(approval, CAROL).reply.as_text()
    assert service.fakes.twilio.updates() == [] and status(service) == "pending"
    refusals = [r for r in service.audit() if r["action"] == "approval.approve"]
    assert [(r["user_id"], r["outcome"]) for r in refusals] == [(ALICE, "denied"), (CAROL, "denied")]
    assert "two-person rule" in refusals[0]["error_message"] and "approve" in refusals[1]["error_message"]
    assert "Approved #" in service.decide(approval, BOB).reply.as_text()  # still pending: a real approver can
    assert len(service.fakes.twilio.updates()) == 1


def test_deny_then_approve_does_nothing(shared_service_for: Callable[..., ServiceBot]) -> None:
    service = start(shared_service_for)
    sid = service.fakes.twilio.add_call(call_sid(3))
    _, approval = service.ask_approval(f"hangup prod:{sid}")
    denied = service.decide(approval, BOB, approve=False)
    assert "denied by" in denied.reply.as_text()
    assert denied.update is not None
    assert "Denied" in denied.update.message.as_text()  # the approvers' message
    assert "denied by" in denied.update.notice.as_text()  # what the requester is told
    assert "already handled (denied" in service.decide(approval, BOB).reply.as_text()
    assert service.fakes.twilio.updates() == [] and status(service) == "denied"
    actions = [(r["action"], r["outcome"]) for r in service.audit()]
    assert actions == [
        ("hangup", "pending_approval"),
        ("approval.deny", "succeeded"),
        ("approval.approve", "denied"),
    ]


def test_expired_request_cannot_be_approved(shared_service_for: Callable[..., ServiceBot]) -> None:
    service = start(shared_service_for, POLICY + "\napproval_expiry_minutes = 5")
    sid = service.fakes.twilio.add_call(call_sid(4))
    asked, approval = service.ask_approval(f"hangup prod:{sid}")
    assert asked.approval is not None and "(5 min)" in asked.approval.message.as_text()
    service.clock.advance(5 * 60 + 1)
    late = service.decide(approval, BOB)
    assert "expired" in late.reply.as_text()
    assert late.update is not None and "Expired" in late.update.message.as_text()
    assert service.fakes.twilio.updates() == [] and status(service) == "expired"
    assert "already handled (expired" in service.decide(approval, BOB).reply.as_text()
    last = service.audit()[-2]
    assert (last["action"], last["outcome"]) == ("approval.approve", "denied") and "expired" in last["error_message"]


def test_a_tampered_request_is_refused_by_the_hash_check(shared_service_for: Callable[..., ServiceBot]) -> None:
    service = start(shared_service_for)
    sid, other = service.fakes.twilio.add_call(call_sid(5)), service.fakes.twilio.add_call(call_sid(6))
    _, approval = service.ask_approval(f"hangup prod:{sid}")
    with service.db.engine.begin() as conn:
        conn.execute(text("UPDATE approvals SET text = :t"), {"t": f"hangup prod:{other}"})
    clicked = service.decide(approval, BOB)
    assert clicked.update is not None and "denied" in clicked.update.message.as_text()
    assert service.fakes.twilio.updates() == []
    last = service.last_audit()
    assert (last["action"], last["outcome"], last["source"]) == ("hangup", "denied", "approval")
    assert "action hash differs" in last["error_message"]


def test_dry_run_and_unlisted_actions_are_not_held(shared_service_for: Callable[..., ServiceBot]) -> None:
    service = start(shared_service_for)
    sid = service.fakes.twilio.add_call(call_sid(7))
    dry = service.say(f"hangup prod:{sid} dry-run")
    assert "Dry run" in dry.as_text() and dry.approval is None
    outcome = service.say(f"cancel prod:{sid}")
    assert "Canceled" in outcome.as_text() or "cancel" in outcome.as_text()
    assert outcome.approval is None
    assert status_count(service) == 0


def test_a_flagged_grant_is_refused_where_nobody_could_approve(shared_service_for: Callable[..., ServiceBot]) -> None:
    service = start(shared_service_for, "")
    service.db.grant(ALICE, "admin", "prod")
    refused = service.say(f"grant <@{CAROL}> hangup on=prod needs_approval=yes").as_text()
    assert "no `approvers_channel`" in refused and "`prod`" in refused
    assert "not valid" not in service.say(f"grant <@{CAROL}> hangup on=prod needs_approval=no").as_text()
    last = service.audit()[-2]
    assert (last["action"], last["outcome"]) == ("grant", "invalid")
    with service.db.engine.connect() as conn:
        assert conn.execute(text("SELECT needs_approval FROM grants WHERE user_id = :u"), {"u": CAROL}).all() == [
            (False,)
        ]


def status_count(service: ServiceBot) -> int:
    with service.db.engine.connect() as conn:
        return int(conn.execute(text("SELECT count(*) FROM approvals")).scalar_one())


# -- table-driven: what is held, who decides ------------------------------------------------------


@pytest.mark.parametrize(
    ("command", "held"),
    [
        ("hangup prod:{sid}", True),
        ('hangup prod:{sid} reason="fraud"', True),
        ("redirect prod:{sid} https://example.com/a.xml", True),
        ("hangup prod:{sid} dry-run", False),
        ("redirect prod:{sid} https://example.com/a.xml dry-run", False),
        ("cancel prod:{sid}", False),
        ('twiml prod:{sid} "<Response><Hangup/></Response>"', False),
    ],
)
def test_the_accounts_approval_list_holds_its_actions_only(
    shared_service_for: Callable[..., ServiceBot], command: str, held: bool
) -> None:
    service = start(shared_service_for)
    sid = service.fakes.twilio.add_call(call_sid(10), "ringing")
    reply = service.say(command.format(sid=sid))
    row = service.last_audit()
    if held:
        assert reply.approval is not None and reply.approval.channel == APPROVERS
        assert "Waiting for approval" in reply.as_text() and f"<#{APPROVERS}>" in reply.as_text()
        assert row["outcome"] == "pending_approval" and status(service) == "pending"
        assert service.sent() == 0
    else:
        assert reply.approval is None and status_count(service) == 0
        assert row["outcome"] != "pending_approval"
        assert service.sent() == (0 if "dry-run" in command else 1)  # sent at once, whatever Twilio says


@pytest.mark.parametrize(
    ("approver", "runs"),
    [
        (("approve", "prod"), True),
        (("approve", "*"), True),
        (("supervisor", "prod"), True),  # the role carries `approve`
        (("admin", "prod"), True),  # admin implies every action but break-glass
        (("approve", "bw"), False),  # another account's approver
        (("operator", "prod"), False),  # acting is not approving
        (("hangup", "*"), False),
        (None, False),
    ],
)
def test_who_may_approve(
    shared_service_for: Callable[..., ServiceBot], approver: tuple[str, str] | None, runs: bool
) -> None:
    service = shared_service_for({"prod": POLICY, "bw": ""})
    service.db.grant(ALICE, "operator", "prod")
    if approver is not None:
        service.db.grant(DAVE, *approver)
    sid = service.fakes.twilio.add_call(call_sid(11))
    _, approval = service.ask_approval(f"hangup prod:{sid}")
    clicked = service.decide(approval, DAVE)
    if runs:
        assert "Approved #" in clicked.reply.title and clicked.outcome is not None
        assert clicked.outcome.tone == Tone.SUCCESS and "Hung up" in clicked.outcome.title
        assert [u.form for u in service.fakes.twilio.updates()] == [{"Status": "completed"}]
        assert status(service) == "executed"
        assert clicked.update is not None and f"by <@{DAVE}>" in clicked.update.message.title
        ran = service.last_audit()
        assert (ran["action"], ran["outcome"], ran["user_id"], ran["source"]) == (
            "hangup",
            "succeeded",
            ALICE,
            "approval",
        )
        assert f"approved by {DAVE}" in ran["decision_basis"]
    else:
        assert "needs `approve` on account `prod`" in clicked.reply.as_text()
        assert clicked.outcome is None and service.sent() == 0 and status(service) == "pending"
        refused = service.last_audit()
        assert (refused["action"], refused["outcome"], refused["user_id"]) == ("approval.approve", "denied", DAVE)


@pytest.mark.parametrize(
    ("clicks", "final", "sent"),
    [
        ([(BOB, True)], "executed", 1),
        ([(BOB, True), (BOB, True)], "executed", 1),  # a double click runs it once
        ([(BOB, True), (BOB, False)], "executed", 1),
        ([(BOB, False)], "denied", 0),
        ([(BOB, False), (BOB, True)], "denied", 0),
        ([(ALICE, False)], "denied", 0),  # the requester withdraws
        ([(ALICE, True), (BOB, True)], "executed", 1),  # self-approval refused, then approved
        ([(CAROL, True), (ALICE, False)], "denied", 0),
    ],
)
def test_only_the_first_decision_that_counts_acts(
    shared_service_for: Callable[..., ServiceBot], clicks: list[tuple[str, bool]], final: str, sent: int
) -> None:
    service = start(shared_service_for)
    sid = service.fakes.twilio.add_call(call_sid(12))
    _, approval = service.ask_approval(f"hangup prod:{sid}")
    for user, approve in clicks:
        service.decide(approval, user, approve=approve)
    assert status(service) == final
    assert len(service.fakes.twilio.updates()) == sent
    decided = [r for r in service.audit() if r["action"] in ("approval.approve", "approval.deny")]
    assert len(decided) == len(clicks)
    assert sum(r["outcome"] == "succeeded" for r in decided) == 1  # the others refused, each audited


def test_the_requester_withdrawing_is_said_so(shared_service_for: Callable[..., ServiceBot]) -> None:
    service = start(shared_service_for)
    sid = service.fakes.twilio.add_call(call_sid(13))
    _, approval = service.ask_approval(f"hangup prod:{sid}")
    withdrawn = service.decide(approval, ALICE, approve=False)
    assert "withdrawn by the requester" in withdrawn.reply.as_text()
    row = service.last_audit()
    assert (row["action"], row["outcome"], row["request"]["withdrawn"]) == ("approval.deny", "succeeded", True)


def test_an_unknown_request_is_refused_and_audited(shared_service_for: Callable[..., ServiceBot]) -> None:
    service = start(shared_service_for)
    clicked = service.decide(4242, BOB)
    assert "does not exist" in clicked.reply.as_text() and clicked.update is None
    row = service.last_audit()
    assert (row["action"], row["outcome"], row["user_id"]) == ("approval.approve", "denied", BOB)


def test_the_expiry_sweep_expires_only_what_is_due(shared_service_for: Callable[..., ServiceBot]) -> None:
    service = start(shared_service_for, POLICY + "\napproval_expiry_minutes = 5")
    first = service.fakes.twilio.add_call(call_sid(14))
    _, early = service.ask_approval(f"hangup prod:{first}")
    service.clock.advance(3 * 60)
    second = service.fakes.twilio.add_call(call_sid(15))
    _, late = service.ask_approval(f"hangup prod:{second}")
    assert service.call(service.service.expire_approvals()) == []
    service.clock.advance(2 * 60 + 1)
    [update] = service.call(service.service.expire_approvals())
    assert update.requester == ALICE and f"#{early}" in update.message.title
    assert service.call(service.service.expire_approvals()) == []  # audited once
    assert "Approved #" in service.decide(late, BOB).reply.title
    expired = [r for r in service.audit() if r["action"] == "approval.expire"]
    assert [(r["outcome"], r["request"]["approval"]) for r in expired] == [("expired", early)]
