"""``crisiswatch backtest MENTIONS``: labelled and unlabelled rows, bad rows, the report, and the shared code path."""

from __future__ import annotations

import base64
import csv
import json
import math
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from scipy import stats
from typer.testing import CliRunner, Result

from crisiswatch.analysis.backtest import lazy_model_scorer, load_mentions, one_hot, replay
from crisiswatch.analysis.compare import load_settings
from crisiswatch.cli import app
from crisiswatch.contracts.schemas import Incident, IncidentEventType, ScoredMention, Sentiment
from crisiswatch.detection.config import DetectorConfig, Sensitivity
from crisiswatch.detection.count_laws import MAX_SURPRISE, tail_surprise
from crisiswatch.detection.history import expected_band
from crisiswatch.ingest.brands import DEFAULT_BRANDS_FILE, BrandCatalog
from crisiswatch.ingest.scenario import BrandTraffic, Crisis, Scenario, generate

START = datetime(2026, 3, 2, 6, 0, tzinfo=UTC)
ONSET = START + timedelta(hours=4)
SCENARIO = Scenario(
    name="backtest",
    start=START,
    duration=timedelta(hours=7),
    brands=(
        BrandTraffic("acme-air", "Acme Air", "AcmeAir", mentions_per_hour=60),
        BrandTraffic("voltcell", "Voltcell", "Voltcell", mentions_per_hour=40),
    ),
    crises=(Crisis("voltcell", ONSET, timedelta(hours=1), "product defect", negative_per_hour=200),),
    seed=4,
)


def write_scenario(path: Path, labelled: bool = True) -> int:
    """The scenario as JSONL; with ``labelled`` each row carries its generated sentiment."""
    rows = 0
    with path.open("w", encoding="utf-8") as handle:
        for record in generate(SCENARIO):
            if labelled:
                record["sentiment"] = record["truth"]["sentiment"]
            handle.write(json.dumps(record) + "\n")
            rows += 1
    return rows


@pytest.fixture(scope="module")
def scenario_file(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, int]:
    """The labelled scenario written once for the module (the tests only read it), and its row count."""
    source = tmp_path_factory.mktemp("scenario") / "mentions.jsonl"
    return source, write_scenario(source)


@pytest.fixture(scope="module")
def plain_backtest(scenario_file: tuple[Path, int], tmp_path_factory: pytest.TempPathFactory) -> tuple[Result, Path]:
    """``crisiswatch backtest`` of the scenario with default settings, run once: its result and output folder."""
    out = tmp_path_factory.mktemp("plain") / "out"
    return CliRunner().invoke(app, ["backtest", str(scenario_file[0]), "--output", str(out)]), out


def test_a_labelled_file_yields_one_incident_for_the_crisis_and_a_report(
    scenario_file: tuple[Path, int], plain_backtest: tuple[Result, Path]
) -> None:
    rows = scenario_file[1]
    result, out = plain_backtest
    assert result.exit_code == 0, result.output
    events = [Incident.model_validate(e) for e in json.loads((out / "incidents.json").read_text())]
    opened = [e for e in events if e.event is IncidentEventType.OPENED]
    assert [e.brand for e in opened] == ["voltcell"]
    assert ONSET < opened[0].opened_at <= ONSET + timedelta(minutes=30)
    assert opened[0].observed_negative > 3 * opened[0].expected_negative
    assert events[-1].event is IncidentEventType.RESOLVED

    report = (out / "report.html").read_text()
    images = re.findall(r"data:image/png;base64,([A-Za-z0-9+/=]+)", report)
    assert len(images) == 2
    assert all(base64.b64decode(image).startswith(b"\x89PNG") for image in images)
    assert f"{rows} rows" in report and "0 classified" in report
    summary = re.search(r"<td>((?:Mostly|Mixed:) [^<]*\(\d+%\)[^<]*); volume", report)
    assert summary, "each incident says what it is about"
    assert "theme " not in summary.group(1), "named in the posts' own words"
    assert "(×" in report, "copies of a post are shown once, with their count"

    with (out / "buckets.csv").open() as handle:
        buckets = list(csv.DictReader(handle))
    assert {row["brand"] for row in buckets} == {"acme-air", "voltcell"}
    assert sum(int(row["total"]) for row in buckets) == rows
    assert any("opened" in row["events"] for row in buckets if row["brand"] == "voltcell")


def test_bad_rows_are_reported_with_line_and_reason_and_the_rest_is_used(tmp_path: Path) -> None:
    source = tmp_path / "mixed.jsonl"
    good = {"id": "1", "text": "Acme Air lost my bag", "created_at": "2026-03-02T07:00:00Z", "sentiment": "NEG"}
    lines = [
        json.dumps(good),
        '{"id": "2", "text": "Acme Air",',
        json.dumps({**good, "id": "3", "sentiment": "furious"}),
        json.dumps({**good, "id": "4", "text": "nothing about any brand"}),
    ]
    source.write_text("\n".join(lines) + "\n")
    loaded = load_mentions(source, BrandCatalog.from_file(DEFAULT_BRANDS_FILE), score_texts=None)
    assert [(m.id, m.label) for m in loaded.mentions] == [("1", Sentiment.NEGATIVE)]
    reasons = dict(loaded.rejected)
    assert set(reasons) == {2, 3, 4}
    assert "malformed JSON" in reasons[2]
    assert "'furious' is not negative, neutral or positive" in reasons[3]
    assert "no configured brand" in reasons[4]


