"""A fake Slack Socket Mode endpoint: a websocket that says hello, delivers envelopes and records
the acknowledgements the app sends back (Slack's Socket Mode protocol)."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable
from typing import Any

from aiohttp import WSMsgType, web


class FakeSocketMode:
    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []
        self._loop = asyncio.new_event_loop()
        self._sockets: list[web.WebSocketResponse] = []
        self._ready = threading.Event()
        self._runner: web.AppRunner | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/link"

    def start(self) -> FakeSocketMode:
        threading.Thread(target=self._loop.run_forever, daemon=True).start()
        asyncio.run_coroutine_threadsafe(self._serve(), self._loop).result(10)
        return self

    async def _serve(self) -> None:
        app = web.Application()
        app.router.add_get("/link", self._link)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def _link(self, request: web.Request) -> web.WebSocketResponse:
        socket = web.WebSocketResponse()
        await socket.prepare(request)
        self._sockets.append(socket)
        await socket.send_json({"type": "hello", "num_connections": 1, "connection_info": {"app_id": "A123456"}})
        self._ready.set()
        async for message in socket:
            if message.type == WSMsgType.TEXT:
                self.received.append(json.loads(message.data))
        return socket

    def wait_connected(self, timeout: float = 30) -> None:
        if not self._ready.wait(timeout):
            raise AssertionError("the app never connected over Socket Mode")

    def send(self, envelope: dict[str, Any]) -> None:
        asyncio.run_coroutine_threadsafe(self._sockets[-1].send_json(envelope), self._loop).result(10)

    def send_text(self, text: str) -> None:
        """Any text frame, JSON or not."""
        asyncio.run_coroutine_threadsafe(self._sockets[-1].send_str(text), self._loop).result(10)

    def wait_for(self, predicate: Callable[[list[dict[str, Any]]], bool], timeout: float = 15) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while not predicate(self.received):
            if time.monotonic() > deadline:
                raise AssertionError(f"no matching Socket Mode message; got {self.received}")
            time.sleep(0.02)
        return list(self.received)

    def stop(self) -> None:
        async def close() -> None:
            for socket in self._sockets:
                await socket.close()
            if self._runner:
                await self._runner.cleanup()

        asyncio.run_coroutine_threadsafe(close(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
