"""Reviewing the audit log: `/call audit` pages, one row's details, the App Home summary and the
`/call audit export` file. Plain values in and out; Slack renders them (bot/slack/listeners/audit.py, bot/slack/views/audit.py).

Who may see what is decided here on every request, from the asker's grants at that moment:
holders of `audit` (or `admin`) on `*` see every row, on some accounts those accounts' rows and
their own, everyone else only their own. Page tokens (button values) carry the filter and the
cursor, never the visibility, so a crafted button value reveals nothing more.
"""

from __future__ import annotations

import json
import logging
import tempfile
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bot.db import audit_search, repo, workspaces
from bot.db.audit_search import AuditFilter, Cursor
from bot.db.models import ApprovalRow, AuditRow
from bot.db.session import Database
from bot.domain import grammar
from bot.domain.errors import ForeignWorkspace, InvalidInput, PermissionDenied
from bot.domain.grammar import AuditQuery
from bot.domain.outcomes import OUTCOME_EMOJI, Outcome
from bot.domain.permissions import ANY_ACCOUNT, Decision
from bot.domain.redact import Redactor
from bot.domain.replies import AuditDetail, AuditEntry, AuditHome, AuditListing, Reply, Tone, mention
from bot.service import audit_confirmed, audit_export
from bot.service.access import Access
from bot.service.audit_tokens import decode_token, filter_fields, page_token
from bot.service.recorder import Recorder
from bot.service.steps import Clock, Invocation

log = logging.getLogger(__name__)

PAGE_SIZE = 10
HOME_OWN = 10
HOME_TEAM = 20
# The most rows one `/call audit export` file holds (the newest ones): Slack reads the whole file
# into memory to upload it. The shell's `callbot audit export` has no such limit.
EXPORT_CAP = 100_000
HOME_FILTERS = ("all", "failed", "denied", "today")

# Uploads the finished file: (path, file name, the comment to post with it).
Upload = Callable[[Path, str, str], Awaitable[None]]


@dataclass(frozen=True)
class Scope:
    """What one person may read right now."""

    accounts: tuple[str, ...] | None  # None: every row
    user: str | None  # their own rows, whatever the account
    reads_others: bool
    team: str  # the workspace: another's rows are never read

    @property
    def label(self) -> str:
        if self.accounts is None:
            return "everyone's"
        return "visible to you" if self.reads_others else "yours"

    def restrict(self, flt: AuditFilter) -> AuditFilter:
        return replace(flt, visible_accounts=self.accounts, visible_user=self.user, workspace=self.team)


