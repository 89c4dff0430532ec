"""End to end on the real broker with the real models: crises in English and Hebrew among calm brands, bad input."""

from __future__ import annotations

import functools
import json
import re
from datetime import UTC, datetime, timedelta

import pytest
from kafka import KafkaProducer

from crisiswatch.contracts.schemas import DeadLetter, Incident, IncidentEventType
from crisiswatch.evaluation_data.mention_texts import HEBREW_THEMES
from crisiswatch.ingest.scenario import BrandTraffic, Crisis, Scenario, ViralPositive, generate
from crisiswatch.metrics_catalogue import metric_entries
from crisiswatch.sentiment.ngram import HEBREW_MODEL_DIR, NgramSentimentModel

from ..conftest import Pipeline, metric_value, wait_until

pytestmark = pytest.mark.pipeline

START = datetime(2026, 3, 2, 6, 0, tzinfo=UTC)
ONSET = START + timedelta(hours=3)
HEBREW_ONSET = START + timedelta(hours=4)
SCENARIO = Scenario(
    name="e2e",
    start=START,
    duration=timedelta(hours=6),
    brands=(
        BrandTraffic("acme-air", "Acme Air", "AcmeAir", mentions_per_hour=50),
        BrandTraffic("nimbus-bank", "Nimbus Bank", "NimbusBank", mentions_per_hour=40),
        BrandTraffic("voltcell", "Voltcell", "Voltcell", mentions_per_hour=30),
        BrandTraffic("galil-mobile", "גליל מובייל", "GalilMobile", mentions_per_hour=30, language="he"),
    ),
    crises=(
        Crisis("voltcell", ONSET, timedelta(minutes=90), "product defect", negative_per_hour=180),
        Crisis("galil-mobile", HEBREW_ONSET, timedelta(minutes=90), "outage", negative_per_hour=180),
    ),
    viral=(ViralPositive("acme-air", START + timedelta(hours=1), timedelta(minutes=30), positive_per_hour=150),),
    seed=11,
)
BAD_LINES = [
    b'{"id": "bad-1", "text": "Acme Air lost my bag", "created_at": ',  # malformed JSON
    b'{"id": "bad-2", "created_at": "2026-03-02T07:00:00Z"}',  # missing text
    b'{"id": "bad-3", "text": "", "created_at": "2026-03-02T07:00:00Z", "brand": "acme-air"}',  # empty text
    json.dumps({"id": "bad-4", "text": "Acme Air " + "x" * 100_000, "created_at": "2026-03-02T07:00:00Z"}).encode(),
    b'{"id": "bad-5", "text": "Acme Air \xff\xfe broke", "created_at": "2026-03-02T07:00:00Z"}',  # invalid UTF-8
    b'{"id": "bad-6", "text": "Globex is great", "created_at": "2026-03-02T07:00:00Z", "brand": "globex"}',
    b'{"id": "bad-7", "text": "Nothing about any brand", "created_at": "2026-03-02T07:00:00Z"}',
]
GOOD_AFTER_BAD = {
    "id": "good-after-bad",
    "text": "Acme Air crew were lovely today",
    "created_at": "2026-03-02T12:00:00Z",
}


@pytest.fixture(scope="module")
def crisis_run(pipeline_factory, slack, tmp_path_factory) -> Pipeline:
    pipeline: Pipeline = pipeline_factory(
        {"SLACK_BOT_TOKEN": "xoxb-test-token", "SLACK_CHANNEL": "C0CRISIS", "SLACK_API_URL": slack.api_url}
    )
    pipeline.start("classifier", "run")
    pipeline.start("alerter", "run")
    data = tmp_path_factory.mktemp("input")
    scenario_file = data / "scenario.jsonl"
    records = list(generate(SCENARIO))
    scenario_file.write_text("".join(json.dumps(r) + "\n" for r in records))
    bad_file = data / "bad.jsonl"
    bad_file.write_bytes(b"\n".join([*BAD_LINES, json.dumps(GOOD_AFTER_BAD).encode()]) + b"\n")
    pipeline.run_listener("replay", "--history", str(scenario_file))
    pipeline.run_listener("replay", "--history", str(bad_file))
    producer = KafkaProducer(bootstrap_servers=pipeline.broker.bootstrap_servers)
    producer.send(pipeline.topics.raw, key=b"acme-air", value=b'{"not": "a mention"}')
    producer.send(pipeline.topics.scored, key=b"acme-air", value=b"\x00garbage")
    producer.flush()
    producer.close()
    pipeline.expected_mentions = len(records) + 1  # type: ignore[attr-defined]
    pipeline.wait_for_metric("alerter", "crisiswatch_alerter_mentions_total", "", len(records) + 2)
    # Delivered means posted to Slack with the chart in its thread: what the tests below read.
    pipeline.wait_for_metric("alerter", "crisiswatch_alerter_deliveries_total", 'outcome="delivered"', 2)
    return pipeline


