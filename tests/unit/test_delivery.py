"""Slack bot delivery against the local Slack Web API stub: the alert, its thread, its chart, and Slack's refusals."""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from prometheus_client import REGISTRY
from slack_sdk.web.async_client import AsyncWebClient

from crisiswatch.alerter.charts import incident_chart
from crisiswatch.alerter.delivery import (
    ConsoleNotifier,
    DeliveryError,
    Routes,
    SlackBotNotifier,
    UndeliverableError,
    bot_client,
)
from crisiswatch.alerter.delivery_policy import deliver_alert, send_with_retry
from crisiswatch.contracts.schemas import Incident, IncidentEventType, Severity

from ..conftest import wait_until
from ..factories import composed, history, incident
from ..slack_stub import SlackStub

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
    channel, _, thread = asyncio.run(notifier.send(composed(_incident()), None)).partition(":")
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
    thread = asyncio.run(notifier.send(composed(_incident()), None)).partition(":")[2]
    assert thread
    assert len(slack.messages()) == posts_before + 1
    assert not [p for p, _ in slack.completed_uploads() if p.get("thread_ts") == thread]


def test_the_resolution_goes_to_the_thread_without_a_chart_and_events_without_history_draw_none() -> None:
    assert incident_chart(_incident().model_copy(update={"history": []})) is None
    png = incident_chart(_incident())
    assert png is not None and png.startswith(b"\x89PNG")


def test_an_escalation_updates_the_parent_and_replies_in_the_thread(slack: SlackStub) -> None:
    notifier = SlackBotNotifier(bot_client("xoxb-test", slack.api_url), "C0ALERTS")
    opened = asyncio.run(notifier.send(composed(_incident()), None))
    again = asyncio.run(notifier.send(composed(_incident(IncidentEventType.ESCALATED, revision=2)), opened))
    resolved = asyncio.run(notifier.send(composed(_incident(IncidentEventType.RESOLVED, revision=3)), opened))
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
    opened = asyncio.run(notifier.send(composed(warning), None))
    assert opened.startswith("C0ALL:")
    escalated = asyncio.run(notifier.send(composed(_incident(IncidentEventType.ESCALATED, revision=2)), opened))
    assert escalated == opened, "the escalation stays in the thread it started in"
    reply = [c for c in slack.messages() if c.payload.get("thread_ts") == opened.partition(":")[2]][-1]
    assert reply.payload["channel"] == "C0ALL"
    assert reply.payload["text"].startswith("<!subteam^S0ONCALL>"), "critical pages the on-call group"
    assert "<!subteam^S0ONCALL> critical incident" in str(reply.payload["blocks"])


@pytest.mark.slow  # waits out real retry backoffs
def test_rate_limits_and_server_errors_are_retried_and_the_alert_posted_once(slack: SlackStub) -> None:
    notifier = SlackBotNotifier(bot_client("xoxb-test", slack.api_url), "C0RETRY")
    slack.fail_next(429, headers={"Retry-After": "1"}, method="chat.postMessage")
    slack.fail_next(503, method="chat.postMessage")
    asyncio.run(notifier.send(composed(_incident().model_copy(update={"incident_id": "retry-1"})), None))
    posts = [c for c in slack.messages() if c.payload.get("channel") == "C0RETRY" and "retry-1" in str(c.payload)]
    assert len(posts) == 1


@pytest.mark.slow
def test_a_two_minute_slack_outage_delays_the_alert_and_it_is_then_posted_once(slack: SlackStub) -> None:
    notifier = SlackBotNotifier(bot_client("xoxb-test", slack.api_url), "C0OUTAGE")
    incident = _incident().model_copy(update={"incident_id": "outage-1"})
    slack.outage(120)
    started = time.monotonic()
    thread = asyncio.run(send_with_retry(notifier, composed(incident), None, max_backoff_s=5))
    assert time.monotonic() - started >= 120
    assert thread is not None and thread.startswith("C0OUTAGE:")
    posts = [c for c in slack.messages() if c.payload.get("channel") == "C0OUTAGE"]
    assert len(posts) == 1, "delivered once, after Slack came back"


class DeadLetters(list[str]):
    """The reasons :func:`deliver_alert` hands over for the dead-letter topic (the app sends them there)."""

    async def __call__(self, reason: str) -> None:
        self.append(reason)


