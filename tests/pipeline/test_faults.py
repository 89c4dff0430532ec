"""Faults with real processes on the real broker: what a crash costs (nothing counted twice, nothing lost)."""

from __future__ import annotations

import json
import signal
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

import pytest

from crisiswatch.contracts.schemas import Incident, IncidentEventType, Mention, ScoredMention
from crisiswatch.runtime.broker import EmbeddedBroker, free_port

from ..conftest import Pipeline, metric_value, produce, wait_until
from ..factories import mention, storm_then_calm

pytestmark = pytest.mark.pipeline
MENTIONS = 300
BROKER_DOWN_S = 20


def _raw_mentions(tag: str, count: int) -> list[Mention]:
    return [mention(f"{tag}{i}", f"Acme Air flight {i} is late") for i in range(count)]


def _post(url: str, batch: list[dict]) -> tuple[int, dict[str, str]]:
    request = urllib.request.Request(url, data=json.dumps(batch).encode(), method="POST")
    request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, dict(response.headers)
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers)


def _probe(pipeline: Pipeline, service: str, path: str) -> int:
    """The status a service's ``/livez`` or ``/readyz`` answers on its metrics port."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{pipeline.ports[service]}{path}", timeout=5) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


def _changelogged(pipeline: Pipeline, changelog: str, needle: str) -> bool:
    """Whether a faust table's changelog topic holds a record mentioning ``needle`` (an id, a Slack ts)."""
    size = pipeline.size(changelog)
    return size > 0 and any(needle.encode() in value for value in pipeline.read(changelog, size, timeout=10))


def _rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def test_a_classifier_killed_and_restarted_loses_nothing_and_counts_nothing_twice(pipeline_factory) -> None:
    pipeline: Pipeline = pipeline_factory({"CLASSIFIER_MAX_BATCH_SIZE": "8", "CLASSIFIER_MAX_WAIT_MS": "5"})
    produce(pipeline, pipeline.topics.raw, _raw_mentions("k", MENTIONS))
    pipeline.start("alerter", "run")
    first = pipeline.start("classifier", "run")
    pipeline.wait_for_metric("classifier", "crisiswatch_classifier_mentions_total", 'outcome="scored"', 40)
    first.send_signal(signal.SIGKILL)
    first.wait(30)
    del pipeline.processes["classifier"]

    pipeline.start("classifier-restarted", "run")
    pipeline.wait_for_metric("alerter", "crisiswatch_alerter_mentions_total", 'outcome="counted"', MENTIONS)
    # The redelivered mentions come before the new ones in each partition: the alerter has read them all
    # once what it read (counted, duplicate or otherwise) adds up to what the topic holds.
    wait_until(
        lambda: (
            metric_value(pipeline.metrics("alerter"), "crisiswatch_alerter_mentions_total")
            >= pipeline.size(pipeline.topics.scored)
        ),
        "the alerter to read every scored mention, the redelivered ones included",
    )
    alerter = pipeline.metrics("alerter")
    scored = pipeline.read(pipeline.topics.scored)
    assert metric_value(alerter, "crisiswatch_alerter_mentions_total", 'outcome="counted"') == MENTIONS
    assert len(scored) >= MENTIONS, "at-least-once: whatever was in flight is scored again"
    redelivered = metric_value(alerter, "crisiswatch_alerter_mentions_total", 'outcome="duplicate"')
    assert redelivered == len(scored) - MENTIONS, "every redelivery was recognised as one"


def test_an_alerter_killed_with_an_open_incident_remembers_it_and_alerts_once(pipeline_factory, slack) -> None:
    pipeline: Pipeline = pipeline_factory(
        {"SLACK_BOT_TOKEN": "xoxb-faults", "SLACK_CHANNEL": "C0KILLED", "SLACK_API_URL": slack.api_url}
    )
    opening, calm_after = storm_then_calm("voltcell")

    def posts() -> list:
        return [c for c in slack.messages() if c.payload.get("channel") == "C0KILLED"]

    first = pipeline.start("alerter", "run")
    produce(pipeline, pipeline.topics.scored, opening)
    wait_until(posts, "the opening alert", timeout=120)
    (alert,) = posts()
    assert "thread_ts" not in alert.payload
    (incident,) = [Incident.model_validate_json(v) for v in pipeline.read(pipeline.topics.alerts, 1)]
    app_id = pipeline.topics.group("crisiswatch-alerter")
    wait_until(
        lambda: (
            _changelogged(pipeline, f"{app_id}-brand-detector-changelog", incident.incident_id)
            and _changelogged(pipeline, f"{app_id}-deliveries-changelog", alert.ts)
        ),
        "the open incident and its delivery in the alerter's changelogs (what a restart reads back)",
    )
    first.send_signal(signal.SIGKILL)
    first.wait(30)
    del pipeline.processes["alerter"]

    pipeline.start("alerter-restarted", "run")
    produce(pipeline, pipeline.topics.scored, calm_after)
    pipeline.wait_for_metric("alerter", "crisiswatch_alerter_incident_events_total", 'event="resolved"', 1)
    pipeline.wait_for_metric("alerter", "crisiswatch_alerter_deliveries_total", 'outcome="delivered"', 1)
    wait_until(
        lambda: [
            c for c in posts() if c.payload.get("thread_ts") == alert.ts and "RESOLVED" in c.payload.get("text", "")
        ],
        "the resolution in the alert's thread",
    )
    events = [Incident.model_validate_json(v) for v in pipeline.read(pipeline.topics.alerts, 2)]
    kinds = {(e.incident_id, e.revision, e.event) for e in events}
    opened = [k for k in kinds if k[2] is IncidentEventType.OPENED]
    resolved = [k for k in kinds if k[2] is IncidentEventType.RESOLVED]
    assert len(opened) == 1 and len(resolved) == 1, "the restarted alerter continued the same incident"
    assert opened[0][0] == resolved[0][0]
    top_level = [c for c in posts() if "thread_ts" not in c.payload]
    assert top_level == [alert], "the incident was not alerted again after the restart"
    in_thread = [c for c in posts() if c.payload.get("thread_ts") == alert.ts]
    assert any(c.payload["text"].startswith("RESOLVED voltcell") for c in in_thread), "the resolution was posted"
    restarted = pipeline.metrics("alerter")
    assert metric_value(restarted, "crisiswatch_alerter_incident_events_total", 'event="opened",severity="watch"') == 0


