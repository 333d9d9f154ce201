"""Hanging up many calls on one account: the per-call step of a batch, through the service's own
audit (bot/db/batches.py runs the items; bot/service/bulk/engine.py the workers and the throttle).

Each call gets its own audit row (source `bulk`, action `hangup`, the batch id in its request),
written `pending` before the provider request and completed after it, like any hangup. The
throttle is one per account and process, shared by every batch on that account.

`/call hangup-all` (bot/service/bulk/actions.py) creates the batch and reports its progress.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from dataclasses import replace

from bot.db.batches import Act, AlreadyHandled, ItemOutcome, Step
from bot.domain.actions import Hangup
from bot.domain.errors import CallbotError, ProviderError
from bot.domain.outcomes import Outcome, Source
from bot.domain.permissions import Decision
from bot.providers.base import ProviderClient, elapsed_ms, provider_error_fields
from bot.service.bulk.engine import RetryLimits, Throttle, Untouched, send_throttled
from bot.service.recorder import Recorder
from bot.service.safety import Safety
from bot.service.steps import Invocation

ALREADY_ENDED = "had already ended"


async def _has_ended(client: ProviderClient, call_id: str) -> bool:
    try:
        return (await client.get_call(call_id)).ended
    except CallbotError:
        return False


class BulkHangup:
    def __init__(
        self,
        clients: Mapping[str, ProviderClient],
        recorder: Recorder,
        safety: Safety,
        concurrency: int | None = None,
    ) -> None:
        """`concurrency`: for every account; by default each account's `bulk_concurrency`."""
        self.clients = dict(clients)
        self.recorder = recorder
        self.safety = safety
        self.concurrency = concurrency
        self._throttles: dict[str, Throttle] = {}

    def throttle(self, account: str) -> Throttle:
        if account not in self._throttles:
            limit = self.concurrency or self.safety.policy_of(account).bulk_concurrency
            self._throttles[account] = Throttle(limit)
        return self._throttles[account]

    def act(
        self, inv: Invocation, account: str, batch_id: int, decision: Decision, stop: asyncio.Event | None = None
    ) -> Act:
        """The step for one call of batch `batch_id`, run as `inv` (who started the batch) under
        `decision` (their `bulk` grant). `stop`: set when the batch is cancelled; a call waiting
        to be sent (again, after a 429) is then left untouched."""
        client = self.clients[account]
        throttle = self.throttle(account)
        policy = self.safety.policy_of(account)
        limits = RetryLimits(policy.bulk_max_attempts, policy.bulk_max_retry_after)

        async def one(step: Step) -> ItemOutcome:
            call_id = step.call_id
            if step.in_doubt:
                # The process died after this call's request may have gone: look before sending again.
                try:
                    if (await client.get_call(call_id)).ended:
                        return ItemOutcome(None, None)
                except CallbotError:
                    pass  # cannot tell: hanging up an ended call is harmless, so send
            request = client.build(call_id, Hangup())
            key = f"batch:{batch_id}:{call_id}" + (":resumed" if step.in_doubt else "")
            audited = replace(
                inv, source=Source.BULK, text=f"hangup {account}:{call_id} (batch #{batch_id})", idempotency_key=key
            )
            opening = self.recorder.fields(
                audited,
                outcome=Outcome.PENDING,
                decision=decision,
                request={**request.for_audit(), "batch": batch_id},
                action="hangup",
                account=account,
                provider=client.provider,
                call_id=call_id,
            )
            try:
                # The item turns `sending` and the call's row is opened `pending`, committed together
                # (with the other workers' writes) before the request goes.
                audit_id = await step.open(opening)
            except AlreadyHandled:
                return ItemOutcome(None, "already handled by an earlier run of this batch")
            began = time.monotonic()
            try:
                result = await send_throttled(client, request, throttle, limits=limits, stop=stop)
            except Untouched:
                closing = self.recorder.outcome_fields(
                    outcome=Outcome.CANCELLED,
                    latency_ms=elapsed_ms(began),
                    error_message=f"not sent: batch #{batch_id} was cancelled while this call waited for its turn",
                )
                await step.put_back(audit_id, closing)
                raise
            except ProviderError as error:
                # In an incident many calls end on their own between the listing and their turn: the
                # provider refuses to end an ended call. Its row keeps that answer; the batch counts
                # the call as ended (what the person wanted), once a read confirms it.
                ended = error.outcome == Outcome.FAILED and await _has_ended(client, call_id)
                closing = self.recorder.outcome_fields(
                    outcome=error.outcome,
                    latency_ms=elapsed_ms(began),
                    **({"result": {"already_ended": True}} if ended else {}),
                    **provider_error_fields(error),
                )
                said = self.recorder.redactor.text(error.message)  # kept on the batch item: no secret
                outcome = ItemOutcome(audit_id, None, ALREADY_ENDED) if ended else ItemOutcome(audit_id, said)
            else:
                closing = self.recorder.outcome_fields(
                    outcome=Outcome.SUCCEEDED,
                    latency_ms=elapsed_ms(began),
                    provider_status=result.http_status,
                    provider_request_id=result.request_id,
                    result=dict(result.summary),
                )
                outcome = ItemOutcome(audit_id, None)
            await step.settle(outcome, closing)
            return outcome

        return one
