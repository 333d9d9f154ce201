"""A fake Slack: the Web API methods callbot uses, and response_url endpoints.

Every Web API call must carry a bot token the fake knows: BOT_TOKEN (workspace T0001, as
single-workspace mode uses it), or one it issued through OAuth. `install(...)` queues a workspace
to install: the browser's visit to the authorize URL (`/oauth/v2/authorize`) redirects back to
callbot with a code, and `oauth.v2.access` trades that code for the workspace's own token (and,
with rotation, a refresh token). `auth.test` answers for the token asked about; `tokens_used`
says which token each call carried.

Every view and message it receives is checked against Block Kit's limits (tests/fakes/blockkit.py)
and refused as Slack refuses it; each refusal is kept in `refusals`, and a test in which callbot sent
Slack anything it would refuse fails at teardown (tests/support/fixtures.py), unless marked
`slack_refusals` because it tests the refusal.
"""

from __future__ import annotations

import base64
import itertools
import json
import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from tests.fakes.blockkit import message_problems, view_problems
from tests.fakes.server import Answer, Recorded, RecordingServer

BOT_TOKEN = "xoxb-1111-2222-testbottokenvalue"
CLIENT_ID = "1111.2222"
CLIENT_SECRET = "c1i3nt5ecretva1uef0rte5t5"
APP_ID = "A0CALLBOT"
APP_TOKEN = "xapp-1-A123456-3333-testapptokenvalue"
# files.completeUploadExternal refuses anything else with invalid_arguments (a user id included).
_CONVERSATION_ID = re.compile(r"^[CGDZ][A-Z0-9]{8,}$")


@dataclass(frozen=True)
class Refusal:
    """Something callbot sent that Slack refuses: where (a Web API method, `response_url`, or the
    acknowledgement of a request, `ack:TYPE`), Slack's reasons, and what was sent."""

    where: str
    messages: tuple[str, ...]
    payload: Any

    def __str__(self) -> str:
        return f"{self.where}: " + "; ".join(self.messages)


@dataclass
class Workspace:
    """A workspace (or, org_wide, an Enterprise Grid org) as oauth.v2.access and auth.test describe it."""

    team_id: str | None
    enterprise_id: str | None = None
    team_name: str = "Example"
    org_wide: bool = False
    installer: str = "U0INSTALL1"
    bot_user_id: str = "U0BOT"
    # Token rotation: oauth.v2.access also gives a refresh token, and a token lasting this long.
    expires_in: int | None = None


@dataclass
class Upload:
    """One file as the fake received it: the bytes POSTed to its upload_url, then where it was shared."""

    file_id: str
    filename: str
    length: int
    data: bytes | None = None
    title: str | None = None
    channel_id: str | None = None
    initial_comment: str | None = None
    completed: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


