from __future__ import annotations

from datetime import UTC, datetime, timedelta

from slack_sdk.models.blocks import Block

from crisiswatch.alerter.compose import compose_blocks, headline
from crisiswatch.contracts.schemas import Incident, IncidentEventType, SampleMention, Severity

T0 = datetime(2026, 3, 2, 11, tzinfo=UTC)


def _incident(event: IncidentEventType = IncidentEventType.OPENED) -> Incident:
    sample = SampleMention(
        id="1",
        text="App is down <again> & again",
        author_handle="ana",
        author_followers=1200,
        url="https://social.example/1",
        created_at=T0,
        negative_score=0.97,
    )
    return Incident(
        incident_id="nimbus-bank-20260302T1100",
        revision=1,
        event=event,
        brand="nimbus-bank",
        severity=Severity.CRITICAL,
        window_start=T0,
        window_end=T0 + timedelta(minutes=10),
        opened_at=T0,
        observed_negative=41,
        expected_negative=1.5,
        observed_total=50,
        expected_total=12.0,
        negative_share=0.82,
        baseline_negative_share=0.12,
        surprise=43.4,
        reach=25_000,
        rule="2 consecutive buckets above 3.0 surprise",
        sample_mentions=[sample],
        peak_negative=29,
        total_negative=392,
    )


def test_the_alert_blocks_are_valid_block_kit_and_explain_the_numbers() -> None:
    blocks = compose_blocks(_incident())
    payload = [b.to_dict() for b in blocks]
    assert [Block.parse(p).to_dict() for p in payload] == payload
    text = str(payload)
    assert "nimbus-bank" in text and "41 observed vs 1.5 expected" in text
    assert "&lt;again&gt; &amp; again" in text, "post text is escaped for Slack mrkdwn"
    assert "DM us" in text


def test_the_resolution_summarises_duration_peak_and_total() -> None:
    incident = _incident(IncidentEventType.RESOLVED)
    text = str([b.to_dict() for b in compose_blocks(incident)])
    assert "392 negative mentions" in text and "peak 29" in text
    assert headline(incident).startswith("RESOLVED nimbus-bank")
