"""Live sources: Bluesky's Jetstream (WebSocket) and Mastodon's streaming API (server-sent events).

One reader task per source reads frames into a bounded queue; one worker
thread takes them in batches through the :class:`Listener` (brand matching,
validation, dedup, dead letters) and waits for the broker's acknowledgement.
Only then does the position (cursor) move, and it is written to a file now and
then and on every stop. When the broker is slow the queue fills, the reader
stops reading, and the network's own flow control holds the rest: memory is
bounded by the queue, never by the backlog. A reconnection resumes from the
acknowledged position; what is read twice is dropped (by position, and by id).

What a frame means is decided in :mod:`crisiswatch.ingest.networks`.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import json
import logging
import os
import tempfile
import threading
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

import httpx

from crisiswatch.contracts.schemas import RejectionCode
from crisiswatch.ingest.brands import BrandCatalog
from crisiswatch.ingest.networks import (
    BLUESKY_POST,
    Frame,
    FrameKind,
    mastodon_page,
    parse_jetstream,
    parse_mastodon,
)
from crisiswatch.ingest.records import RejectedInput
from crisiswatch.runtime.health import HEARTBEAT_SECONDS, Health, Silence
from crisiswatch.runtime.retry import Backoff, retry_async

from . import metrics
from .service import Listener, Outcome
from .settings import ListenerSettings

log = logging.getLogger(__name__)

REMEMBERED_IDS = 2000
"""Ids of taken posts kept with the cursor: a restart still knows them (an overlap, a later delete)."""
DEAD_LETTER_PREFIX_BYTES = 4096
"""How much of a refused huge frame travels in its dead letter."""


class StreamEnded(Exception):
    """The server closed the stream, or it stayed silent past the limit."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Position:
    """What a source keeps across restarts: the last acknowledged cursor and the ids of its latest posts."""

    cursor: int | None = None
    taken: tuple[str, ...] = ()