class AuditReview:
    """The audit-review half of the service; it uses the service's grants, audit and redaction."""

    def __init__(self, db: Database, redactor: Redactor, clock: Clock, recorder: Recorder, access: Access) -> None:
        self.db = db
        self.redactor = redactor
        self.now = clock
        self.recorder = recorder
        self.access = access
        self._team_filters: dict[str, str] = {}  # user → their last quick filter on the Home tab

    # -- /call audit ----------------------------------------------------------------------------

    async def search(self, inv: Invocation, query: AuditQuery) -> Reply:
        """The first page of `/call audit` with these filters."""
        scope = await self.scope(inv)
        refused = await self._refuse_others(inv, query.user_id, scope, "audit")
        if refused is not None:
            return refused
        return await self._page(_filter(query), scope)

    async def turn_page(self, inv: Invocation, token: str) -> Reply:
        """A Next / Previous click: the token's filter and cursor, the clicker's visibility now."""
        try:
            flt, older_than, newer_than = decode_token(token)
        except ValueError:
            return Reply(Tone.INFO, "This button is no longer active.", ("Run `/call audit` again.",))
        scope = await self.scope(inv)
        refused = await self._refuse_others(inv, flt.user_id, scope, "audit")
        if refused is not None:
            return refused
        return await self._page(flt, scope, older_than=older_than, newer_than=newer_than)

    async def _page(
        self, flt: AuditFilter, scope: Scope, *, older_than: Cursor | None = None, newer_than: Cursor | None = None
    ) -> Reply:
        found = await audit_search.page(
            self.db, scope.restrict(flt), PAGE_SIZE, older_than=older_than, newer_than=newer_than
        )
        about = describe(flt)
        if not found.rows:
            return Reply(Tone.INFO, f"No audited attempts match ({scope.label}{about}).")
        listing = AuditListing(
            self._entries(found.rows),
            newer=page_token(flt, "n", found.newest) if found.has_newer else None,
            older=page_token(flt, "o", found.oldest) if found.has_older else None,
        )
        first, last = found.rows[0].created_at, found.rows[-1].created_at
        count = len(found.rows)
        title = f"Audit ({scope.label}{about}): {count} attempt{'' if count == 1 else 's'}, newest first"
        span = f"From {_stamp(last)} to {_stamp(first)} UTC."
        lines = (span, *(audit_line(r) for r in found.rows))
        return Reply(Tone.INFO, title, lines, listing=listing)

    # -- Details --------------------------------------------------------------------------------

    async def details(self, inv: Invocation, audit_id: int) -> AuditDetail | Reply:
        """The whole row, if the clicker may see it now; otherwise a refusal (audited)."""
        scope = await self.scope(inv)
        row = await audit_search.get(self.db, audit_id, scope.restrict(AuditFilter()))
        anywhere = await repo.audit_by_id(self.db, None, audit_id) if row is None else None
        if anywhere is not None and not workspaces.same(anywhere.workspace_id, scope.team):
            # Another workspace's row, named in a forged or foreign button.
            return await self.recorder.refuse(
                replace(inv, text=f"audit details #{audit_id}", idempotency_key=None),
                ForeignWorkspace("audit row"),
                action="audit",
            )
        if row is None:
            detail = f"Audit row #{audit_id} does not exist or is not yours to see; others' rows need `audit`."
            return await self.recorder.refuse(  # an attempt to read: audited like `/call audit user=…`
                replace(inv, text=f"audit details #{audit_id}", idempotency_key=None),
                PermissionDenied("audit", None, detail),
                action="audit",
                decision=Decision(False, "audit", None),
            )
        approval = await self._approval_of(scope.team, row)
        return self._detail(row, approval)

    async def _approval_of(self, team: str, row: AuditRow) -> ApprovalRow | None:
        """The two-person approval this row requested, executed or decided, if any."""
        return await repo.approval_linked_to(self.db, team, row.id, _approval_id(row))

    def _detail(self, row: AuditRow, approval: ApprovalRow | None) -> AuditDetail:
        safe = self.redactor.text  # stored redacted already; redact again in case secrets changed
        facts: list[tuple[str, str]] = [
            (
                "When",
                f"{_stamp(row.created_at)} UTC" + (f", closed {_stamp(row.completed_at)}" if row.completed_at else ""),
            ),
            ("Who", mention(row.user_id) + (f" ({row.user_name})" if row.user_name else "")),
            ("Source", row.source + (f" in <#{row.channel_id}>" if row.channel_id else "")),
            ("Action", row.action or "—"),
            ("Account:call", _target(row) + (f" ({row.provider})" if row.provider else "")),
            ("Outcome", f"{OUTCOME_EMOJI.get(row.outcome, '')} {row.outcome}".strip()),
            ("Confirmed", audit_confirmed.fact(row)),
            ("Decision", _decision(row)),
            ("Break-glass", "yes: acted on a frozen account" if row.break_glass else "no"),
            ("Provider status", str(row.provider_status) if row.provider_status is not None else "—"),
            ("Error code", row.error_code or "—"),
            ("Provider request id", row.provider_request_id or "—"),
            ("Latency", f"{row.latency_ms} ms" if row.latency_ms is not None else "—"),
            ("Approver", _approver(approval)),
            ("Chain entry", _chain(row)),
        ]
        texts: list[tuple[str, str]] = [("Command", row.command_text)]
        if row.error_message:
            texts.append(("Error message", row.error_message))
        if row.request is not None:
            texts.append(("Request (normalised, secrets redacted)", _json(row.request)))
        if row.result is not None:
            texts.append(("Result", _json(row.result)))
        return AuditDetail(
            row.id,
            f"Audit #{row.id}",
            tuple((label, safe(value)) for label, value in facts),
            tuple((label, safe(value)) for label, value in texts),
        )

    # -- App Home -------------------------------------------------------------------------------

    async def home(self, team: str, user_id: str, team_filter: str | None = None) -> AuditHome:
        """The person's last attempts and, if they read others' rows, the team's (quick filter
        applied). Grants limited to a channel do not count here: the Home tab is no channel.
        Without `team_filter` (a refresh after an action) the person's last pick stays; it is
        remembered in this process only, so a restart shows "All" again."""

        scope = await self.scope(Invocation("home", user_id, "", team_id=team))
        own = await audit_search.page(
            self.db, AuditFilter(user_id=user_id, visible_user=user_id, workspace=team), HOME_OWN
        )
        if team_filter is None:
            team_filter = self._team_filters.get(f"{team}:{user_id}", "all")
        team_filter = team_filter if team_filter in HOME_FILTERS else "all"
        self._team_filters[f"{team}:{user_id}"] = team_filter
        others = None
        if scope.reads_others:
            found = await audit_search.page(self.db, scope.restrict(self._quick(team_filter)), HOME_TEAM)
            others = self._entries(found.rows)
        return AuditHome(user_id, self._entries(own.rows), others, team_filter, scope.label)

    def _entries(self, rows: list[AuditRow]) -> tuple[AuditEntry, ...]:
        """The rows as list lines. The confirmation holds the provider's word, so it is masked
        like every other text that leaves (the rest of the line is stored masked already)."""
        found = (entry(row) for row in rows)
        return tuple(
            replace(item, confirmed=self.redactor.text(item.confirmed)) if item.confirmed else item for item in found
        )

    def _quick(self, name: str) -> AuditFilter:
        if name in ("failed", "denied"):
            return AuditFilter(outcome=name)
        if name == "today":
            now = self.now().astimezone(UTC)
            return AuditFilter(since=now.replace(hour=0, minute=0, second=0, microsecond=0))
        return AuditFilter()

    # -- /call audit export ---------------------------------------------------------------------

    def export_query(self, text: str) -> AuditQuery | None:
        """`/call audit export …` as typed, else None (and anything unparsable goes the usual way,
        to be refused and audited by the pipeline)."""
        try:
            command = grammar.parse(text)
        except InvalidInput:
            return None
        return command if isinstance(command, AuditQuery) and command.export else None

    async def export(self, inv: Invocation, query: AuditQuery, upload: Upload) -> Reply:
        """Writes the rows the person may see to a temporary file and hands it to `upload`.
        Audited as `audit.export`: pending first, then the row count (or the failure)."""
        scope = await self.scope(inv)
        refused = await self._refuse_others(inv, query.user_id, scope, "audit.export")
        if refused is not None:
            return refused
        # "As of now": rows written meanwhile (this export's own row first) are left out.
        snapshot = self.now()
        flt = _filter(query)
        flt = scope.restrict(replace(flt, until=min(flt.until, snapshot) if flt.until else snapshot))
        request = {**filter_fields(flt), "format": query.format, "scope": scope.label}
        try:
            row = await self.recorder.record(inv, outcome=Outcome.PENDING, action="audit.export", request=request)
        except repo.DuplicateRequest:
            return Reply(Tone.INFO, "This export was already requested; nothing was sent twice.")
        try:
            about = describe(_filter(query)).removeprefix(", ") or "no filter"
            reply = await self._write_and_upload(flt, query.format, snapshot, upload, row.id, about)
        except Exception as error:
            log.exception("audit export #%s failed", row.id)
            await self.recorder.complete(row.id, outcome=Outcome.FAILED, error_message=f"export failed: {error}"[:500])
            return Reply(
                Tone.FAILURE,
                "The export failed: no file was sent.",
                ("The error is in the server log. Try again, or narrow the filter.",),
                audit_id=row.id,
            )
        return self.recorder.redact(reply)

    async def _write_and_upload(
        self, flt: AuditFilter, fmt: str, snapshot: datetime, upload: Upload, audit_id: int, about: str
    ) -> Reply:
        matching = await self._count(flt)
        capped_flt = await self._cap(flt, matching)
        name = f"callbot-audit-{snapshot.astimezone(UTC):%Y%m%d-%H%M%S}.{fmt}"
        with tempfile.TemporaryDirectory(prefix="callbot-export-") as folder:
            path = Path(folder) / name
            with path.open("w", encoding="utf-8", newline="") as out:
                count = await audit_export.write(self.db, capped_flt, fmt, out, self.redactor)
            capped = matching > EXPORT_CAP
            lines = [f"{count} rows, oldest first, as of {_stamp(snapshot)} UTC ({about})."]
            if capped:
                lines.append(
                    f"Capped: the file holds the newest {count} of the {matching} matching rows (at most "
                    f"{EXPORT_CAP} per file). Narrow it with `since=` / `until=` for the rest, or use "
                    "`callbot audit export` on the server."
                )
            await upload(path, name, f"Audit export `{name}`: " + " ".join(lines))
        await self.recorder.complete(
            audit_id,
            outcome=Outcome.SUCCEEDED,
            result={"rows": count, "matching": matching, "capped": capped, "format": fmt, "file": name},
        )
        title = f"Sent you `{name}` as a direct message: {count} rows ({fmt.upper()})."
        return Reply(Tone.SUCCESS, title, tuple(lines[1:]), audit_id=audit_id)

    async def _count(self, flt: AuditFilter) -> int:
        return await audit_search.count(self.db, flt)

    async def _cap(self, flt: AuditFilter, matching: int) -> AuditFilter:
        """Over the cap, keep the newest rows: those strictly newer than the (cap+1)-th newest. Rows
        sharing its exact timestamp are left out too, so the file never exceeds the cap."""
        if matching <= EXPORT_CAP:
            return flt
        boundary = await audit_search.created_at_of_nth_newest(self.db, flt, EXPORT_CAP)
        if boundary is None:  # rows vanished meanwhile (a purge): nothing to cap
            return flt
        return replace(flt, since=boundary + timedelta(microseconds=1))

    # -- who may see what -----------------------------------------------------------------------

    async def scope(self, inv: Invocation) -> Scope:
        grants = await self.access.usable(inv)
        readable = sorted({g.account for g in grants if g.actions & {"audit", "admin"}})
        if ANY_ACCOUNT in readable:
            return Scope(None, None, True, inv.team)
        return Scope(tuple(readable), inv.user_id, bool(readable), inv.team)

    async def _refuse_others(self, inv: Invocation, user: str | None, scope: Scope, action: str) -> Reply | None:
        """Asking for someone else's rows without `audit` is refused (and audited), not just empty."""
        if not user or user == inv.user_id or scope.reads_others:
            return None
        denial = PermissionDenied("audit", None, "You can see only your own attempts; reading others' needs `audit`.")
        if not inv.text:  # a click: say what was asked for in the audit row
            inv = replace(inv, text=f"audit user={user}", idempotency_key=None)
        return await self.recorder.refuse(inv, denial, action=action, decision=Decision(False, "audit", None))


