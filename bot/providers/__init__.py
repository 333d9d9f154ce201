"""Provider clients: one per configured account, created at start-up and closed at shutdown."""

from __future__ import annotations

from collections.abc import Mapping

from bot.config import Account, BandwidthAccount, BirdAccount, TwilioAccount
from bot.providers.bandwidth import BandwidthClient
from bot.providers.base import ProviderClient
from bot.providers.bird import BirdClient
from bot.providers.twilio import TwilioClient


def create_client(account: Account, public_url: str | None = None) -> ProviderClient:
    """`public_url`: CALLBOT_PUBLIC_URL, where a Twilio account that opts in (`status_callback`)
    asks Twilio to send its status callbacks after a call update (docs/webhooks.md)."""
    config = account.config
    if isinstance(config, TwilioAccount):
        wanted = public_url is not None and config.status_callback
        callback = f"{public_url}/webhooks/twilio/{account.name}" if wanted else None
        return TwilioClient(account.name, config, status_callback=callback)
    if isinstance(config, BandwidthAccount):
        return BandwidthClient(account.name, config)
    if isinstance(config, BirdAccount):
        return BirdClient(account.name, config)
    raise AssertionError(f"unknown provider {account.provider}")  # pragma: no cover - config validates


def create_clients(accounts: Mapping[str, Account], public_url: str | None = None) -> dict[str, ProviderClient]:
    return {name: create_client(account, public_url) for name, account in accounts.items()}