class CursorFile:
    """The position of one source in a JSON file, replaced atomically (a crash leaves the old or the new one)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def load(self) -> Position:
        """The saved position; an empty one when there is none or it cannot be read (logged)."""
        try:
            saved = json.loads(self.path.read_text(encoding="utf-8"))
            cursor = saved.get("cursor")
            taken = tuple(str(key) for key in saved.get("taken", ()))
            return Position(cursor if isinstance(cursor, int) else None, taken)
        except FileNotFoundError:
            return Position()
        except (OSError, ValueError, AttributeError, TypeError) as error:
            log.warning(
                "the cursor file is unreadable; starting live", extra={"path": str(self.path), "error": str(error)}
            )
            return Position()

    def save(self, position: Position) -> None:
        """Write ``position`` to a temporary file beside the real one, sync it, and rename it over."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        payload = json.dumps({"cursor": position.cursor, "taken": list(position.taken)})
        handle, temporary = tempfile.mkstemp(prefix=f".{self.path.name}.", dir=self.path.parent)
        try:
            with os.fdopen(handle, "w", encoding="utf-8") as out:
                out.write(payload)
                out.flush()
                os.fsync(out.fileno())
            Path(temporary).replace(self.path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise


MAX_AHEAD_S = 300.0
"""A position dated further ahead of this clock is refused: it would make every later frame look replayed."""


class Placement(enum.StrEnum):
    """Where a frame falls in the stream, from its position."""

    NEW = "new"
    REPLAYED = "replayed"
    """Read already, before a reconnection: dropped."""
    OUT_OF_ORDER = "out_of_order"
    """Behind the furthest position read: counted, and still taken."""
    AHEAD = "ahead"
    """Dated beyond this clock's future: refused, and the position does not move."""


@dataclass
class ReadPosition:
    """Where reading stands in one stream, and where each frame falls (pure; the pump keeps one)."""

    ordered: bool = True
    """The stream resends in position order from a cursor (Jetstream): a replay is known by its position.
    Otherwise (Mastodon, where federation delivers late statuses with older ids) replays are dropped by id only."""
    max_ahead_s: float = MAX_AHEAD_S
    read_high: int | None = None
    """The furthest position read."""
    replaying_until: int | None = None
    """After a reconnection: frames at or before this were read already."""

    def resumed(self, acked: int | None) -> None:
        """A restart from the saved ``acked`` position: frames before it were taken (at it: judged by id)."""
        self.read_high = None if acked is None else acked - 1

    def reconnected(self) -> None:
        """A connection opened: what it sends up to the furthest position read is a replay."""
        self.replaying_until = self.read_high

    def place(self, cursor: int | None, clock_s: float | None, now_s: float) -> Placement:
        """Judge a frame at ``cursor`` (network time ``clock_s``) and move the position past it."""
        if cursor is None:
            return Placement.NEW
        if self.ordered and clock_s is not None and clock_s > now_s + self.max_ahead_s:
            return Placement.AHEAD
        if self.ordered and self.replaying_until is not None and cursor <= self.replaying_until:
            return Placement.REPLAYED
        self.replaying_until = None
        behind = self.read_high is not None and cursor < self.read_high
        self.read_high = cursor if self.read_high is None else max(self.read_high, cursor)
        return Placement.OUT_OF_ORDER if behind else Placement.NEW


@dataclass
class _Read:
    """A frame read and waiting for the broker, with its payload for a dead letter."""

    frame: Frame
    payload: bytes | str


@dataclass
class StreamPump:
    """Frames from a connection to the broker: a bounded queue, one worker thread, the position after each ack."""

    listener: Listener
    catalog: BrandCatalog
    source: str
    cursor_file: CursorFile
    health: Health
    queue_size: int = 1000
    batch: int = 500
    silent_after_s: float = 120.0
    cursor_save_s: float = 1.0
    ordered: bool = True
    """See :attr:`ReadPosition.ordered`."""
    clock: Callable[[], float] = time.time
    acked: int | None = field(default=None, init=False)
    """The furthest position the broker acknowledged."""
    frames_read: int = field(default=0, init=False)
    network_time_s: float | None = field(default=None, init=False)
    """The network's time of the last acknowledged frame that told it."""

    def __post_init__(self) -> None:
        self.queue: asyncio.Queue[_Read] = asyncio.Queue(self.queue_size)
        self.silence = Silence(f"the {self.source} stream", self.silent_after_s)
        self.health.checks.append(self.silence)
        self.taken: OrderedDict[str, None] = OrderedDict()
        """Dedup keys (``brand/post-id``) of the latest posts taken; saved with the cursor."""
        self.taken_ids: OrderedDict[str, None] = OrderedDict()
        self.busy_since: float | None = None
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"{self.source}-producer")
        self._saved_at = 0.0
        self._saved: Position | None = None
        self._lock = threading.Lock()
        saved = self.cursor_file.load()
        self.acked = saved.cursor
        self.position = ReadPosition(self.ordered)
        self.position.resumed(saved.cursor)
        for key in saved.taken:
            self._remember(key)
            self.listener.recent.first_time(key)
        metrics.STREAM_QUEUE_CAPACITY.labels(self.source).set(self.queue_size)
        metrics.STREAM_QUEUE_DEPTH.labels(self.source).set_function(self.queue.qsize)
        metrics.STREAM_SILENCE.labels(self.source).set_function(self.silence.silent_s)
        metrics.STREAM_LAG.labels(self.source).set_function(self._lag_s)
        if saved.cursor is not None:
            log.info("resuming from the acknowledged position", extra={"source": self.source, "cursor": saved.cursor})

    def _lag_s(self) -> float:
        return 0.0 if self.network_time_s is None else max(0.0, self.clock() - self.network_time_s)

    def _remember(self, key: str) -> None:
        for remembered, value in ((self.taken, key), (self.taken_ids, key.partition("/")[2])):
            remembered[value] = None
            remembered.move_to_end(value)
            while len(remembered) > REMEMBERED_IDS:
                remembered.popitem(last=False)

    def _was_taken(self, post_id: str) -> bool:
        return post_id in self.taken_ids

    def resume_from(self) -> int | None:
        """Where a (re)connection starts: the acknowledged position; frames read since then are dropped."""
        return self.acked

    def connected(self) -> None:
        """A connection opened: what it sends up to the furthest position read is a replay."""
        self.position.reconnected()
        log.info("connected", extra={"source": self.source, "cursor": self.acked})

    async def offer(self, frame: Frame, payload: bytes | str) -> None:
        """Queue one frame for the broker; waits (and so stops the reading) while the queue is full."""
        self.frames_read += 1
        self.silence.heard()
        placement = self.position.place(frame.cursor, frame.clock_s, self.clock())
        if placement is Placement.REPLAYED:
            metrics.STREAM_FRAMES.labels(self.source, "replayed").inc()
            return
        if placement is Placement.OUT_OF_ORDER:
            metrics.STREAM_OUT_OF_ORDER.labels(self.source).inc()
        if placement is Placement.AHEAD:
            ahead = f"{(frame.clock_s or 0) - self.clock():.0f} s"
            reason = f"position {frame.cursor} is dated {ahead} ahead of this clock; the position does not move"
            frame = Frame.refused(reason, RejectionCode.TIME_OUT_OF_RANGE)
        if frame.kind is FrameKind.REFUSED and frame.code is RejectionCode.TOO_LARGE:
            payload = payload[:DEAD_LETTER_PREFIX_BYTES]
        await self.queue.put(_Read(frame, payload))

    async def drain(self) -> None:
        """Take queued frames in batches through the listener on the worker thread, until cancelled."""
        loop = asyncio.get_running_loop()
        while True:
            batch = [await self.queue.get()]
            while len(batch) < self.batch and not self.queue.empty():
                batch.append(self.queue.get_nowait())
            self.busy_since = time.monotonic()
            try:
                await loop.run_in_executor(self._worker, self._handle, batch)
            finally:
                self.busy_since = None

    def _handle(self, batch: list[_Read]) -> None:
        """Produce a batch and wait for the broker; then the position moves past it."""
        for read in batch:
            try:
                self._take(read)
            except Exception as error:  # one frame never stops the source
                log.exception("a frame could not be handled; dead-lettering it", extra={"source": self.source})
                self._refuse(
                    read, f"the listener failed on this frame: {str(error)[:200]}", RejectionCode.INVALID_FIELD
                )
        if not self.listener.flush():
            return
        self.health.broker_answered()
        with self._lock:
            cursors = [read.frame.cursor for read in batch if read.frame.cursor is not None]
            if cursors:
                self.acked = max(cursors) if self.acked is None else max(self.acked, *cursors)
            clocks = [read.frame.clock_s for read in batch if read.frame.clock_s is not None]
            if clocks:
                self.network_time_s = max(clocks)
        if time.monotonic() - self._saved_at >= self.cursor_save_s:
            self.save()

    def save(self) -> None:
        """Write the acknowledged position (when it changed)."""
        with self._lock:
            position = Position(self.acked, tuple(self.taken))
        if position != self._saved:
            self.cursor_file.save(position)
            self._saved = position
        self._saved_at = time.monotonic()

    def _refuse(self, read: _Read, reason: str, code: RejectionCode) -> None:
        self.listener.reject(read.payload, self.source, RejectedInput(reason, code))
        metrics.STREAM_REFUSED.labels(self.source, code.value).inc()
        metrics.STREAM_FRAMES.labels(self.source, "refused").inc()

    def _take(self, read: _Read) -> None:
        frame = read.frame
        if frame.kind is FrameKind.REFUSED:
            self._refuse(read, frame.reason, frame.code or RejectionCode.INVALID_FIELD)
            return
        if frame.kind is FrameKind.SKIP:
            metrics.STREAM_FRAMES.labels(self.source, "skipped").inc()
            return
        if frame.kind in (FrameKind.DELETE, FrameKind.EDIT) and frame.post_id and self._was_taken(frame.post_id):
            deleted = frame.kind is FrameKind.DELETE
            what = "deleted" if deleted else "edited"
            reason = f"post {frame.post_id} was {what} on the network after it was taken; the mention stands as taken"
            self._refuse(read, reason, RejectionCode.DELETED if deleted else RejectionCode.EDITED)
            return
        if frame.kind is FrameKind.DELETE or frame.post is None:
            metrics.STREAM_FRAMES.labels(self.source, "delete").inc()
            return
        post = frame.post
        brands = self.catalog.match(post.match_text())
        if not brands:
            metrics.STREAM_FRAMES.labels(self.source, "unmatched").inc()
            return
        metrics.STREAM_FRAMES.labels(self.source, "matched" if frame.kind is FrameKind.POST else "edit").inc()
        for brand in brands:
            outcome, _ = self.listener.accept(post.record(brand), self.source)
            if outcome is not Outcome.REJECTED:
                self._remember(f"{brand}/{post.id}")

    async def beat(self) -> None:
        """Beat the health's heartbeat from the event loop, unless one batch has been in hand too long."""
        while True:
            self.health.beat_unless_stuck(self.busy_since)
            await asyncio.sleep(HEARTBEAT_SECONDS)

    def close(self, timeout_s: float) -> None:
        """Let the batch in hand finish, confirm what was sent, and write the position."""
        self._worker.shutdown(wait=True)
        if not self.listener.flush(timeout_s):
            log.warning(
                "the broker did not acknowledge the last records before shutdown", extra={"source": self.source}
            )
        self.save()


