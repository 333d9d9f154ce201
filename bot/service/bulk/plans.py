"""A bulk hang-up as values: the plan a person confirmed, the run in progress, and the wording of
its messages (progress, summary, the filter as people read it). No I/O here."""

from __future__ import annotations

import hashlib
import json
import shlex
from dataclasses import dataclass
from typing import Any

from bot.db.models import BatchRow
from bot.domain.grammar import HangupAllCommand
from bot.domain.permissions import Decision
from bot.domain.replies import BATCH_CANCEL_HANDLER, BATCH_RESUME_HANDLER, Choice, ConfirmDialog, Reply, Tone, mention
from bot.providers.base import CallFilter, ProviderClient
from bot.service.bulk.engine import Progress
from bot.service.live import masked_number, normalised_number
from bot.service.steps import Invocation

FAILURES_SHOWN = 15
# An approval row names one call; a bulk request names the filter instead.
ALL_CALLS = "*"


@dataclass(frozen=True)
class BatchPlan:
    """A confirmed (and, where required, approved) hang-up of the calls matching a filter: the
    calls still have to be listed (`start`)."""

    inv: Invocation
    command: HangupAllCommand
    account: str
    client: ProviderClient
    decision: Decision
    break_glass: bool


@dataclass(frozen=True)
class BatchRun:
    """A batch ready to run (new, or claimed for resume): `audit_id` is the row its end completes."""

    batch_id: int
    inv: Invocation
    account: str
    decision: Decision
    audit_id: int
    total: int
    filter_text: str
    resumed: bool = False
    reason: str | None = None
    # Handled by an earlier run (a resumed batch): where its progress starts.
    ended_before: int = 0
    failed_before: int = 0

    @property
    def start(self) -> Progress:
        return Progress(self.total, self.ended_before, self.failed_before, 0.0, self.ended_before + self.failed_before)

    @property
    def channel(self) -> str | None:
        return self.inv.channel_id


@dataclass(frozen=True)
class BatchNotice:
    """A batch found interrupted: its progress message (where it was posted) should now read `reply`."""

    batch_id: int
    channel: str | None
    message_ts: str | None
    reply: Reply
    # The batch's workspace: the message is updated with that workspace's token.
    team_id: str = ""
    enterprise_id: str | None = None


def progress_reply(run: BatchRun, progress: Progress) -> Reply:
    """The progress message: counts, the time left at the pace so far, and Cancel."""
    cancel = Choice(
        "Cancel",
        str(run.batch_id),
        style="danger",
        handler=BATCH_CANCEL_HANDLER,
        confirm=ConfirmDialog(
            title=f"Stop batch #{run.batch_id}?",
            text="Requests already sent finish; no new hang-up starts. You can resume it later.",
            confirm="Stop it",
        ),
    )
    reply = Reply(
        Tone.WORKING,
        f"Hanging up calls on `{run.account}`{run.filter_text} (batch #{run.batch_id})",
        (
            progress_line(progress),
            f"{'Resumed' if run.resumed else 'Started'} by {mention(run.inv.user_id)}."
            + (f" Reason: {run.reason}" if run.reason else ""),
        ),
        audit_id=run.audit_id,
        choices=(cancel,),
    )
    return reply


def summary_reply(
    run: BatchRun,
    done: Progress,
    stopped: bool,
    cancelled_by: str | None,
    failures: list[Any],
    already: int,
) -> Reply:
    took = f"{done.elapsed:.1f} s"
    counts = f"{done.ended:,} / {done.total:,} ended, {done.failed:,} failed"
    if already:
        counts = f"{done.ended:,} / {done.total:,} ended ({already:,} had already ended), {done.failed:,} failed"
    if stopped:
        tone = Tone.INFO
        title = f"Batch #{run.batch_id} cancelled by {mention(cancelled_by or '?')}: {counts}"
        lines = [f"{done.total - done.handled:,} calls were not touched. `/call batch {run.batch_id}` shows it."]
    elif done.failed:
        tone = Tone.FAILURE
        title = f"Batch #{run.batch_id} finished on `{run.account}`: {counts} ({took})"
        lines = ["These calls could not be hung up:"]
    else:
        tone = Tone.SUCCESS
        title = f"Batch #{run.batch_id} finished on `{run.account}`: {counts} ({took})"
        lines = []
    for item in failures[:FAILURES_SHOWN]:
        lines.append(f"• `{item.call_id}`: {item.error or 'failed'}")
    if len(failures) > FAILURES_SHOWN:
        lines.append(
            f"…and {len(failures) - FAILURES_SHOWN:,} more: `/call audit account={run.account} action=hangup "
            "outcome=failed`."
        )
    lines.append(f"Every call has its own audit row (source `bulk`); the batch's row is #{run.audit_id}.")
    reply = Reply(tone, title, tuple(lines), audit_id=run.audit_id)
    return reply


# -- wording and small helpers ---------------------------------------------------------------------


def resume_button(batch_id: int) -> Choice:
    return Choice("Resume", str(batch_id), style="primary", handler=BATCH_RESUME_HANDLER)


def progress_line(progress: Progress) -> str:
    """`312 / 1,000 ended, 3 failed, ~4 s left`."""
    line = f"{progress.ended:,} / {progress.total:,} ended, {progress.failed:,} failed"
    eta = progress.eta
    if eta is not None and progress.handled < progress.total:
        line += f", ~{seconds(eta)} left"
    return line


def seconds(value: float) -> str:
    if value < 90:
        return f"{max(1, round(value))} s"
    return f"{round(value / 60)} min"


def calls_text(count: int) -> str:
    return f"{count:,} call{'' if count == 1 else 's'}"


def command_text(command: HangupAllCommand, *, masked: bool = False) -> str:
    """The command as callbot stores it (full numbers: it is run again from this text) or shows
    and audits it (numbers masked)."""
    words = ["hangup-all", command.account]
    numbers = {"to": command.to, "from": command.from_number}
    if command.status:
        words.append(f"status={command.status}")
    for key, value in numbers.items():
        if value:
            words.append(f"{key}={masked_number(value) if masked else value}")
    if command.max:
        words.append(f"max={command.max}")
    if command.reason:
        words.append(f"reason={shlex.quote(command.reason)}")
    return " ".join(words)


def filter_text(command: HangupAllCommand) -> str:
    shown = {k: v for k, v in shown_filter(command).items() if v}
    return f" ({', '.join(f'{k}={v}' for k, v in shown.items())})" if shown else ""


def stored_filter_text(batch: BatchRow) -> str:
    shown = {k: v for k, v in (batch.filter or {}).items() if v and k in ("status", "to", "from")}
    return f" ({', '.join(f'{k}={v}' for k, v in shown.items())})" if shown else ""


def approval_hash(account: str, command: HangupAllCommand) -> str:
    """Binds an approval to exactly this filter, cap and reason on this account."""
    canonical = json.dumps(
        [
            account,
            command.status,
            normalised_number(command.to),
            normalised_number(command.from_number),
            command.max,
            command.reason,
        ],
        separators=(",", ":"),
    )
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def call_filter(command: HangupAllCommand) -> CallFilter:
    return CallFilter(command.status, normalised_number(command.to), normalised_number(command.from_number))


def shown_filter(command: HangupAllCommand) -> dict[str, str | None]:
    return {"status": command.status, "to": masked_number(command.to), "from": masked_number(command.from_number)}
