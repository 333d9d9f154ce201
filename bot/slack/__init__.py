"""Slack in, Slack out: Bolt listeners and Block Kit rendering. No provider or database code here."""
