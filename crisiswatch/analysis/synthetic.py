"""The synthetic crisis suite: known onsets, so recall, false alarms and detection delay are measurable.

Each case is a scenario from the listener's generator with its sentiment taken
as labelled (the model is not under test here). The original suite
(:func:`run_suite`) has calm brands with a daily rhythm, crises at several
volume levels (sudden storms and slow burns), and a harmless viral positive
spike, fed through the mention records. The sustained part
(:func:`run_sustained`) adds a weekly rhythm with weekends and day-to-day
variation: rises that multiply a brand's negatives by 1.5x to 3x for hours
after weeks of history, calm weeks with that rhythm, and new brands' calm
first days; weeks of busy brands are fed as bucket counts drawn from the same
model, as a record per mention would take far too long. The detector runs
exactly as in the alerter.
"""

from __future__ import annotations

import copy
import math
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from statistics import median

import numpy as np
from rich.table import Table

from crisiswatch.contracts.schemas import IncidentEventType
from crisiswatch.detection.config import DetectorConfig
from crisiswatch.detection.lifecycle import step
from crisiswatch.detection.state import DetectorState
from crisiswatch.detection.windows import Bucket, bucket_start
from crisiswatch.evaluation_data.mention_texts import THEMES
from crisiswatch.ingest.scenario import (
    BrandTraffic,
    Crisis,
    Scenario,
    ViralPositive,
    bucket_counts,
    generate,
)

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
            state, incidents = step(state, bucket, config)
            for incident in incidents:
                if incident.event is not IncidentEventType.OPENED:
                    continue
                in_crisis = (
                    crisis is not None
                    and brand == crisis.brand
                    and crisis.onset - config.bucket <= incident.opened_at <= crisis.onset + crisis.duration
                )
                if in_crisis and not detected and crisis is not None:
                    detected, delay = True, incident.opened_at - crisis.onset
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
    recall_by_shape: dict[str, float] = field(default_factory=dict)


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
    shapes = sorted({r.case.shape for r in crises})
    return SuiteSummary(
        recall=recall,
        false_incidents_per_brand_week=sum(r.false_incidents for r in results) / calm_weeks,
        median_delay_minutes_at_1_per_minute=median(delays) if delays else None,
        median_delay_by_shape=by_shape,
        results=results,
        recall_by_shape={
            shape: sum(r.detected for r in crises if r.case.shape == shape) / sum(r.case.shape == shape for r in crises)
            for shape in shapes
        },
    )


def quick_suite() -> list[Case]:
    """A small subset of :func:`suite` for tests: the low-volume sudden storm and slow burn over two days."""
    return [c for c in suite(days=2) if c.negative_per_minute == VOLUMES["low"] and c.scenario.crises]


def with_bucket(config: DetectorConfig, minutes: float) -> DetectorConfig:
    """The same detector over buckets of another width."""
    return replace(config, bucket=timedelta(minutes=minutes))


WEEKLY_RHYTHM = (1.0, 1.0, 1.0, 1.0, 1.0, 0.6, 0.6)
"""Weekday factors (Monday first) of the sustained part: weekends at 0.6 of weekdays."""
DAY_TO_DAY = 0.1
"""Lognormal sigma of each brand's per-day multiplier in the sustained part (about 10% from day to day)."""
RISE_ONSETS = ((0, 8, 17), (1, 14, 41), (2, 3, 5), (4, 18, 29), (6, 10, 53), (3, 21, 13))
"""(weekday, hour, minute) of each run's onset: a Monday morning after the weekend, a night, a weekend, …"""
RISE_RAMPS = tuple(timedelta(hours=h) for h in (1, 2, 3, 4.5, 6, 1.5))
RISE_DURATIONS = tuple(timedelta(hours=h) for h in (6, 9, 12, 18, 24, 15))
NEW_BRAND_STARTS = (timedelta(hours=9), timedelta(days=2), timedelta(days=5, hours=13))
"""When new brands' first days begin, after ``START`` (a Monday): Monday 09:00, Wednesday 00:00, Saturday 13:00."""