Session = Callable[[StreamPump], Awaitable[None]]
_DROPPED = (OSError, TimeoutError, StreamEnded)


async def run_source(
    pump: StreamPump,
    session: Session,
    stopping: asyncio.Event,
    backoff: Backoff,
    errors: tuple[type[BaseException], ...] = (),
) -> None:
    """Keep ``session`` connected until ``stopping``; a failed connection is retried with ``backoff``.

    A connection that delivered frames and then dropped reconnects at once
    (from the acknowledged position) and starts the backoff afresh; one that
    fails before its first frame waits longer each time.
    """
    retried = (*_DROPPED, *errors)

    def reason_of(error: BaseException) -> str:
        if isinstance(error, StreamEnded):
            return error.reason
        return "refused" if isinstance(error, ConnectionRefusedError) else "error"

    async def attempt() -> None:
        before = pump.frames_read
        try:
            await session(pump)
        except retried as error:
            if pump.frames_read > before:
                metrics.STREAM_RECONNECTS.labels(pump.source, reason_of(error)).inc()
                log.warning("the stream dropped; reconnecting", extra={"source": pump.source, "error": str(error)})
                return
            raise
        raise StreamEnded("closed")

    def failed(error: BaseException) -> None:
        metrics.STREAM_RECONNECTS.labels(pump.source, reason_of(error)).inc()

    while not stopping.is_set():
        with contextlib.suppress(*retried):
            await retry_async(
                attempt,
                retry_on=retried,
                backoff=backoff,
                give_up=stopping.is_set,
                on_failure=failed,
                log=log,
                message="cannot reach the stream; retrying",
                extra={"source": pump.source},
            )