def _incidents(pipeline: Pipeline) -> list[Incident]:
    return [Incident.model_validate_json(v) for v in pipeline.read(pipeline.topics.alerts, 1, timeout=10)]


def test_one_incident_opens_for_each_brand_in_crisis_after_its_onset(crisis_run: Pipeline) -> None:
    opened = {i.brand: i for i in _incidents(crisis_run) if i.event is IncidentEventType.OPENED}
    assert sorted(opened) == ["galil-mobile", "voltcell"]
    assert opened["voltcell"].brand_name == "Voltcell"
    assert opened["galil-mobile"].brand_name == "גליל מובייל"
    for incident, onset in ((opened["voltcell"], ONSET), (opened["galil-mobile"], HEBREW_ONSET)):
        assert incident.window_end > onset
        assert incident.window_start < onset + timedelta(minutes=45), f"{incident.brand} detected too late"
        assert incident.observed_negative > 3 * incident.expected_negative


def _alert_posts(slack) -> dict[str, object]:
    posts = [c for c in slack.messages() if "thread_ts" not in c.payload]
    by_brand = {}
    for post in posts:
        rendered = json.dumps(post.payload["blocks"], ensure_ascii=False)
        brand = "galil-mobile" if "galil-mobile" in rendered else "voltcell" if "voltcell" in rendered else "?"
        by_brand[brand] = post
    assert len(posts) == 2 and sorted(by_brand) == ["galil-mobile", "voltcell"], [p.payload.get("text") for p in posts]
    return by_brand


def test_the_slack_alert_names_the_brand_and_observed_versus_expected(crisis_run: Pipeline, slack) -> None:
    post = _alert_posts(slack)["voltcell"]
    assert post.token == "Bearer xoxb-test-token"
    assert post.payload["channel"] == "C0CRISIS"
    rendered = json.dumps(post.payload["blocks"])
    assert "observed vs" in rendered and "expected" in rendered
    charts = [png for payload, png in slack.completed_uploads() if payload.get("thread_ts") == post.ts]
    assert charts and charts[0].startswith(b"\x89PNG"), "the chart is uploaded into the alert's thread"


def test_a_hebrew_storm_is_scored_by_the_hebrew_model_and_drafted_in_hebrew(crisis_run: Pipeline, slack) -> None:
    hebrew_model = NgramSentimentModel.load(HEBREW_MODEL_DIR).name
    values = crisis_run.read(crisis_run.topics.scored, crisis_run.expected_mentions)  # type: ignore[attr-defined]
    scored = [json.loads(v) for v in values if v.startswith(b"{")]  # the fixture also wrote garbage here
    galil = [m for m in scored if m["brand"] == "galil-mobile"]
    assert galil and {(m["lang"], m["model"]) for m in galil} == {("he", hebrew_model)}
    assert {m["model"] for m in scored if m["brand"] == "voltcell"} != {hebrew_model}, "English stays on its model"
    crisis_texts = {
        t.format(brand="גליל מובייל", handle="@GalilMobile", tag="גלילמובייל") for t in HEBREW_THEMES["outage"]
    }
    storm = [m for m in galil if m["text"] in crisis_texts]
    assert sum(m["label"] == "negative" for m in storm) > 0.7 * len(storm)

    blocks = _alert_posts(slack)["galil-mobile"].payload["blocks"]
    texts = [block["text"]["text"] for block in blocks if block.get("type") == "section" and "text" in block]
    top_posts = next(t for t in texts if t.startswith("*Top posts*"))
    quoted = re.findall("• \u2067(.+?)\u2069 — @", top_posts)
    assert quoted and all(q in crisis_texts or q in {m["text"] for m in galil} for q in quoted), quoted
    assert any(q in crisis_texts for q in quoted), "the storm's own posts lead the alert, character for character"
    assert len(quoted) == top_posts.count("• "), "every Hebrew post is set apart right to left"
    replies = [t for t in texts if t.startswith("*Suggested reply")]
    assert replies and all("\n>\u200f" in reply for reply in replies), "replies open with a right-to-left mark"
    assert all(re.search("[\u0590-\u05ff]{3}", reply) for reply in replies), "the drafts are the Hebrew templates"
    assert "גליל מובייל" in replies[0]