# -- plain values -----------------------------------------------------------------------------------


def entry(row: AuditRow) -> AuditEntry:
    error = None
    if row.error_message and row.outcome not in ("succeeded", "dry_run"):
        error = row.error_message if len(row.error_message) <= 90 else row.error_message[:89] + "…"
    return AuditEntry(
        id=row.id,
        created_at=row.created_at,
        user_id=row.user_id,
        action=row.action,
        target=_target(row),
        outcome=row.outcome,
        emoji=OUTCOME_EMOJI.get(row.outcome, ""),
        source=row.source,
        error=error,
        confirmed=audit_confirmed.mark(row),
    )


def audit_line(row: AuditRow) -> str:
    """One row as text: the CLI's table line, and Slack's plain-text fallback."""
    item = entry(row)
    line = f"`{_stamp(row.created_at)}` #{row.id} {mention(row.user_id)} {item.action or '?'} {item.target} "
    line += f"{item.emoji} {row.outcome}"
    if item.confirmed:
        line += f" → {item.confirmed}"
    if row.source != "slash":
        line += f" ({row.source})"
    return line + (f" — {item.error}" if item.error else "")


def describe(flt: AuditFilter) -> str:
    """The filter in words, for titles: `, user=<@U…>, outcome=failed, since …`."""
    parts = [f"user={mention(flt.user_id)}"] if flt.user_id else []
    parts += [f"{key}={value}" for key, value in (("account", flt.account), ("call", flt.call_id)) if value]
    parts += [f"{key}={value}" for key, value in (("action", flt.action), ("outcome", flt.outcome)) if value]
    if flt.since:
        parts.append(f"since {_stamp(flt.since)}")
    if flt.until:
        parts.append(f"until {_stamp(flt.until)}")
    return "".join(f", {part}" for part in parts)