def jetstream_url(base: str, cursor: int | None) -> str:
    """The subscription URL: posts only, from ``cursor`` on (live when None)."""
    query = [("wantedCollections", BLUESKY_POST)] + ([("cursor", str(cursor))] if cursor is not None else [])
    return f"{base}{'&' if '?' in base else '?'}{urlencode(query)}"


def jetstream_session(settings: ListenerSettings, url: str) -> Session:
    """One Jetstream connection from the acknowledged cursor; returns when it drops (raising why)."""
    import websockets

    async def session(pump: StreamPump) -> None:
        async with websockets.connect(
            jetstream_url(url, pump.resume_from()),
            max_size=settings.stream_max_message_bytes,
            max_queue=16,
            open_timeout=30,
            # No keepalive pings: while the broker holds the reader back, a pong waits behind unread frames
            # and the connection would be failed for it. A dead connection shows as silence instead.
            ping_interval=None,
            user_agent_header="crisiswatch-listener",
        ) as connection:
            pump.connected()
            while True:
                try:
                    async with asyncio.timeout(settings.stream_silent_after_s):
                        message = await connection.recv()
                except TimeoutError:
                    raise StreamEnded("silent") from None
                except websockets.ConnectionClosedOK:
                    raise StreamEnded("closed") from None
                await pump.offer(parse_jetstream(message, settings.stream_max_frame_bytes), message)

    return session


@dataclass(frozen=True)
class MastodonTimeline:
    """Where a Mastodon timeline streams and where its pages are read after a gap."""

    instance: str
    timeline: str = "public"

    def stream(self) -> tuple[str, dict[str, str]]:
        """The streaming endpoint and its parameters."""
        if self.timeline.startswith("hashtag:"):
            return f"{self.instance}/api/v1/streaming/hashtag", {"tag": self.timeline.partition(":")[2]}
        if self.timeline == "public:local":
            return f"{self.instance}/api/v1/streaming/public/local", {}
        return f"{self.instance}/api/v1/streaming/public", {}

    def pages(self) -> tuple[str, dict[str, str]]:
        """The timeline's REST endpoint and its parameters."""
        if self.timeline.startswith("hashtag:"):
            return f"{self.instance}/api/v1/timelines/tag/{self.timeline.partition(':')[2]}", {}
        local = {"local": "true"} if self.timeline == "public:local" else {}
        return f"{self.instance}/api/v1/timelines/public", local


