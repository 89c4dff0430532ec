"""The HTTP ingest endpoint, served for real by the listener process against the real broker."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings

from crisiswatch.runtime.broker import free_port

from .conftest import Pipeline, examples, wait_until

pytestmark = pytest.mark.pipeline
TOKEN = "s3cret-ingest-token-of-32-characters"


def _serve(pipeline_factory, **settings: str) -> tuple[Pipeline, str]:
    port = free_port()
    env = {"LISTENER_INGEST_PORT": str(port), "LISTENER_INGEST_TOKEN": TOKEN, **settings}
    pipeline: Pipeline = pipeline_factory(env)
    pipeline.start("listener", "serve")
    url = f"http://127.0.0.1:{port}"

    def healthy() -> bool:
        try:
            with urllib.request.urlopen(f"{url}/healthz", timeout=1):
                return True
        except OSError:
            return False

    wait_until(healthy, "the listener's ingest endpoint")
    return pipeline, url


@pytest.fixture(scope="module")
def ingest(pipeline_factory) -> tuple[Pipeline, str]:
    return _serve(pipeline_factory)


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


@pytest.mark.parametrize("mode", list(schemathesis.GenerationMode))
def test_the_ingest_api_keeps_its_openapi_contract_under_generated_requests(
    ingest: tuple[Pipeline, str], mode: schemathesis.GenerationMode
) -> None:
    """Schemathesis against the schema the running listener serves: no 5xx, every answer as documented.

    Positive mode sends valid batches of generated objects; negative mode
    sends what the schema forbids (wrong types, missing bodies, bad media).
    """
    _, url = ingest
    schema = schemathesis.openapi.from_url(f"{url}/openapi.json")
    for result in schema.get_all_operations():
        operation = result.ok()
        if mode is schemathesis.GenerationMode.NEGATIVE and not operation.body:
            continue  # nothing in a bare GET can be made invalid
        strategy = operation.as_strategy(generation_mode=mode)

        @given(case=strategy)
        @settings(max_examples=examples(150), deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def conforms(case: schemathesis.Case) -> None:
            case.call_and_validate(base_url=url, headers={"Authorization": f"Bearer {TOKEN}"})

        conforms()


def test_bodies_that_are_not_batches_or_too_big_are_refused(ingest: tuple[Pipeline, str]) -> None:
    _, url = ingest
    assert _post(url, b"{broken")[0] == 400
    assert _post(url, b'{"x": 1}')[0] == 400
    assert _post(url, b"[" + b'{"a": "' + b"x" * 2_000_000 + b'"}]')[0] == 413


def test_the_ingest_token_never_reaches_logs_metrics_or_dead_letters(ingest: tuple[Pipeline, str]) -> None:
    pipeline, url = ingest
    _post(url, b"[]", token="wrong-" + TOKEN)
    _post(url, json.dumps([{"id": "t1", "text": f"token {TOKEN}?", "created_at": "x"}]).encode(), token="nope")
    written = "".join(path.read_text(errors="replace") for path in pipeline.workdir.rglob("*") if path.is_file())
    letters = b"".join(pipeline.read(pipeline.topics.dlq, timeout=5))
    assert TOKEN not in written and TOKEN not in pipeline.metrics("listener")
    assert TOKEN.encode() not in letters


def test_ingest_metrics_count_outcomes(ingest: tuple[Pipeline, str]) -> None:
    pipeline, url = ingest
    _post(url, json.dumps([{"id": "h9", "text": "Voltcell rocks", "created_at": "2026-03-02T10:00:00Z"}]).encode())
    text = pipeline.metrics("listener")
    assert 'crisiswatch_listener_mentions_total{outcome="accepted",source="http"}' in text
    assert "crisiswatch_listener_ingest_request_seconds_bucket" in text


def test_a_client_over_its_record_rate_is_refused_whole_and_told_when_to_retry(pipeline_factory) -> None:
    pipeline, url = _serve(pipeline_factory, LISTENER_RATE_LIMIT_PER_S="2", LISTENER_RATE_BURST="10")
    batch = [{"id": f"r{i}", "text": "Acme Air delayed again", "created_at": "2026-03-02T10:00:00Z"} for i in range(10)]
    assert _post(url, json.dumps(batch).encode())[0] == 202
    request = urllib.request.Request(f"{url}/v1/mentions", data=json.dumps(batch[:4]).encode(), method="POST")
    request.add_header("Authorization", f"Bearer {TOKEN}")
    request.add_header("Content-Type", "application/json")
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=10)
    assert refused.value.code == 429
    assert int(refused.value.headers["Retry-After"]) >= 1
    assert "rate limit" in json.loads(refused.value.read())["error"]
    raw = pipeline.read(pipeline.topics.raw, timeout=30)
    assert len(raw) == 10, "the refused batch ingested nothing"


def test_records_that_break_a_json_or_unicode_reader_are_each_dead_lettered_and_the_rest_accepted(
    ingest: tuple[Pipeline, str],
) -> None:
    pipeline, url = ingest

    def record(name: str, text: str, extra: str = "") -> str:
        return '{"id": "' + name + '", "text": "' + text + '", "created_at": "2026-03-02T10:00:00Z"' + extra + "}"

    hostile = {
        "hostile-inf": record("hostile-inf", "Acme Air", ', "likes": Infinity'),
        "hostile-nan": record("hostile-nan", "Acme Air", ', "likes": NaN'),
        "hostile-big": record("hostile-big", "Acme Air", ', "likes": ' + "9" * 5000),
        "hostile-sur": record("hostile-sur", "Acme Air \\ud800 lost my bag"),
        "hostile-deep": record("hostile-deep", "", ', "x": ' + "[" * 900 + "]" * 900),
    }
    good = [record("robust-1", "Acme Air lost my bag"), record("robust-2", "Acme Air lost my bag")]
    body = "[" + ",".join([good[0], *hostile.values(), good[1]]) + "]"
    status, answer = _post(url, body.encode(), token=TOKEN)
    assert status == 202, answer
    assert (answer["accepted"], answer["rejected"]) == (2, len(hostile))
    assert [r["index"] for r in answer["rejections"]] == list(range(1, len(hostile) + 1))

    def letters() -> set[str]:
        payloads = [json.loads(value)["payload"] for value in pipeline.read(pipeline.topics.dlq)]
        return {name for name in hostile if any(f'"{name}"' in payload for payload in payloads)}

    wait_until(lambda: letters() == set(hostile), "a dead letter for each hostile record")


def test_a_body_nested_past_any_reader_is_a_client_error(ingest: tuple[Pipeline, str]) -> None:
    _, url = ingest
    status, _ = _post(url, ("[" * 100_000 + "]" * 100_000).encode())
    assert 400 <= status < 500
