"""The HTTP ingest endpoint, served for real by the listener process against the real broker."""

from __future__ import annotations

import http.client
import json
import socket
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import closing
from datetime import UTC, datetime
from email.message import Message
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings

from crisiswatch.listener.ratelimit import TokenBuckets
from crisiswatch.runtime.broker import EmbeddedBroker, free_port

from ..conftest import Pipeline, examples, metric_value, wait_until

pytestmark = pytest.mark.pipeline
TOKEN = "s3cret-ingest-token-of-32-characters"
CLIENTS = {"alpha": "alpha-ingest-token-of-32-characters", "beta": "beta-ingest-token-of-32-characters!"}
RECENT = datetime.now(UTC).replace(microsecond=0).isoformat()
"""A created_at within the listener's live bounds (LISTENER_MAX_AGE_HOURS) while the tests run."""
ANSWER_WITHIN_S = 30
"""How long a raw-socket test waits for the listener to answer or hang up before calling it stuck."""


def _serve(pipeline_factory, broker: EmbeddedBroker | None = None, **settings: str) -> tuple[Pipeline, str]:
    port = free_port()
    env = {"LISTENER_INGEST_PORT": str(port), "LISTENER_INGEST_TOKEN": TOKEN, **settings}
    pipeline: Pipeline = pipeline_factory(env) if broker is None else pipeline_factory(env, broker=broker)
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
    status, _, answer = _post_with_headers(url, body, token)
    return status, answer


def _post_with_headers(
    url: str, body: bytes, token: str | None = TOKEN, content_type: str = "application/json"
) -> tuple[int, Message, dict]:
    request = urllib.request.Request(f"{url}/v1/mentions", data=body, method="POST")
    request.add_header("Content-Type", content_type)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.headers, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, error.headers, json.loads(error.read())


def _as_documented(url: str, status: int, headers: Message) -> None:
    """``status`` is a documented answer of ``POST /v1/mentions`` and carries every header documented as required."""
    with urllib.request.urlopen(f"{url}/openapi.json", timeout=10) as response:
        documented = json.loads(response.read())["paths"]["/v1/mentions"]["post"]["responses"]
    assert str(status) in documented, f"{status} is not in the served OpenAPI document"
    for name, header in documented[str(status)].get("headers", {}).items():
        assert not header.get("required") or headers.get(name), f"{status} lacks its documented {name} header"


def _mentions(prefix: str, count: int) -> bytes:
    return json.dumps(
        [{"id": f"{prefix}{i}", "text": "Acme Air delayed again", "created_at": RECENT} for i in range(count)]
    ).encode()


def _request_head(length: int, token: str = TOKEN, content_type: str | None = "application/json") -> bytes:
    labelled = f"Content-Type: {content_type}\r\n" if content_type else ""
    return (
        f"POST /v1/mentions HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n"
        f"{labelled}Content-Length: {length}\r\n\r\n"
    ).encode()


def _connect(url: str, sent: bytes = b"") -> socket.socket:
    connection = socket.create_connection(("127.0.0.1", int(url.rsplit(":", 1)[1])), timeout=ANSWER_WITHIN_S)
    connection.sendall(sent)
    return connection


def _answer(connection: socket.socket) -> tuple[int, Message, bytes]:
    """The HTTP answer on a raw connection; raises TimeoutError when none comes within ``ANSWER_WITHIN_S``."""
    response = http.client.HTTPResponse(connection)
    response.begin()
    return response.status, response.headers, response.read()


def _hung_up(connection: socket.socket) -> bool:
    """Whether the listener closed ``connection``, waiting for it at most ``ANSWER_WITHIN_S``."""
    try:
        while connection.recv(4096):
            pass
    except ConnectionResetError:
        pass
    return True


def _trickle(connection: socket.socket, data: bytes, stop: threading.Event) -> threading.Thread:
    """Send ``data`` a byte at a time, ten a second, until it is all sent, the peer hangs up or ``stop`` is set."""

    def send() -> None:
        for byte in data:
            if stop.wait(0.1):
                return
            try:
                connection.sendall(bytes([byte]))
            except OSError:
                return

    sender = threading.Thread(target=send, daemon=True)
    sender.start()
    return sender


def test_a_batch_is_accepted_deduplicated_and_rejections_are_explained(ingest: tuple[Pipeline, str]) -> None:
    _, url = ingest
    batch = [
        {"id": "h1", "text": "Acme Air lost my bag", "created_at": RECENT},
        {"id": "h1", "text": "Acme Air lost my bag", "created_at": RECENT},
        {"id": "h2", "text": "", "created_at": RECENT, "brand": "acme-air"},
        "not an object",
    ]
    status, body = _post(url, json.dumps({"mentions": batch}).encode())
    assert status == 202
    assert (body["accepted"], body["duplicate"], body["rejected"]) == (1, 1, 2)
    assert [r["index"] for r in body["rejections"]] == [2, 3]


