"""A fake Twilio REST API (2010-04-01 Calls), with Twilio's real JSON success and error bodies."""

from __future__ import annotations

import base64
import itertools
from collections import deque

from tests.fakes.server import Answer, Recorded, RecordingServer

ACCOUNT_SID = "AC" + "0123456789abcdef" * 2
AUTH_TOKEN = "tw-auth-7f3c9a1e5b2d4c6a8e0f"
API_KEY_SID = "SK" + "fedcba9876543210" * 2
API_KEY_SECRET = "tw-keysecret-9d8c7b6a5f4e"
FINAL = {"completed", "canceled", "failed", "busy", "no-answer"}
_request_ids = itertools.count(1)


def call_sid(n: int) -> str:
    return f"CA{n:032x}"


def twilio_error(status: int, code: int, message: str, **headers: str) -> Answer:
    return Answer.json(
        status,
        {"code": code, "message": message, "more_info": f"https://www.twilio.com/docs/errors/{code}", "status": status},
        **headers,
    )


class FakeTwilio(RecordingServer):
    def __init__(self) -> None:
        super().__init__(self._answer)
        self.calls: dict[str, str] = {}
        self.scripted: deque[Answer] = deque()
        self.credentials = {(ACCOUNT_SID, AUTH_TOKEN), (API_KEY_SID, API_KEY_SECRET)}

    def add_call(self, sid: str, status: str = "in-progress") -> str:
        self.calls[sid] = status
        return sid

    def script(self, *answers: Answer) -> None:
        """The next requests get these answers, whatever they ask."""
        self.scripted.extend(answers)

    def updates(self) -> list[Recorded]:
        return [r for r in self.requests if r.method == "POST"]

    def _answer(self, request: Recorded) -> Answer:
        if self.scripted:
            return self.scripted.popleft()
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
        status = self.calls[sid]
        if status in FINAL:
            return twilio_error(400, 21220, "Call is not in-progress. Cannot redirect.")
        wanted = form.get("Status")
        if wanted == "completed":
            self.calls[sid] = "completed"
        elif wanted == "canceled":
            if status in ("queued", "ringing"):
                self.calls[sid] = "canceled"
        elif ("Url" in form or "Twiml" in form) and status != "in-progress":
            return twilio_error(400, 21220, "Call is not in-progress. Cannot redirect.")
        return self._call(sid)

    def _authorised(self, request: Recorded) -> bool:
        header = request.header("authorization") or ""
        if not header.startswith("Basic "):
            return False
        try:
            user, _, password = base64.b64decode(header[6:]).decode().partition(":")
        except ValueError:
            return False
        return (user, password) in self.credentials

    def _call(self, sid: str) -> Answer:
        base = f"/2010-04-01/Accounts/{ACCOUNT_SID}/Calls/{sid}"
        status = self.calls[sid]
        body = {
            "account_sid": ACCOUNT_SID,
            "answered_by": None,
            "api_version": "2010-04-01",
            "caller_name": None,
            "date_created": "Tue, 24 Nov 2026 14:36:28 +0000",
            "date_updated": "Tue, 24 Nov 2026 14:36:44 +0000",
            "direction": "inbound",
            "duration": "15" if status in FINAL else None,
            "end_time": "Tue, 24 Nov 2026 14:36:44 +0000" if status in FINAL else None,
            "forwarded_from": None,
            "from": "+14158675308",
            "from_formatted": "(415) 867-5308",
            "group_sid": None,
            "parent_call_sid": None,
            "phone_number_sid": "PN" + "a" * 32,
            "price": None,
            "price_unit": "USD",
            "sid": sid,
            "start_time": "Tue, 24 Nov 2026 14:36:29 +0000",
            "status": status,
            "subresource_uris": {
                "notifications": f"{base}/Notifications.json",
                "recordings": f"{base}/Recordings.json",
            },
            "to": "+14158675309",
            "to_formatted": "(415) 867-5309",
            "trunk_sid": None,
            "uri": f"{base}.json",
            "queue_time": "0",
        }
        return Answer.json(200, body, **{"Twilio-Request-Id": f"RQ{next(_request_ids):032x}"})
