"""Recorded frames served as the networks serve them: a Jetstream WebSocket server and a Mastodon SSE server.

A recording is a text file with one frame per line, kept verbatim (so it may
hold malformed or huge frames on purpose):

- ``bluesky``: each line is one Jetstream message (a JSON event with ``time_us``);
- ``mastodon``: each line is ``{"event": "update", "data": "<Status JSON>"}``
  (``update``, ``status.update``, ``delete``...); any other line is sent as
  the ``data`` of an ``update``.

The server publishes the frames at ``rate`` per second (all at once when 0),
starting when the first client connects, and keeps publishing whether or not
anyone listens, as a network does. A Jetstream client that connects with
``?cursor=T`` gets every published frame from ``time_us`` T on; a Mastodon
client gets what is published while it is connected, and the missed statuses
from ``/api/v1/timelines/public?min_id=ID`` (and ``/timelines/tag/NAME``).
``disconnect_after`` drops the first connections abruptly after that many
frames each: a network that goes away mid-stream.

``crisiswatch listener frames bluesky FILE`` runs one; tests start it in a thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import html
import json
import logging
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from aiohttp import web

log = logging.getLogger(__name__)

NETWORKS = ("bluesky", "mastodon")


def read_recording(path: Path) -> list[str]:
    """The frames of a recording, one per non-blank line, verbatim."""
    with path.open(encoding="utf-8", errors="surrogateescape") as handle:
        return [line.rstrip("\r\n") for line in handle if line.strip()]


def _time_us(frame: str) -> int | None:
    try:
        value = json.loads(frame).get("time_us")
    except (ValueError, AttributeError, RecursionError):
        return None
    return value if isinstance(value, int) else None


def _event(line: str) -> tuple[str, str]:
    try:
        parsed = json.loads(line)
    except (ValueError, RecursionError):
        return "update", line
    if isinstance(parsed, dict) and isinstance(parsed.get("event"), str) and isinstance(parsed.get("data"), str):
        return parsed["event"], parsed["data"]
    return "update", line


class FrameServer:
    """Serves one recording as ``network`` does, on ``host:port`` (0 picks a free port)."""

    def __init__(
        self,
        network: str,
        frames: Iterable[str],
        rate: float = 0.0,
        disconnect_after: Iterable[int] = (),
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        if network not in NETWORKS:
            raise ValueError(f"network must be one of {NETWORKS}, got {network!r}")
        self.network = network
        self.frames = list(frames)
        self.rate = rate
        self.disconnect_after = list(disconnect_after)
        self.host = host
        self.port = port
        self.published = 0
        """How many frames are out (a client may still be reading them)."""
        self.sent = 0
        """Frames written to clients, over every connection."""
        self.connections = 0
        self._changed: asyncio.Condition | None = None
        self._publisher: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._stopped: asyncio.Event | None = None
        self.ready = threading.Event()

    @property
    def url(self) -> str:
        """Where a listener points: the Jetstream subscription URL, or the Mastodon server."""
        if self.network == "bluesky":
            return f"ws://{self.host}:{self.port}/subscribe"
        return f"http://{self.host}:{self.port}"

    async def _publish(self) -> None:
        assert self._changed is not None
        while self.published < len(self.frames):
            step = len(self.frames) if self.rate <= 0 else 1
            async with self._changed:
                self.published = min(len(self.frames), self.published + step)
                self._changed.notify_all()
            if self.rate > 0:
                await asyncio.sleep(1 / self.rate)

    def _connected(self) -> int | None:
        """Count a connection and start publishing; returns after how many frames to drop it (None: never)."""
        number = self.connections
        self.connections += 1
        if self._publisher is None:
            self._publisher = asyncio.get_running_loop().create_task(self._publish())
        return self.disconnect_after[number] if number < len(self.disconnect_after) else None

    async def _next(self, index: int) -> None:
        """Wait until frame ``index`` is published."""
        assert self._changed is not None
        async with self._changed:
            await self._changed.wait_for(lambda: self.published > index)

    async def _jetstream(self, connection: Any) -> None:
        import websockets

        query = parse_qs(urlsplit(connection.request.path).query)
        cursor = int(query["cursor"][0]) if query.get("cursor", [""])[0].isdigit() else None
        index = 0
        if cursor is not None:
            times = [_time_us(frame) for frame in self.frames]
            index = next((i for i, t in enumerate(times) if t is not None and t >= cursor), len(self.frames))
        drop_after = self._connected()
        sent = 0
        while index < len(self.frames):
            if drop_after is not None and sent >= drop_after:
                connection.transport.abort()
                return
            await self._next(index)
            try:
                await connection.send(self.frames[index])
            except websockets.ConnectionClosed:
                return
            index, sent, self.sent = index + 1, sent + 1, self.sent + 1
        await connection.wait_closed()

    def _statuses(self) -> list[dict[str, Any]]:
        """The published statuses (``update`` events that parse), oldest first."""
        statuses = []
        for line in self.frames[: self.published]:
            event, data = _event(line)
            if event != "update":
                continue
            with contextlib.suppress(ValueError, RecursionError):
                status = json.loads(data)
                if isinstance(status, dict) and str(status.get("id", "")).isdigit():
                    statuses.append(status)
        return statuses

    async def _timeline(self, request: web.Request) -> web.Response:
        min_id = int(request.query.get("min_id", "0") or 0) if request.query.get("min_id", "0").isdigit() else 0
        limit = min(int(request.query.get("limit", "20")), 40) if request.query.get("limit", "20").isdigit() else 20
        newer = sorted((s for s in self._statuses() if int(s["id"]) > min_id), key=lambda s: int(s["id"]))
        return web.json_response(list(reversed(newer[:limit])))

    async def _stream(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-store"})
        await response.prepare(request)
        index = self.published
        drop_after = self._connected()
        sent = 0
        await response.write(b":)\n\n")
        while True:
            if drop_after is not None and sent >= drop_after:
                if request.transport is not None:
                    request.transport.abort()
                return response
            try:
                await asyncio.wait_for(self._next(index), timeout=5.0)
            except TimeoutError:
                await response.write(b":thump\n\n")
                continue
            event, data = _event(self.frames[index])
            lines = "".join(f"data: {part}\n" for part in data.split("\n"))
            await response.write(f"event: {event}\n{lines}\n".encode("utf-8", "surrogateescape"))
            index, sent, self.sent = index + 1, sent + 1, self.sent + 1

    async def serve(self) -> None:
        """Serve until :meth:`stop` (or cancellation)."""
        self._changed = asyncio.Condition()
        self._stopped = asyncio.Event()
        self._loop = asyncio.get_running_loop()
        if self.network == "bluesky":
            import websockets

            async with websockets.serve(self._jetstream, self.host, self.port, max_size=None) as server:
                self.port = next(iter(server.sockets)).getsockname()[1]
                self.ready.set()
                await self._stopped.wait()
            return
        app = web.Application()
        for path in ("/api/v1/streaming/public", "/api/v1/streaming/public/local", "/api/v1/streaming/hashtag"):
            app.router.add_get(path, self._stream)
        app.router.add_get("/api/v1/timelines/public", self._timeline)
        app.router.add_get("/api/v1/timelines/tag/{tag}", self._timeline)
        runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=0.5)
        await runner.setup()
        site = web.TCPSite(runner, self.host, self.port)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.ready.set()
        try:
            await self._stopped.wait()
        finally:
            await runner.cleanup()

    def start(self) -> FrameServer:
        """Serve on a daemon thread; returns once it listens."""
        self._thread = threading.Thread(target=lambda: asyncio.run(self.serve()), name="frame-server", daemon=True)
        self._thread.start()
        if not self.ready.wait(10):
            raise RuntimeError("the frame server did not start")
        return self

    def stop(self) -> None:
        """Stop serving (from another thread)."""
        if self._loop is not None and self._stopped is not None:
            self._loop.call_soon_threadsafe(self._stopped.set)
        if self._thread is not None:
            self._thread.join(10)


def scenario_frames(records: Iterable[dict[str, Any]], network: str) -> Iterable[str]:
    """Recorded scenario mentions as the network's frames (the demo's storm, heard as a live stream)."""
    from datetime import datetime

    previous_us = 0
    for number, record in enumerate(records, start=1):
        moment = datetime.fromisoformat(str(record["created_at"]))
        previous_us = max(previous_us + 1, int(moment.timestamp() * 1_000_000))
        if network == "bluesky":
            event = {
                "did": f"did:plc:{str(record.get('author_handle') or 'demo')[:24]}",
                "time_us": previous_us,
                "kind": "commit",
                "commit": {
                    "rev": f"r{number}",
                    "operation": "create",
                    "collection": "app.bsky.feed.post",
                    "rkey": f"demo{number}",
                    "record": {
                        "$type": "app.bsky.feed.post",
                        "text": record["text"],
                        "createdAt": moment.isoformat(),
                        "langs": [record["lang"]] if record.get("lang") else [],
                    },
                    "cid": f"demo{number}",
                },
            }
            yield json.dumps(event, ensure_ascii=False)
        else:
            status = {
                "id": str(int(moment.timestamp() * 1000) * 65536 + number % 65536),
                "created_at": moment.isoformat(),
                "content": f"<p>{html.escape(str(record['text']))}</p>",
                "language": record.get("lang"),
                "url": f"https://mastodon.example/@demo/{number}",
                "account": {"acct": str(record.get("author_handle") or "demo"), "followers_count": 0},
                "reblog": None,
            }
            yield json.dumps({"event": "update", "data": json.dumps(status, ensure_ascii=False)}, ensure_ascii=False)
