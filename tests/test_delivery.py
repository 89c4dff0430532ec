"""Slack bot delivery against the local Slack Web API stub: the alert, its thread, and its chart."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from crisiswatch.alerter.charts import incident_chart
from crisiswatch.alerter.delivery import SlackBotNotifier
from crisiswatch.contracts.schemas import HistoryPoint, Incident, IncidentEventType, Severity

from .slack_stub import SlackStub

T0 = datetime(2026, 3, 2, 9, tzinfo=UTC)


def _incident(event: IncidentEventType = IncidentEventType.OPENED, revision: int = 1) -> Incident:
    history = [
        HistoryPoint(
            start=T0 + timedelta(minutes=5 * i),
            total=20 + (60 if i >= 30 else 0),
            negative=3 + (50 if i >= 30 else 0),
            expected_negative=3.0,
            normal_low=0,
            normal_high=7,
        )
        for i in range(36)
    ]
    return Incident(
        incident_id="voltcell-20260302T1130",
        revision=revision,
        event=event,
        brand="voltcell",
        severity=Severity.CRITICAL,
        window_start=T0 + timedelta(minutes=150),
        window_end=T0 + timedelta(minutes=160),
        opened_at=T0 + timedelta(minutes=160),
        observed_negative=106,
        expected_negative=6.0,
        observed_total=160,
        expected_total=40.0,
        negative_share=0.66,
        baseline_negative_share=0.15,
        surprise=60.0,
        rule="106 negative mentions in the last 10 min vs 6.0 expected",
        history=history,
    )


def test_an_opening_alert_is_posted_and_its_chart_lands_in_its_thread(slack: SlackStub) -> None:
    notifier = SlackBotNotifier("xoxb-test", "C0ALERTS", slack.api_url)
    thread = asyncio.run(notifier.deliver(_incident(), None))
    post = next(c for c in slack.messages() if c.ts == thread)
    assert post.payload["channel"] == "C0ALERTS" and "thread_ts" not in post.payload
    charts = [(payload, png) for payload, png in slack.completed_uploads() if payload.get("thread_ts") == thread]
    assert len(charts) == 1
    payload, png = charts[0]
    assert png.startswith(b"\x89PNG") and payload["channel_id"] == "C0ALERTS"


def test_a_failed_chart_upload_neither_fails_nor_repeats_the_delivered_alert(slack: SlackStub) -> None:
    notifier = SlackBotNotifier("xoxb-test", "C0ALERTS", slack.api_url)
    slack.fail_next(400, method="files.getUploadURLExternal")
    posts_before = len(slack.messages())
    thread = asyncio.run(notifier.deliver(_incident(), None))
    assert thread is not None
    assert len(slack.messages()) == posts_before + 1
    assert not [p for p, _ in slack.completed_uploads() if p.get("thread_ts") == thread]


def test_the_resolution_goes_to_the_thread_without_a_chart_and_events_without_history_draw_none() -> None:
    assert incident_chart(_incident().model_copy(update={"history": []})) is None
    png = incident_chart(_incident())
    assert png is not None and png.startswith(b"\x89PNG")


def test_an_escalation_updates_the_parent_and_replies_in_the_thread(slack: SlackStub) -> None:
    notifier = SlackBotNotifier("xoxb-test", "C0ALERTS", slack.api_url)
    thread = asyncio.run(notifier.deliver(_incident(), None))
    again = asyncio.run(notifier.deliver(_incident(IncidentEventType.ESCALATED, revision=2), thread))
    resolved = asyncio.run(notifier.deliver(_incident(IncidentEventType.RESOLVED, revision=3), thread))
    assert again == resolved == thread
    assert [c.payload["ts"] for c in slack.messages("chat.update")][-2:] == [thread, thread]
    replies = [c for c in slack.messages() if c.payload.get("thread_ts") == thread]
    assert len(replies) == 2
    charts_in_thread = [p for p, _ in slack.completed_uploads() if p.get("thread_ts") == thread]
    assert len(charts_in_thread) == 2, "one chart for the opening, one for the escalation, none for the resolution"
