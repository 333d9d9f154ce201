"""Confirmation at service level, no HTTP: which row a provider callback confirms, and when it
does not; one confirmation per row, whoever comes first (bot/service/confirmations.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from bot.domain.callbacks import CallbackEvent
from bot.domain.confirmation import Seen, Via, confirmed_line, settles
from bot.service.steps import Started
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
    # A redirect whose answer callbot never saw: live says nothing about whether it was taken.
    assert not settles("redirect", "in-progress", answered=False) and settles("redirect", "completed", answered=False)


def test_the_line_the_person_reads() -> None:
    acted = datetime(2026, 12, 5, 12, 3, 3, 200_000, tzinfo=UTC)
    seen = Seen("completed", "completed", acted + timedelta(seconds=0.8), Via.READ)
    assert confirmed_line("Twilio", "hangup", seen, acted, outcome="succeeded") == (
        "Twilio confirms: the call ended (`completed`) within a second of the hang-up."
    )
    later = Seen("completed", "completed", acted + timedelta(seconds=2.5), Via.READ)
    assert confirmed_line("Twilio", "hangup", later, acted, outcome="succeeded") == (
        "Twilio confirms: the call ended (`completed`) 2.5 s after the hang-up."
    )
    before = Seen("completed", "completed", acted - timedelta(seconds=4), Via.READ)
    assert confirmed_line("Twilio", "hangup", before, acted, outcome="succeeded") == (
        "Twilio confirms: the call ended (`completed`) at 12:02:59 UTC, before the hang-up was sent."
    )
    live = Seen("in-progress", "in-progress", acted + timedelta(seconds=3.1), Via.READ)
    assert confirmed_line("Twilio", "redirect", live, acted, outcome="succeeded") == (
        "Twilio shows the call is still live (`in-progress`) 3 s after the redirect."
    )
    by_callback = Seen("completed", "disconnect", acted, Via.CALLBACK)
    assert confirmed_line("Bandwidth", "hangup", by_callback, None, outcome="unknown") == (
        "callbot could not see Bandwidth's answer, but Bandwidth's callback shows the call ended (`disconnect`) "
        "at 12:03:03 UTC."
    )


def _hangup_rows(bot: ServiceBot, *answers: Answer | None) -> dict[str, int]:
    """Hangs up one call per answer (None: the fake's own, which ends the call); call id → row."""
    rows = {}
    for n, answer in enumerate(answers, start=40):
        sid = bot.fakes.twilio.add_call(call_sid(n))
        if answer is not None:
            bot.fakes.twilio.script(answer)
        bot.say(f"hangup prod:{sid}")
        rows[sid] = bot.last_audit()["id"]
    return rows


def test_a_batch_listing_confirms_only_calls_whose_hang_up_went_out(bot: ServiceBot) -> None:
    refused = Answer.json(400, {"code": 21220, "message": "Call is not in-progress.", "status": 400})
    rows = _hangup_rows(bot, None, refused)
    ended, failed = list(rows)
    bot.fakes.twilio.calls[failed] = "completed"  # it ended on its own: not callbot's doing

    assert bot.call(bot.service.confirmations.confirm_batch("prod", rows)) == (1, 0)

    by_id = {row["id"]: row for row in bot.audit()}
    assert (by_id[rows[ended]]["confirmed_via"], by_id[rows[ended]]["confirmed_word"]) == (
        "listing",
        "not among live calls",
    )
    assert by_id[rows[failed]]["outcome"] == "failed" and by_id[rows[failed]]["confirm_seq"] is None


def test_a_batch_listing_cut_short_confirms_nothing(bot: ServiceBot, monkeypatch: pytest.MonkeyPatch) -> None:
    rows = _hangup_rows(bot, None)
    for n in range(50, 53):
        bot.fakes.twilio.add_call(call_sid(n))  # other live calls: more than the listing reads
    monkeypatch.setattr("bot.service.confirmations.LISTING_AT_MOST", 2)

    assert bot.call(bot.service.confirmations.confirm_batch("prod", rows)) is None
    assert bot.last_audit()["confirm_seq"] is None


def test_a_callback_recorded_while_reading_back_is_what_the_person_reads(bot: ServiceBot) -> None:
    sid = bot.fakes.twilio.add_call(call_sid(60))
    bot.fakes.twilio.script(Answer.json(200, {"sid": sid, "status": "in-progress"}))  # taken; reads show it live
    step = bot.begin(f"hangup prod:{sid}")
    assert isinstance(step, Started)
    outcome = bot.answer(step)
    acted_at = bot.clock()
    ended = event(sid, at=acted_at + timedelta(seconds=1.5))
    assert bot.call(bot.service.confirmations.from_callback(ended))  # the callback comes first

    confirmed = bot.call(bot.service.confirm(step, outcome, acted_at))

    # Reading back saw the call live throughout: the person reads the callback's confirmation,
    # not "Not confirmed yet", which the row would contradict.
    assert confirmed is not None
    assert confirmed.lines[-1] == "Twilio's callback confirms: the call ended (`completed`) 1.5 s after the hang-up."


def test_an_unknown_redirect_is_not_resolved_by_the_call_being_live(bot: ServiceBot) -> None:
    sid = bot.fakes.twilio.add_call(call_sid(61))
    bot.fakes.twilio.script(Answer.json(500, {"code": 20500, "message": "Internal Server Error", "status": 500}))
    step = bot.begin(f"redirect prod:{sid} https://example.com/hold.xml")
    assert isinstance(step, Started)
    outcome = bot.answer(step)
    assert bot.last_audit()["outcome"] == "unknown"

    confirmed = bot.call(bot.service.confirm(step, outcome, bot.clock()))

    assert confirmed is not None and "Not confirmed yet: Twilio shows the call is still live" in confirmed.lines[-1]
    assert bot.last_audit()["confirm_seq"] is None
