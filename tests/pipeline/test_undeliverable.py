"""An alert Slack refuses for good, through the real alerter and broker: kept, shown elsewhere, never blocking."""

from __future__ import annotations

from datetime import timedelta

import pytest

from crisiswatch.contracts.schemas import DeadLetter, Incident, Severity

from ..conftest import Pipeline, metric_value, produce, wait_until
from ..factories import T0, incident
from ..slack_stub import SlackCall, SlackStub

pytestmark = pytest.mark.pipeline


def test_an_alert_slack_refuses_is_dead_lettered_shown_in_the_fallback_channel_and_the_next_one_delivered(
    pipeline_factory, slack: SlackStub
) -> None:
    slack.refused_channels["C0NOSUCH"] = "channel_not_found"
    pipeline: Pipeline = pipeline_factory(
        {
            "SLACK_BOT_TOKEN": "xoxb-undeliverable",
            "SLACK_CHANNEL": "C0ROUTED",
            "SLACK_CHANNEL_BY_SEVERITY": '{"critical": "C0NOSUCH"}',
            "SLACK_FALLBACK_CHANNEL": "C0SPARE",
            "SLACK_API_URL": slack.api_url,
        }
    )
    refused = incident(brand="voltcell")
    following = incident(brand="voltcell", window_start=T0 + timedelta(hours=1), severity=Severity.WARNING)
    produce(pipeline, pipeline.topics.alerts, [refused, following])

    def posts(channel: str, event: Incident) -> list[SlackCall]:
        return [c for c in slack.messages() if c.payload["channel"] == channel and event.incident_id in str(c.payload)]

    pipeline.start("alerter", "run")
    wait_until(lambda: posts("C0ROUTED", following), "the alert behind the refused one, in its own channel", 180)

    (letter,) = [DeadLetter.model_validate_json(v) for v in pipeline.read(pipeline.topics.dlq, 1)]
    assert letter.stage == "alerter" and letter.source == pipeline.topics.alerts
    assert "channel_not_found" in letter.reason and "C0NOSUCH" in letter.reason
    assert Incident.model_validate_json(letter.payload) == refused, "the refused event is kept whole for a replay"
    assert len(posts("C0SPARE", refused)) == 1, "the refused alert was shown in the fallback channel"
    assert not posts("C0SPARE", following) and len(posts("C0ROUTED", following)) == 1

    alerter = pipeline.metrics("alerter")
    assert metric_value(alerter, "crisiswatch_alerter_deliveries_total", 'channel="slack",outcome="failed_final"') == 1
    assert metric_value(alerter, "crisiswatch_alerter_deliveries_total", 'outcome="fallback"') == 1
    assert metric_value(alerter, "crisiswatch_alerter_deliveries_total", 'outcome="failed"') == 0, "nothing retried"
    assert metric_value(alerter, "crisiswatch_alerter_undelivered_alert_age_seconds") == 0
