"""Running the real `callbot` executable, as an operator or the Procfile would."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx

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


def wait_healthy(url: str, process: subprocess.Popen[str] | None = None, timeout: float = 30) -> httpx.Response:
    """Polls `url`/healthz until it answers 200; fails at once if `process` (the server) exited."""
    deadline = time.monotonic() + timeout
    while True:
        if process is not None and process.poll() is not None:
            raise AssertionError(f"callbot serve exited with {process.returncode}:\n{process.communicate()[0]}")
        try:
            response = httpx.get(f"{url}/healthz", timeout=2)
            if response.status_code == 200:
                return response
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise AssertionError("callbot serve did not become healthy")
        time.sleep(0.1)
