"""Faults with real processes on the real broker: what a crash costs (nothing counted twice, nothing lost)."""

from __future__ import annotations

import signal
import time

import pytest
from kafka import KafkaProducer

from crisiswatch.contracts.schemas import Incident, IncidentEventType, Mention

from .conftest import Pipeline, metric_value, produce, storm_then_calm

pytestmark = pytest.mark.pipeline
MENTIONS = 300


def test_a_classifier_killed_and_restarted_loses_nothing_and_counts_nothing_twice(pipeline_factory) -> None:
    pipeline: Pipeline = pipeline_factory({"CLASSIFIER_MAX_BATCH_SIZE": "8", "CLASSIFIER_MAX_WAIT_MS": "5"})
    moment = time.time()
    producer = KafkaProducer(bootstrap_servers=pipeline.broker.bootstrap_servers)
    for i in range(MENTIONS):
        text = f"Acme Air flight {i} is late"
        mention = Mention(id=f"k{i}", source="t", brand="acme-air", text=text, created_at=moment)
        producer.send(pipeline.topics.raw, key=b"acme-air", value=mention.to_bytes())
    producer.flush()
    pipeline.start("alerter", "run")
    first = pipeline.start("classifier", "run")
    pipeline.wait_for_metric("classifier", "crisiswatch_classifier_mentions_total", 'outcome="scored"', 40)
    first.send_signal(signal.SIGKILL)
    first.wait(30)
    del pipeline.processes["classifier"]

    pipeline.start("classifier-restarted", "run")
    pipeline.wait_for_metric("alerter", "crisiswatch_alerter_mentions_total", 'outcome="counted"', MENTIONS)
    time.sleep(3)
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
    deadline = time.monotonic() + 120
    while not posts() and time.monotonic() < deadline:
        time.sleep(0.3)
    (alert,) = posts()
    assert "thread_ts" not in alert.payload
    time.sleep(1)
    first.send_signal(signal.SIGKILL)
    first.wait(30)
    del pipeline.processes["alerter"]

    pipeline.start("alerter-restarted", "run")
    produce(pipeline, pipeline.topics.scored, calm_after)
    pipeline.wait_for_metric("alerter", "crisiswatch_alerter_incident_events_total", 'event="resolved"', 1)
    pipeline.wait_for_metric("alerter", "crisiswatch_alerter_deliveries_total", 'outcome="delivered"', 1)
    time.sleep(3)
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