@dataclass(frozen=True)
class SustainedPlan:
    """How much of the sustained part to run: the full protocol by default, :meth:`quick` for tests.

    ``volumes`` are a brand's normal negative mentions per hour on an average
    weekday; ``runs`` rises per (multiple, volume), each after ``history`` of
    calm; ``calm_runs`` calm brands per volume, each judged over
    ``calm_span`` after the same history; ``new_brand_days`` fresh brands per
    volume, each judged over its first day.
    """

    multiples: tuple[float, ...] = (1.5, 2.0, 3.0)
    volumes: tuple[tuple[str, float], ...] = (("low", 2.0), ("medium", 20.0), ("high", 200.0))
    runs: int = 5
    history: timedelta = timedelta(days=14)
    calm_runs: int = 2
    calm_span: timedelta = timedelta(days=14)
    new_brand_days: int = 3

    @classmethod
    def quick(cls) -> SustainedPlan:
        """One run of everything over short spans: checks the machinery in seconds, its figures mean little."""
        return cls(runs=1, history=timedelta(hours=6), calm_runs=1, calm_span=timedelta(days=1), new_brand_days=1)


@dataclass(frozen=True)
class RiseCase:
    """A brand with the weekly rhythm whose negatives rise to ``multiple`` times normal from its crisis' onset.

    Cases with the same ``volume`` and ``run`` share their scenario but for
    the crisis (and so their background counts), which lets the detector
    learn that history once for all multiples.
    """

    volume: str
    multiple: float
    run: int
    scenario: Scenario

    @property
    def crisis(self) -> Crisis:
        """The sustained rise."""
        return self.scenario.crises[0]


@dataclass(frozen=True)
class RiseResult:
    """What the detector did on one sustained rise: whether and when an incident opened, and false ones before."""

    case: RiseCase
    detected: bool
    delay: timedelta | None
    false_before_onset: int


@dataclass(frozen=True)
class RiseCell:
    """The runs of one (multiple, volume) together."""

    multiple: float
    volume: str
    negative_per_hour: float
    runs: int
    caught: int
    median_delay_hours: float | None
    false_before_onset: int

    @property
    def caught_share(self) -> float:
        """The share of runs in which the rise was caught."""
        return self.caught / self.runs if self.runs else 0.0


@dataclass(frozen=True)
class CalmCase:
    """A brand with the weekly rhythm and nothing wrong: every incident it opens from ``judged_from`` is false."""

    volume: str
    scenario: Scenario
    judged_from: datetime

    @property
    def brand_weeks(self) -> float:
        """How many brand-weeks are judged."""
        return (self.scenario.start + self.scenario.duration - self.judged_from) / timedelta(days=7)


@dataclass(frozen=True)
class CalmResult:
    """Incidents opened on a calm brand: judged, on Mondays among them, and during the history before."""

    case: CalmCase
    false_incidents: int
    monday_false_incidents: int
    history_false_incidents: int


@dataclass(frozen=True)
class SustainedSummary:
    """The sustained part's headline figures, with every run behind them."""

    cells: list[RiseCell]
    false_incidents_per_brand_week: float
    false_incidents_per_brand_week_by_volume: dict[str, float]
    new_brand_alerts: dict[str, int]
    rises: list[RiseResult]
    calm: list[CalmResult]
    new_brands: list[CalmResult]


def _weekly_traffic(brand: str, negative_per_hour: float) -> BrandTraffic:
    return _traffic(brand, negative_per_hour / 60)


def _weekly_scenario(name: str, brand: BrandTraffic, start: datetime, duration: timedelta, seed: int) -> Scenario:
    return Scenario(
        name=name,
        start=start,
        duration=duration,
        brands=(brand,),
        seed=seed,
        weekday_factors=WEEKLY_RHYTHM,
        day_to_day_variation=DAY_TO_DAY,
    )


def _next_at(after: datetime, weekday: int, hour: int, minute: int) -> datetime:
    moment = after.replace(hour=hour, minute=minute, second=0, microsecond=0)
    moment += timedelta(days=(weekday - moment.weekday()) % 7)
    return moment if moment >= after else moment + timedelta(days=7)


