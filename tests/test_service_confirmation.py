"""Confirmation at service level, no HTTP: which row a provider callback confirms, and when it
does not; one confirmation per row, whoever comes first (bot/service/confirmations.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from bot.domain.callbacks import CallbackEvent
from bot.domain.confirmation import Seen, Via, confirmed_line, settles
from tests.fakes.server import Answer
from tests.fakes.twilio import call_sid
from tests.support.bots import ALICE
from tests.support.service import ServiceBot

ON = {"prod": "read_back = 2"}


def event(sid: str, status: str | None = "completed", **changes: Any) -> CallbackEvent:
    """A callback's event; its time is now (the fake clock starts at the real now), unless `at`."""
    fields: dict[str, Any] = {
        "provider": "twilio",
        "account": "prod",
        "call_id": sid,
        "status": status,
        "word": status or "ringing",
        "at": datetime.now(UTC),
    }
    return CallbackEvent(**{**fields, **changes})


@pytest.fixture
def bot(service_for: Any) -> ServiceBot:
    bot: ServiceBot = service_for(ON)
    bot.db.grant(ALICE, "hangup", "prod")
    bot.db.grant(ALICE, "redirect", "prod")
    return bot


def test_a_callback_confirms_the_newest_action_on_its_call(bot: ServiceBot) -> None:
    sid = bot.fakes.twilio.add_call(call_sid(1))
    bot.fakes.twilio.script(Answer.json(200, {"sid": sid, "status": "in-progress"}))  # taken, not yet ended
    bot.say(f"hangup prod:{sid}")

    assert bot.call(bot.service.confirmations.from_callback(event(sid)))

    row = bot.last_audit()
    assert (row["confirmed_status"], row["confirmed_word"], row["confirmed_via"]) == (
        "completed",
        "completed",
        "callback",
    )
    # The same callback again, or another, changes nothing: a row keeps its first confirmation.
    assert not bot.call(bot.service.confirmations.from_callback(event(sid, "canceled")))
    assert bot.last_audit()["confirmed_status"] == "completed"


@pytest.mark.parametrize(
    ("changes", "why"),
    [
        ({"status": None}, "says nothing about the call's state"),
        ({"status": "ringing"}, "a live state does not confirm a hang-up"),
        ({"account": "other"}, "another account"),
        ({"call_id": call_sid(99)}, "a call callbot never acted on"),
    ],
)
def test_a_callback_that_confirms_nothing_changes_nothing(bot: ServiceBot, changes: dict[str, Any], why: str) -> None:
    sid = bot.fakes.twilio.add_call(call_sid(2))
    bot.fakes.twilio.script(Answer.json(200, {"sid": sid, "status": "in-progress"}))
    bot.say(f"hangup prod:{sid}")

    assert not bot.call(bot.service.confirmations.from_callback(event(sid, **changes))), why
    assert bot.last_audit()["confirm_seq"] is None


def test_a_callback_never_confirms_a_refused_attempt(bot: ServiceBot) -> None:
    sid = bot.fakes.twilio.add_call(call_sid(3))
    bot.say(f"hangup prod:{sid}", user="U0NOBODY1")  # denied: nothing was sent

    assert not bot.call(bot.service.confirmations.from_callback(event(sid)))


def test_a_callback_older_than_the_window_is_ignored(bot: ServiceBot) -> None:
    sid = bot.fakes.twilio.add_call(call_sid(4))
    bot.fakes.twilio.script(Answer.json(200, {"sid": sid, "status": "in-progress"}))
    bot.say(f"hangup prod:{sid}")
    bot.clock.advance(hours=2)

    assert not bot.call(bot.service.confirmations.from_callback(event(sid)))


@pytest.fixture
def quiet(service_for: Any) -> ServiceBot:
    """Read-back off: only callbacks confirm."""
    bot: ServiceBot = service_for({"prod": ""})
    bot.db.grant(ALICE, "hangup", "prod")
    bot.db.grant(ALICE, "redirect", "prod")
    return bot


def confirmed(bot: ServiceBot) -> list[tuple[str, str | None]]:
    return [(row["action"], row["confirmed_status"]) for row in bot.audit()]


