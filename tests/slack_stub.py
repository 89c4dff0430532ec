"""A local HTTP server that speaks the Slack Web API methods the alerter calls."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from crisiswatch.broker import free_port


@dataclass
class SlackCall:
    method: str
    token: str | None
    payload: dict[str, Any]


@dataclass
class SlackStub:
    """Records every call; ``fail_next`` makes the next calls answer an HTTP status (e.g. 429 or 503)."""

    port: int = field(default_factory=free_port)
    calls: list[SlackCall] = field(default_factory=list)
    failures: list[tuple[int, dict[str, str]]] = field(default_factory=list)
    _loop: asyncio.AbstractEventLoop | None = None
    _runner: web.AppRunner | None = None
    _counter: int = 0

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api/"

    def fail_next(self, status: int, times: int = 1, headers: dict[str, str] | None = None) -> None:
        self.failures.extend([(status, headers or {})] * times)

    async def _handle(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        if request.content_type == "application/json":
            payload = await request.json()
        else:
            payload = dict(await request.post())
            for key in ("blocks", "attachments"):
                if isinstance(payload.get(key), str):
                    payload[key] = json.loads(payload[key])
        if self.failures:
            status, headers = self.failures.pop(0)
            return web.json_response({"ok": False, "error": "stub_failure"}, status=status, headers=headers)
        self.calls.append(SlackCall(method, request.headers.get("Authorization"), payload))
        self._counter += 1
        ts = payload.get("ts") or f"{time.time():.6f}{self._counter}"
        return web.json_response({"ok": True, "channel": payload.get("channel", "C1"), "ts": ts})

    def start(self) -> SlackStub:
        ready = threading.Event()

        def serve() -> None:
            self._loop = asyncio.new_event_loop()
            app = web.Application()
            app.router.add_post("/api/{method}", self._handle)
            self._runner = web.AppRunner(app)
            self._loop.run_until_complete(self._runner.setup())
            self._loop.run_until_complete(web.TCPSite(self._runner, "127.0.0.1", self.port).start())
            ready.set()
            self._loop.run_forever()

        threading.Thread(target=serve, daemon=True).start()
        ready.wait(10)
        return self

    def stop(self) -> None:
        if self._loop and self._runner:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
            self._loop.call_soon_threadsafe(self._loop.stop)

    def messages(self, method: str = "chat.postMessage") -> list[SlackCall]:
        return [c for c in self.calls if c.method == method]
