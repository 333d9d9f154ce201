"""The final message of a request whose process stopped before the provider answered
(bot/service/recovery.py): posted to the response_url Slack gave with the request, under the
"working…" line the person last saw.

The URL lets anyone post in that conversation for 30 minutes, so it never reaches a log: failures
are logged by audit row and error type only (httpx's own request log is kept quiet by bot/logs.py).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import httpx

from bot.service.core import Recovered
from bot.slack.views.render import message

log = logging.getLogger(__name__)

POST_TIMEOUT = 5.0  # seconds per message: a start-up must not wait long on Slack


async def tell_recovered(recovered: Sequence[Recovered]) -> int:
    """Posts each final message that has somewhere to go; returns how many Slack took."""
    told = 0
    async with httpx.AsyncClient(timeout=POST_TIMEOUT, follow_redirects=False) as http:
        for item in recovered:
            if not item.response_url:
                continue
            try:
                response = await http.post(item.response_url, json={**message(item.reply), "replace_original": False})
            except httpx.HTTPError as error:
                log.warning(
                    "could not post the final message of audit row #%s (%s)", item.audit_id, type(error).__name__
                )
                continue
            if response.is_success:
                told += 1
            else:
                log.warning(
                    "Slack refused the final message of audit row #%s (HTTP %s)", item.audit_id, response.status_code
                )
    return told