@pytest.mark.parametrize("token", [None, "wrong"])
def test_requests_without_the_right_token_are_refused(ingest: tuple[Pipeline, str], token: str | None) -> None:
    _, url = ingest
    status, headers, body = _post_with_headers(url, b"[]", token=token)
    assert status == 401 and "token" in body["error"]
    assert headers["WWW-Authenticate"].startswith("Bearer ")
    _as_documented(url, status, headers)


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


def test_the_media_types_are_as_the_openapi_document_says(ingest: tuple[Pipeline, str]) -> None:
    _, url = ingest
    body = _mentions("media", 1)
    for content_type in ("application/json; charset=utf-8", "application/octet-stream", None):
        with closing(_connect(url, _request_head(len(body), content_type=content_type) + body)) as connection:
            assert _answer(connection)[0] == 202, content_type
    status, headers, answer = _post_with_headers(url, _mentions("media", 1), content_type="text/plain")
    assert status == 415 and "application/json" in answer["error"]
    _as_documented(url, status, headers)


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
    _post(url, json.dumps([{"id": "h9", "text": "Voltcell rocks", "created_at": RECENT}]).encode())
    text = pipeline.metrics("listener")
    assert 'crisiswatch_listener_mentions_total{outcome="accepted",source="http:default"}' in text
    assert "crisiswatch_listener_ingest_request_seconds_bucket" in text


def test_a_client_over_its_record_rate_is_refused_whole_and_told_when_to_retry(pipeline_factory) -> None:
    pipeline, url = _serve(pipeline_factory, LISTENER_RATE_LIMIT_PER_S="0.01", LISTENER_RATE_BURST="10")
    assert _post(url, _mentions("r", 10))[0] == 202
    status, headers, answer = _post_with_headers(url, _mentions("r", 4))
    assert status == 429
    assert int(headers["Retry-After"]) >= 1
    assert "rate limit" in answer["error"]
    _as_documented(url, status, headers)
    raw = pipeline.read(pipeline.topics.raw, timeout=30)
    assert len(raw) == 10, "the refused batch ingested nothing"


def test_the_rate_limit_is_per_named_client_and_refuses_before_reading_the_body(
    pipeline_factory, tmp_path: Path
) -> None:
    """Two clients behind one address (as behind an ingress) have their own budgets; over it, no body is read."""
    tokens = tmp_path / "tokens.json"
    tokens.write_text(json.dumps(CLIENTS))
    pipeline, url = _serve(
        pipeline_factory,
        LISTENER_INGEST_TOKENS_FILE=str(tokens),
        LISTENER_RATE_LIMIT_PER_S="0.01",
        LISTENER_RATE_BURST="10",
    )
    assert _post(url, _mentions("a", 10), token=CLIENTS["alpha"])[0] == 202
    with closing(_connect(url, _request_head(100_000, CLIENTS["alpha"]))) as connection:
        status, headers, _ = _answer(connection)
    assert status == 429, "refused on its headers alone: the body was never sent"
    assert int(headers["Retry-After"]) >= 1
    assert _post(url, _mentions("b", 4), token=CLIENTS["beta"])[0] == 202
    assert _post(url, _mentions("d", 1), token=TOKEN)[0] == 202, "LISTENER_INGEST_TOKEN is the client 'default'"
    text = pipeline.metrics("listener")
    assert metric_value(text, "crisiswatch_listener_ingest_refused_total", 'client="alpha",reason="rate_limited"') == 1
    assert metric_value(text, "crisiswatch_listener_mentions_total", 'source="http:beta"') == 4
    assert len(pipeline.read(pipeline.topics.raw, at_least=15, timeout=30)) == 15


def test_a_batch_read_is_charged_in_full_so_the_long_run_rate_holds() -> None:
    """One token admits a request before its body; its records are then charged, into debt if need be."""
    now = [0.0]
    buckets = TokenBuckets(rate=10, burst=20, clock=lambda: now[0])
    assert buckets.take("a", 1) == 0.0
    buckets.charge("a", 49)
    assert buckets.take("a", 1) == 3.1, "50 records on a bucket of 20 at 10/s: 3 s of debt, then one token"
    now[0] = 3.1
    assert buckets.take("a", 1) == 0.0


@pytest.fixture(scope="module")
def impatient(pipeline_factory) -> tuple[Pipeline, str]:
    return _serve(pipeline_factory, LISTENER_HEADER_TIMEOUT_S="1", LISTENER_BODY_TIMEOUT_S="2")


