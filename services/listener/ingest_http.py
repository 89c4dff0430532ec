"""HTTP ingest: ``POST /v1/mentions`` takes a JSON batch of mentions from a client named by its bearer token.

What can be refused without the body is refused before it is read; the body
must arrive in time; the records are produced on one worker thread, so a
slow broker never stalls the event loop that answers health checks.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import math
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from crisiswatch.contracts.schemas import RejectionCode
from crisiswatch.ingest.records import MentionInput, load_json
from crisiswatch.runtime.health import HEARTBEAT_SECONDS, Health

from . import metrics
from .ratelimit import TokenBuckets
from .service import Listener, Outcome
from .settings import ListenerSettings

log = logging.getLogger(__name__)

ANONYMOUS = "anonymous"
"""The client name of requests served without a token (LISTENER_INGEST_ALLOW_ANONYMOUS)."""
CHALLENGE = 'Bearer realm="crisiswatch-ingest"'
MEDIA_TYPES = ("application/json", "application/octet-stream")
"""The body's accepted media types; aiohttp reads a request without Content-Type as application/octet-stream."""
BUSY_RETRY_AFTER_S = 1
BROKER_RETRY_AFTER_S = 5
_LAST_FLUSH_S = 0.1

_ERROR = {
    "description": "",
    "content": {
        "application/json": {
            "schema": {
                "type": "object",
                "properties": {"error": {"type": "string"}},
                "required": ["error"],
            }
        }
    },
}


def _error(description: str, headers: dict[str, object] | None = None) -> dict[str, object]:
    return {**_ERROR, "description": description, **({"headers": headers} if headers else {})}


_COUNTS = {
    "type": "object",
    "properties": {
        "accepted": {"type": "integer", "minimum": 0},
        "duplicate": {"type": "integer", "minimum": 0},
        "rejected": {"type": "integer", "minimum": 0},
        "rejections": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "index": {"type": "integer", "minimum": 0},
                    "reason": {"type": "string"},
                    "code": {"type": "string", "enum": [code.value for code in RejectionCode]},
                },
                "required": ["index", "reason", "code"],
            },
        },
    },
    "required": ["accepted", "duplicate", "rejected", "rejections"],
}
_RETRY_AFTER = {
    "Retry-After": {
        "description": "Seconds to wait before sending again",
        "required": True,
        "schema": {"type": "integer", "minimum": 1},
    }
}
_CHALLENGE = {
    "WWW-Authenticate": {
        "description": "The scheme to authenticate with",
        "required": True,
        "schema": {"type": "string", "const": CHALLENGE},
    }
}


def mention_schema(brands: Sequence[str]) -> dict[str, Any]:
    """The JSON schema of one record of a batch: :class:`MentionInput`'s, with ``brand`` one of ``brands``."""
    schema = MentionInput.model_json_schema(ref_template="#/components/schemas/{model}")
    brand = schema["properties"]["brand"]
    brand["anyOf"] = [{"type": "string", "enum": list(brands)}, {"type": "null"}]
    return schema