def mastodon_source_name(instance: str) -> str:
    """The source label of a Mastodon server: ``mastodon:HOST``."""
    return f"mastodon:{urlsplit(instance).hostname or instance}"[:64]


def mastodon_session(settings: ListenerSettings, timeline: MastodonTimeline) -> Session:
    """Read the pages missed since the acknowledged status, then the stream; returns when it drops."""
    import httpx
    from httpx_sse import aconnect_sse

    token = settings.mastodon_token.get_secret_value() if settings.mastodon_token else None
    headers = {"User-Agent": "crisiswatch-listener"} | ({"Authorization": f"Bearer {token}"} if token else {})
    timeout = httpx.Timeout(30.0, read=settings.stream_silent_after_s)

    async def backfill(client: httpx.AsyncClient, pump: StreamPump) -> None:
        since = pump.resume_from()
        url, params = timeline.pages()
        for _ in range(settings.mastodon_backfill_pages if since is not None else 0):
            response = await client.get(url, params={**params, "min_id": str(since), "limit": "40"})
            response.raise_for_status()
            frames = mastodon_page(response.content)
            for frame in frames:
                await pump.offer(frame, json.dumps({"backfill": str(url), "cursor": frame.cursor}))
            cursors = [frame.cursor for frame in frames if frame.cursor is not None]
            if not cursors:
                return
            since = max(cursors)

    async def session(pump: StreamPump) -> None:
        async with httpx.AsyncClient(headers=headers, timeout=timeout, follow_redirects=True) as client:
            pump.connected()
            await backfill(client, pump)
            url, params = timeline.stream()
            async with aconnect_sse(client, "GET", url, params=params) as source:
                source.response.raise_for_status()
                source.response.stream = BoundedLines(source.response.stream, settings.stream_max_message_bytes)
                try:
                    async for event in source.aiter_sse():
                        frame = parse_mastodon(event.event, event.data, settings.stream_max_frame_bytes)
                        await pump.offer(frame, event.data)
                except httpx.ReadTimeout:
                    raise StreamEnded("silent") from None
            raise StreamEnded("closed")

    return session


class BoundedLines(httpx.AsyncByteStream):
    """A response body that ends the stream when one line outgrows ``limit`` bytes, before it is held whole.

    httpx-sse keeps an unfinished line in memory until its newline comes; a
    server that never sends one would grow it without bound. The line is
    refused (the connection ends, reason ``too_large``, and reconnects)
    instead.
    """

    def __init__(self, inner: httpx.AsyncByteStream | Any, limit: int) -> None:
        self.inner = inner
        self.limit = limit

    async def __aiter__(self) -> AsyncIterator[bytes]:
        """The body's chunks, checked as they pass."""
        pending = 0
        async for chunk in self.inner:
            newline = max(chunk.rfind(b"\n"), chunk.rfind(b"\r"))
            pending = len(chunk) - newline - 1 if newline >= 0 else pending + len(chunk)
            if pending > self.limit:
                raise StreamEnded("too_large")
            yield chunk

    async def aclose(self) -> None:
        """Close the body underneath."""
        if hasattr(self.inner, "aclose"):
            await self.inner.aclose()


def mastodon_errors() -> tuple[type[BaseException], ...]:
    """What a Mastodon connection fails with."""
    import httpx
    from httpx_sse import SSEError

    return (httpx.HTTPError, SSEError)


def websocket_errors() -> tuple[type[BaseException], ...]:
    """What a WebSocket connection fails with."""
    import websockets

    return (websockets.WebSocketException,)


async def serve_source(
    pump: StreamPump,
    session: Session,
    errors: Iterable[type[BaseException]],
    settings: ListenerSettings,
    stop: Callable[[], bool],
) -> None:
    """Run reader, worker and heartbeat until ``stop()``; then confirm, save the position and return."""
    stopping = asyncio.Event()
    backoff = Backoff(first_s=0.5, max_s=settings.stream_backoff_max_s)
    tasks = [
        asyncio.create_task(run_source(pump, session, stopping, backoff, tuple(errors)), name="reader"),
        asyncio.create_task(pump.drain(), name="worker"),
        asyncio.create_task(pump.beat(), name="heartbeat"),
    ]
    try:
        while not stop():
            done = [task for task in tasks if task.done()]
            for task in done:
                task.result()  # a task that ended on its own failed: raise its error
            await asyncio.sleep(0.2)
    finally:
        stopping.set()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await asyncio.to_thread(pump.close, settings.ack_timeout_s)
