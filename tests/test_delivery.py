"""Slack bot delivery against the local Slack Web API stub: the alert, its thread, and its chart."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta

import pytest

from crisiswatch.alerter.app import deliver_with_retry
from crisiswatch.alerter.charts import incident_chart
from crisiswatch.alerter.delivery import Routes, SlackBotNotifier, bot_client
from crisiswatch.contracts.schemas import Incident, IncidentEventType, Severity

from .factories import history, incident
from .slack_stub import SlackStub

T0 = datetime(2026, 3, 2, 9, tzinfo=UTC)
SURGE = T0 + timedelta(minutes=150)


def _incident(event: IncidentEventType = IncidentEventType.OPENED, revision: int = 1) -> Incident:
    """Voltcell's surge in the last half hour of three hours of history (the chart's shape)."""
    return incident(
        event,
        brand="voltcell",
        window_start=SURGE,
        revision=revision,
        opened_at=SURGE + timedelta(minutes=10),
        observed_negative=106,
        expected_negative=6.0,
        observed_total=160,
        expected_total=40.0,
        negative_share=0.66,
        baseline_negative_share=0.15,
        surprise=60.0,
        rule="106 negative mentions in the last 10 min vs 6.0 expected",
        history=history(T0, points=36, surge_from=30),
    )


def test_an_opening_alert_is_posted_and_its_chart_lands_in_its_thread(slack: SlackStub) -> None:
    notifier = SlackBotNotifier(bot_client("xoxb-test", slack.api_url), "C0ALERTS")
    channel, _, thread = asyncio.run(notifier.deliver(_incident(), None)).partition(":")
    post = next(c for c in slack.messages() if c.ts == thread)
    assert channel == "C0ALERTS"
    assert post.payload["channel"] == "C0ALERTS" and "thread_ts" not in post.payload
    charts = [(payload, png) for payload, png in slack.completed_uploads() if payload.get("thread_ts") == thread]
    assert len(charts) == 1
    payload, png = charts[0]
    assert png.startswith(b"\x89PNG") and payload["channel_id"] == "C0ALERTS"


def test_a_failed_chart_upload_neither_fails_nor_repeats_the_delivered_alert(slack: SlackStub) -> None:
    notifier = SlackBotNotifier(bot_client("xoxb-test", slack.api_url), "C0ALERTS")
    slack.fail_next(400, method="files.getUploadURLExternal")
    posts_before = len(slack.messages())
    thread = asyncio.run(notifier.deliver(_incident(), None)).partition(":")[2]
    assert thread
    assert len(slack.messages()) == posts_before + 1
    assert not [p for p, _ in slack.completed_uploads() if p.get("thread_ts") == thread]


def test_the_resolution_goes_to_the_thread_without_a_chart_and_events_without_history_draw_none() -> None:
    assert incident_chart(_incident().model_copy(update={"history": []})) is None
    png = incident_chart(_incident())
    assert png is not None and png.startswith(b"\x89PNG")


def test_an_escalation_updates_the_parent_and_replies_in_the_thread(slack: SlackStub) -> None:
    notifier = SlackBotNotifier(bot_client("xoxb-test", slack.api_url), "C0ALERTS")
    opened = asyncio.run(notifier.deliver(_incident(), None))
    again = asyncio.run(notifier.deliver(_incident(IncidentEventType.ESCALATED, revision=2), opened))
    resolved = asyncio.run(notifier.deliver(_incident(IncidentEventType.RESOLVED, revision=3), opened))
    assert again == resolved == opened
    thread = opened.partition(":")[2]
    assert [c.payload["ts"] for c in slack.messages("chat.update")][-2:] == [thread, thread]
    replies = [c for c in slack.messages() if c.payload.get("thread_ts") == thread]
    assert len(replies) == 2
    charts_in_thread = [p for p, _ in slack.completed_uploads() if p.get("thread_ts") == thread]
    assert len(charts_in_thread) == 2, "one chart for the opening, one for the escalation, none for the resolution"


def test_routing_picks_the_brand_channel_then_severity_and_later_events_stay_in_the_thread(slack: SlackStub) -> None:
    routes = Routes(
        default="C0ALL",
        by_brand={"nimbus-bank": "C0NIMBUS"},
        by_severity={Severity.CRITICAL: "C0CRITICAL"},
        critical_mention="<!subteam^S0ONCALL>",
    )
    warning = _incident().model_copy(update={"severity": Severity.WARNING})
    assert routes.channel_for(warning) == "C0ALL"
    assert routes.channel_for(_incident()) == "C0CRITICAL"
    assert routes.channel_for(_incident().model_copy(update={"brand": "nimbus-bank"})) == "C0NIMBUS"
    assert routes.mention_for(warning) is None
    assert routes.mention_for(_incident(IncidentEventType.RESOLVED)) is None

    notifier = SlackBotNotifier(bot_client("xoxb-test", slack.api_url), routes)
    opened = asyncio.run(notifier.deliver(warning, None))
    assert opened.startswith("C0ALL:")
    escalated = asyncio.run(notifier.deliver(_incident(IncidentEventType.ESCALATED, revision=2), opened))
    assert escalated == opened, "the escalation stays in the thread it started in"
    reply = [c for c in slack.messages() if c.payload.get("thread_ts") == opened.partition(":")[2]][-1]
    assert reply.payload["channel"] == "C0ALL"
    assert reply.payload["text"].startswith("<!subteam^S0ONCALL>"), "critical pages the on-call group"
    assert "<!subteam^S0ONCALL> critical incident" in str(reply.payload["blocks"])


def test_rate_limits_and_server_errors_are_retried_and_the_alert_posted_once(slack: SlackStub) -> None:
    notifier = SlackBotNotifier(bot_client("xoxb-test", slack.api_url), "C0RETRY")
    slack.fail_next(429, headers={"Retry-After": "1"}, method="chat.postMessage")
    slack.fail_next(503, method="chat.postMessage")
    asyncio.run(notifier.deliver(_incident().model_copy(update={"incident_id": "retry-1"}), None))
    posts = [c for c in slack.messages() if c.payload.get("channel") == "C0RETRY" and "retry-1" in str(c.payload)]
    assert len(posts) == 1


@pytest.mark.slow
def test_a_two_minute_slack_outage_delays_the_alert_and_it_is_then_posted_once(slack: SlackStub) -> None:
    notifier = SlackBotNotifier(bot_client("xoxb-test", slack.api_url), "C0OUTAGE")
    incident = _incident().model_copy(update={"incident_id": "outage-1"})
    slack.outage(120)
    started = time.monotonic()
    thread = asyncio.run(deliver_with_retry(notifier, incident, None, max_backoff_s=5))
    assert time.monotonic() - started >= 120
    assert thread is not None and thread.startswith("C0OUTAGE:")
    posts = [c for c in slack.messages() if c.payload.get("channel") == "C0OUTAGE"]
    assert len(posts) == 1, "delivered once, after Slack came back"