class FakeSlack(RecordingServer):
    def __init__(self) -> None:
        super().__init__(self._answer)
        self.reset()

    def reset(self) -> None:
        super().reset()
        self._views = itertools.count(1)
        self.unreachable_channels: set[str] = set()  # chat.postEphemeral answers channel_not_found
        self.closed_channels: set[str] = set()  # chat.postMessage answers not_in_channel
        self.view_errors: list[str] = []  # the reasons of every view refused (views.*)
        self.refusals: list[Refusal] = []  # everything refused, views and messages
        self.socket_url: str | None = None  # what apps.connections.open hands out
        # usergroups.users.list: group id -> member ids (change it in tests); unknown -> no_such_subteam.
        self.usergroups: dict[str, list[str]] = {}
        self.usergroups_failing = False  # answer `ratelimited` instead
        self._files = itertools.count(1)
        self.uploads: dict[str, Upload] = {}  # file id -> what was uploaded and shared
        self.home_views: dict[str, list[dict[str, Any]]] = {}  # user id -> every view published, in order
        self.publish_failing = False  # views.publish answers `not_enabled` (App Home switched off)
        self.unknown_users = False  # conversations.open answers `user_not_found`
        # Web API method -> failures to answer first, in order: "ratelimited" (429 with
        # Retry-After: 0, as Slack rate-limits), "drop" (the connection closes unanswered) or any
        # other Slack error code (answered `ok: false` with it, e.g. "invalid_arguments").
        self.failures: dict[str, list[str]] = {}
        # OAuth: bot token -> its workspace (BOT_TOKEN's is single-workspace mode's T0001);
        # workspaces queued by `install`; codes and refresh tokens issued, one use each.
        self.tokens: dict[str, Workspace] = {BOT_TOKEN: Workspace("T0001")}
        self.to_install: list[Workspace] = []
        self.codes: dict[str, Workspace] = {}
        self.refresh_tokens: dict[str, Workspace] = {}
        self.oauth_refusal: str | None = None  # oauth.v2.access answers this error (e.g. invalid_code)
        self._issued = itertools.count(1)
        self.app_redirect_url: str | None = None
        self.issued: list[str] = []  # every bot and refresh token handed out, revoked ones too

    @property
    def api_url(self) -> str:
        return self.url + "/api/"

    def response_url(self, name: str = "cmd") -> str:
        return f"{self.url}/response/{name}"

    def refuse(self, where: str, problems: list[str], payload: Any) -> None:
        """Keeps a refusal (the fake's own, or one the driver saw in an acknowledgement)."""
        self.refusals.append(Refusal(where, tuple(problems), payload))
        if where.startswith("views.") or where.startswith("ack:view"):
            self.view_errors.extend(problems)

    def _answer(self, request: Recorded) -> Answer:
        if request.path.startswith("/response/"):
            return self._response_url(request)
        if request.path.startswith("/upload/v1/"):
            return self._receive_upload(request)
        if request.path == "/oauth/v2/authorize":
            return self._authorize(request)
        if not request.path.startswith("/api/"):
            return Answer(404, b"not found")
        method = request.path.removeprefix("/api/")
        queued = self.failures.get(method)
        if queued:
            failure = queued.pop(0)
            if failure == "drop":
                return Answer(0, drop=True)
            if failure != "ratelimited":
                return _invalid(failure, [f"[ERROR] {failure} (the test's failure) [json-pointer:/]"])
            return Answer.json(429, {"ok": False, "error": "ratelimited"}, **{"Retry-After": "0"})
        if method == "apps.connections.open":
            if request.header("authorization") != f"Bearer {APP_TOKEN}" or not self.socket_url:
                return Answer.json(200, {"ok": False, "error": "invalid_auth"})
            return Answer.json(200, {"ok": True, "url": self.socket_url})
        if method == "oauth.v2.access":
            return self._oauth_access(request)
        workspace = self.tokens.get((request.header("authorization") or "").removeprefix("Bearer "))
        if workspace is None:
            return Answer.json(200, {"ok": False, "error": "invalid_auth"})
        if method == "auth.test":
            return Answer.json(
                200,
                {
                    "ok": True,
                    "url": "https://example.slack.com/",
                    "team": workspace.team_name,
                    "user": "callbot",
                    "team_id": workspace.team_id,
                    **({"enterprise_id": workspace.enterprise_id} if workspace.enterprise_id else {}),
                    "user_id": workspace.bot_user_id,
                    "bot_id": "B0123ABC",
                    "is_enterprise_install": workspace.org_wide,
                },
            )
        args = _args(request)
        if method == "chat.postEphemeral" and args.get("channel") in self.unreachable_channels:
            return Answer.json(200, {"ok": False, "error": "channel_not_found"})
        if method == "chat.postMessage" and args.get("channel") in self.closed_channels:
            return Answer.json(200, {"ok": False, "error": "not_in_channel"})
        if method in ("chat.postMessage", "chat.postEphemeral", "chat.update") and (problems := message_problems(args)):
            self.refuse(method, problems, args)
            return _invalid("invalid_blocks", problems)
        if method in ("chat.postMessage", "chat.postEphemeral", "chat.update"):
            # chat.postMessage answers where it posted (a user id: their DM with the bot).
            channel = str(args.get("channel") or "C2147483705") if method == "chat.postMessage" else "C2147483705"
            if channel[:1] in ("U", "W"):
                channel = dm_channel(channel)
            return Answer.json(200, {"ok": True, "channel": channel, "ts": "1700000000.000100"})
        if method == "usergroups.users.list":
            return self._usergroup(args)
        if method in ("views.open", "views.update", "views.push"):
            return self._view(method, args)
        if method == "views.publish":
            return self._publish(args)
        if method == "conversations.open":
            return self._open_conversation(args)
        if method == "files.getUploadURLExternal":
            return self._upload_url(args)
        if method == "files.completeUploadExternal":
            return self._complete_upload(args)
        return Answer.json(200, {"ok": False, "error": "unknown_method"})

    def install(self, workspace: Workspace) -> None:
        """The next visit to the authorize URL installs on this workspace."""
        self.to_install.append(workspace)

    def tokens_used(self, method: str) -> list[str]:
        """The bot token each call to a Web API method carried, in order."""
        return [
            (r.header("authorization") or "").removeprefix("Bearer ")
            for r in self.requests
            if r.path == f"/api/{method}"
        ]

    def _authorize(self, request: Recorded) -> Answer:
        """The installer approves in their browser: Slack redirects to the app's redirect URL with
        a one-time code and the state it was given."""
        query = dict(parse_qsl(request.query, keep_blank_values=True))
        # Without one in the URL, Slack uses the first Redirect URL of the app's configuration.
        redirect = query.get("redirect_uri") or self.app_redirect_url
        if query.get("client_id") != CLIENT_ID or not redirect or not self.to_install:
            return Answer(400, b"invalid authorize request", {"Content-Type": "text/plain"})
        code = f"code-{next(self._issued)}"
        self.codes[code] = self.to_install.pop(0)
        return Answer(302, b"", {"Location": f"{redirect}?code={code}&state={query.get('state', '')}"})

    def _oauth_access(self, request: Recorded) -> Answer:
        """oauth.v2.access: a code (an install) or, grant_type=refresh_token, a refresh token
        (rotation) for a new bot token; the app's credentials in HTTP Basic, as slack_sdk sends them."""
        expected = base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
        if request.header("authorization") != f"Basic {expected}":
            return Answer.json(200, {"ok": False, "error": "invalid_client_id"})
        if self.oauth_refusal:
            return Answer.json(200, {"ok": False, "error": self.oauth_refusal})
        args = _args(request)
        if args.get("grant_type") == "refresh_token":
            workspace = self.refresh_tokens.pop(str(args.get("refresh_token")), None)
            if workspace is None:
                return Answer.json(200, {"ok": False, "error": "invalid_refresh_token"})
            for token in [t for t, w in self.tokens.items() if w is workspace]:
                del self.tokens[token]  # the old token stops working
        else:
            workspace = self.codes.pop(str(args.get("code")), None)
            if workspace is None:
                return Answer.json(200, {"ok": False, "error": "invalid_code"})
        number = next(self._issued)
        token = f"xoxb-{number}-{workspace.team_id or workspace.enterprise_id}-oauthbottoken{number:04d}"
        self.tokens[token] = workspace
        self.issued.append(token)
        answer: dict[str, Any] = {
            "ok": True,
            "app_id": APP_ID,
            "authed_user": {"id": workspace.installer},
            "scope": "commands,chat:write,chat:write.public,usergroups:read,files:write,im:write",
            "token_type": "bot",
            "access_token": token,
            "bot_user_id": workspace.bot_user_id,
            "team": {"id": workspace.team_id, "name": workspace.team_name} if workspace.team_id else None,
            "enterprise": {"id": workspace.enterprise_id, "name": "Grid Org"} if workspace.enterprise_id else None,
            "is_enterprise_install": workspace.org_wide,
        }
        if workspace.expires_in is not None:
            refresh = f"xoxe-1-refreshtoken{number:04d}"
            self.refresh_tokens[refresh] = workspace
            self.issued.append(refresh)
            answer |= {"refresh_token": refresh, "expires_in": workspace.expires_in}
        return Answer.json(200, answer)

    def _publish(self, args: dict[str, Any]) -> Answer:
        """views.publish: a `home` view for one user, checked like views.open checks modals."""
        view = args.get("view")
        if isinstance(view, str):
            view = json.loads(view)
        user = args.get("user_id")
        if not user or not isinstance(view, dict):
            return Answer.json(200, {"ok": False, "error": "invalid_arguments"})
        if self.publish_failing:
            return Answer.json(200, {"ok": False, "error": "not_enabled"})
        problems = view_problems(view)
        if view.get("type") != "home":
            problems.append("[ERROR] views.publish takes a view of type home [json-pointer:/view/type]")
        if problems:
            self.refuse("views.publish", problems, view)
            return _invalid("invalid_arguments", problems)
        self.home_views.setdefault(str(user), []).append(view)
        number = next(self._views)
        return Answer.json(200, {"ok": True, "view": {**view, "id": f"V{number:010d}", "hash": f"{number}.home"}})

    def _open_conversation(self, args: dict[str, Any]) -> Answer:
        """conversations.open with `users=ONE_USER`: the bot's DM with that person (a stable D… id)."""
        users = [u for u in str(args.get("users") or "").split(",") if u]
        if len(users) != 1 or not users[0].startswith(("U", "W")) or self.unknown_users:
            return Answer.json(200, {"ok": False, "error": "user_not_found" if users else "invalid_arguments"})
        return Answer.json(200, {"ok": True, "channel": {"id": dm_channel(users[0])}})

    def _upload_url(self, args: dict[str, Any]) -> Answer:
        """files.getUploadURLExternal: the bytes go to an upload_url (here, on this server)."""
        filename = args.get("filename")
        try:
            length = int(str(args.get("length")))
        except ValueError:
            return Answer.json(200, {"ok": False, "error": "invalid_arguments"})
        if not filename or length <= 0:
            return Answer.json(200, {"ok": False, "error": "invalid_arguments"})
        file_id = f"F{next(self._files):010d}"
        self.uploads[file_id] = Upload(file_id, str(filename), length)
        return Answer.json(200, {"ok": True, "upload_url": f"{self.url}/upload/v1/{file_id}", "file_id": file_id})

    def _receive_upload(self, request: Recorded) -> Answer:
        upload = self.uploads.get(request.path.removeprefix("/upload/v1/"))
        if upload is None or request.method != "POST":
            return Answer(404, b"not found", {"Content-Type": "text/plain"})
        upload.data = request.body
        return Answer(200, f"OK - {len(request.body)}".encode(), {"Content-Type": "text/plain"})

    def _complete_upload(self, args: dict[str, Any]) -> Answer:
        """files.completeUploadExternal: shares uploaded files into channel_id (a conversation id)."""
        try:
            files = json.loads(str(args.get("files")))
        except ValueError:
            return Answer.json(200, {"ok": False, "error": "invalid_arguments"})
        channel = args.get("channel_id")
        if channel is not None and not _CONVERSATION_ID.match(str(channel)):
            return Answer.json(200, {"ok": False, "error": "invalid_arguments"})
        shared = []
        for item in files:
            upload = self.uploads.get(str(item.get("id")))
            if upload is None or upload.data is None:
                return Answer.json(200, {"ok": False, "error": "file_not_found"})
            upload.title, upload.channel_id = item.get("title"), channel
            upload.initial_comment, upload.completed = args.get("initial_comment"), True
            upload.extra = {k: v for k, v in args.items() if k not in ("files", "channel_id", "initial_comment")}
            shared.append(
                {
                    "id": upload.file_id,
                    "name": upload.filename,
                    "title": upload.title or upload.filename,
                    "size": len(upload.data),
                    "ims": [channel] if channel and str(channel).startswith("D") else [],
                }
            )
        return Answer.json(200, {"ok": True, "files": shared})

    def _view(self, method: str, args: dict[str, Any]) -> Answer:
        view = args.get("view")
        if isinstance(view, str):
            view = json.loads(view)
        # Slack's own limits (title 24 characters, 100 blocks, 100 options, text lengths…).
        problems = view_problems(view)
        if problems:
            self.refuse(method, problems, view)
            return _invalid("invalid_arguments", problems)
        if method == "views.open" and not args.get("trigger_id"):
            return Answer.json(200, {"ok": False, "error": "invalid_trigger_id"})
        number = int(str(args.get("view_id") or "V0").lstrip("V") or 0) or next(self._views)
        return Answer.json(
            200, {"ok": True, "view": {**view, "id": f"V{number:010d}", "hash": f"{number}.{len(self.requests)}"}}
        )

    def _response_url(self, request: Recorded) -> Answer:
        """A response_url takes a message as JSON; Slack refuses one it cannot show with a 400."""
        try:
            payload = request.json
        except ValueError:
            return Answer(400, b"invalid_payload", {"Content-Type": "text/plain"})
        problems = message_problems(payload)
        if problems:
            self.refuse("response_url", problems, payload)
            return Answer(400, b"invalid_blocks", {"Content-Type": "text/plain"})
        return Answer(200, b"ok", {"Content-Type": "text/plain"})

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


def _invalid(error: str, problems: list[str]) -> Answer:
    """Slack's refusal of a payload it cannot show: the error code, and its reasons one by one."""
    return Answer.json(200, {"ok": False, "error": error, "response_metadata": {"messages": problems}})


def dm_channel(user: str) -> str:
    """The id of the bot's direct-message conversation with `user`, as conversations.open gives it."""
    return "D" + user[1:].ljust(8, "0")


def _args(request: Recorded) -> dict[str, Any]:
    # Slack reads arguments from the query string too (slack_sdk sends files.* `params` there).
    query = dict(parse_qsl(request.query, keep_blank_values=True))
    if not request.body:  # a GET (e.g. usergroups.users.list): the arguments are in the query string
        return query
    if (request.header("content-type") or "").startswith("application/json"):
        body = request.json
        return {**query, **body} if isinstance(body, dict) else query
    return {**query, **request.form}