def openapi(brands: Sequence[str]) -> dict[str, Any]:
    """The ingest API's OpenAPI 3.1 document; a mention is described by :func:`mention_schema`.

    A batch may hold anything: records are judged one by one and a bad one is
    answered in the 202's ``rejections``, not by refusing the batch, so the
    schema says so beside the mention's own.
    """
    record = {
        "anyOf": [
            {"$ref": "#/components/schemas/Mention"},
            {
                "not": {"$ref": "#/components/schemas/Mention"},
                "description": "Anything else is rejected with its reason; the rest of the batch still lands.",
            },
        ]
    }
    batch = {"type": "array", "items": record}
    body = {"oneOf": [batch, {"type": "object", "properties": {"mentions": batch}, "required": ["mentions"]}]}
    return {
        "openapi": "3.1.0",
        "info": {"title": "crisiswatch listener ingest", "version": "1"},
        "paths": {
            "/v1/mentions": {
                "post": {
                    "summary": "Submit a batch of mentions",
                    "description": (
                        "Each record is accepted, recognised as a duplicate, or rejected with its reason. "
                        "Any answer but 202 means nothing of the batch counts as ingested: send it again "
                        "(after Retry-After where given); records that did land are recognised by id."
                    ),
                    "security": [{"bearer": []}],
                    "requestBody": {
                        "required": True,
                        "description": (
                            "A JSON batch: an array of mentions or an object with a `mentions` array. "
                            "A body without Content-Type, or labelled application/octet-stream, is read as JSON too; "
                            "any other media type is refused with 415."
                        ),
                        "content": {"application/json": {"schema": body}},
                    },
                    "responses": {
                        "202": {
                            "description": "Counts of accepted, duplicate and rejected records, with reasons",
                            "content": {"application/json": {"schema": _COUNTS}},
                        },
                        "400": _error("The body is not a JSON batch"),
                        "401": _error("Missing or wrong bearer token", _CHALLENGE),
                        "408": _error(
                            "The body did not arrive within the listener's body timeout; the connection closes",
                            _RETRY_AFTER,
                        ),
                        "413": _error("Body or batch too large"),
                        "415": _error("The body is labelled neither application/json nor application/octet-stream"),
                        "429": _error("Over the client's record rate; checked before the body is read", _RETRY_AFTER),
                        "500": _error("An unexpected error in the listener"),
                        "503": _error(
                            "The listener is handling as many requests as it takes, or the broker did not "
                            "acknowledge the batch in time",
                            _RETRY_AFTER,
                        ),
                    },
                }
            },
            "/healthz": {
                "get": {
                    "summary": "Liveness",
                    "responses": {
                        "200": {
                            "description": "ok",
                            "content": {
                                "application/json": {
                                    "schema": {
                                        "type": "object",
                                        "properties": {"status": {"type": "string", "enum": ["ok"]}},
                                    }
                                }
                            },
                        }
                    },
                }
            },
        },
        "components": {
            "schemas": {"Mention": mention_schema(brands)},
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True)
class BatchReport:
    """What became of one batch: counts by outcome, the rejections, and whether the broker has all of it."""

    counts: dict[str, int]
    rejections: list[dict[str, object]]
    delivered: bool


class ListenerWorker:
    """Runs batches through the one :class:`Listener` on one thread, each whole, in the order they were submitted.

    The listener is not thread-safe, and kafka-python's ``send`` can block
    for tens of seconds (replacing a producer after the broker went away,
    waiting for metadata or buffer space), so it never runs on the event
    loop. A batch's records are sent and flushed in one job: its answer
    speaks for its own records, and no batch overtakes an earlier one.
    """

    def __init__(self, listener: Listener, health: Health) -> None:
        self.listener = listener
        self.health = health
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="listener-producer")

    async def ingest(self, batch: list[object], source: str, deadline: float) -> BatchReport:
        """Handle ``batch``; ``delivered`` is False unless the broker acknowledged all of it by ``deadline``.

        ``deadline`` is a :func:`time.monotonic` value. A batch still queued
        then never runs; a running one stops sending, and what it sent stays
        remembered by the deduplication only if acknowledged, so the client's
        retry is told the truth either way.
        """
        job = self._thread.submit(self._run, batch, source, deadline)
        try:
            return await asyncio.wait_for(asyncio.wrap_future(job), max(deadline - time.monotonic(), 0.0))
        except TimeoutError:
            return BatchReport({}, [], delivered=False)

    def _run(self, batch: list[object], source: str, deadline: float) -> BatchReport:
        counts = {outcome.value: 0 for outcome in Outcome}
        rejections: list[dict[str, object]] = []
        for index, item in enumerate(batch):
            if time.monotonic() > deadline:
                break
            outcome, rejection = self.listener.accept(item if isinstance(item, dict) else _item_text(item), source)
            counts[outcome.value] += 1
            if rejection is not None:
                rejections.append({"index": index, "reason": rejection.reason, "code": rejection.code})
        handled = sum(counts.values()) == len(batch)
        acknowledged = self.listener.flush(max(deadline - time.monotonic(), _LAST_FLUSH_S))
        if acknowledged:
            self.health.broker_answered()
        return BatchReport(counts, rejections, delivered=handled and acknowledged)

    async def close(self, timeout_s: float) -> None:
        """Let the queued batches finish, confirm whatever is left, and stop the thread."""
        if not await asyncio.wrap_future(self._thread.submit(self.listener.flush, timeout_s)):
            log.warning(
                "the broker did not acknowledge the last records before shutdown", extra={"timeout_s": timeout_s}
            )
        self._thread.shutdown(wait=False)


