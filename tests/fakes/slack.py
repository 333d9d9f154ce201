"""A fake Slack: the Web API methods callbot uses, and response_url endpoints."""

from __future__ import annotations

from tests.fakes.server import Answer, Recorded, RecordingServer

BOT_TOKEN = "xoxb-1111-2222-testbottokenvalue"


class FakeSlack(RecordingServer):
    def __init__(self) -> None:
        super().__init__(self._answer)

    @property
    def api_url(self) -> str:
        return self.url + "/api/"

    def response_url(self, name: str = "cmd") -> str:
        return f"{self.url}/response/{name}"

    def _answer(self, request: Recorded) -> Answer:
        if request.path.startswith("/response/"):
            return Answer(200, b"ok", {"Content-Type": "text/plain"})
        if not request.path.startswith("/api/"):
            return Answer(404, b"not found")
        method = request.path.removeprefix("/api/")
        if request.header("authorization") != f"Bearer {BOT_TOKEN}":
            return Answer.json(200, {"ok": False, "error": "invalid_auth"})
        if method == "auth.test":
            return Answer.json(
                200,
                {
                    "ok": True,
                    "url": "https://example.slack.com/",
                    "team": "Example",
                    "user": "callbot",
                    "team_id": "T0001",
                    "user_id": "U0BOT",
                    "bot_id": "B0123ABC",
                    "is_enterprise_install": False,
                },
            )
        if method in ("chat.postMessage", "chat.postEphemeral", "chat.update"):
            return Answer.json(200, {"ok": True, "channel": "C2147483705", "ts": "1700000000.000100"})
        return Answer.json(200, {"ok": False, "error": "unknown_method"})

    def responses(self) -> list[Recorded]:
        return [r for r in self.requests if r.path.startswith("/response/")]

    def wait_responses(self, count: int, timeout: float = 10.0) -> list[Recorded]:
        self.wait_for(lambda reqs: sum(r.path.startswith("/response/") for r in reqs) >= count, timeout)
        return self.responses()
