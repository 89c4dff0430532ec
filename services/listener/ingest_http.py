"""HTTP ingest: ``POST /v1/mentions`` takes a JSON batch of mentions behind a bearer token."""

from __future__ import annotations

import asyncio
import hmac
import json
import math
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from aiohttp import web

from crisiswatch.contracts.schemas import RejectionCode
from crisiswatch.ingest.records import MentionInput, load_json

from . import metrics
from .ratelimit import TokenBuckets
from .service import Listener, Outcome

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
_RETRY_AFTER = {"Retry-After": {"schema": {"type": "integer", "minimum": 1}}}


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
    return {
        "openapi": "3.1.0",
        "info": {"title": "crisiswatch listener ingest", "version": "1"},
        "paths": {
            "/v1/mentions": {
                "post": {
                    "summary": "Submit a batch of mentions",
                    "description": "Each record is accepted, recognised as a duplicate, or rejected with its reason.",
                    "security": [{"bearer": []}],
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {
                                "schema": {
                                    "oneOf": [
                                        batch,
                                        {
                                            "type": "object",
                                            "properties": {"mentions": batch},
                                            "required": ["mentions"],
                                        },
                                    ]
                                }
                            }
                        },
                    },
                    "responses": {
                        "202": {
                            "description": "Counts of accepted, duplicate and rejected records, with reasons",
                            "content": {"application/json": {"schema": _COUNTS}},
                        },
                        "400": _error("The body is not a JSON batch"),
                        "401": _error("Missing or wrong bearer token"),
                        "413": _error("Body or batch too large"),
                        "415": _error("The body is not declared as JSON"),
                        "503": _error(
                            "The broker did not acknowledge the batch in time; nothing counts as ingested; retry",
                            _RETRY_AFTER,
                        ),
                        "429": _error(
                            "Over the client's record rate; nothing ingested; retry after Retry-After", _RETRY_AFTER
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


def _problem(status: int, detail: str) -> web.Response:
    return web.json_response({"error": detail}, status=status)


def build_app(
    listener: Listener,
    token: str | None,
    max_body_bytes: int,
    max_batch: int,
    limits: TokenBuckets | None = None,
    ack_timeout_s: float = 10.0,
) -> web.Application:
    """The ingest web application; every record is accepted or dead-lettered with its reason.

    202 means the broker acknowledged every record of the batch. When it does
    not within ``ack_timeout_s`` the answer is 503 with ``Retry-After``: the
    client sends the batch again (records that did land are deduplicated by
    id). Batches are handled one at a time so each answer speaks for its own
    records. With ``limits``, each client address gets its own record budget;
    a batch over budget is refused whole with 429 and ``Retry-After``, so
    nothing of it was ingested and the client can send it again.
    """
    one_batch_at_a_time = asyncio.Lock()

    @web.middleware
    async def timed(request: web.Request, handler: Handler) -> web.StreamResponse:
        started = time.perf_counter()
        try:
            response = await handler(request)
        except web.HTTPException as error:
            metrics.INGEST_LATENCY.labels(str(error.status)).observe(time.perf_counter() - started)
            raise
        metrics.INGEST_LATENCY.labels(str(response.status)).observe(time.perf_counter() - started)
        return response

    async def ingest(request: web.Request) -> web.Response:
        if token is not None:
            supplied = request.headers.get("Authorization", "")
            if not hmac.compare_digest(supplied.encode(), f"Bearer {token}".encode()):
                return _problem(401, "missing or wrong bearer token")
        if request.content_type not in ("application/json", "application/octet-stream") and request.can_read_body:
            return _problem(415, f"send the batch as application/json, not {request.content_type}")
        if request.content_length is not None and request.content_length > max_body_bytes:
            return _problem(413, f"body is {request.content_length} bytes; the limit is {max_body_bytes}")
        try:
            body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            return _problem(413, f"body exceeds the limit of {max_body_bytes} bytes")
        try:
            batch = load_json(body)
        except (UnicodeDecodeError, ValueError, RecursionError) as error:
            return _problem(400, f"body is not valid JSON: {str(error)[:200]}")
        if isinstance(batch, dict) and isinstance(batch.get("mentions"), list):
            batch = batch["mentions"]
        if not isinstance(batch, list):
            return _problem(400, "expected a JSON array of mentions or an object with a 'mentions' array")
        if len(batch) > max_batch:
            return _problem(413, f"batch has {len(batch)} mentions; the limit is {max_batch}")
        if limits is not None and (wait := limits.take(request.remote or "unknown", len(batch))):
            response = _problem(429, f"rate limit of {limits.rate:g} records/s exceeded; retry in {wait:g} s")
            response.headers["Retry-After"] = str(math.ceil(wait))
            return response
        counts = {outcome.value: 0 for outcome in Outcome}
        rejected: list[dict[str, object]] = []
        async with one_batch_at_a_time:
            for index, item in enumerate(batch):
                outcome, rejection = listener.accept(
                    item if isinstance(item, dict) else _item_text(item), source="http"
                )
                counts[outcome.value] += 1
                if rejection is not None:
                    rejected.append({"index": index, "reason": rejection.reason, "code": rejection.code})
            if not await asyncio.to_thread(listener.flush, ack_timeout_s):
                response = _problem(503, "the broker did not acknowledge the batch in time; send it again")
                response.headers["Retry-After"] = "5"
                return response
        return web.json_response({**counts, "rejections": rejected}, status=202)

    async def health(_: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    document = openapi(listener.catalog.ids())

    async def serve_openapi(_: web.Request) -> web.Response:
        return web.json_response(document)

    app = web.Application(client_max_size=max_body_bytes, middlewares=[timed])
    app.router.add_post("/v1/mentions", ingest)
    app.router.add_get("/healthz", health)
    app.router.add_get("/openapi.json", serve_openapi)
    return app


def _item_text(item: object) -> str:
    """A batch item that is not an object, as text for its rejection (bounded: it may be nested deeply)."""
    try:
        return json.dumps(item)
    except (RecursionError, ValueError):
        return f"<a JSON {type(item).__name__} nested too deeply to show>"
