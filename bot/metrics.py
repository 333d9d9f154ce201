"""Prometheus series for GET /metrics (docs/operating.md says what each means with several processes).

Counters and histograms count what this process did: with several `callbot serve` processes,
scrape each one and sum. The gauges read from the database (`callbot_audit_pending_rows`,
`callbot_bulk_batches_running`) are the same whichever process answers: take one, never sum.
"""

from __future__ import annotations

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

ATTEMPTS = Counter(
    "callbot_attempts",
    "Audited attempts that reached their final outcome, by action, outcome and provider.",
    ["action", "outcome", "provider"],
)
ACK_SECONDS = Histogram(
    "callbot_slack_ack_seconds",
    "Time from receiving a Slack request to sending its HTTP answer (Slack's limit is 3 s).",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 10.0),
)
PROVIDER_SECONDS = Histogram(
    "callbot_provider_request_seconds",
    "Provider HTTP requests by provider and HTTP status (`error`: no answer).",
    ["provider", "status"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0),
)
PROVIDER_RETRIES = Counter(
    "callbot_provider_retries",
    "Provider requests sent again after a 429 or 503, by provider and status.",
    ["provider", "status"],
)
SLACK_API_ERRORS = Counter(
    "callbot_slack_api_errors",
    "Slack Web API calls that failed after retries, by method and Slack's error (or `connection`).",
    ["method", "error"],
)
BULK_CALLS_ENDED = Counter(
    "callbot_bulk_calls_ended",
    "Calls a bulk hang-up ended (each call's audit row succeeded).",
)
BULK_BATCHES_RUNNING = Gauge(
    "callbot_bulk_batches_running",
    "Bulk batches running now, in the whole database (every process reports the same figure).",
)
AUDIT_PENDING_ROWS = Gauge(
    "callbot_audit_pending_rows",
    "Audit rows waiting for a provider's answer, in the whole database (every process reports the same figure).",
)
WEBHOOKS = Counter(
    "callbot_webhooks",
    "Provider callbacks to /webhooks/…, by provider and result (accepted, ignored, unsigned, forged, stale, "
    "replayed, unconfigured, challenged, failed: docs/webhooks.md).",
    ["provider", "result"],
)
DATABASE_UP = Gauge(
    "callbot_database_up",
    "1 when this process's last read for the database gauges succeeded, else 0 (the gauges then keep old values).",
)

CONTENT_TYPE = CONTENT_TYPE_LATEST


def exposition(registry: CollectorRegistry = REGISTRY) -> bytes:
    return generate_latest(registry)