def _chain(
    slack: SlackStub, tmp_path: Path, critical: str, fallback: str = "C0FALLBACK", client: AsyncWebClient | None = None
) -> SlackBotNotifier:
    """Critical alerts routed to ``critical``, others to C0ALERTS; falling back to ``fallback``, then the console."""
    client = client or bot_client("xoxb-test", slack.api_url)
    console = ConsoleNotifier(tmp_path / "alerts.jsonl")
    spare = SlackBotNotifier(client, fallback, fallback=console, channel="slack-fallback")
    routes = Routes(default="C0ALERTS", by_severity={Severity.CRITICAL: critical})
    return SlackBotNotifier(client, routes, fallback=spare)


def _posts_to(slack: SlackStub, channel: str, incident_id: str) -> list:
    return [c for c in slack.messages() if c.payload.get("channel") == channel and incident_id in str(c.payload)]


def _sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


@pytest.mark.parametrize("error", ["channel_not_found", "not_in_channel", "is_archived", "invalid_blocks"])
def test_a_permanent_slack_error_is_final_at_once(slack: SlackStub, error: str) -> None:
    notifier = SlackBotNotifier(bot_client("xoxb-test", slack.api_url), "C0ALERTS")
    slack.fail_next(200, method="chat.postMessage", error=error)
    with pytest.raises(UndeliverableError) as refused:
        asyncio.run(notifier.send(composed(_incident().model_copy(update={"incident_id": f"final-{error}"})), None))
    assert refused.value.code == error and not refused.value.credentials


@pytest.mark.parametrize("error", ["ratelimited", "service_unavailable", "internal_error", "request_timeout"])
def test_slack_errors_that_may_pass_later_stay_retryable(slack: SlackStub, error: str) -> None:
    notifier = SlackBotNotifier(bot_client("xoxb-test", slack.api_url), "C0ALERTS")
    slack.fail_next(200, method="chat.postMessage", error=error)
    with pytest.raises(DeliveryError):
        asyncio.run(notifier.send(composed(_incident().model_copy(update={"incident_id": f"busy-{error}"})), None))


def test_an_alert_its_channel_refuses_is_dead_lettered_and_posted_to_the_fallback_channel(
    slack: SlackStub, tmp_path: Path
) -> None:
    slack.refused_channels["C0GONE"] = "channel_not_found"
    notifier = _chain(slack, tmp_path, critical="C0GONE")
    refused = _incident().model_copy(update={"incident_id": "gone-1"})
    letters = DeadLetters()
    finals_before = _sample("crisiswatch_alerter_deliveries_total", channel="slack", outcome="failed_final")

    thread = asyncio.run(deliver_alert(notifier, composed(refused), None, letters))

    assert len(letters) == 1 and "channel_not_found" in letters[0] and "C0GONE" in letters[0]
    (shown,) = _posts_to(slack, "C0FALLBACK", "gone-1")
    assert thread == f"C0FALLBACK:{shown.ts}", "later events of the incident follow it to the fallback thread"
    assert _sample("crisiswatch_alerter_deliveries_total", channel="slack", outcome="failed_final") == finals_before + 1
    assert _sample("crisiswatch_alerter_deliveries_total", channel="slack-fallback", outcome="fallback") >= 1

    following = _incident().model_copy(update={"incident_id": "gone-2", "severity": Severity.WARNING})
    assert asyncio.run(deliver_alert(notifier, composed(following), None, letters)).startswith("C0ALERTS:")
    assert len(_posts_to(slack, "C0ALERTS", "gone-2")) == 1 and len(letters) == 1


