"""A threaded HTTP server on loopback that records requests and answers through a handler."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit


@dataclass
class Recorded:
    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: bytes
    at: float = field(default_factory=time.perf_counter)  # when it arrived (benchmarks time hops with it)

    @property
    def form(self) -> dict[str, str]:
        return dict(parse_qsl(self.body.decode(), keep_blank_values=True))

    @property
    def form_pairs(self) -> list[tuple[str, str]]:
        return parse_qsl(self.body.decode(), keep_blank_values=True)

    @property
    def json(self) -> Any:
        return json.loads(self.body)

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())


@dataclass
class Answer:
    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    drop: bool = False  # close the connection without answering (a dropped connection)
    # Seconds over which the body goes out a byte at a time after the headers: a provider that
    # answers slowly but never pauses long enough for a per-read timeout.
    dribble: float = 0.0

    @classmethod
    def json(cls, status: int, payload: Any, **headers: str) -> Answer:
        return cls(status, json.dumps(payload).encode(), {"Content-Type": "application/json", **headers})


@dataclass
class CallRecord:
    """What a fake provider knows about a call besides its status (kept in the fake's `calls`)."""

    direction: str
    from_number: str
    to_number: str
    started_at: datetime | None
    duration: int | None
    seq: int  # order of creation: ties between equal start times


class _Server(ThreadingHTTPServer):
    # socketserver's default backlog of 5 makes bursts of concurrent clients (the bulk benchmark)
    # wait a second for a SYN retry; a real API accepts them.
    request_queue_size = 128


class RecordingServer:
    def __init__(self, handler: Callable[[Recorded], Answer]) -> None:
        self.requests: list[Recorded] = []
        self._handler = handler
        self._cond = threading.Condition()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # Headers and body go out in two writes: with Nagle on, a keep-alive client waits for
            # its delayed ACK (~40 ms) before the body arrives. Real APIs do not add that.
            disable_nagle_algorithm = True

            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                parts = urlsplit(self.path)
                recorded = Recorded(
                    self.command, parts.path, parts.query, {k.lower(): v for k, v in self.headers.items()}, body
                )
                with outer._cond:
                    outer.requests.append(recorded)
                    outer._cond.notify_all()
                answer = outer._handler(recorded)
                if answer.delay:
                    time.sleep(answer.delay)
                if answer.drop:
                    self.close_connection = True
                    return
                try:
                    self.send_response(answer.status)
                    for key, value in answer.headers.items():
                        self.send_header(key, value)
                    self.send_header("Content-Length", str(len(answer.body)))
                    self.end_headers()
                    if answer.dribble and answer.body:
                        self.wfile.flush()
                        for byte in answer.body:
                            time.sleep(answer.dribble / len(answer.body))
                            self.wfile.write(bytes([byte]))
                            self.wfile.flush()
                    else:
                        self.wfile.write(answer.body)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _serve

            def log_message(self, *args: Any) -> None:
                pass

        self._httpd = _Server(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        # A short poll makes stop() quick: every bot test stops four of these.
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    def reset(self) -> None:
        """Forget every recorded request and any state a test set up: as good as a new server (one
        fake serves every test of a worker; the fixtures reset it before each test)."""
        with self._cond:
            self.requests = []

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> RecordingServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def wait_for(self, predicate: Callable[[list[Recorded]], bool], timeout: float = 10.0) -> list[Recorded]:
        deadline = time.monotonic() + timeout
        with self._cond:
            while not predicate(self.requests):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(f"timed out waiting; recorded so far: {self.requests!r}")
                self._cond.wait(remaining)
            return list(self.requests)