def _rise_shapes(runs: int, key: tuple[int, int]) -> list[tuple[timedelta, timedelta]]:
    """(ramp, duration) for each run: a seeded pairing of the ramps and durations, the rise at least twice its ramp."""
    rng = np.random.default_rng((5150, *key))
    ramps, durations = rng.permutation(len(RISE_RAMPS)), rng.permutation(len(RISE_DURATIONS))
    pairs = [(RISE_RAMPS[ramps[r % len(ramps)]], RISE_DURATIONS[durations[r % len(durations)]]) for r in range(runs)]
    return [(ramp, max(duration, 2 * ramp)) for ramp, duration in pairs]


def rise_cases(plan: SustainedPlan | None = None) -> list[RiseCase]:
    """Every sustained rise of the plan: per volume and run one background, a rise on it per multiple.

    Runs differ in seed and onset (weekday and time of day, a Monday morning
    after the weekend first); each (multiple, volume) draws its own pairing
    of ramps (1-6 h) and durations (6-24 h, at least twice the ramp). The
    rise's extra negatives follow the brand's rhythm, so at its plateau the
    brand has ``multiple`` times its normal negatives whatever the hour.
    """
    plan = plan or SustainedPlan()
    themes = list(THEMES)
    cases: list[RiseCase] = []
    for v, (volume, negative_per_hour) in enumerate(plan.volumes):
        brand = _weekly_traffic(f"{volume}-brand", negative_per_hour)
        shapes = [_rise_shapes(plan.runs, (v, m)) for m in range(len(plan.multiples))]
        for run in range(plan.runs):
            onset = _next_at(START + plan.history, *RISE_ONSETS[run % len(RISE_ONSETS)])
            crises = [
                Crisis(
                    brand.brand,
                    onset,
                    shapes[m][run][1],
                    themes[run % len(themes)],
                    (multiple - 1) * negative_per_hour,
                    shapes[m][run][0],
                    fade=timedelta(0),
                    follows_rhythm=True,
                )
                for m, multiple in enumerate(plan.multiples)
            ]
            span = max(c.end for c in crises) - START
            background = _weekly_scenario(f"rise-{volume}-{run}", brand, START, span, 20_000 + 100 * v + run)
            cases += [
                RiseCase(
                    volume, multiple, run, replace(background, name=f"{background.name}-x{multiple:g}", crises=(c,))
                )
                for multiple, c in zip(plan.multiples, crises, strict=True)
            ]
    return cases


def calm_cases(plan: SustainedPlan | None = None) -> list[CalmCase]:
    """Calm brands with the weekly rhythm, judged after the plan's history (which starts on a Monday)."""
    plan = plan or SustainedPlan()
    cases: list[CalmCase] = []
    for v, (volume, negative_per_hour) in enumerate(plan.volumes):
        brand = _weekly_traffic(f"{volume}-calm", negative_per_hour)
        for run in range(plan.calm_runs):
            scenario = _weekly_scenario(
                f"calm-{volume}-{run}", brand, START, plan.history + plan.calm_span, 30_000 + 100 * v + run
            )
            cases.append(CalmCase(volume, scenario, START + plan.history))
    return cases


