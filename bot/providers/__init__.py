"""Provider clients: one per configured account, created at start-up and closed at shutdown."""

from __future__ import annotations

from collections.abc import Mapping

from bot.config import Account, BandwidthAccount, BirdAccount, TwilioAccount
from bot.providers.bandwidth import BandwidthClient
from bot.providers.base import ProviderClient
from bot.providers.bird import BirdClient
from bot.providers.twilio import TwilioClient


def create_client(account: Account) -> ProviderClient:
    config = account.config
    if isinstance(config, TwilioAccount):
        return TwilioClient(account.name, config)
    if isinstance(config, BandwidthAccount):
        return BandwidthClient(account.name, config)
    if isinstance(config, BirdAccount):
        return BirdClient(account.name, config)
    raise AssertionError(f"unknown provider {account.provider}")  # pragma: no cover - config validates


def create_clients(accounts: Mapping[str, Account]) -> dict[str, ProviderClient]:
    return {name: create_client(account) for name, account in accounts.items()}