def test_unlabelled_rows_go_through_the_model_and_labelled_ones_do_not(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    source = tmp_path / "partly.jsonl"
    rows = [
        {"id": "a", "text": "Acme Air cancelled my flight, nobody answers, awful", "created_at": "2026-03-02T07:00Z"},
        {"id": "b", "text": "Thank you Acme Air, the crew was wonderful!", "created_at": "2026-03-02T07:01Z"},
        {"id": "c", "text": "Acme Air flight", "created_at": "2026-03-02T07:02Z", "sentiment": "neutral"},
    ]
    source.write_text("".join(json.dumps(row) + "\n" for row in rows))
    loaded = load_mentions(
        source, BrandCatalog.from_file(DEFAULT_BRANDS_FILE), lazy_model_scorer("default"), model_name="default"
    )
    labels = {m.id: (m.label, m.model) for m in loaded.mentions}
    assert loaded.classified == 2
    assert labels["a"] == (Sentiment.NEGATIVE, "default")
    assert labels["b"] == (Sentiment.POSITIVE, "default")
    assert labels["c"] == (Sentiment.NEUTRAL, "labelled-input")


def test_a_file_needing_the_model_without_one_is_a_clear_error(tmp_path: Path) -> None:
    source = tmp_path / "unlabelled.jsonl"
    source.write_text(json.dumps({"id": "1", "text": "Acme Air", "created_at": "2026-03-02T07:00Z"}) + "\n")
    with pytest.raises(ValueError, match="no model was given"):
        load_mentions(source, BrandCatalog.from_file(DEFAULT_BRANDS_FILE), score_texts=None)


def _mention(number: int, minute: float, label: Sentiment = Sentiment.NEGATIVE) -> ScoredMention:
    return ScoredMention(
        id=f"m{number}",
        source="test",
        brand="acme-air",
        text="Acme Air",
        created_at=START + timedelta(minutes=minute),
        label=label,
        scores=one_hot(label),
        model="test",
    )


def test_replay_runs_each_brand_through_every_bucket_up_to_its_last_mention() -> None:
    mentions = [_mention(n, 0.5 * n, Sentiment.NEUTRAL) for n in range(240)]
    replays = replay(mentions, DetectorConfig(bucket=timedelta(minutes=5)))
    verdicts = replays["acme-air"].verdicts
    assert [v.bucket.start for v in verdicts] == [START + timedelta(minutes=5 * i) for i in range(24)]
    assert sum(v.bucket.total for v in verdicts) == 240


def test_an_overwhelming_surge_has_a_finite_surprise_that_survives_json() -> None:
    assert tail_surprise(20, 2.0) == pytest.approx(-math.log10(stats.poisson.sf(19, 2.0)))
    size = 1 / 0.3
    assert tail_surprise(20, 2.0, 0.3) == pytest.approx(-math.log10(stats.nbinom.sf(19, size, size / (size + 2.0))))
    assert tail_surprise(2, 2.0) == 0.0
    surprise = tail_surprise(5000, 2.0, 0.02)
    assert surprise == MAX_SURPRISE
    event = _event_with_surprise(surprise)
    assert Incident.model_validate_json(event.to_bytes()).surprise == MAX_SURPRISE


def _event_with_surprise(surprise: float) -> Incident:
    moment = START + timedelta(hours=1)
    return Incident(
        incident_id="acme-air-1", revision=1, event=IncidentEventType.OPENED, brand="acme-air",
        severity="critical", window_start=START, window_end=moment, opened_at=moment, observed_negative=5000,
        expected_negative=2.0, observed_total=5200, expected_total=20.0, negative_share=0.96,
        baseline_negative_share=0.1, surprise=surprise, rule="test",
    )  # fmt: skip


def test_the_expected_band_is_the_central_interval_of_the_count_law() -> None:
    assert expected_band(10.0, 0.0) == (4, 17)
    low, high = expected_band(10.0, 0.5)
    assert low < 4 and high > 17
    assert expected_band(0.0, 0.1) == (0, 0)


def test_two_settings_are_compared_against_known_incidents(tmp_path: Path, scenario_file: tuple[Path, int]) -> None:
    source = scenario_file[0]
    (tmp_path / "balanced.toml").write_text('sensitivity = "balanced"\n')
    deaf = 'name = "deaf"\n[detector]\nopen_surprise = 1000\nopen_surprise_floor = 1000\n'
    deaf += "learning_alert_negative = 10000\n"
    (tmp_path / "deaf.toml").write_text(deaf)
    known = tmp_path / "known.csv"
    known.write_text(f"brand,start,end\nvoltcell,{ONSET.isoformat()},{(ONSET + timedelta(hours=1)).isoformat()}\n")
    out = tmp_path / "out"
    args = ["backtest", str(source), "--output", str(out), "--labels", str(known)]
    args += ["--compare", str(tmp_path / "balanced.toml"), "--compare", str(tmp_path / "deaf.toml")]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    rows = {row["run"]: row for row in json.loads((out / "compare.json").read_text())}
    assert (rows["balanced"]["caught"], rows["balanced"]["unwanted"]) == ("1/1", "0")
    assert (rows["deaf"]["caught"], rows["deaf"]["incidents"]) == ("0/1", "0")
    report = (out / "compare.html").read_text()
    assert report.count("data:image/png;base64,") == 2
    assert "<h3>deaf</h3>" in report


def test_settings_files_name_their_run_and_reject_unknown_settings(tmp_path: Path) -> None:
    good = tmp_path / "night-shift.toml"
    good.write_text('sensitivity = "fewer"\nbucket_minutes = 5\n[detector]\nmin_negative = 12\n')
    run = load_settings(good)
    assert run.name == "night-shift"
    config = run.config()
    assert (config.sensitivity, config.bucket, config.min_negative) == (Sensitivity.FEWER, timedelta(minutes=5), 12)
    bad = tmp_path / "bad.toml"
    bad.write_text("[detector]\nopen_suprise = 3\n")
    with pytest.raises(ValueError, match="unknown detector settings"):
        load_settings(bad)


def test_settings_files_take_detector_durations_in_minutes(tmp_path: Path) -> None:
    slow = tmp_path / "slow-spread.toml"
    slow.write_text("[detector]\ndispersion_halflife = 8640\ncooldown = 90\n")
    config = load_settings(slow).config()
    assert (config.dispersion_halflife, config.cooldown) == (timedelta(days=6), timedelta(minutes=90))
    widths = tmp_path / "widths.toml"
    widths.write_text("[detector]\nbucket = 5\n")
    with pytest.raises(ValueError, match="unknown detector settings"):
        load_settings(widths)


def _history(path: Path, days: int = 2) -> None:
    """Calm, labelled history of both scenario brands that ends where the scenario starts (longer than learning)."""
    history = Scenario(
        name="history",
        start=START - timedelta(days=days),
        duration=timedelta(days=days),
        brands=SCENARIO.brands,
        seed=21,
    )
    with path.open("w", encoding="utf-8") as handle:
        for record in generate(history):
            record["sentiment"] = record["truth"]["sentiment"]
            handle.write(json.dumps(record) + "\n")


def test_a_backtest_seeded_from_history_starts_warm_and_says_so(
    tmp_path: Path, scenario_file: tuple[Path, int], plain_backtest: tuple[Result, Path]
) -> None:
    source, history = scenario_file[0], tmp_path / "history.jsonl"
    _history(history)
    cold = plain_backtest[0]
    warm = CliRunner().invoke(
        app, ["backtest", str(source), "--seed", str(history), "--output", str(tmp_path / "warm")]
    )
    assert cold.exit_code == 0 and warm.exit_code == 0, warm.output
    assert "while learning" in cold.output and "while learning" not in warm.output
    rows = list(csv.DictReader((tmp_path / "warm" / "buckets.csv").open()))
    assert {row["learning"] for row in rows} == {"0"}
    report = (tmp_path / "warm" / "report.html").read_text()
    assert "warm from history for acme-air, voltcell" in report
    events = [Incident.model_validate(e) for e in json.loads((tmp_path / "warm" / "incidents.json").read_text())]
    opened = [e for e in events if e.event is IncidentEventType.OPENED]
    assert [e.brand for e in opened] == ["voltcell"], "a warm brand still catches its storm and nothing else"
    assert "still learning" not in opened[0].rule


def test_team_verdicts_replay_not_a_crisis_on_the_incident_open_at_that_time(
    tmp_path: Path, scenario_file: tuple[Path, int]
) -> None:
    source = scenario_file[0]
    verdicts = tmp_path / "verdicts.csv"
    verdicts.write_text(f"brand,at,verdict\nvoltcell,{(ONSET + timedelta(minutes=40)).isoformat()},not_a_crisis\n")
    result = CliRunner().invoke(
        app, ["backtest", str(source), "--verdicts", str(verdicts), "--output", str(tmp_path / "out")]
    )
    assert result.exit_code == 0, result.output
    events = [Incident.model_validate(e) for e in json.loads((tmp_path / "out" / "incidents.json").read_text())]
    closed = [e for e in events if e.event is IncidentEventType.RESOLVED]
    assert len(closed) == 1 and closed[0].false_alarm and closed[0].acted_by == "backtest"
    bad = tmp_path / "bad.csv"
    bad.write_text("brand,at,verdict\nvoltcell,yesterday,not_a_crisis\n")
    refused = CliRunner().invoke(app, ["backtest", str(source), "--verdicts", str(bad)])
    assert refused.exit_code != 0 and "expected brand,at[,verdict]" in refused.output
