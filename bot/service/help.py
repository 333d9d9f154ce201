"""`/call help [topic]`: usage, listing only what this person may run, and each topic's notes."""

from __future__ import annotations

from bot.domain import grammar
from bot.domain.permissions import CALL_ACTIONS, allowed_actions
from bot.domain.replies import Reply, Tone
from bot.service.access import Access
from bot.service.accounts import Accounts
from bot.service.steps import Invocation


class Help:
    def __init__(self, accounts: Accounts, access: Access) -> None:
        self.accounts = accounts
        self.access = access

    async def answer(self, inv: Invocation, topic: str | None) -> Reply:
        held = allowed_actions(await self.access.usable(inv))
        if topic:
            spec = grammar.VERBS.get(topic)
            if spec is None:
                hint = grammar.suggest(topic, list(grammar.VERBS)) or "Try `/call help`."
                return Reply(Tone.INVALID, f"No help topic `{topic}`.", (hint,))
            return Reply(Tone.INFO, f"`{spec.usage}`", (spec.summary + ".", *TOPIC_NOTES.get(topic, ())))
        visible = [
            spec
            for spec in grammar.VERBS.values()
            if spec.permission is None or "admin" in held or held & {spec.permission, *spec.also_permitted}
        ]
        lines = [f"`{spec.usage}` — {spec.summary}" for spec in visible]
        if not held & set(CALL_ACTIONS) and "admin" not in held:
            lines.append("You may not run any call action yet. Ask an admin: `/call grant @you hangup on=ACCOUNT`.")
        accounts = ", ".join(f"{name} ({c.provider})" for name, c in sorted(self.accounts.visible(inv.team).items()))
        lines.append(f"Accounts: {accounts or 'none configured'}. Write a call as `account:CALL-ID`.")
        lines.append("Add `dry-run` to any call action to see the exact request without sending it.")
        lines.append("Add `announce` to post its outcome to the account's announce channel, where it has one.")
        may_act = bool(held & set(CALL_ACTIONS)) or "admin" in held
        return Reply(Tone.INFO, "callbot: control live calls from Slack", tuple(lines), offers_form=may_act)