def _problem(status: int, detail: str, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response({"error": detail}, status=status, headers=headers)


def _refused(client: str, reason: str, status: int, detail: str, retry_after_s: float) -> web.Response:
    metrics.INGEST_REFUSED.labels(client, reason).inc()
    return _problem(status, detail, {"Retry-After": str(max(1, math.ceil(retry_after_s)))})


def build_app(
    listener: Listener,
    settings: ListenerSettings,
    clients: Mapping[str, str] | None,
    limits: TokenBuckets | None = None,
    health: Health | None = None,
) -> web.Application:
    """The ingest web application; every record is accepted or dead-lettered with its reason.

    ``clients`` maps each client's name to its bearer token (None serves
    anonymous ingest). Everything a request can be refused for without its
    body is checked first: token, media type, declared size, the cap of
    ``max_concurrent_requests`` in flight (503), and the client's rate (429,
    keyed on the client's name, or its address when anonymous). The body
    must arrive within ``body_timeout_s`` (408).

    202 means the broker acknowledged every record of the batch. When it does
    not within ``ack_timeout_s`` the answer is 503 with ``Retry-After``: the
    client sends the batch again (records that did land are deduplicated by
    id). Every refusal ingested nothing, so the client can send the same
    batch again.

    ``health`` gets the event loop's heartbeat (a loop blocked by anything
    fails ``/livez`` on the metrics port) and each acknowledged batch.
    """
    health = health or Health()
    worker = ListenerWorker(listener, health)
    expected = {name: f"Bearer {token}".encode() for name, token in (clients or {}).items()}
    in_flight = 0

    def authenticate(request: web.Request) -> str | None:
        """The client's name, ``anonymous`` when none is needed, or None; compares against every token in full."""
        if clients is None:
            return ANONYMOUS
        supplied = request.headers.get("Authorization", "").encode("utf-8", "replace")
        found = None
        for name, header in expected.items():
            if hmac.compare_digest(supplied, header):
                found = name
        return found

    @web.middleware
    async def timed(request: web.Request, handler: Handler) -> web.StreamResponse:
        started = time.perf_counter()
        try:
            response = await handler(request)
        except web.HTTPException as error:
            metrics.INGEST_LATENCY.labels(str(error.status)).observe(time.perf_counter() - started)
            raise
        except Exception:
            log.exception("ingest request failed", extra={"path": request.path})
            response = _problem(500, "internal error; nothing of this request counts as ingested; send it again")
        metrics.INGEST_LATENCY.labels(str(response.status)).observe(time.perf_counter() - started)
        return response

    async def ingest(request: web.Request) -> web.Response:
        nonlocal in_flight
        client = authenticate(request)
        if client is None:
            return _problem(401, "missing or wrong bearer token", {"WWW-Authenticate": CHALLENGE})
        if request.content_type not in MEDIA_TYPES and request.can_read_body:
            return _problem(415, f"send the batch as application/json, not {request.content_type}")
        if request.content_length is not None and request.content_length > settings.max_body_bytes:
            return _problem(413, f"body is {request.content_length} bytes; the limit is {settings.max_body_bytes}")
        if in_flight >= settings.max_concurrent_requests:
            detail = f"{in_flight} ingest requests are in progress, the most this listener takes; retry"
            return _refused(client, "busy", 503, detail, BUSY_RETRY_AFTER_S)
        in_flight += 1
        metrics.INGEST_IN_FLIGHT.inc()
        try:
            return await admitted(request, client)
        finally:
            in_flight -= 1
            metrics.INGEST_IN_FLIGHT.dec()

    async def admitted(request: web.Request, client: str) -> web.Response:
        bucket = client if clients is not None else request.remote or "unknown"
        if limits is not None and (wait := limits.take(bucket, 1)):
            detail = f"rate limit of {limits.rate:g} records/s exceeded; retry in {wait:g} s"
            return _refused(client, "rate_limited", 429, detail, wait)
        try:
            async with asyncio.timeout(settings.body_timeout_s):
                body = await request.read()
        except TimeoutError:
            response = _refused(
                client, "body_timeout", 408, f"the body did not arrive within {settings.body_timeout_s:g} s", 1
            )
            response.force_close()
            return response
        except web.HTTPRequestEntityTooLarge:
            return _problem(413, f"body exceeds the limit of {settings.max_body_bytes} bytes")
        except ConnectionError:
            return _problem(400, "the connection closed before the whole body arrived")
        try:
            batch = load_json(body)
        except (UnicodeDecodeError, ValueError, RecursionError) as error:
            return _problem(400, f"body is not valid JSON: {str(error)[:200]}")
        if isinstance(batch, dict) and isinstance(batch.get("mentions"), list):
            batch = batch["mentions"]
        if not isinstance(batch, list):
            return _problem(400, "expected a JSON array of mentions or an object with a 'mentions' array")
        if len(batch) > settings.max_batch:
            return _problem(413, f"batch has {len(batch)} mentions; the limit is {settings.max_batch}")
        charged = max(len(batch), 1)
        if limits is not None:
            limits.charge(bucket, charged - 1)
        source = "http" if clients is None else f"http:{client}"
        report = await worker.ingest(batch, source, time.monotonic() + settings.ack_timeout_s)
        if not report.delivered:
            if limits is not None:
                limits.charge(bucket, -charged)  # nothing counts as ingested: the client's retry pays again
            detail = "the broker did not acknowledge the batch in time; send it again"
            return _refused(client, "broker_timeout", 503, detail, BROKER_RETRY_AFTER_S)
        return web.json_response({**report.counts, "rejections": report.rejections}, status=202)

    async def healthz(_: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    document = openapi(listener.catalog.ids())

    async def serve_openapi(_: web.Request) -> web.Response:
        return web.json_response(document)

    async def stop_worker(_: web.Application) -> None:
        await worker.close(settings.ack_timeout_s)

    async def heartbeat(_: web.Application) -> AsyncIterator[None]:
        async def beat() -> None:
            while True:
                health.beat()
                await asyncio.sleep(HEARTBEAT_SECONDS)

        beating = asyncio.create_task(beat())
        yield
        beating.cancel()

    app = web.Application(client_max_size=settings.max_body_bytes, middlewares=[timed])
    app.router.add_post("/v1/mentions", ingest)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/openapi.json", serve_openapi)
    app.on_cleanup.append(stop_worker)
    app.cleanup_ctx.append(heartbeat)
    return app


def _item_text(item: object) -> str:
    """A batch item that is not an object, as text for its rejection (bounded: it may be nested deeply)."""
    try:
        return json.dumps(item)
    except (RecursionError, ValueError):
        return f"<a JSON {type(item).__name__} nested too deeply to show>"