def _filter(query: AuditQuery) -> AuditFilter:
    return AuditFilter(
        user_id=query.user_id,
        account=query.account,
        call_id=query.call_id,
        action=query.action,
        outcome=query.outcome,
        since=query.since,
        until=query.until,
    )


def _stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


def _target(row: AuditRow) -> str:
    return ":".join(part for part in (row.account, row.call_id) if part) or "—"


def _decision(row: AuditRow) -> str:
    if row.decision is None:
        return "— (refused before any permission check)" if row.outcome == Outcome.INVALID else "—"
    grant = f", grant #{row.grant_id}" if row.grant_id else ", no matching grant"
    basis = f" ({row.decision_basis})" if row.decision_basis else ""
    return f"{row.decision}{grant}{basis}"


def _approver(approval: ApprovalRow | None) -> str:
    if approval is None:
        return "— (no two-person approval)"
    who = mention(approval.decided_by) if approval.decided_by else "nobody yet"
    return f"{who} (approval #{approval.id}, {approval.status})"


def _approval_id(row: AuditRow) -> int | None:
    """The approval an `approval`-sourced row executed, or an approve/deny click decided."""
    key = row.idempotency_key or ""
    if key.startswith("approval:") and key[len("approval:") :].isdigit():
        return int(key[len("approval:") :])
    if (row.action or "").startswith("approval.") and isinstance(row.request, dict):
        value = row.request.get("approval")
        return value if isinstance(value, int) else None
    return None


def _chain(row: AuditRow) -> str:
    if row.chain_seq is None:
        return "— (not chained)"
    text = f"#{row.chain_seq} ({(row.chain_hash or '')[:12]}…)"
    if row.outcome_seq is not None:
        text += f", outcome #{row.outcome_seq} ({(row.outcome_hash or '')[:12]}…)"
    return text


def _json(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True, default=str)
