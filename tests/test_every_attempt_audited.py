"""Property (issue 14, item 3): whatever the text of a command and whatever a payload says about
who sent it, an attempt leaves exactly one audit row, or is a read that changes nothing, and is
answered cleanly: never an exception, never "internal error". At the service level, without HTTP,
on this worker's database (SQLite, or PostgreSQL with CALLBOT_TEST_DATABASE_URL: there U+0000 and
over-long varchar text used to lose the row)."""

from __future__ import annotations

import asyncio
import json
import shlex
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from sqlalchemy import text as sql

from bot.config import Settings
from bot.domain import grammar
from bot.domain.actions import CallTarget, Cancel, Hangup, InlineTwiml, Redirect
from bot.domain.errors import InvalidInput
from bot.domain.grammar import (
    AuditQuery,
    CallCommand,
    CallStatusCommand,
    FlowsCommand,
    HelpCommand,
    ListCallsCommand,
    OpenFormCommand,
    PermsCommand,
    RolesCommand,
)
from bot.domain.permissions import ALL_ACTIONS
from bot.runtime import Runtime
from bot.service.core import Invocation, Service, Started
from tests.fakes.bird import FakeBird, bird_call_id
from tests.fakes.twilio import FakeTwilio, call_sid
from tests.support.bots import ALICE, BOB, Fakes, deployment_env, write_config
from tests.support.database import DbHelper

# What may leave no row: reads that change nothing (what they show is not an attempt on a call).
READS = (HelpCommand, PermsCommand, RolesCommand, AuditQuery, OpenFormCommand, ListCallsCommand, CallStatusCommand)

ANY_CHARACTER = st.characters(codec=None, exclude_categories=())
any_text = st.text(ANY_CHARACTER, max_size=200)
WORDS = st.sampled_from(
    [
        "hangup", "cancel", "redirect", "twiml", "flow", "flows", "save", "list", "status", "perms", "audit",
        "grant", "freeze", "help", "hangup-all", "batch", "1",
        f"prod:{call_sid(1)}", call_sid(2), f"bird:{bird_call_id(1)}", "bw:c-1", "nope:x", "prod:" + "f" * 200,
        "https://example.com/x", 'reason="a b"', "reason=\x00", "reason=\ud800", "dry-run", "method=GET",
        "'[{\"command\":\"hangup\"}]'", "'[{\"command\":\"say\",\"options\":{\"text\":\"\\u0000\"}}]'",
        "'" + "[" * 300 + "'", "'<Response><Hangup/></Response>'", "'<Response>\x00</Response>'",
        "'- &a x\n- *a'", "hold-music", "\x00", "\ud800", "x" * 300, "<@U0BOB0002>", "on=prod", "since=2h",
    ]
)  # fmt: skip
# Commands a permitted person may run, carrying any text where a person can put some.
runnable = st.one_of(
    st.builds(lambda reason: f"hangup prod:{call_sid(1)} reason={shlex.quote(reason)}", any_text),
    st.builds(
        lambda say, dry: f"flow bird:{bird_call_id(1)} {shlex.quote(json.dumps(say_flow(say)))}{dry}",
        any_text,
        st.sampled_from(["", " dry-run"]),
    ),
    st.builds(lambda name, say: f"flows save {name} {shlex.quote(json.dumps(say_flow(say)))}", any_text, any_text),
)
command_texts = st.one_of(any_text, st.lists(WORDS, min_size=1, max_size=6).map(" ".join), runnable)
payload_text = st.one_of(st.none(), any_text, st.sampled_from(["\x00", "\ud800", "x" * 300]))
targets = st.builds(
    CallTarget,
    st.sampled_from([None, "prod", "bw", "bird", "nope"]),
    st.one_of(st.sampled_from([call_sid(3), bird_call_id(3), "c-3"]), st.text(ANY_CHARACTER, min_size=1, max_size=300)),
)
actions = st.one_of(
    st.builds(Hangup, payload_text),
    st.builds(Cancel, payload_text),
    st.builds(
        InlineTwiml, st.sampled_from(["<Response><Hangup/></Response>", "<Response>\x00</Response>"]), payload_text
    ),
    st.builds(Redirect, st.one_of(st.just("https://example.com/x"), any_text)),
)
commands = st.builds(CallCommand, targets, actions, st.booleans(), st.just(frozenset()))