TOPIC_NOTES: dict[str, tuple[str, ...]] = {
    "audit": (
        "`since=` is inclusive, `until=` exclusive: `30m`, `2h`, `7d`, `1w` back from now, or a UTC date/time. "
        "Next / Previous page through the results; Details shows a whole row.",
        "`/call audit export … format=csv|jsonl` sends the matching rows (at most 100,000, the newest) to you as "
        "a direct message; the Home tab shows your recent attempts.",
    ),
    "hangup": (
        'Ends the call whatever its state. Twilio: `Status=completed`; Bandwidth: `{"state":"completed"}`; '
        'Bird: `{"status":"completed"}`.',
    ),
    "cancel": (
        "Twilio only: `Status=canceled` ends queued or ringing calls; an answered call (or one ringing inside "
        "<Dial>) is in progress: use hangup. On Bandwidth and Bird, hangup also ends unanswered calls.",
    ),
    "redirect": (
        "Twilio: `method`, `fallback`, `fallback-method`, `status-callback`, `status-callback-method`, `time-limit`.",
        "Bandwidth (BXML): `method`, `fallback`, `fallback-method`, `username`+`password`, "
        '`fallback-username`+`fallback-password`, `tag` (`tag=""` clears it). Bird: use `flow`.',
        "Example: `/call redirect prod:CA… https://example.com/hold.xml method=GET time-limit=600`",
    ),
    "twiml": (
        'Twilio only. Example: `/call twiml prod:CA… "<Response><Say>Goodbye</Say><Hangup/></Response>"` '
        "(≤ 4,000 characters).",
    ),
    "flow": (
        "Bird only: replaces the call's callFlow (≤ 20 commands: answer, ringing, say, playback, pause, gather, "
        "record, bridge, hangup), checked against Bird's schema before sending.",
        """Example: `/call flow bird:ID '[{"command":"say","options":{"text":"Hello","locale":"en-GB"}},"""
        """{"command":"hangup"}]'` (YAML works too).""",
        "A saved flow's name instead of the JSON (`/call flow bird:ID hold-music`, or `hold-music@2` for an "
        "older version) shows that flow and an Apply button; see `/call help flows`.",
        "In Slack, `/call flow bird:ID` alone opens the callFlow builder: commands one by one, a preview, "
        "Save as…, then Apply.",
    ),
    "flows": (
        "Saved flows are Bird callFlows shared by the whole team, under a name (lowercase words and dashes, "
        "e.g. `hold-music`) with versions 1, 2, 3…",
        "`/call flows` lists them; `/call flows show NAME` (or `NAME@2`, or `version=2`) shows one: its "
        "commands and its JSON. Listing and showing need `flow` on any account, or `flow:manage`.",
        """`/call flows save NAME '[{"command":"say","options":{"text":"Please hold"}},{"command":"hangup"}]'` """
        "stores a new version (older ones are kept); `/call flows delete NAME` removes the name from the list "
        "(every version stays in the database for the record). Both need `flow:manage`, granted on `*`.",
        "`/call flow bird:CALL-ID NAME` applies the newest version (`NAME@2` an older one): callbot shows the "
        "flow with an Apply button, and clicking it sends exactly that version, checking `flow` on the account "
        "again. Add `dry-run` to see the request instead; from `callbot run` it applies without asking.",
    ),
    "grant": (
        "ACTIONS: hangup, cancel, redirect, twiml, flow, bulk, flow:manage, audit, approve, break-glass, admin "
        "(comma-separated), or roles: viewer, operator, supervisor, admin and custom ones (`/call roles`). "
        "`on=*` means all accounts; `flow:manage` (save and delete saved flows) is granted on `*` only.",
        "To a user group: `/call grant @oncall-voice operator on=prod` (every member, read from Slack). "
        "`in=#channel`: only commands typed there. `for=8h` or `until=2026-12-01`: temporary access.",
        "What you grant is limited at least as much as your own admin grant (its channel, its expiry).",
        "`break-glass` lets someone act on a frozen account (with a reason; flagged in the audit). "
        "`admin` does not include it: grant it by name.",
    ),
    "freeze": (
        "Admins only. While an account is frozen, every call action on it is refused (audited as denied, "
        'naming the freeze), except for holders of `break-glass` there, who must give `reason="…"`; '
        "their audit rows are flagged `break_glass`.",
        'Example: `/call freeze on=prod reason="fraud wave, investigating"`; lift with `/call unfreeze on=prod`.',
    ),
    "unfreeze": ("Admins only. Lifts the freeze of the accounts named; who and when is kept.",),
    "list": (
        "Needs a call action (hangup, cancel, redirect, twiml or flow) on the account. 20 calls a page, newest "
        "first, with More; each call has Hang up / Redirect / Flow buttons that run the normal checks.",
        "Example: `/call list prod status=ringing to=+442071234567`. Audited as `calls.list` (numbers masked).",
    ),
    "hangup-all": (
        "Needs `bulk` on the account (not implied by hangup; `supervisor` and `admin` carry it). callbot counts "
        "the matching live calls and asks you to confirm that number; on Confirm it lists them again and hangs "
        "up at most that many, `bulk_concurrency` at a time (default 10), slowing down on the provider's 429s.",
        "Progress is one message in the channel, updated about once a second (`312 / 1,000 ended, 3 failed, "
        "~4 s left`), with Cancel; then a summary listing the failures. Each call has its own audit row (source "
        "`bulk`); the batch has one too (`action=hangup-all`). Two-person approval applies (`approval = "
        '["bulk"]`). Example: `/call hangup-all prod to=+88213 status=in-progress reason="toll fraud"`.',
    ),
    "batch": (
        "`/call batch 12` shows a batch: counts, who started it, failures. `cancel` stops a running one between "
        "requests (the requester, or anyone holding `bulk` there). If callbot stopped mid-batch, the batch "
        "shows `interrupted` within a minute of the restart and `/call batch 12 resume` finishes the calls "
        "left, never touching one already handled.",
    ),
    "status": (
        "Reads the call's state from the provider now (also once it ended): status and the provider's own word, "
        "direction, from/to, started, duration. Same permission as `list`; audited as `calls.status`.",
    ),
}
