"""The HTTP ingest endpoint, served for real by the listener process against the real broker."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request

import pytest

from crisiswatch.broker import free_port

from .conftest import Pipeline

pytestmark = pytest.mark.pipeline
TOKEN = "s3cret-ingest-token"


@pytest.fixture(scope="module")
def ingest(pipeline_factory) -> tuple[Pipeline, str]:
    port = free_port()
    pipeline: Pipeline = pipeline_factory({"LISTENER_INGEST_PORT": str(port), "LISTENER_INGEST_TOKEN": TOKEN})
    pipeline.start("listener", "serve")
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"{url}/healthz", timeout=1)
            break
        except OSError:
            time.sleep(0.2)
    return pipeline, url


def _post(url: str, body: bytes, token: str | None = TOKEN) -> tuple[int, dict]:
    request = urllib.request.Request(f"{url}/v1/mentions", data=body, method="POST")
    request.add_header("Content-Type", "application/json")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_a_batch_is_accepted_deduplicated_and_rejections_are_explained(ingest: tuple[Pipeline, str]) -> None:
    _, url = ingest
    batch = [
        {"id": "h1", "text": "Acme Air lost my bag", "created_at": "2026-03-02T10:00:00Z"},
        {"id": "h1", "text": "Acme Air lost my bag", "created_at": "2026-03-02T10:00:00Z"},
        {"id": "h2", "text": "", "created_at": "2026-03-02T10:00:00Z", "brand": "acme-air"},
        "not an object",
    ]
    status, body = _post(url, json.dumps({"mentions": batch}).encode())
    assert status == 202
    assert (body["accepted"], body["duplicate"], body["rejected"]) == (1, 1, 2)
    assert [r["index"] for r in body["rejections"]] == [2, 3]


@pytest.mark.parametrize("token", [None, "wrong"])
def test_requests_without_the_right_token_are_refused(ingest: tuple[Pipeline, str], token: str | None) -> None:
    _, url = ingest
    status, body = _post(url, b"[]", token=token)
    assert status == 401 and "token" in body["error"]


def test_bodies_that_are_not_batches_or_too_big_are_refused(ingest: tuple[Pipeline, str]) -> None:
    _, url = ingest
    assert _post(url, b"{broken")[0] == 400
    assert _post(url, b'{"x": 1}')[0] == 400
    assert _post(url, b"[" + b'{"a": "' + b"x" * 2_000_000 + b'"}]')[0] == 413


def test_ingest_metrics_count_outcomes(ingest: tuple[Pipeline, str]) -> None:
    pipeline, url = ingest
    _post(url, json.dumps([{"id": "h9", "text": "Voltcell rocks", "created_at": "2026-03-02T10:00:00Z"}]).encode())
    text = pipeline.metrics("listener")
    assert 'crisiswatch_listener_mentions_total{outcome="accepted",source="http"}' in text
    assert "crisiswatch_listener_ingest_request_seconds_bucket" in text
