"""Idempotency decisions at the service level: a request that comes again with the same idempotency
key (Slack's retry, a replayed body: the same trigger_id) gets the first answer back and does
nothing twice, whatever the first outcome was. The keys as Slack gives them (a replayed signed body,
simultaneous duplicates over HTTP) are end to end in tests/test_idempotency.py."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import text

from bot.domain.errors import InvalidInput
from bot.domain.replies import Tone
from bot.service.core import Started
from tests.fakes.bandwidth import bw_call_id
from tests.fakes.twilio import call_sid
from tests.support.bots import ALICE, BOB
from tests.support.service import ServiceBot, ServiceFactory

SID = call_sid(1)


def counts(service: ServiceBot) -> dict[str, Any]:
    """Everything a duplicate could have done twice."""
    with service.db.engine.connect() as conn:
        grants = conn.execute(text("SELECT count(*) FROM grants")).scalar_one()
        freezes = conn.execute(text("SELECT count(*) FROM freezes")).scalar_one()
        roles = conn.execute(text("SELECT count(*) FROM roles")).scalar_one()
    return {"audit": len(service.audit()), "sent": service.sent(), "grants": grants, "freezes": freezes, "roles": roles}


# -- moved from tests/test_idempotency.py ---------------------------------------------------------


def test_a_duplicate_of_a_denied_request_gets_the_same_answer(service: ServiceBot) -> None:
    service.say(f"hangup prod:{call_sid(3)}", key="slack:1.2.3")
    again = service.say(f"hangup prod:{call_sid(3)}", key="slack:1.2.3").as_text()
    assert "already handled" in again and "denied" in again
    assert len(service.audit()) == 1


# -- table-driven: every kind of first outcome, replayed --------------------------------------------


@pytest.mark.parametrize(
    ("grants", "command", "outcome"),
    [
        ([("hangup", "prod")], f"hangup prod:{SID}", "succeeded"),
        ([("redirect", "prod")], f"redirect prod:{SID} https://example.com/a.xml", "succeeded"),
        ([], f"hangup prod:{SID}", "denied"),
        ([("hangup", "prod")], f"hangup prod:{SID} dry-run", "dry_run"),
        ([("hangup", "prod")], f"hangpu prod:{SID}", "invalid"),
        ([("hangup", "prod")], f"hangup prd:{SID}", "invalid"),
        ([("admin", "*")], f"grant <@{BOB}> hangup on=prod", "succeeded"),
        ([("admin", "*")], f"revoke <@{BOB}> hangup on=prod", "succeeded"),
        ([("admin", "*")], "role create incident hangup", "succeeded"),
        ([("admin", "*")], 'freeze on=prod reason="incident"', "succeeded"),
        ([], f"grant <@{BOB}> hangup on=prod", "denied"),
    ],
)
def test_a_replay_answers_with_the_first_outcome_and_does_nothing_twice(
    service: ServiceBot, grants: list[tuple[str, str]], command: str, outcome: str
) -> None:
    for action, account in grants:
        service.db.grant(ALICE, action, account)
    service.fakes.twilio.add_call(SID)
    first = service.say(command, key="slack:replayed")
    before = counts(service)
    assert service.last_audit()["outcome"] == outcome
    again = service.say(command, key="slack:replayed")
    assert again.tone == Tone.INFO
    assert again.title.startswith("This request was already handled:") and outcome in again.title
    assert again.audit_id == first.audit_id
    assert counts(service) == before


def test_the_same_command_with_another_key_is_a_new_attempt(service: ServiceBot) -> None:
    service.db.grant(ALICE, "hangup", "prod")
    service.fakes.twilio.add_call(SID)
    service.say(f"hangup prod:{SID}", key="slack:one")
    service.say(f"hangup prod:{SID}", key="slack:two")
    assert [r["idempotency_key"] for r in service.audit()] == ["slack:one", "slack:two"]
    assert service.sent() == 2


def test_a_duplicate_while_the_first_is_still_being_sent_is_not_sent(service: ServiceBot) -> None:
    """The first request audited pending and not sent yet: its duplicate is told so, and only the
    first reaches the provider."""
    service.db.grant(ALICE, "hangup", "prod")
    service.fakes.twilio.add_call(SID)
    started = service.begin(f"hangup prod:{SID}", key="slack:twice")
    assert isinstance(started, Started)
    meanwhile = service.say(f"hangup prod:{SID}", key="slack:twice")
    assert meanwhile.title == "This request is already being handled; nothing was sent twice."
    assert service.sent() == 0
    assert "Hung up" in service.answer(started).title
    assert service.sent() == 1 and len(service.audit()) == 1
    after = service.say(f"hangup prod:{SID}", key="slack:twice")
    assert "already handled" in after.title and "succeeded" in after.title


def test_a_replayed_request_that_asked_for_approval_asks_once(service_for: ServiceFactory) -> None:
    service = service_for({"prod": 'approval = ["hangup"]\napprovers_channel = "C0APPROVE1"'})
    service.db.grant(ALICE, "hangup", "prod")
    first = service.say(f"hangup prod:{SID}", key="slack:held")
    assert first.approval is not None
    again = service.say(f"hangup prod:{SID}", key="slack:held")
    assert "already handled" in again.title and "pending_approval" in again.title
    assert again.approval is None  # nothing more to post to the approvers
    with service.db.engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM approvals")).scalar_one() == 1


def test_a_replay_shows_no_secret_of_the_first_request(service: ServiceBot) -> None:
    service.db.grant(ALICE, "redirect", "bw")
    call = service.fakes.bandwidth.add_call(bw_call_id(1))
    command = f"redirect bw:{call} https://example.com/a.xml username=u password=hunter2"
    assert service.say(command, key="slack:k").tone == Tone.SUCCESS
    again = service.say(command, key="slack:k")
    assert "succeeded" in again.title and "hunter2" not in again.as_text()
    assert len(service.fakes.bandwidth.updates()) == 1


def test_a_form_refused_twice_with_one_key_is_recorded_once(service: ServiceBot) -> None:
    """A modal submission Slack delivers again, refused field by field both times: the second
    refusal is the first one's replay, not an error (it used to raise DuplicateRequest)."""
    inv = service.invocation("redirect prod:CA1", key="slack:form.1")
    error = InvalidInput("url", "is missing")
    service.call(service.service.record_invalid(inv, error, "redirect"))
    service.call(service.service.record_invalid(inv, error, "redirect"))
    [row] = service.audit()
    assert row["outcome"] == "invalid"
