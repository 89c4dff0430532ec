"""A local HTTP server that speaks the Slack Web API methods the alerter calls, and Socket Mode.

``apps.connections.open`` hands out a WebSocket URL on this server; once the
alerter connects, :meth:`SlackStub.press` sends it an ``interactive`` envelope
the way Slack does, and the acknowledgements come back into ``acks``.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from crisiswatch.runtime.broker import free_port

from .local_http import ThreadedServer


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
    failures: list[tuple[int, dict[str, str], str | None, str]] = field(default_factory=list)
    usergroups: dict[str, list[str]] = field(default_factory=dict)  # group id -> member ids (usergroups.users.list)
    refused_channels: dict[str, str] = field(default_factory=dict)  # channel id -> the error every call to it gets
    acks: list[str] = field(default_factory=list)
    sockets: list[web.WebSocketResponse] = field(default_factory=list)
    _server: ThreadedServer | None = None
    _counter: int = 0

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api/"

    def outage(self, seconds: float) -> None:
        """Answer every call with 503 for ``seconds`` from now."""
        self.down_until = time.monotonic() + seconds

    def fail_next(
        self,
        status: int,
        times: int = 1,
        headers: dict[str, str] | None = None,
        method: str | None = None,
        error: str = "stub_failure",
    ) -> None:
        """Answer the next ``times`` calls (of ``method`` only, if given) with HTTP ``status`` and Slack ``error``."""
        self.failures.extend([(status, headers or {}, method, error)] * times)

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
            status, headers, _, error = failure
            return web.json_response({"ok": False, "error": error}, status=status, headers=headers)
        if refusal := self.refused_channels.get(str(payload.get("channel", ""))):
            return web.json_response({"ok": False, "error": refusal})
        self._counter += 1
        ts = payload.get("ts") or f"{time.time():.6f}{self._counter}"
        self.calls.append(SlackCall(method, request.headers.get("Authorization"), payload, ts))
        if method == "apps.connections.open":
            return web.json_response({"ok": True, "url": f"ws://127.0.0.1:{self.port}/socket-mode"})
        if method == "usergroups.users.list":
            members = self.usergroups.get(str(payload.get("usergroup", "")))
            if members is None:
                return web.json_response({"ok": False, "error": "no_such_subteam"})
            return web.json_response({"ok": True, "users": members})
        if method == "chat.postEphemeral":
            return web.json_response({"ok": True, "message_ts": ts})
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

    async def _socket(self, request: web.Request) -> web.WebSocketResponse:
        """A Socket Mode connection: hello first, then envelopes out and acknowledgements in."""
        socket = web.WebSocketResponse()
        await socket.prepare(request)
        self.sockets.append(socket)
        await socket.send_json({"type": "hello", "num_connections": 1, "connection_info": {"app_id": "A0STUB"}})
        async for message in socket:
            if message.type == web.WSMsgType.TEXT:
                envelope_id = json.loads(message.data).get("envelope_id")
                if envelope_id:
                    self.acks.append(envelope_id)
        self.sockets.remove(socket)
        return socket

    def press(self, payload: dict[str, Any], envelope_id: str | None = None, retry_attempt: int = 0) -> str:
        """Send an ``interactive`` envelope carrying ``payload`` to every connected client; returns its id."""
        envelope_id = envelope_id or str(uuid.uuid4())
        envelope = {
            "envelope_id": envelope_id,
            "type": "interactive",
            "accepts_response_payload": False,
            "retry_attempt": retry_attempt,
            "retry_reason": "timeout" if retry_attempt else "",
            "payload": payload,
        }

        async def send() -> None:
            for socket in list(self.sockets):
                await socket.send_json(envelope)

        assert self._server is not None
        asyncio.run_coroutine_threadsafe(send(), self._server.loop).result(10)
        return envelope_id

    def start(self) -> SlackStub:
        app = web.Application()
        app.router.add_post("/api/{method}", self._handle)
        app.router.add_get("/api/{method}", self._handle)  # slack_sdk GETs some methods (usergroups.users.list)
        app.router.add_post("/upload/{file_id}", self._upload)
        app.router.add_get("/socket-mode", self._socket)
        self._server = ThreadedServer(self.port).start(app)
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()

    def messages(self, method: str = "chat.postMessage") -> list[SlackCall]:
        return [c for c in self.calls if c.method == method]