def test_a_client_that_trickles_its_body_is_answered_408_and_cut_off(impatient: tuple[Pipeline, str]) -> None:
    pipeline, url = impatient
    body = _mentions("slow", 20)
    stop = threading.Event()
    with closing(_connect(url, _request_head(len(body)))) as connection:
        sender = _trickle(connection, body, stop)
        try:
            status, headers, _ = _answer(connection)
            assert status == 408
            assert headers["Connection"] == "close"
            assert _hung_up(connection)
        finally:
            stop.set()
            sender.join()
    _as_documented(url, status, headers)
    assert metric_value(pipeline.metrics("listener"), "crisiswatch_listener_ingest_in_flight") == 0
    assert _post(url, _mentions("quick", 1))[0] == 202, "the listener serves the next client"


def test_a_client_that_trickles_its_headers_is_hung_up_on(impatient: tuple[Pipeline, str]) -> None:
    _, url = impatient
    stop = threading.Event()
    with closing(_connect(url, b"POST /v1/mentions HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")) as connection:
        sender = _trickle(connection, b"a" * 4000, stop)
        try:
            assert _hung_up(connection)
        finally:
            stop.set()
            sender.join()


def test_requests_over_the_concurrency_cap_are_told_to_come_back(pipeline_factory) -> None:
    pipeline, url = _serve(pipeline_factory, LISTENER_MAX_CONCURRENT_REQUESTS="2", LISTENER_BODY_TIMEOUT_S="600")

    def in_flight() -> float:
        return metric_value(pipeline.metrics("listener"), "crisiswatch_listener_ingest_in_flight")

    held = [_connect(url, _request_head(1000) + b"[") for _ in range(2)]
    try:
        wait_until(lambda: in_flight() == 2, "two ingest requests held open by their bodies")
        status, headers, answer = _post_with_headers(url, _mentions("over", 1))
        assert status == 503 and "in progress" in answer["error"]
        assert int(headers["Retry-After"]) >= 1
        _as_documented(url, status, headers)
    finally:
        for connection in held:
            connection.close()
    wait_until(lambda: in_flight() == 0, "the held requests' slots to be released when their clients hang up")
    assert _post(url, _mentions("over", 1))[0] == 202


@pytest.fixture
def own_broker(tmp_path: Path) -> Iterator[EmbeddedBroker]:
    with EmbeddedBroker(port=free_port(), partitions=2, log_file=tmp_path / "broker.log") as running:
        yield running


def test_health_is_answered_while_batches_wait_for_a_broker_that_went_away(
    pipeline_factory, own_broker: EmbeddedBroker, tmp_path: Path
) -> None:
    """Producing never runs on the event loop: kafka-python blocks for tens of seconds replacing a producer.

    After a batch the broker did not acknowledge, the next one makes the
    producer reconnect. Meanwhile every health check is answered, the batch
    gets 503 and Retry-After, and once the broker is back a retry lands.
    """
    pipeline, url = _serve(pipeline_factory, broker=own_broker, LISTENER_ACK_TIMEOUT_S="2")
    assert _post(url, _mentions("before", 1))[0] == 202
    own_broker.stop()
    status, headers, _ = _post_with_headers(url, _mentions("lost", 2))
    assert status == 503
    _as_documented(url, status, headers)

    answers: list[int] = []
    reconnecting = threading.Thread(target=lambda: answers.append(_post(url, _mentions("lost", 2))[0]))
    reconnecting.start()
    probes = 0
    while reconnecting.is_alive() or not probes:
        with urllib.request.urlopen(f"{url}/healthz", timeout=10) as health:
            assert health.status == 200
        probes += 1
    reconnecting.join()
    assert answers == [503]

    back = EmbeddedBroker(
        port=own_broker.port, partitions=2, topics=pipeline.topics, log_file=tmp_path / "broker-back.log"
    )
    with back:
        try:
            wait_until(lambda: _post(url, _mentions("lost", 2))[0] == 202, "the retried batch to land", timeout=240)
            ids = {json.loads(value)["id"] for value in pipeline.read(pipeline.topics.raw, timeout=10)}
            assert {"lost0", "lost1"} <= ids
        finally:
            pipeline.stop()


def test_records_that_break_a_json_or_unicode_reader_are_each_dead_lettered_and_the_rest_accepted(
    ingest: tuple[Pipeline, str],
) -> None:
    pipeline, url = ingest

    def record(name: str, text: str, extra: str = "") -> str:
        return '{"id": "' + name + '", "text": "' + text + '", "created_at": "' + RECENT + '"' + extra + "}"

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
