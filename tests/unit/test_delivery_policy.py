"""The delivery rules without faust: once per revision, composed once whatever the retries, forgotten when stale.

The record of deliveries is a plain dict here (the app's changelogged table
in the service); alerts go to the real console notifier or to the local Slack
stub, and the message is composed by the real composer, wrapped only to count.
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from crisiswatch.alerter import alert_themes
from crisiswatch.alerter.delivery import ConsoleNotifier, Routes, SlackBotNotifier, bot_client
from crisiswatch.alerter.delivery_policy import (
    already_delivered,
    deliver_once,
    delivery_record,
    expired_deliveries,
)
from crisiswatch.alerter.message import AlertMessage, MessageComposer
from crisiswatch.alerter.replies import Drafts, draft, load_templates
from crisiswatch.contracts.schemas import Incident, IncidentEventType, Severity

from ..factories import incident, sample_mentions
from ..slack_stub import SlackStub

NOW = datetime(2026, 3, 2, 12, tzinfo=UTC)


class CountingDrafter:
    """A drafter that answers the template drafts and counts how often it was asked."""

    def __init__(self) -> None:
        self.calls = 0

    async def drafts(self, event: Incident) -> Drafts:
        self.calls += 1
        return draft(event, load_templates())


class CountingComposer:
    """The real composer, counting how often a message was composed."""

    def __init__(self, drafter: CountingDrafter | None = None) -> None:
        self.composer = MessageComposer(drafter=drafter)
        self.calls = 0

    async def compose(self, event: Incident) -> AlertMessage:
        self.calls += 1
        return await self.composer.compose(event)


async def _no_letters(reason: str) -> None:
    raise AssertionError(f"nothing should be dead-lettered here: {reason}")


def _event(event: IncidentEventType = IncidentEventType.OPENED, revision: int = 1, **fields: Any) -> Incident:
    posts = sample_mentions([f"Nimbus Bank app down again, card declined {i}" for i in range(12)])
    return incident(event, revision=revision, sample_mentions=posts, **fields)


def test_each_revision_is_delivered_once_and_a_replayed_one_is_not_even_composed(tmp_path: Path) -> None:
    deliveries: dict[str, Any] = {}
    composer = CountingComposer()
    console = ConsoleNotifier(tmp_path / "alerts.jsonl")

    def deliver(event: Incident) -> bool:
        return asyncio.run(deliver_once(event, deliveries, composer.compose, console, _no_letters))

    opened, escalated = _event(), _event(IncidentEventType.ESCALATED, revision=2)
    assert deliver(opened) is True
    assert deliver(opened) is False, "a redelivered revision is skipped"
    assert deliver(escalated) is True
    assert deliver(opened) is False, "an older revision arriving late is skipped too"
    assert composer.calls == 2
    lines = (tmp_path / "alerts.jsonl").read_text().splitlines()
    assert [json.loads(line)["incident"]["revision"] for line in lines] == [1, 2]
    assert deliveries[opened.incident_id]["revision"] == 2


@pytest.mark.slow  # waits out real retry backoffs
def test_a_retry_after_slack_failed_sends_the_same_message_without_drafting_or_grouping_again(
    slack: SlackStub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    groupings: list[str] = []
    real_grouping = alert_themes.incident_themes

    def counted_grouping(event: Incident, *args: Any) -> Any:
        groupings.append(event.incident_id)
        return real_grouping(event, *args)

    monkeypatch.setattr(alert_themes, "incident_themes", counted_grouping)
    drafter = CountingDrafter()
    composer = CountingComposer(drafter)
    notifier = SlackBotNotifier(bot_client("xoxb-test", slack.api_url), Routes(default="C0RETRIED"))
    slack.fail_next(503, times=4, method="chat.postMessage")  # past slack_sdk's own retries: ours retry it
    deliveries: dict[str, Any] = {}
    event = _event(incident_id="retried-1")

    sent = asyncio.run(deliver_once(event, deliveries, composer.compose, notifier, _no_letters, max_backoff_s=1))

    assert sent
    assert (composer.calls, drafter.calls, groupings) == (1, 1, ["retried-1"])
    posts = [c for c in slack.messages() if c.payload.get("channel") == "C0RETRIED"]
    assert len(posts) == 1
    assert deliveries["retried-1"]["thread"] == f"C0RETRIED:{posts[0].ts}"


def test_a_fallback_after_a_final_refusal_sends_the_message_composed_for_the_first_channel(
    slack: SlackStub, tmp_path: Path
) -> None:
    slack.refused_channels["C0REFUSES"] = "channel_not_found"
    console = ConsoleNotifier(tmp_path / "alerts.jsonl")
    notifier = SlackBotNotifier(bot_client("xoxb-test", slack.api_url), Routes(default="C0REFUSES"), fallback=console)
    composer = CountingComposer()
    letters: list[str] = []

    async def keep(reason: str) -> None:
        letters.append(reason)

    deliveries: dict[str, Any] = {}
    assert asyncio.run(deliver_once(_event(incident_id="refused-1"), deliveries, composer.compose, notifier, keep))
    assert composer.calls == 1
    assert len(letters) == 1 and "channel_not_found" in letters[0]
    (record,) = [json.loads(line) for line in (tmp_path / "alerts.jsonl").read_text().splitlines()]
    assert record["incident"]["incident_id"] == "refused-1"
    assert deliveries["refused-1"] == {"revision": 1, "thread": None}


def test_what_is_remembered_of_a_delivery_and_when_it_is_forgotten() -> None:
    opened = delivery_record(_event(), "C0ALERTS:1.2", NOW)
    resolved = delivery_record(_event(IncidentEventType.RESOLVED, revision=3), "C0ALERTS:1.2", NOW)
    assert opened == {"revision": 1, "thread": "C0ALERTS:1.2"}
    assert resolved["resolved_at"] == NOW.isoformat()
    assert already_delivered(resolved, _event(IncidentEventType.ESCALATED, revision=2))
    assert not already_delivered(None, _event())
    assert not already_delivered({}, _event())
    records = {"old": resolved, "open": opened, "recent": delivery_record(_event(revision=2), None, NOW)}
    records["recent"]["resolved_at"] = (NOW + timedelta(days=6)).isoformat()
    # The cutoff is "now less the retention": a record resolved at or after it stays.
    assert expired_deliveries(records, NOW) == []
    assert expired_deliveries(records, NOW + timedelta(seconds=1)) == ["old"]
    assert sorted(expired_deliveries(records, NOW + timedelta(days=7))) == ["old", "recent"]
    assert expired_deliveries({"ancient-open": opened}, NOW + timedelta(days=3650)) == []


def test_the_composed_message_shows_buttons_only_in_its_interactive_form() -> None:
    message = asyncio.run(MessageComposer().compose(_event(severity=Severity.CRITICAL)))
    assert message.text and message.blocks
    kinds = [block.type for block in message.blocks]
    assert "actions" not in kinds and "actions" in [block.type for block in message.interactive_blocks]
    assert message.blocks_json() == [block.to_dict() for block in message.blocks]