def test_a_callback_never_confirms_an_older_action_once_the_last_one_is_confirmed(quiet: ServiceBot) -> None:
    sid = quiet.fakes.twilio.add_call(call_sid(5))
    quiet.say(f"redirect prod:{sid} https://example.com/hold.xml")
    quiet.say(f"hangup prod:{sid}")
    assert quiet.call(quiet.service.confirmations.from_callback(event(sid)))
    assert confirmed(quiet) == [("redirect", None), ("hangup", "completed")]

    # Another callback about the call (Twilio's next event, or the number's own status callback):
    # what the call did is the hang-up's doing, already recorded; the redirect is not its target.
    assert not quiet.call(quiet.service.confirmations.from_callback(event(sid, word="completed.")))
    assert confirmed(quiet) == [("redirect", None), ("hangup", "completed")]


def test_a_callback_while_the_last_action_is_still_pending_confirms_nothing(quiet: ServiceBot) -> None:
    sid = quiet.fakes.twilio.add_call(call_sid(6))
    quiet.say(f"redirect prod:{sid} https://example.com/hold.xml")
    step = quiet.begin(f"hangup prod:{sid}")  # audited `pending`, not sent yet
    assert [row["outcome"] for row in quiet.audit()] == ["succeeded", "pending"]

    assert not quiet.call(quiet.service.confirmations.from_callback(event(sid)))
    assert [row["confirm_seq"] for row in quiet.audit()] == [None, None]
    quiet.answer(step)


def test_a_callback_about_the_call_before_the_action_does_not_confirm_it(quiet: ServiceBot) -> None:
    sid = quiet.fakes.twilio.add_call(call_sid(7))
    acted = quiet.clock()  # the row's created_at: the fake clock stands still
    quiet.say(f"hangup prod:{sid}")

    # The call ended a minute before the hang-up was recorded: not what the hang-up did.
    assert not quiet.call(quiet.service.confirmations.from_callback(event(sid, at=acted - timedelta(minutes=1))))
    assert quiet.last_audit()["confirm_seq"] is None
    # A few seconds early is the clocks disagreeing: taken.
    assert quiet.call(quiet.service.confirmations.from_callback(event(sid, at=acted - timedelta(seconds=3))))
    assert quiet.last_audit()["confirmed_status"] == "completed"


def test_a_callback_confirms_a_row_typed_with_an_upper_case_sid(quiet: ServiceBot) -> None:
    upper = "CA" + "9F3B0C7D" * 4  # as a person may type it: the spec allows either case
    quiet.fakes.twilio.add_call(upper)
    quiet.say(f"hangup prod:{upper}")
    assert quiet.last_audit()["call_id"] == upper  # kept as typed

    # Twilio's callbacks write the SID in lower-case hex.
    assert quiet.call(quiet.service.confirmations.from_callback(event("CA" + "9f3b0c7d" * 4)))
    assert quiet.last_audit()["confirmed_status"] == "completed"


def test_a_redirect_is_settled_by_any_state_a_hangup_only_by_an_ended_one() -> None:
    assert settles("redirect", "in-progress") and settles("redirect", "completed")
    assert settles("hangup", "completed") and settles("cancel", "canceled")
    assert not settles("hangup", "in-progress") and not settles("cancel", "ringing")


def test_the_line_the_person_reads() -> None:
    acted = datetime(2026, 12, 5, 12, 3, 3, 200_000, tzinfo=UTC)
    seen = Seen("completed", "completed", acted + timedelta(seconds=0.8), Via.READ)
    assert confirmed_line("Twilio", "hangup", seen, acted, outcome="succeeded") == (
        "Twilio confirms: the call ended (`completed`), 0.8 s after the hang-up."
    )
    by_callback = Seen("completed", "disconnect", acted, Via.CALLBACK)
    assert confirmed_line("Bandwidth", "hangup", by_callback, None, outcome="unknown") == (
        "callbot could not see Bandwidth's answer, but Bandwidth's callback shows the call ended (`disconnect`) "
        "at 12:03:03 UTC."
    )