def test_calm_brands_and_a_viral_positive_spike_raise_nothing(crisis_run: Pipeline) -> None:
    assert {i.brand for i in _incidents(crisis_run)} == {"voltcell", "galil-mobile"}


def test_bad_input_is_dead_lettered_with_reasons_and_processing_continues(crisis_run: Pipeline) -> None:
    letters = [DeadLetter.model_validate_json(v) for v in crisis_run.read(crisis_run.topics.dlq, 9)]
    reasons = " | ".join(f"{d.stage}: {d.reason}" for d in letters)
    assert "malformed JSON" in reasons
    assert "text is missing" in reasons
    assert "text is empty" in reasons
    assert "at most 10000 characters" in reasons
    assert "invalid UTF-8" in reasons
    assert "unknown brand 'globex'" in reasons
    assert "no configured brand" in reasons
    assert "classifier: not a valid Mention" in reasons
    assert "alerter: not a valid ScoredMention" in reasons
    scored = crisis_run.read(crisis_run.topics.scored, crisis_run.expected_mentions)  # type: ignore[attr-defined]
    assert any(b"good-after-bad" in value for value in scored)


def test_metrics_endpoints_answer_and_counters_moved(crisis_run: Pipeline) -> None:
    listener_metrics = crisis_run.metrics("classifier")
    assert metric_value(listener_metrics, "crisiswatch_classifier_mentions_total", 'outcome="scored"') >= 100
    assert metric_value(listener_metrics, "crisiswatch_classifier_batch_size_count") > 0
    hebrew = f'language="he",model="{NgramSentimentModel.load(HEBREW_MODEL_DIR).name}"'
    assert metric_value(listener_metrics, "crisiswatch_classifier_language_mentions_total", hebrew) >= 100
    alerter_metrics = crisis_run.metrics("alerter")
    assert metric_value(alerter_metrics, "crisiswatch_alerter_mentions_total", 'outcome="counted"') >= 100
    assert metric_value(alerter_metrics, "crisiswatch_alerter_incident_events_total", 'event="opened"') == 2
    assert metric_value(alerter_metrics, "crisiswatch_alerter_deliveries_total", 'outcome="delivered"') >= 1
    assert "crisiswatch_build_info{" in alerter_metrics


@pytest.mark.parametrize("service", ["classifier", "alerter"])
def test_running_services_export_every_catalogued_metric(crisis_run: Pipeline, service: str) -> None:
    exposed = set(re.findall(r"^# HELP (\S+)", crisis_run.metrics(service), flags=re.MULTILINE))
    missing = [
        entry.exposed_name
        for entry in metric_entries()
        if entry.service in ("all", service) and not exposed.intersection(entry.series_names)
    ]
    assert not missing, f"{service} does not export {missing}"
    assert "process_resident_memory_bytes" in exposed


def test_both_consumers_report_their_lag_per_partition(crisis_run: Pipeline) -> None:
    topics = crisis_run.topics
    for service, topic in (("classifier", topics.raw), ("alerter", topics.scored)):
        wait_until(
            functools.partial(_caught_up, crisis_run, service, topic),
            f"{service} to report it has caught up on {topic}",
        )


def _caught_up(pipeline: Pipeline, service: str, topic: str) -> bool:
    labels = {"service": service, "topic": topic, "partition": "0"}
    return _gauge(pipeline.metrics(service), "crisiswatch_consumer_lag", labels) == 0


def _gauge(text: str, name: str, labels: dict[str, str]) -> float | None:
    """The value of the one sample of ``name`` with exactly ``labels`` (in any order), or None."""
    for match in re.finditer(rf"^{name}\{{([^}}]*)\}} (\S+)$", text, flags=re.MULTILINE):
        if dict(re.findall(r'(\w+)="([^"]*)"', match.group(1))) == labels:
            return float(match.group(2))
    return None


def test_the_slack_token_never_reaches_logs_metrics_or_recorded_alerts(crisis_run: Pipeline) -> None:
    token = crisis_run.env["SLACK_BOT_TOKEN"]
    written = [path.read_text(errors="replace") for path in crisis_run.workdir.rglob("*") if path.is_file()]
    exposed = [crisis_run.metrics(service) for service in ("classifier", "alerter")]
    assert written, "the services wrote logs"
    assert not [text for text in [*written, *exposed] if token in text]
