"""Who asked, from where, and what a view carries: Slack payloads read into the service's
`Invocation`. Every listener starts here, so the same request always gets the same idempotency key."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

from slack_bolt.request.async_request import AsyncBoltRequest

from bot.domain.errors import NO_WORKSPACE, WorkspaceUnknown
from bot.service.core import Invocation
from bot.slack.text import plain_text


def slash_invocation(body: dict[str, Any], request: AsyncBoltRequest) -> Invocation:
    return Invocation(
        source="slash",
        user_id=str(body.get("user_id") or "unknown"),
        user_name=body.get("user_name"),
        team_id=team_of(body),
        enterprise_id=enterprise_of(body),
        channel_id=body.get("channel_id"),
        text=plain_text(str(body.get("text") or "")),
        idempotency_key=_idempotency_key(body, request),
        response_url=_response_url(body),
    )


def button_invocation(body: dict[str, Any], idempotency_key: str | None = None) -> Invocation:
    """Who clicked a button (block_actions), and in which channel the message was."""
    user = _field(body, "user")
    return Invocation(
        source="button",
        user_id=str(user.get("id") or "unknown"),
        user_name=user.get("username") or user.get("name"),
        team_id=team_of(body),
        enterprise_id=enterprise_of(body),
        channel_id=_field(body, "channel").get("id") or _field(body, "container").get("channel_id"),
        text="",
        idempotency_key=idempotency_key,
        response_url=_response_url(body),
    )


def shortcut_invocation(body: dict[str, Any], source: str) -> Invocation:
    """Who used a shortcut (global, or on a message: then in that message's channel). Nothing is
    audited yet: the form it opens is, when submitted."""
    user = _field(body, "user")
    return Invocation(
        source=source,
        user_id=str(user.get("id") or "unknown"),
        user_name=user.get("username") or user.get("name"),
        team_id=team_of(body),
        enterprise_id=enterprise_of(body),
        channel_id=_field(body, "channel").get("id"),
        text="",
    )


def modal_invocation(body: dict[str, Any], view: dict[str, Any], channel: str | None) -> Invocation:
    user = _field(body, "user")
    # A replayed submission carries the same view and values; a corrected one does not.
    digest = hashlib.sha256(
        json.dumps([view.get("id"), view.get("hash"), (view.get("state") or {}).get("values")], sort_keys=True).encode()
    ).hexdigest()
    return Invocation(
        source="modal",
        user_id=str(user.get("id") or "unknown"),
        user_name=user.get("username") or user.get("name"),
        team_id=team_of(body),
        enterprise_id=enterprise_of(body),
        channel_id=channel,
        text="",
        idempotency_key=f"modal:{digest[:48]}",
    )


def view_metadata(view: dict[str, Any]) -> dict[str, Any]:
    try:
        meta = json.loads(view.get("private_metadata") or "{}")
    except ValueError:
        return {}
    return meta if isinstance(meta, dict) else {}


def team_of(body: Mapping[str, Any]) -> str | None:
    """The workspace of an interaction payload: `team.id`; failing that (an org-wide install's
    payloads may carry none) the user's team, then the first authorization's."""
    found = (
        _field(body, "team").get("id")
        or body.get("team_id")
        or _field(body, "user").get("team_id")
        or _authorization(body).get("team_id")
    )
    return found if isinstance(found, str) and found else None


def workspace(body: Mapping[str, Any]) -> str:
    """The workspace a payload comes from, for the reads it leads to; a payload naming none is
    refused (there is no unscoped read)."""
    team = team_of(body)
    if not team:
        raise WorkspaceUnknown(NO_WORKSPACE)
    return team


def enterprise_of(body: Mapping[str, Any]) -> str | None:
    """The Enterprise Grid organisation, as Slack sends it: `enterprise_id` (slash commands, events),
    `enterprise.id` (interactions), or the first authorization's."""
    found = (
        body.get("enterprise_id")
        or _field(body, "enterprise").get("id")
        or _field(body, "team").get("enterprise_id")
        or _authorization(body).get("enterprise_id")
    )
    return found if isinstance(found, str) and found else None


def _field(body: Mapping[str, Any], name: str) -> dict[str, Any]:
    """An object of the payload, or {} when Slack (or a forger) sent something else there."""
    value = body.get(name)
    return value if isinstance(value, dict) else {}


def _authorization(body: Mapping[str, Any]) -> dict[str, Any]:
    found = body.get("authorizations")
    first = found[0] if isinstance(found, list) and found else None
    return first if isinstance(first, dict) else {}


def user_id(body: dict[str, Any]) -> str:
    """The clicker of a block_actions or view payload ("" when Slack sent none)."""
    return str(_field(body, "user").get("id") or "")


def _response_url(body: dict[str, Any]) -> str | None:
    """Where Slack takes follow-up messages for this request (kept with a pending call action)."""
    url = body.get("response_url")
    return url if isinstance(url, str) and url.startswith(("https://", "http://")) and len(url) <= 2000 else None


def _idempotency_key(body: dict[str, Any], request: AsyncBoltRequest) -> str:
    """Slack's trigger_id is unique per invocation; a replayed body carries the same one."""
    trigger = body.get("trigger_id")
    if trigger:
        return f"slack:{trigger}"
    return "body:" + hashlib.sha256(request.raw_body.encode("utf-8")).hexdigest()
