"""Closing the loop: what the provider shows happened to a call after callbot acted on it.

After an action is sent (its answer `succeeded`, or `unknown`: a timeout, a broken connection),
the call is read back through the provider's fetch-call endpoint, with a short backoff, until its
state is what the action should produce (bot/domain/confirmation.py `settles`) or the account's
`read_back` seconds pass. A provider's signed callback about the call confirms it too, whichever
comes first. The confirmation is a new entry in the audit hash chain; the row keeps its outcome.

Rows a stopped process left pending are swept to `unknown` (bot/service/recovery.py) and then read
back here, so the person's final message says what the call did. A bulk hang-up confirms its calls
with one listing of the account's live calls after the batch (`confirm_batch`): a call hung up and
no longer among them has ended.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from bot.db import confirmations as store
from bot.db import repo
from bot.db.session import Database
from bot.domain.callbacks import CallbackEvent
from bot.domain.confirmation import ENDING_ACTIONS, SETTLE_AFTER, Seen, Via, confirmed_line, settles, unconfirmed_line
from bot.domain.errors import CallbotError
from bot.domain.outcomes import Outcome
from bot.domain.policy import Policy
from bot.domain.redact import Redactor
from bot.domain.replies import Reply, Tone
from bot.providers.base import CallFilter, ProviderClient
from bot.service.recovery import Recovered
from bot.service.steps import Clock, Started

log = logging.getLogger(__name__)

# Seconds between reads: the first at once (most providers end a call before answering), then
# quickly, then every 2 s until the account's `read_back` has passed.
BACKOFF = (0.0, 0.25, 0.5, 1.0, 2.0)
# A callback confirms the last action on its call from this long ago at most.
CALLBACK_WINDOW = timedelta(hours=1)
# How much earlier than the action's audit row a callback's own time may be and still be about what
# followed the action: the provider's clock and callbot's need not agree to the second.
CALLBACK_SKEW = timedelta(seconds=5)
# After a restart, `unknown` rows this recent with no confirmation are read back once.
RESOLVE_WINDOW = timedelta(hours=1)
RESOLVE_AT_MOST = 200
READS_AT_ONCE = 4  # concurrent reads of the sweep: the provider's rate limit is shared with people
# A bulk hang-up's listing after the batch stops here (a batch is at most this many calls anyway).
LISTING_AT_MOST = 10_000
NOT_LISTED = "not among live calls"
# The outcomes of requests that went out (or may have): only their calls are the batch's to confirm.
_ANSWERED = frozenset({Outcome.SUCCEEDED.value, Outcome.UNKNOWN.value})


@dataclass(frozen=True)
class ReadBack:
    """What reading back found: `settled` (what the action should produce), else the last state
    seen (None when no read succeeded)."""

    settled: Seen | None
    last: Seen | None


class Confirmations:
    def __init__(
        self,
        db: Database,
        clients: Mapping[str, ProviderClient],
        clock: Clock,
        policy_of: Callable[[str], Policy],
        redactor: Redactor,
    ) -> None:
        self.db = db
        self.clients = dict(clients)
        self.now = clock
        self.policy_of = policy_of
        self.redactor = redactor

    # -- after an action ----------------------------------------------------------------------

    async def after(self, started: Started, reply: Reply, acted_at: datetime) -> Reply | None:
        """The outcome `reply` with what the provider then showed, once `started` was sent at
        `acted_at`; None when there is nothing to confirm (not sent, refused, a dry run, or
        read-back off for the account)."""
        if started.dry_run is not None or reply.tone not in (Tone.SUCCESS, Tone.UNKNOWN):
            return None
        within = self.policy_of(started.client.account_name).read_back
        if within <= 0:
            return None
        action = started.action.name.value
        outcome = Outcome.UNKNOWN if reply.tone is Tone.UNKNOWN else Outcome.SUCCEEDED
        answered = outcome is Outcome.SUCCEEDED
        found = await self.read_back(started.client, started.call_id, action, within, answered=answered)
        seen = await self._record(started.audit_id, found.settled)
        provider = started.client.display_name
        if seen is None:
            line = unconfirmed_line(provider, action, found.last, within)
        else:
            line = confirmed_line(provider, action, seen, acted_at, outcome=outcome)
        return replace(reply, lines=(*reply.lines, line)).map_text(self.redactor.text)

    async def read_back(
        self, client: ProviderClient, call_id: str, action: str, within: float, *, answered: bool = True
    ) -> ReadBack:
        """Reads the call until its state settles for `action` (`answered`: the provider's answer
        was seen) or `within` seconds pass. A failed read (timeout, 5xx, unknown call) is tried
        again in the next step: it changes nothing. A redirect, TwiML or callFlow is first read
        SETTLE_AFTER seconds after it (at most half of `within`), once the provider had the time
        to act on it."""
        loop = asyncio.get_running_loop()
        ends = loop.time() + within
        last: Seen | None = None
        step = 0
        while True:
            delay = BACKOFF[min(step, len(BACKOFF) - 1)]
            if step == 0 and action not in ENDING_ACTIONS:
                delay = min(SETTLE_AFTER, within / 2)
            step += 1
            if loop.time() + delay >= ends and step > 1:
                return ReadBack(None, last)
            await asyncio.sleep(delay)
            try:
                async with asyncio.timeout(max(0.1, ends - loop.time())):
                    call = await client.get_call(call_id)
            except (CallbotError, TimeoutError) as error:
                log.info("read-back of %s:%s failed: %s", client.account_name, call_id, _why(error))
                continue
            at = call.ended_at if call.ended and call.ended_at is not None else self.now()
            last = Seen(call.status, call.raw_status or call.status, at, Via.READ)
            if settles(action, call.status, answered=answered):
                return ReadBack(last, last)

    async def _record(self, audit_id: int, seen: Seen | None) -> Seen | None:
        """Records `seen` on the row; when another confirmation got there first (a callback, even
        while reading back found nothing settled), that one is what the row says, so that is what
        the person reads."""
        try:
            if seen is not None and await store.confirm(self.db, {audit_id: seen.fields()}):
                return seen
            row = await repo.audit_by_id(self.db, None, audit_id)
        except Exception:
            # The person still hears what the provider showed; the row stays unconfirmed.
            log.exception("could not record the confirmation of audit #%s", audit_id)
            return seen
        if row is None or row.confirm_seq is None or row.confirmed_status is None or row.confirmed_at is None:
            return seen
        if row.confirmed_via not in {via.value for via in Via}:
            return seen
        return Seen(row.confirmed_status, row.confirmed_word or "", row.confirmed_at, Via(row.confirmed_via))

    # -- a provider's signed callback -------------------------------------------------------------

    async def from_callback(self, event: CallbackEvent) -> bool:
        """A verified callback: it confirms the last action on its call (within CALLBACK_WINDOW),
        and only that one, when
        - the action was sent (`succeeded`) or may have been (`unknown`): a `pending` one is still
          under way, and the callback may be about what came before it;
        - nothing confirmed it yet (read-back, or an earlier callback): an older action on the
          call is never confirmed instead, as what the call did since is the newer one's doing;
        - the event is not from before the action (its time at most CALLBACK_SKEW earlier);
        - its state is what the action should produce.
        True when recorded."""
        if event.status is None:
            return False
        since = self.now() - CALLBACK_WINDOW
        row = await store.last_for_call(self.db, event.account, event.call_id, since)
        if row is None or row.confirmed or row.outcome not in (Outcome.SUCCEEDED, Outcome.UNKNOWN):
            return False
        answered = row.outcome == Outcome.SUCCEEDED
        if event.at < row.created_at - CALLBACK_SKEW or not settles(row.action, event.status, answered=answered):
            return False
        seen = Seen(event.status, event.word, event.at, Via.CALLBACK)
        return await store.confirm_last(self.db, event.account, event.call_id, since, row.audit_id, seen.fields())

    # -- after a restart ---------------------------------------------------------------------------

    async def resolve(self, recovered: list[Recovered]) -> list[Recovered]:
        """Reads back the calls of rows the sweep just closed as `unknown` (and, at start-up, other
        recent `unknown` rows nobody confirmed), records what they show, and adds it to each
        person's final message."""
        rows = await store.rows(self.db, [item.audit_id for item in recovered])
        seen = await self._resolve_rows(rows)
        resolved = []
        for item in recovered:
            found = seen.get(item.audit_id)
            if found is None:
                resolved.append(item)
                continue
            row = next(r for r in rows if r.audit_id == item.audit_id)
            client = self.clients[row.account]
            line = confirmed_line(client.display_name, row.action, found, None, outcome=Outcome.UNKNOWN)
            reply = replace(item.reply, lines=(*item.reply.lines, self.redactor.text(line)))
            resolved.append(replace(item, reply=reply))
        return resolved

    async def resolve_recent(self) -> int:
        """At start-up: recent `unknown` rows with no confirmation (their read-back failed, or a
        process stopped first) are read back once. Returns how many were confirmed."""
        rows = await store.unresolved(self.db, self.now() - RESOLVE_WINDOW, RESOLVE_AT_MOST)
        return len(await self._resolve_rows(rows))

    async def _resolve_rows(self, rows: Iterable[store.Unconfirmed]) -> dict[int, Seen]:
        gate = asyncio.Semaphore(READS_AT_ONCE)

        async def one(row: store.Unconfirmed) -> tuple[int, Seen | None]:
            client = self.clients.get(row.account)
            within = self.policy_of(row.account).read_back
            if client is None or within <= 0:
                return row.audit_id, None
            async with gate:
                # One round of reads: the call had its time to settle while callbot was down.
                found = await self.read_back(
                    client, row.call_id, row.action, min(within, 2.0), answered=row.outcome != Outcome.UNKNOWN
                )
            return row.audit_id, found.settled

        results = await asyncio.gather(*(one(row) for row in rows))
        found = {audit_id: seen for audit_id, seen in results if seen is not None}
        recorded = set(await store.confirm(self.db, {audit_id: seen.fields() for audit_id, seen in found.items()}))
        return {audit_id: seen for audit_id, seen in found.items() if audit_id in recorded}

    # -- a bulk hang-up ----------------------------------------------------------------------------

    async def confirm_batch(self, account: str, hung_up: Mapping[str, int]) -> tuple[int, int] | None:
        """After a bulk hang-up: one listing of the account's live calls; each call whose hang-up
        went out (`hung_up`: call id → its audit row; rows answered `succeeded` or `unknown` count)
        that is no longer among them has ended. Returns (confirmed, still live), or None when it
        cannot tell (off, the listing failed or was cut short). Batched rather than read call by
        call, so confirming costs the batch a listing, not a read per call."""
        client = self.clients.get(account)
        if client is None or not hung_up or self.policy_of(account).read_back <= 0:
            return None
        sent = {row.audit_id for row in await store.rows(self.db, list(hung_up.values())) if row.outcome in _ANSWERED}
        calls = {call_id: audit_id for call_id, audit_id in hung_up.items() if audit_id in sent}
        if not calls:
            return None
        live: set[str] = set()
        try:
            async for call in client.iter_calls(CallFilter(), LISTING_AT_MOST + 1):
                live.add(call.call_id)
        except CallbotError as error:
            log.warning("could not list %s's live calls to confirm a batch: %s", account, error.message)
            return None
        if len(live) > LISTING_AT_MOST:
            # A call missing from a listing cut short may be live all the same: no call is confirmed.
            log.warning("%s has over %d live calls: the batch's calls are left unconfirmed", account, LISTING_AT_MOST)
            return None
        gone = Seen("completed", NOT_LISTED, self.now(), Via.LISTING)
        ended = {audit_id: gone.fields() for call_id, audit_id in calls.items() if call_id not in live}
        confirmed = await store.confirm(self.db, ended)
        return len(confirmed), sum(1 for call_id in calls if call_id in live)


def _why(error: BaseException) -> str:
    return error.message if isinstance(error, CallbotError) else "no answer in time"
