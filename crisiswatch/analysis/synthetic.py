"""The synthetic crisis suite: known onsets, so recall, false alarms and detection delay are measurable.

Each case is a scenario from the listener's generator with its sentiment taken
as labelled (the model is not under test here): calm brands with a daily
rhythm, crises at several volume levels (sudden storms and slow burns), and a
harmless viral positive spike. The detector runs exactly as in the alerter.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from statistics import median

from crisiswatch.alerter.detector import DetectorConfig, DetectorState, step
from crisiswatch.alerter.windows import Bucket, bucket_start
from crisiswatch.contracts.schemas import IncidentEventType
from crisiswatch.listener.scenario import THEMES, BrandTraffic, Crisis, Scenario, ViralPositive, generate

START = datetime(2026, 1, 5, tzinfo=UTC)
NEGATIVE_SHARE = 0.15
VOLUMES = {"very low": 0.05, "low": 0.25, "medium": 1.0, "high": 4.0}
"""Normal negative mentions per minute at each volume level."""


@dataclass(frozen=True)
class Case:
    """One scenario and the crisis in it, if any."""

    name: str
    scenario: Scenario
    negative_per_minute: float
    shape: str = "calm"


@dataclass(frozen=True)
class CaseResult:
    """What the detector did on one case."""

    case: Case
    detected: bool
    delay: timedelta | None
    false_incidents: int
    calm_brand_weeks: float


def _traffic(brand: str, negative_per_minute: float) -> BrandTraffic:
    per_hour = negative_per_minute * 60 / NEGATIVE_SHARE
    return BrandTraffic(brand, brand.title(), brand.replace("-", ""), per_hour, negative_share=NEGATIVE_SHARE)


def suite(days: int = 5) -> list[Case]:
    """Crisis cases at every volume (sudden and slow), plus calm weeks with a viral positive spike."""
    cases: list[Case] = []
    themes = list(THEMES)
    for level, (label, rate) in enumerate(VOLUMES.items()):
        for shape, ramp, multiple in (("sudden", timedelta(minutes=2), 8.0), ("slow burn", timedelta(minutes=90), 5.0)):
            onset = START + timedelta(days=days - 1, hours=9 + 3 * level, minutes=17)
            negative_per_hour = max(multiple * rate * 60, 12.0)
            crisis = Crisis("brand-a", onset, timedelta(hours=3), themes[level % len(themes)], negative_per_hour, ramp)
            scenario = Scenario(
                name=f"{label}-{shape}",
                start=START,
                duration=timedelta(days=days),
                brands=(_traffic("brand-a", rate), _traffic("brand-b", rate)),
                crises=(crisis,),
                seed=100 + 10 * level + len(cases),
            )
            cases.append(Case(f"{label} volume, {shape}", scenario, rate, shape))
    for label, rate in VOLUMES.items():
        calm = Scenario(
            name=f"{label}-calm",
            start=START,
            duration=timedelta(days=7),
            brands=(_traffic("brand-a", rate), _traffic("brand-b", rate)),
            viral=(ViralPositive("brand-b", START + timedelta(days=3, hours=15), timedelta(hours=1), 40 * rate * 60),),
            seed=7 + len(cases),
        )
        cases.append(Case(f"{label} volume, calm week + viral positive spike", calm, rate))
    return cases


def _buckets(
    records: Iterable[dict[str, object]], width: timedelta, start: datetime, end: datetime
) -> dict[str, list[Bucket]]:
    counts: dict[str, dict[datetime, Bucket]] = defaultdict(dict)
    for record in records:
        moment = datetime.fromisoformat(str(record["created_at"]))
        key = bucket_start(moment, width)
        bucket = counts[str(record["brand"])].setdefault(key, Bucket(start=key))
        bucket.total += 1
        truth = record["truth"]
        bucket.negative += isinstance(truth, dict) and truth.get("sentiment") == "negative"
    series: dict[str, list[Bucket]] = {}
    for brand, by_start in counts.items():
        moment, buckets = bucket_start(start, width), []
        while moment < end:
            buckets.append(by_start.get(moment, Bucket(start=moment)))
            moment += width
        series[brand] = buckets
    return series


def run_case(case: Case, config: DetectorConfig) -> CaseResult:
    """Feed the case through the detector, brand by brand, and compare incidents with the truth."""
    scenario = case.scenario
    series = _buckets(generate(scenario), config.bucket, scenario.start, scenario.start + scenario.duration)
    crisis = scenario.crises[0] if scenario.crises else None
    detected, delay, false_incidents = False, None, 0
    for brand, buckets in series.items():
        state = DetectorState.fresh(brand, config)
        for bucket in buckets:
            state, decisions = step(state, bucket, config)
            for decision in decisions:
                if decision.event is not IncidentEventType.OPENED:
                    continue
                in_crisis = (
                    crisis is not None
                    and brand == crisis.brand
                    and crisis.onset - config.bucket <= decision.opened_at <= crisis.onset + crisis.duration
                )
                if in_crisis and not detected and crisis is not None:
                    detected, delay = True, decision.opened_at - crisis.onset
                elif not in_crisis:
                    false_incidents += 1
    calm_time = scenario.duration * len(series) - (crisis.duration if crisis else timedelta(0))
    return CaseResult(case, detected, delay, false_incidents, calm_time / timedelta(days=7))


@dataclass(frozen=True)
class SuiteSummary:
    """The suite's headline figures."""

    recall: float
    false_incidents_per_brand_week: float
    median_delay_minutes_at_1_per_minute: float | None
    median_delay_by_shape: dict[str, float]
    results: list[CaseResult]


def run_suite(config: DetectorConfig, cases: list[Case] | None = None) -> SuiteSummary:
    """Run every case and summarise recall, false incidents per calm brand-week and median delay."""
    results = [run_case(case, config) for case in (cases or suite())]
    crises = [r for r in results if r.case.scenario.crises]
    recall = sum(r.detected for r in crises) / len(crises)
    calm_weeks = sum(r.calm_brand_weeks for r in results)
    busy = [r for r in crises if r.delay is not None and r.case.negative_per_minute >= 1]
    delays = [r.delay.total_seconds() / 60 for r in busy if r.delay is not None]
    by_shape = {
        shape: median(r.delay.total_seconds() / 60 for r in busy if r.case.shape == shape and r.delay is not None)
        for shape in sorted({r.case.shape for r in busy})
    }
    return SuiteSummary(
        recall=recall,
        false_incidents_per_brand_week=sum(r.false_incidents for r in results) / calm_weeks,
        median_delay_minutes_at_1_per_minute=median(delays) if delays else None,
        median_delay_by_shape=by_shape,
        results=results,
    )


def with_bucket(config: DetectorConfig, minutes: float) -> DetectorConfig:
    """The same detector over buckets of another width."""
    return replace(config, bucket=timedelta(minutes=minutes))
