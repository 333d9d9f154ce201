"""A fake Slack: the Web API methods callbot uses, and response_url endpoints."""

from __future__ import annotations

import itertools
import json
from typing import Any
from urllib.parse import parse_qsl

from slack_sdk.errors import SlackObjectFormationError
from slack_sdk.models.views import View

from tests.fakes.server import Answer, Recorded, RecordingServer

BOT_TOKEN = "xoxb-1111-2222-testbottokenvalue"
APP_TOKEN = "xapp-1-A123456-3333-testapptokenvalue"


class FakeSlack(RecordingServer):
    def __init__(self) -> None:
        super().__init__(self._answer)
        self._views = itertools.count(1)
        self.unreachable_channels: set[str] = set()  # chat.postEphemeral answers channel_not_found
        self.view_errors: list[str] = []
        self.socket_url: str | None = None  # what apps.connections.open hands out
        # usergroups.users.list: group id -> member ids (change it in tests); unknown -> no_such_subteam.
        self.usergroups: dict[str, list[str]] = {}
        self.usergroups_failing = False  # answer `ratelimited` instead

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
        if method == "apps.connections.open":
            if request.header("authorization") != f"Bearer {APP_TOKEN}" or not self.socket_url:
                return Answer.json(200, {"ok": False, "error": "invalid_auth"})
            return Answer.json(200, {"ok": True, "url": self.socket_url})
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
        args = _args(request)
        if method == "chat.postEphemeral" and args.get("channel") in self.unreachable_channels:
            return Answer.json(200, {"ok": False, "error": "channel_not_found"})
        if method in ("chat.postMessage", "chat.postEphemeral", "chat.update"):
            return Answer.json(200, {"ok": True, "channel": "C2147483705", "ts": "1700000000.000100"})
        if method == "usergroups.users.list":
            return self._usergroup(args)
        if method in ("views.open", "views.update", "views.push"):
            return self._view(method, args)
        return Answer.json(200, {"ok": False, "error": "unknown_method"})

    def _view(self, method: str, args: dict[str, Any]) -> Answer:
        view = args.get("view")
        if isinstance(view, str):
            view = json.loads(view)
        try:
            # Slack's own limits (title 24 chars, 100 blocks, text lengths…) as slack_sdk checks them.
            View(**view).validate_json()
        except (SlackObjectFormationError, TypeError, ValueError) as error:
            self.view_errors.append(str(error))
            return Answer.json(
                200, {"ok": False, "error": "invalid_arguments", "response_metadata": {"messages": [str(error)]}}
            )
        if method == "views.open" and not args.get("trigger_id"):
            return Answer.json(200, {"ok": False, "error": "invalid_trigger_id"})
        number = int(str(args.get("view_id") or "V0").lstrip("V") or 0) or next(self._views)
        return Answer.json(
            200, {"ok": True, "view": {**view, "id": f"V{number:010d}", "hash": f"{number}.{len(self.requests)}"}}
        )

    def _usergroup(self, args: dict[str, Any]) -> Answer:
        if self.usergroups_failing:
            return Answer.json(200, {"ok": False, "error": "ratelimited"})
        members = self.usergroups.get(str(args.get("usergroup")))
        if members is None:
            return Answer.json(200, {"ok": False, "error": "no_such_subteam"})
        return Answer.json(200, {"ok": True, "users": list(members)})

    def calls(self, method: str) -> list[dict[str, Any]]:
        """The arguments of every call to a Web API method, in order."""
        return [_args(r) for r in self.requests if r.path == f"/api/{method}"]

    def responses(self) -> list[Recorded]:
        return [r for r in self.requests if r.path.startswith("/response/")]

    def wait_responses(self, count: int, timeout: float = 10.0) -> list[Recorded]:
        self.wait_for(lambda reqs: sum(r.path.startswith("/response/") for r in reqs) >= count, timeout)
        return self.responses()


def _args(request: Recorded) -> dict[str, Any]:
    if not request.body:  # a GET (e.g. usergroups.users.list): the arguments are in the query string
        return dict(parse_qsl(request.query, keep_blank_values=True))
    if (request.header("content-type") or "").startswith("application/json"):
        body = request.json
        return body if isinstance(body, dict) else {}
    return dict(request.form)