def new_brand_cases(plan: SustainedPlan | None = None) -> list[CalmCase]:
    """Brands the detector has never seen, each judged over its calm first day (starting at different times)."""
    plan = plan or SustainedPlan()
    cases: list[CalmCase] = []
    for v, (volume, negative_per_hour) in enumerate(plan.volumes):
        brand = _weekly_traffic(f"{volume}-new", negative_per_hour)
        for run in range(plan.new_brand_days):
            start = START + NEW_BRAND_STARTS[run % len(NEW_BRAND_STARTS)] + timedelta(weeks=run // 3)
            scenario = _weekly_scenario(f"new-{volume}-{run}", brand, start, timedelta(days=1), 40_000 + 100 * v + run)
            cases.append(CalmCase(volume, scenario, start))
    return cases


def _feed(
    state: DetectorState,
    counts: tuple[np.ndarray, np.ndarray],
    start: datetime,
    first: int,
    stop: int,
    config: DetectorConfig,
) -> tuple[DetectorState, list[datetime]]:
    """Step the detector over buckets ``first`` to ``stop`` of the counts; the state and when incidents opened."""
    negative, total = counts
    opened: list[datetime] = []
    for index, (n, t) in enumerate(
        zip(negative[first:stop].tolist(), total[first:stop].tolist(), strict=True), start=first
    ):
        state, incidents = step(state, Bucket(start=start + config.bucket * index, total=t, negative=n), config)
        opened += [i.opened_at for i in incidents if i.event is IncidentEventType.OPENED]
    return state, opened


def run_rises(cases: list[RiseCase], config: DetectorConfig) -> list[RiseResult]:
    """Feed each rise through the detector from a fresh state; a rise counts as caught if an incident opens.

    It must open between one bucket before onset and the rise's end; delay is
    ``opened_at - onset``. Cases sharing a background share the detector's
    pass over the history before onset.
    """
    groups: dict[tuple[str, int], list[RiseCase]] = defaultdict(list)
    for case in cases:
        groups[case.volume, case.run].append(case)
    results: dict[int, RiseResult] = {}
    width = config.bucket
    for group in groups.values():
        start, onset, brand = group[0].scenario.start, group[0].crisis.onset, group[0].crisis.brand
        counts = [bucket_counts(case.scenario, width)[brand] for case in group]
        fork = max(0, math.floor((onset - width - start) / width))
        for negative, total in counts:
            if not (
                np.array_equal(negative[:fork], counts[0][0][:fork])
                and np.array_equal(total[:fork], counts[0][1][:fork])
            ):
                raise ValueError(f"rises on {brand} run {group[0].run} do not share their history")
        shared_state, shared = _feed(DetectorState.fresh(brand, config), counts[0], start, 0, fork, config)
        for case, series in zip(group, counts, strict=True):
            crisis = case.crisis
            stop = math.ceil((crisis.end - start) / width)
            _, own = _feed(copy.deepcopy(shared_state), series, start, fork, stop, config)
            hits = [t for t in shared + own if onset - width <= t <= crisis.end]
            false = sum(t < onset - width for t in shared + own)
            delay = hits[0] - onset if hits else None
            results[id(case)] = RiseResult(case, bool(hits), delay, false)
    return [results[id(case)] for case in cases]


def run_calm(cases: list[CalmCase], config: DetectorConfig) -> list[CalmResult]:
    """Feed each calm brand through the detector from a fresh state and count the incidents it opens."""
    results: list[CalmResult] = []
    for case in cases:
        scenario = case.scenario
        (brand,) = (t.brand for t in scenario.brands)
        counts = bucket_counts(scenario, config.bucket)[brand]
        _, opened = _feed(DetectorState.fresh(brand, config), counts, scenario.start, 0, len(counts[0]), config)
        judged = [t for t in opened if t >= case.judged_from]
        results.append(CalmResult(case, len(judged), sum(t.weekday() == 0 for t in judged), len(opened) - len(judged)))
    return results


def run_sustained(config: DetectorConfig, plan: SustainedPlan | None = None) -> SustainedSummary:
    """Run the sustained part and summarise it per (multiple, volume), for calm weeks and for new brands."""
    plan = plan or SustainedPlan()
    rises = run_rises(rise_cases(plan), config)
    calm = run_calm(calm_cases(plan), config)
    new_brands = run_calm(new_brand_cases(plan), config)
    cells: list[RiseCell] = []
    for volume, negative_per_hour in plan.volumes:
        for multiple in plan.multiples:
            runs = [r for r in rises if r.case.volume == volume and r.case.multiple == multiple]
            delays = [r.delay / timedelta(hours=1) for r in runs if r.delay is not None]
            cells.append(
                RiseCell(
                    multiple,
                    volume,
                    negative_per_hour,
                    len(runs),
                    sum(r.detected for r in runs),
                    median(delays) if delays else None,
                    sum(r.false_before_onset for r in runs),
                )
            )
    by_volume = {volume: _per_week([r for r in calm if r.case.volume == volume]) for volume, _ in plan.volumes}
    return SustainedSummary(
        cells=cells,
        false_incidents_per_brand_week=_per_week(calm),
        false_incidents_per_brand_week_by_volume=by_volume,
        new_brand_alerts={
            volume: sum(r.false_incidents for r in new_brands if r.case.volume == volume) for volume, _ in plan.volumes
        },
        rises=rises,
        calm=calm,
        new_brands=new_brands,
    )


def _per_week(results: list[CalmResult]) -> float:
    weeks = sum(r.case.brand_weeks for r in results)
    return sum(r.false_incidents for r in results) / weeks if weeks else 0.0


def _minutes(value: float | None) -> str:
    return "—" if value is None else f"{value:g} min"


def render_suite(summary: SuiteSummary) -> list[Table]:
    """The original suite as tables: every case, then its headline figures beside their targets."""
    cases = Table("case", "detected", "delay", "false incidents", "calm brand-weeks", title="synthetic crisis suite")
    for case in summary.results:
        delay = f"{case.delay.total_seconds() / 60:.0f} min" if case.delay is not None else "—"
        detected = "yes" if case.detected else ("no" if case.case.scenario.crises else "(no crisis)")
        cases.add_row(case.case.name, detected, delay, str(case.false_incidents), f"{case.calm_brand_weeks:.2f}")
    headline = Table("figure", "value", "target", title="synthetic crisis suite: headline")
    targets = {"sudden": ("≥ 95%", "≤ 5 min")}
    for shape, recall in summary.recall_by_shape.items():
        headline.add_row(f"recall, {shape}", f"{100 * recall:.0f}%", targets.get(shape, ("—", "—"))[0])
    headline.add_row("recall, all crises", f"{100 * summary.recall:.0f}%", "—")
    headline.add_row("false incidents per calm brand-week", f"{summary.false_incidents_per_brand_week:.2f}", "—")
    for shape, minutes in summary.median_delay_by_shape.items():
        target = targets.get(shape, ("—", "—"))[1]
        headline.add_row(f"median delay at >= 1 negative/min, {shape}", _minutes(minutes), target)
    headline.add_row(
        "median delay at >= 1 negative/min, all", _minutes(summary.median_delay_minutes_at_1_per_minute), "—"
    )
    return [cases, headline]


def render_sustained(summary: SustainedSummary) -> list[Table]:
    """The sustained part as tables: rises per (volume, multiple), calm weeks, and new brands' first days."""
    rises = Table(
        "volume",
        "negatives/h",
        "multiple",
        "runs",
        "caught",
        "median delay",
        "false before onset",
        title="sustained rises, weekly rhythm (target: caught in >= 90% of runs)",
    )
    for cell in summary.cells:
        delay = f"{cell.median_delay_hours:.1f} h" if cell.median_delay_hours is not None else "—"
        rises.add_row(
            cell.volume,
            f"{cell.negative_per_hour:g}",
            f"{cell.multiple:g}x",
            str(cell.runs),
            f"{cell.caught}/{cell.runs} ({100 * cell.caught_share:.0f}%)",
            delay,
            str(cell.false_before_onset),
        )
    calm = Table(
        "volume",
        "brand-weeks",
        "false incidents",
        "per brand-week",
        "on Mondays",
        "during the history",
        title="calm weeks, weekly rhythm (target: <= 1 false incident per brand-week, none on Mondays)",
    )
    for volume, rate in summary.false_incidents_per_brand_week_by_volume.items():
        results = [r for r in summary.calm if r.case.volume == volume]
        calm.add_row(
            volume,
            f"{sum(r.case.brand_weeks for r in results):.3g}",
            str(sum(r.false_incidents for r in results)),
            f"{rate:.2f}",
            str(sum(r.monday_false_incidents for r in results)),
            str(sum(r.history_false_incidents for r in results)),
        )
    calm.add_row(
        "all",
        f"{sum(r.case.brand_weeks for r in summary.calm):.3g}",
        str(sum(r.false_incidents for r in summary.calm)),
        f"{summary.false_incidents_per_brand_week:.2f}",
        str(sum(r.monday_false_incidents for r in summary.calm)),
        str(sum(r.history_false_incidents for r in summary.calm)),
        style="bold",
    )
    new = Table("volume", "first days", "alerts", title="new brand, calm first day (target: 0 alerts)")
    for volume, alerts in summary.new_brand_alerts.items():
        new.add_row(volume, str(sum(r.case.volume == volume for r in summary.new_brands)), str(alerts))
    return [rises, calm, new]


YOUNG_HISTORY_DAYS = 3
YOUNG_RATES = (5.0, 8.0, 20.0)
YOUNG_MULTIPLES = (1.5, 2.0, 3.0)
YOUNG_DEADLINE = timedelta(hours=6)


@dataclass(frozen=True)
class YoungRiseCell:
    """Young brands rising by one multiple at one volume: how many runs opened a warning in time, and how late."""

    negative_per_hour: float
    multiple: float
    runs: int
    caught: int
    median_delay_hours: float | None
    false_before_onset: int


def young_rise(negative_per_hour: float, multiple: float, seed: int) -> tuple[list[int], int]:
    """Counts per 5-minute bucket: three days of a daily rhythm with ~10% day-to-day swings, then a rise at 09:00.

    The rise multiplies the brand's negatives by ``multiple`` for eight hours;
    returns the counts up to its end and the index of its first bucket.
    """
    rng = np.random.default_rng(seed)
    days = YOUNG_HISTORY_DAYS + 1
    hours = np.arange(days * 24) % 24
    day = np.repeat(np.exp(rng.normal(0.0, DAY_TO_DAY, days)), 24)
    rhythm = (1 + 0.4 * np.cos(2 * np.pi * (hours - 15) / 24)) * day
    per_bucket = np.repeat(negative_per_hour * rhythm / 12, 12)
    onset = (YOUNG_HISTORY_DAYS * 24 + 9) * 12
    per_bucket[onset : onset + 8 * 12] *= multiple
    return rng.poisson(per_bucket[: onset + 8 * 12]).tolist(), onset


def run_young_rises(config: DetectorConfig, runs: int = 5) -> list[YoungRiseCell]:
    """The issue's young brand: three days of history, then a rise; caught when a warning opens within six hours."""
    config = replace(config, bucket=timedelta(minutes=5))
    cells = []
    for rate in YOUNG_RATES:
        for multiple in YOUNG_MULTIPLES:
            delays: list[float] = []
            false = 0
            for seed in range(runs):
                counts, onset = young_rise(rate, multiple, seed)
                state = DetectorState.fresh("young", config)
                rise_start = START + onset * config.bucket
                opened = []
                for index, negative in enumerate(counts):
                    bucket = Bucket(start=START + index * config.bucket, negative=negative, total=2 * negative + 10)
                    state, events = step(state, bucket, config)
                    opened += [e for e in events if e.event is IncidentEventType.OPENED]
                false += sum(e.opened_at < rise_start for e in opened)
                late = [e for e in opened if e.opened_at >= rise_start and e.severity.rank >= 1]
                if late and late[0].opened_at - rise_start <= YOUNG_DEADLINE:
                    delays.append((late[0].opened_at - rise_start) / timedelta(hours=1))
            middle = median(delays) if delays else None
            cells.append(YoungRiseCell(rate, multiple, runs, len(delays), middle, false))
    return cells


def render_young_rises(cells: list[YoungRiseCell]) -> Table:
    """The young brands' rises as a table."""
    table = Table(
        "negatives/h",
        "multiple",
        "warning within 6 h",
        "median delay",
        "false before onset",
        title="young brands: 3 days of history, then a rise for 8 hours (issue: 2x at >= 5/h, a warning within 6 h)",
    )
    for cell in cells:
        delay = f"{cell.median_delay_hours:.1f} h" if cell.median_delay_hours is not None else "—"
        table.add_row(
            f"{cell.negative_per_hour:g}",
            f"{cell.multiple:g}x",
            f"{cell.caught}/{cell.runs}",
            delay,
            str(cell.false_before_onset),
        )
    return table


def suite_tables(config: DetectorConfig, quick: bool = False) -> list[Table]:
    """Run the original suite, the sustained part and the young brands' rises; ``quick`` runs small subsets."""
    summary = run_suite(config, quick_suite() if quick else None)
    sustained = run_sustained(config, SustainedPlan.quick() if quick else None)
    young = render_young_rises(run_young_rises(config, runs=1 if quick else 5))
    return [*render_suite(summary), *render_sustained(sustained), young]
