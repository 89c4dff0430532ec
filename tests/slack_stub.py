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
    ts: str | None = None


@dataclass
class SlackStub:
    """Records every call; ``fail_next`` makes the next calls answer an HTTP status (e.g. 429 or 503)."""

    port: int = field(default_factory=free_port)
    calls: list[SlackCall] = field(default_factory=list)
    uploads: dict[str, bytes] = field(default_factory=dict)
    down_until: float = 0.0
    failures: list[tuple[int, dict[str, str], str | None]] = field(default_factory=list)
    _loop: asyncio.AbstractEventLoop | None = None
    _runner: web.AppRunner | None = None
    _counter: int = 0

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api/"

    def outage(self, seconds: float) -> None:
        """Answer every call with 503 for ``seconds`` from now."""
        self.down_until = time.monotonic() + seconds

    def fail_next(
        self, status: int, times: int = 1, headers: dict[str, str] | None = None, method: str | None = None
    ) -> None:
        """Answer the next ``times`` calls (of ``method`` only, if given) with HTTP ``status``."""
        self.failures.extend([(status, headers or {}, method)] * times)

    async def _handle(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        if request.content_type == "application/json":
            payload = await request.json()
        else:
            payload = dict(await request.post())
            for key in ("blocks", "attachments"):
                if isinstance(payload.get(key), str):
                    payload[key] = json.loads(payload[key])
        payload = {**request.query, **payload}
        if time.monotonic() < self.down_until:
            return web.json_response({"ok": False, "error": "service_unavailable"}, status=503)
        failure = next((f for f in self.failures if f[2] in (None, method)), None)
        if failure is not None:
            self.failures.remove(failure)
            status, headers, _ = failure
            return web.json_response({"ok": False, "error": "stub_failure"}, status=status, headers=headers)
        self._counter += 1
        ts = payload.get("ts") or f"{time.time():.6f}{self._counter}"
        self.calls.append(SlackCall(method, request.headers.get("Authorization"), payload, ts))
        if method == "files.getUploadURLExternal":
            file_id = f"F{self._counter:06d}"
            upload_url = f"http://127.0.0.1:{self.port}/upload/{file_id}"
            return web.json_response({"ok": True, "upload_url": upload_url, "file_id": file_id})
        if method == "files.completeUploadExternal":
            files = payload.get("files")
            listed = json.loads(files) if isinstance(files, str) else files or []
            return web.json_response({"ok": True, "files": [{"id": f["id"], "title": f.get("title")} for f in listed]})
        return web.json_response({"ok": True, "channel": payload.get("channel", "C1"), "ts": ts})

    async def _upload(self, request: web.Request) -> web.Response:
        """The upload URL handed out by files.getUploadURLExternal: keeps the bytes."""
        self.uploads[request.match_info["file_id"]] = await request.read()
        return web.Response(text="OK")

    def completed_uploads(self) -> list[tuple[dict[str, Any], bytes]]:
        """(files.completeUploadExternal payload, uploaded bytes) for every finished upload."""
        done = []
        for call in self.messages("files.completeUploadExternal"):
            files = call.payload.get("files")
            for entry in json.loads(files) if isinstance(files, str) else files or []:
                done.append((call.payload, self.uploads.get(entry["id"], b"")))
        return done

    def start(self) -> SlackStub:
        ready = threading.Event()

        def serve() -> None:
            self._loop = asyncio.new_event_loop()
            app = web.Application()
            app.router.add_post("/api/{method}", self._handle)
            app.router.add_post("/upload/{file_id}", self._upload)
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
