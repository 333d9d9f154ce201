"""GET /healthz tells a load balancer whether the bot can reach its database."""

from __future__ import annotations

import contextlib
import socket
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from tests.support.bots import BotFactory


class TcpProxy:
    """Forwards loopback connections to the database until `cut()`: a database that goes away;
    or until `stall()`: a black hole, that accepts connections and takes what is sent but never
    answers (a hung server, a firewall dropping packets)."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.sockets: list[socket.socket] = []
        self.running = True
        self.stalled = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while self.running:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if self.stalled:
                self.sockets.append(client)
                continue
            upstream = socket.create_connection(self.target)
            self.sockets += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    def _pipe(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                if not self.stalled:
                    sink.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)

    def stall(self) -> None:
        self.stalled = True

    def cut(self) -> None:
        self.running = False
        # On Linux, close() alone leaves a thread blocked in accept() still accepting.
        with contextlib.suppress(OSError):
            self.listener.shutdown(socket.SHUT_RDWR)
        self.listener.close()
        for sock in self.sockets:
            try:
                sock.shutdown(socket.SHUT_RDWR)
                sock.close()
            except OSError:
                pass


@pytest.fixture
def proxied_env(env: dict[str, str]) -> Iterator[tuple[dict[str, str], TcpProxy]]:
    url = make_url(env["DATABASE_URL"])
    if url.get_backend_name() != "postgresql":
        pytest.skip("the network cut needs a database server (runs with CALLBOT_TEST_DATABASE_URL)")
    proxy = TcpProxy((url.host or "127.0.0.1", url.port or 5432))
    yield {**env, "DATABASE_URL": url.set(host="127.0.0.1", port=proxy.port).render_as_string(False)}, proxy
    proxy.cut()


def test_healthz_is_503_when_the_database_is_unreachable(
    proxied_env: tuple[dict[str, str], TcpProxy], make_bot: BotFactory
) -> None:
    env, proxy = proxied_env
    bot = make_bot(env=env)
    assert bot.slack.http.get("/healthz").status_code == 200
    proxy.cut()
    response = bot.slack.http.get("/healthz")
    assert response.status_code == 503
    assert response.json()["status"] == "unavailable"


def test_healthz_is_503_when_the_database_never_answers(
    proxied_env: tuple[dict[str, str], TcpProxy], make_bot: BotFactory
) -> None:
    env, proxy = proxied_env
    bot = make_bot(env=env)
    assert bot.slack.http.get("/healthz").status_code == 200
    proxy.stall()
    try:
        response = bot.slack.http.get("/healthz", timeout=10)
    finally:
        # The bot then stops at once, its connections closed rather than left hanging.
        proxy.cut()
    assert response.status_code == 503
    assert response.json() == {"status": "unavailable", "reason": "the database did not answer within 1.5 s"}


def test_embedded_sqlite_runs_in_wal_mode(tmp_path: Path, make_bot: BotFactory) -> None:
    path = tmp_path / "wal.db"
    bot = make_bot(env={"DATABASE_URL": f"sqlite:///{path}"})
    assert bot.slack.http.get("/healthz").status_code == 200
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
