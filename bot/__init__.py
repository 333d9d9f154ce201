"""callbot: take control of live phone calls from Slack, safely."""

from __future__ import annotations

__version__ = "0.1.0"
