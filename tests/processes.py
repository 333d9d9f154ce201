"""Running the real `callbot` executable, as an operator or the Procfile would."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

CLEAN_ENV_DROP = ("SLACK_", "TWILIO_", "BANDWIDTH_", "BIRD_", "CALLBOT_", "DATABASE_URL", "PORT")


def base_env(extra: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(CLEAN_ENV_DROP)}
    env.update(extra)
    return env


def callbot(args: list[str], env: dict[str, str], cwd: Path, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bot.cli", *args],
        env=base_env(env),
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def spawn(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "bot.cli", *args],
        env=base_env(env),
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