def test_when_the_fallback_channel_refuses_too_the_alert_goes_to_the_console_and_file(
    slack: SlackStub, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    slack.refused_channels |= {"C0GONE2": "not_in_channel", "C0ARCHIVED": "is_archived"}
    notifier = _chain(slack, tmp_path, critical="C0GONE2", fallback="C0ARCHIVED")
    letters = DeadLetters()

    thread = asyncio.run(
        deliver_alert(notifier, composed(_incident().model_copy(update={"incident_id": "lost-1"})), None, letters)
    )

    assert thread is None, "the console makes no thread for later events to follow"
    assert len(letters) == 1 and "not_in_channel" in letters[0], "only the event's own refusal is dead-lettered"
    (record,) = [json.loads(line) for line in (tmp_path / "alerts.jsonl").read_text().splitlines()]
    assert record["incident"]["incident_id"] == "lost-1" and record["blocks"]
    assert "ALERT " in capsys.readouterr().out


def test_a_revoked_token_is_reported_loudly_and_every_alert_still_moves_on(
    slack: SlackStub, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    notifier = _chain(slack, tmp_path, critical="C0CRITICAL")
    letters = DeadLetters()
    slack.fail_next(200, times=2, method="chat.postMessage", error="token_revoked")

    with caplog.at_level(logging.CRITICAL, logger="crisiswatch.alerter.delivery_policy"):
        asyncio.run(
            deliver_alert(
                notifier, composed(_incident().model_copy(update={"incident_id": "revoked-1"})), None, letters
            )
        )

    assert "token_revoked" in letters[0]
    assert any(r.levelno == logging.CRITICAL and "EVERY alert" in r.getMessage() for r in caplog.records)
    assert _sample("crisiswatch_alerter_slack_credentials_rejected", channel="slack") == 1
    assert _sample("crisiswatch_alerter_slack_credentials_rejected", channel="slack-fallback") == 1
    assert "revoked-1" in (tmp_path / "alerts.jsonl").read_text(), "the console showed what Slack would not"

    warning = _incident().model_copy(update={"incident_id": "revoked-2", "severity": Severity.WARNING})
    assert asyncio.run(deliver_alert(notifier, composed(warning), None, letters)).startswith("C0ALERTS:")
    assert _sample("crisiswatch_alerter_slack_credentials_rejected", channel="slack") == 0, "cleared by a delivery"


@pytest.mark.slow  # waits out real retry backoffs
def test_an_error_slack_may_lift_is_retried_until_the_alert_is_posted_once(slack: SlackStub, tmp_path: Path) -> None:
    notifier = _chain(slack, tmp_path, critical="C0BUSY")
    letters = DeadLetters()
    failed_before = _sample("crisiswatch_alerter_deliveries_total", channel="slack", outcome="failed")
    slack.fail_next(200, method="chat.postMessage", error="ratelimited")
    slack.fail_next(503, times=4, method="chat.postMessage")  # one more than slack_sdk's own server-error retries

    thread = asyncio.run(
        deliver_alert(notifier, composed(_incident().model_copy(update={"incident_id": "busy-1"})), None, letters, 1)
    )

    assert thread is not None and thread.startswith("C0BUSY:")
    assert len(_posts_to(slack, "C0BUSY", "busy-1")) == 1 and not _posts_to(slack, "C0FALLBACK", "busy-1")
    assert letters == []
    assert _sample("crisiswatch_alerter_deliveries_total", channel="slack", outcome="failed") == failed_before + 2


def test_the_oldest_undelivered_alert_ages_while_slack_is_down_and_clears_once_it_is_posted(
    slack: SlackStub, tmp_path: Path
) -> None:
    def age() -> float:
        return _sample("crisiswatch_alerter_undelivered_alert_age_seconds")

    # Without slack_sdk's own retries (seconds apart; the 429-then-503 test covers them), each 503 reaches
    # deliver_alert, which retries 0.1 s apart: an age of 0.5 s then spans several failed attempts.
    bare_client = AsyncWebClient(token="xoxb-test", base_url=slack.api_url, retry_handlers=[], timeout=10)
    notifier = _chain(slack, tmp_path, critical="C0DOWN", client=bare_client)
    letters = DeadLetters()
    threads: list[str | None] = []
    stuck = _incident().model_copy(update={"incident_id": "down-1"})
    slack.outage(600)

    def failed() -> float:
        return _sample("crisiswatch_alerter_deliveries_total", channel="slack", outcome="failed")

    def deliver() -> None:
        threads.append(asyncio.run(deliver_alert(notifier, composed(stuck), None, letters, max_backoff_s=0.1)))

    failed_before = failed()
    worker = threading.Thread(target=deliver)
    try:
        worker.start()
        wait_until(lambda: age() >= 0.5, "the undelivered alert's age to grow during the outage", every=0.02)
        assert failed() >= failed_before + 2, "the age grew across retries while Slack was down"
    finally:
        slack.down_until = 0.0
    worker.join(60)
    assert threads and threads[0] is not None and threads[0].startswith("C0DOWN:")
    assert age() == 0 and letters == []


def test_an_alerts_file_that_cannot_be_written_is_a_final_refusal_not_a_dead_agent(tmp_path: Path) -> None:
    blocked = tmp_path / "not-a-directory"
    blocked.write_text("")
    console = ConsoleNotifier(blocked / "alerts.jsonl")
    with pytest.raises(UndeliverableError, match="alerts_file"):
        asyncio.run(console.send(composed(incident()), None))
