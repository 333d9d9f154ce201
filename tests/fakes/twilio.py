"""A fake Twilio REST API (2010-04-01 Calls), with Twilio's real JSON success and error bodies.

Serves UpdateCall (POST …/Calls/{sid}.json), FetchCall (GET …/Calls/{sid}.json) and ListCall
(GET …/Calls.json: `Status`, `To`, `From`, `PageSize` ≤ 1000, `Page`/`PageToken` paging, newest
first, the ListCallResponse envelope). For the bulk benchmark it can add `latency` seconds to each
request and answer 20429 with `Retry-After` beyond `max_concurrency` requests in flight; `hangups`
counts, per call, the requests that asked to end it.
"""

from __future__ import annotations

import base64
import email.utils
import itertools
import threading
import time
from collections import Counter, deque
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlencode

from tests.fakes.server import Answer, CallRecord, Recorded, RecordingServer

ACCOUNT_SID = "AC" + "0123456789abcdef" * 2
AUTH_TOKEN = "tw-auth-7f3c9a1e5b2d4c6a8e0f"
API_KEY_SID = "SK" + "fedcba9876543210" * 2
API_KEY_SECRET = "tw-keysecret-9d8c7b6a5f4e"
FINAL = {"completed", "canceled", "failed", "busy", "no-answer"}
STATUSES = {"queued", "ringing", "in-progress", *FINAL}
PAGE_SIZE_DEFAULT = 50
PAGE_SIZE_MAX = 1000
CALLS_PATH = f"/2010-04-01/Accounts/{ACCOUNT_SID}/Calls"
_request_ids = itertools.count(1)


def call_sid(n: int) -> str:
    return f"CA{n:032x}"


def twilio_error(status: int, code: int, message: str, **headers: str) -> Answer:
    return Answer.json(
        status,
        {"code": code, "message": message, "more_info": f"https://www.twilio.com/docs/errors/{code}", "status": status},
        **headers,
    )


def rfc2822(when: datetime | None) -> str | None:
    """Twilio's date format: "Fri, 18 Oct 2019 17:00:00 +0000"."""
    return email.utils.format_datetime(when.astimezone(UTC)) if when else None