def say_flow(text: str) -> list[dict[str, Any]]:
    return [{"command": "say", "options": {"text": text}}]


PROPERTY = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


@pytest.fixture
def service(
    db: DbHelper, fakes: Fakes, fake_twilio: FakeTwilio, fake_bird: FakeBird, tmp_path: Any
) -> Iterator[tuple[Service, Any]]:
    config = write_config(tmp_path / "callbot.toml", fakes.twilio.url, "", fakes.bandwidth.url, fakes.bird.url)
    settings_ = Settings.from_env(deployment_env(db.url, config, fakes.slack))
    for action in ALL_ACTIONS:
        db.grant(ALICE, action, "*")
    fake_twilio.add_call(call_sid(1))
    fake_bird.add_call(bird_call_id(1))
    loop = asyncio.new_event_loop()
    runtime = loop.run_until_complete(Runtime.start(settings_))
    try:
        yield runtime.service, loop
    finally:
        loop.run_until_complete(runtime.close())
        loop.close()


def rows_after(db: DbHelper, last_id: int) -> list[dict[str, Any]]:
    with db.engine.connect() as conn:
        found = conn.execute(sql("SELECT * FROM audit_log WHERE id > :id ORDER BY id"), {"id": last_id})
        return [dict(row) for row in found.mappings()]


def last_id(db: DbHelper) -> int:
    with db.engine.connect() as conn:
        return int(conn.execute(sql("SELECT coalesce(max(id), 0) FROM audit_log")).scalar_one())


def attempt(service: Service, loop: Any, inv: Invocation, command: CallCommand | None = None) -> str:
    async def run() -> str:
        step = await (service.begin(inv) if command is None else service.begin_command(inv, command))
        reply = await service.finish(step) if isinstance(step, Started) else step.reply
        return reply.as_text()

    return loop.run_until_complete(run())


def is_read(text: str) -> bool:
    try:
        command = grammar.parse(text)
    except InvalidInput:
        return False
    return isinstance(command, READS) or (isinstance(command, FlowsCommand) and command.sub in ("list", "show"))


def check_one_row(db: DbHelper, before: int, shown: str, *, may_be_a_read: bool) -> None:
    """One attempt, one row (bulk and live reads write theirs without the request's key, so rows
    are counted, not looked up by key), whose text the database kept."""
    assert "internal error" not in shown and "Traceback" not in shown
    rows = rows_after(db, before)
    assert len(rows) == 1 or (not rows and may_be_a_read), (shown, rows)
    event(f"{rows[0]['action']} {rows[0]['outcome']}" if rows else "a read")  # --hypothesis-show-statistics
    for row in rows:
        assert row["outcome"] != "pending"
        for value in row.values():
            assert not isinstance(value, str) or "\x00" not in value


def test_any_text_from_anyone_leaves_one_row_or_is_a_read(service: tuple[Service, Any], db: DbHelper) -> None:
    svc, loop = service

    @PROPERTY
    @given(command_texts, st.sampled_from([ALICE, BOB]), payload_text, payload_text)
    def check(text: str, user: str, user_name: str | None, channel: str | None) -> None:
        before, key = last_id(db), f"prop:{uuid.uuid4().hex}"
        inv = Invocation("slash", user, text, user_name=user_name, channel_id=channel, idempotency_key=key)
        shown = attempt(svc, loop, inv)
        check_one_row(db, before, shown, may_be_a_read=is_read(text))

    check()


def test_any_form_payload_leaves_one_row(service: tuple[Service, Any], db: DbHelper) -> None:
    svc, loop = service

    @PROPERTY
    @given(commands, st.sampled_from([ALICE, BOB]), payload_text)
    def check(command: CallCommand, user: str, user_name: str | None) -> None:
        before, key = last_id(db), f"prop:{uuid.uuid4().hex}"
        # What the form's listener gives: the command, and its words as the audit row's text.
        words = f"{command.action.name.value} {command.target.display()} reason={command.action.reason}"
        inv = Invocation("modal", user, words, user_name=user_name, idempotency_key=key)
        shown = attempt(svc, loop, inv, command)
        check_one_row(db, before, shown, may_be_a_read=False)

    check()