def test_services_ride_out_a_broker_restart_and_resume(pipeline_factory, tmp_path) -> None:
    """The client side of a broker restart: nobody dies or grows while it is down, and work resumes.

    The embedded broker keeps everything in memory, so the broker that comes
    back is empty and its offsets start again at zero. The classifier simply
    carries on. The alerter's faust consumer rejoins but takes the reused
    offsets for records it has already read, and commits its old positions to
    the new broker (with a real Kafka, offsets never go back). The runbook step
    after a loss of the broker's data, a fresh consumer group
    (``ALERTER_APP_ID``), then has it count what arrived.
    """
    port, ingest_port = free_port(), free_port()
    first_broker = EmbeddedBroker(port=port, log_file=tmp_path / "broker.log").start()
    pipeline: Pipeline = pipeline_factory(
        {
            "CLASSIFIER_MAX_WAIT_MS": "5",
            "LISTENER_INGEST_PORT": str(ingest_port),
            "LISTENER_ACK_TIMEOUT_S": "10",
            "LISTENER_INGEST_ALLOW_ANONYMOUS": "true",
            "HEALTH_UNREADY_AFTER_S": "3",
            "HEALTH_BROKER_CHECK_S": "0.5",
        },
        broker=first_broker,
    )
    pipeline.start("classifier", "run")
    pipeline.start("alerter", "run")
    pipeline.start("listener", "serve")
    ingest = f"http://127.0.0.1:{ingest_port}/v1/mentions"
    before = _raw_mentions("before", 40)
    produce(pipeline, pipeline.topics.raw, before)
    pipeline.wait_for_metric("alerter", "crisiswatch_alerter_mentions_total", 'outcome="counted"', len(before))
    rss_before = {name: _rss_mib(p.pid) for name, p in pipeline.processes.items()}
    services = ("listener", "classifier", "alerter")
    wait_until(lambda: all(_probe(pipeline, s, "/readyz") == 200 for s in services), "every service ready")

    first_broker.stop()
    time.sleep(BROKER_DOWN_S)  # the outage itself, not a wait: how long the services must cope without a broker
    assert all(p.poll() is None for p in pipeline.processes.values()), "no service died while the broker was down"
    assert [_probe(pipeline, s, "/readyz") for s in services] == [503] * 3, "without a broker nobody is ready"
    assert [_probe(pipeline, s, "/livez") for s in services] == [200] * 3, "but a restart would not help: alive"
    now = datetime.now(UTC).isoformat()
    posted = [{"id": "http-during-outage", "text": "Acme Air app is down", "created_at": now}]
    status, headers = _post(ingest, posted)
    assert status == 503 and int(headers["Retry-After"]) >= 1, "a batch the broker never took is not acknowledged"
    second_broker = EmbeddedBroker(port=port, partitions=2, topics=pipeline.topics, log_file=tmp_path / "broker.log")
    second_broker.start()
    try:
        assert _post(ingest, posted)[0] == 202, "the retried batch is ingested, not taken for a duplicate"
        wait_until(lambda: all(_probe(pipeline, s, "/readyz") == 200 for s in services), "every service ready again")
        after = _raw_mentions("after", 40)
        produce(pipeline, pipeline.topics.raw, after)
        pipeline.wait_for_metric(
            "classifier", "crisiswatch_classifier_mentions_total", 'outcome="scored"', len(before) + len(after)
        )
        scored_ids = {ScoredMention.model_validate_json(v).id for v in pipeline.read(pipeline.topics.scored)}
        assert scored_ids >= {m.id for m in after}, "every mention sent after the restart was scored and stored"
        assert "http-during-outage" in {Mention.model_validate_json(v).id for v in pipeline.read(pipeline.topics.raw)}
        for name, process in pipeline.processes.items():
            rss = _rss_mib(process.pid)
            assert rss < rss_before[name] + 200, f"{name} grew from {rss_before[name]:.0f} to {rss:.0f} MiB"
        alerter = pipeline.processes.pop("alerter")
        alerter.send_signal(signal.SIGTERM)
        assert alerter.wait(60) == 0
        pipeline.env["ALERTER_APP_ID"] = "crisiswatch-alerter-after-loss"
        pipeline.start("alerter-after-broker-loss", "run")
        pipeline.wait_for_metric("alerter", "crisiswatch_alerter_mentions_total", 'outcome="counted"', len(after))
    finally:
        pipeline.stop()
        second_broker.stop()