class FakeTwilio(RecordingServer):
    def __init__(self, *, latency: float = 0.0, max_concurrency: int | None = None, retry_after: float = 1) -> None:
        super().__init__(self._answer)
        self._settings = (latency, max_concurrency, retry_after)
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        """Back to how it was made: no calls, no scripted answers, the constructor's latency and cap."""
        super().reset()
        latency, max_concurrency, retry_after = self._settings
        self.calls: dict[str, str] = {}  # sid → status
        self.details: dict[str, CallRecord] = {}
        self.scripted: deque[Answer] = deque()
        self.credentials = {(ACCOUNT_SID, AUTH_TOKEN), (API_KEY_SID, API_KEY_SECRET)}
        self.latency = latency  # seconds added to every request (not to scripted answers)
        self.max_concurrency = max_concurrency  # None: no cap
        self.retry_after = retry_after  # the Retry-After of the 20429 answers beyond the cap
        self.hangups: Counter[str] = Counter()
        # sid → the answer every update of that call gets (a call the provider refuses to end).
        self.refusing: dict[str, Answer] = {}
        # sid → how many more listings show the call before it ends on its own (a short call).
        self.ending: dict[str, int] = {}
        self.rate_limited = 0  # requests answered 20429 because of the cap
        self.gate: threading.Event | None = None  # when set, requests wait for it before an answer
        # Seconds an update waits *after* it took effect before its answer goes (a lost answer).
        self.slow_updates = 0.0
        self.peak_concurrency = 0
        self._in_flight = 0
        self._seq = itertools.count()

    def add_call(
        self,
        sid: str,
        status: str = "in-progress",
        *,
        direction: str = "inbound",
        from_number: str = "+14158675308",
        to_number: str = "+14158675309",
        started_at: datetime | None = None,
        duration: int | None = None,
    ) -> str:
        """A call the fake knows. `started_at` defaults to now; a queued call has none unless given."""
        if started_at is None and status != "queued":
            started_at = datetime.now(UTC).replace(microsecond=0)
        if duration is None and status == "completed":
            duration = 15
        self.calls[sid] = status
        self.details[sid] = CallRecord(direction, from_number, to_number, started_at, duration, next(self._seq))
        return sid

    def _record(self, sid: str) -> CallRecord:
        """The call's details; a call put straight into `calls` gets add_call's defaults."""
        if sid not in self.details:
            self.add_call(sid, self.calls[sid])
        return self.details[sid]

    def script(self, *answers: Answer) -> None:
        """The next requests get these answers, whatever they ask."""
        self.scripted.extend(answers)

    def updates(self) -> list[Recorded]:
        return [r for r in self.requests if r.method == "POST"]

    def lists(self) -> list[Recorded]:
        return [r for r in self.requests if r.method == "GET" and r.path == f"{CALLS_PATH}.json"]

    # -- the API --------------------------------------------------------------------------------

    def _answer(self, request: Recorded) -> Answer:
        if self.gate is not None:
            self.gate.wait(30)
        if self.scripted:
            return self.scripted.popleft()
        with self._lock:
            if self.max_concurrency is not None and self._in_flight >= self.max_concurrency:
                self.rate_limited += 1
                return twilio_error(429, 20429, "Too Many Requests", **{"Retry-After": f"{self.retry_after:g}"})
            self._in_flight += 1
            self.peak_concurrency = max(self.peak_concurrency, self._in_flight)
        try:
            if self.latency:
                time.sleep(self.latency)
            answer = self._handle(request)
            if self.slow_updates and request.method == "POST":
                time.sleep(self.slow_updates)
            return answer
        finally:
            with self._lock:
                self._in_flight -= 1

    def _handle(self, request: Recorded) -> Answer:
        if not self._authorised(request):
            return Answer.json(
                401,
                {
                    "code": 20003,
                    "detail": "Your AccountSid or AuthToken was incorrect.",
                    "message": "Authenticate",
                    "more_info": "https://www.twilio.com/docs/errors/20003",
                    "status": 401,
                },
            )
        if request.path == f"{CALLS_PATH}.json" and request.method == "GET":
            return self._list(request)
        parts = request.path.split("/")
        # ['', '2010-04-01', 'Accounts', AC…, 'Calls', 'CA….json']
        if len(parts) != 6 or parts[1:3] != ["2010-04-01", "Accounts"] or parts[4] != "Calls":
            return twilio_error(404, 20404, f"The requested resource {request.path} was not found")
        sid = parts[5].removesuffix(".json")
        if parts[3] != ACCOUNT_SID or sid not in self.calls:
            return twilio_error(404, 20404, f"The requested resource {request.path} was not found")
        if request.method == "GET":
            return self._call(sid)
        form = request.form
        if "Url" in form and "Twiml" in form:
            return twilio_error(400, 21205, "Url and Twiml are mutually exclusive")
        wanted = form.get("Status")
        if wanted in ("completed", "canceled"):
            with self._lock:  # counted even when the call had already ended: a duplicate shows as 2
                self.hangups[sid] += 1
        if sid in self.refusing:
            return self.refusing[sid]
        status = self.calls[sid]
        if status in FINAL:
            return twilio_error(400, 21220, "Call is not in-progress. Cannot redirect.")
        if wanted == "completed":
            self._end(sid, "completed")
        elif wanted == "canceled":
            if status in ("queued", "ringing"):
                self._end(sid, "canceled")
        elif ("Url" in form or "Twiml" in form) and status != "in-progress":
            return twilio_error(400, 21220, "Call is not in-progress. Cannot redirect.")
        return self._call(sid)

    def _end(self, sid: str, status: str) -> None:
        record = self._record(sid)
        if status == "completed" and record.started_at and record.duration is None:
            record.duration = max(0, int((datetime.now(UTC) - record.started_at).total_seconds()))
        self.calls[sid] = status

    def _authorised(self, request: Recorded) -> bool:
        header = request.header("authorization") or ""
        if not header.startswith("Basic "):
            return False
        try:
            user, _, password = base64.b64decode(header[6:]).decode().partition(":")
        except ValueError:
            return False
        return (user, password) in self.credentials

    def _list(self, request: Recorded) -> Answer:
        """ListCall: filters as Twilio applies them (one Status, exact To/From), newest first."""
        params = {k: v[-1] for k, v in parse_qs(request.query, keep_blank_values=True).items()}
        status = params.get("Status")
        if status is not None and status not in STATUSES:
            return twilio_error(400, 20001, f"Invalid Status: {status}")
        try:
            page_size = int(params.get("PageSize", PAGE_SIZE_DEFAULT))
            page = int(params.get("Page", "0"))
        except ValueError:
            return twilio_error(400, 20001, "PageSize and Page must be integers")
        if not 1 <= page_size <= PAGE_SIZE_MAX or page < 0:
            return twilio_error(400, 20001, f"PageSize must be between 1 and {PAGE_SIZE_MAX}")
        ordered = sorted(self.calls, key=self._newest_first)
        matching = [
            sid
            for sid in ordered
            if (status is None or self.calls[sid] == status)
            and params.get("To") in (None, self._record(sid).to_number)
            and params.get("From") in (None, self._record(sid).from_number)
        ]
        token = params.get("PageToken")
        if token:
            anchor = token[2:]
            if token[:2] not in ("PA", "PB") or anchor not in self.details:
                return twilio_error(400, 20001, f"Invalid PageToken: {token}")
            key = self._newest_first(anchor)
            if token.startswith("PA"):
                chunk = [sid for sid in matching if self._newest_first(sid) > key][:page_size]
            else:
                chunk = [sid for sid in matching if self._newest_first(sid) < key][-page_size:]
        else:
            chunk = matching[page * page_size : (page + 1) * page_size]
        more = bool(chunk) and any(self._newest_first(sid) > self._newest_first(chunk[-1]) for sid in matching)
        base = [(k, params[k]) for k in ("Status", "To", "From") if k in params]

        def uri(page_number: int, page_token: str | None = None) -> str:
            query = [*base, ("PageSize", str(page_size)), ("Page", str(page_number))]
            if page_token:
                query.append(("PageToken", page_token))
            return f"{CALLS_PATH}.json?{urlencode(query)}"

        body: dict[str, Any] = {
            "calls": [self._resource(sid) for sid in chunk],
            "end": page * page_size + max(len(chunk) - 1, 0),
            "first_page_uri": uri(0),
            "next_page_uri": uri(page + 1, f"PA{chunk[-1]}") if more else None,
            "page": page,
            "page_size": page_size,
            "previous_page_uri": uri(page - 1, f"PB{chunk[0]}") if page > 0 and chunk else None,
            "start": page * page_size,
            "uri": uri(page, token),
        }
        for sid in chunk:
            if sid in self.ending:
                self.ending[sid] -= 1
                if self.ending[sid] <= 0:
                    del self.ending[sid]
                    self._end(sid, "completed")
        return Answer.json(200, body, **{"Twilio-Request-Id": f"RQ{next(_request_ids):032x}"})

    def _newest_first(self, sid: str) -> tuple[float, int]:
        record = self._record(sid)
        started = record.started_at.timestamp() if record.started_at else float("inf")  # not yet dialled: newest
        return (-started, -record.seq)

    def _call(self, sid: str) -> Answer:
        return Answer.json(200, self._resource(sid), **{"Twilio-Request-Id": f"RQ{next(_request_ids):032x}"})

    def _resource(self, sid: str) -> dict[str, Any]:
        """The call resource, with Twilio's field names and RFC 2822 dates."""
        base = f"{CALLS_PATH}/{sid}"
        status = self.calls[sid]
        record = self._record(sid)
        created = record.started_at or datetime.now(UTC).replace(microsecond=0)
        ended = status in FINAL
        end_time = (
            (record.started_at + timedelta(seconds=record.duration or 0)) if ended and record.started_at else None
        )
        return {
            "account_sid": ACCOUNT_SID,
            "answered_by": None,
            "api_version": "2010-04-01",
            "caller_name": None,
            "date_created": rfc2822(created),
            "date_updated": rfc2822(end_time or created),
            "direction": record.direction,
            "duration": str(record.duration) if ended and record.duration is not None else None,
            "end_time": rfc2822(end_time),
            "forwarded_from": None,
            "from": record.from_number,
            "from_formatted": record.from_number,
            "group_sid": None,
            "parent_call_sid": None,
            "phone_number_sid": "PN" + "a" * 32,
            "price": None,
            "price_unit": "USD",
            "sid": sid,
            "start_time": rfc2822(record.started_at),
            "status": status,
            "subresource_uris": {
                "notifications": f"{base}/Notifications.json",
                "recordings": f"{base}/Recordings.json",
            },
            "to": record.to_number,
            "to_formatted": record.to_number,
            "trunk_sid": None,
            "uri": f"{base}.json",
            "queue_time": "0",
        }
