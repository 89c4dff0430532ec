"""Synthetic brand-mention streams with known crises, for the demo, tests and detector evaluation.

A scenario is a seeded, deterministic description: several brands with a
daily rhythm of mentions (optionally a weekly one and day-to-day variation
too), and crises injected at known onsets (so detection delay can be
measured) with their own theme and texts, plus harmless viral positive spikes
that a good detector must ignore.

:func:`generate` writes one record per mention (with text), as an export
would; :func:`expected_counts` and :func:`bucket_counts` give the same model
as counts per bucket, vectorised, for evaluations over weeks at hundreds of
mentions an hour, where a record per mention is far too slow. What the posts
say comes from the phrase pools in :mod:`crisiswatch.evaluation_data.mention_texts`.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np

from crisiswatch.evaluation_data.mention_texts import TEXTS, Texts


@dataclass(frozen=True)
class BrandTraffic:
    """A brand's normal chatter: mean mentions per hour over the day, its sentiment mix and its customers' language."""

    brand: str
    display_name: str
    handle: str
    mentions_per_hour: float
    negative_share: float = 0.15
    positive_share: float = 0.30
    language: str = "en"

    def __post_init__(self) -> None:
        if self.language not in TEXTS:
            raise ValueError(f"no texts in language {self.language!r}; known: {', '.join(TEXTS)}")

    @property
    def texts(self) -> Texts:
        """The pools this brand's posts are drawn from."""
        return TEXTS[self.language]


@dataclass(frozen=True)
class Crisis:
    """Extra negative mentions about one theme, starting at a known moment.

    The extra rate ramps up over ``ramp``, holds, and fades out over ``fade``
    at the end (the last third of ``duration`` when None; zero ends it
    abruptly). With ``follows_rhythm`` the rate is multiplied by the brand's
    rhythm (daily, weekly, day-to-day) at each moment, so ``negative_per_hour``
    is the extra at an average moment: a crisis that multiplies a brand's
    normal negatives by ``m`` has ``negative_per_hour = (m - 1) * normal``.
    """

    brand: str
    onset: datetime
    duration: timedelta
    theme: str
    negative_per_hour: float
    ramp: timedelta = timedelta(minutes=10)
    fade: timedelta | None = None
    follows_rhythm: bool = False

    def rate_at(self, moment: datetime) -> float:
        """Extra negative mentions per hour at ``moment``, before any rhythm."""
        elapsed = (moment - self.onset).total_seconds()
        return float(self.rates(np.array([elapsed]))[0])

    def rates(self, elapsed: np.ndarray) -> np.ndarray:
        """Extra negative mentions per hour at each of ``elapsed`` seconds after onset, before any rhythm."""
        total = self.duration.total_seconds()
        ramp = self.ramp.total_seconds()
        fade = total / 3 if self.fade is None else self.fade.total_seconds()
        rising = np.minimum(1.0, elapsed / ramp) if ramp > 0 else np.ones_like(elapsed)
        fading = np.minimum(1.0, (total - elapsed) / fade) if fade > 0 else np.ones_like(elapsed)
        active = (elapsed >= 0) & (elapsed < total)
        return np.where(active, self.negative_per_hour * np.minimum(rising, fading), 0.0)

    @property
    def end(self) -> datetime:
        """When the extra mentions stop."""
        return self.onset + self.duration


@dataclass(frozen=True)
class ViralPositive:
    """A harmless burst of positive attention (a loved ad), which must not raise an alert."""

    brand: str
    onset: datetime
    duration: timedelta
    positive_per_hour: float


@dataclass(frozen=True)
class Scenario:
    """Everything needed to regenerate a stream exactly.

    A brand's mentions per hour at a moment are its ``mentions_per_hour``
    times :meth:`rhythm`: the daily cycle (mean 1 over a day), the factor of
    the weekday (``weekday_factors``, Monday first; their mean need not be 1)
    and that brand's multiplier for the day (lognormal with sigma
    ``day_to_day_variation`` and mean 1, see :meth:`day_multipliers`). The
    defaults (no weekly rhythm, no variation) keep streams generated before
    these existed byte-identical.
    """

    name: str
    start: datetime
    duration: timedelta
    brands: tuple[BrandTraffic, ...]
    crises: tuple[Crisis, ...] = ()
    viral: tuple[ViralPositive, ...] = ()
    seed: int = 7
    diurnal_amplitude: float = 0.6
    peak_hour_utc: float = 14.0
    followers_median: float = 300.0
    extra: dict[str, Any] = field(default_factory=dict)
    weekday_factors: tuple[float, ...] = (1.0,) * 7
    day_to_day_variation: float = 0.0

    def diurnal(self, moment: datetime) -> float:
        """Relative volume at this time of day (mean 1 over a day)."""
        hour = moment.hour + moment.minute / 60
        return 1 + self.diurnal_amplitude * math.cos(2 * math.pi * (hour - self.peak_hour_utc) / 24)

    def rhythm(self, moment: datetime, day_multiplier: float = 1.0) -> float:
        """A brand's volume relative to its ``mentions_per_hour`` at ``moment``, given its multiplier for that day."""
        return self.diurnal(moment) * self.weekday_factors[moment.weekday()] * day_multiplier

    def day_index(self, moment: datetime) -> int:
        """Which calendar day of the scenario ``moment`` falls on (0 for the day it starts)."""
        return (moment.date() - self.start.date()).days

    def day_multipliers(self) -> np.ndarray:
        """Each brand's multiplier for each calendar day of the scenario, shape ``(days, brands)``.

        Drawn from their own generator (seeded by ``seed``), so the mention
        draws are the same with and without variation; all ones without it.
        """
        days = self.day_index(self.start + self.duration) + 1
        if self.day_to_day_variation <= 0:
            return np.ones((days, len(self.brands)))
        sigma = self.day_to_day_variation
        normal = np.random.default_rng((self.seed, DAY_STREAM)).standard_normal((days, len(self.brands)))
        return np.exp(sigma * normal - sigma**2 / 2)

    def rhythms(self, seconds: np.ndarray) -> np.ndarray:
        """:meth:`rhythm` for every brand at each moment (Unix seconds), shape ``(moments, brands)``.

        The vectorised form for bucket counts; moments are read in the start's
        time zone like :meth:`diurnal` reads them.
        """
        offset = self.start.utcoffset() or timedelta(0)
        local = np.floor_divide(seconds + offset.total_seconds(), 60).astype(np.int64)
        hour = (local % 1440) / 60
        daily = 1 + self.diurnal_amplitude * np.cos(2 * np.pi * (hour - self.peak_hour_utc) / 24)
        epoch_day = local // 1440
        weekly = np.asarray(self.weekday_factors, dtype=float)[(epoch_day + EPOCH_WEEKDAY) % 7]
        first_day = (self.start.date() - EPOCH.date()).days
        days = self.day_multipliers()[np.clip(epoch_day - first_day, 0, None)]
        return (daily * weekly)[:, None] * days


DAY_STREAM = 0xDA7
"""Mixed into the seed of the day-to-day multipliers' generator, so it is independent of the mention draws."""
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
EPOCH_WEEKDAY = EPOCH.weekday()


def _fill(template: str, traffic: BrandTraffic) -> str:
    tag = traffic.display_name.replace(" ", "")
    return template.format(brand=traffic.display_name, handle="@" + traffic.handle, tag=tag)


def generate(scenario: Scenario) -> Iterator[dict[str, Any]]:
    """Yield raw mention records in time order, as a social-listening export would hold them.

    Records carry ``brand`` (the scenario knows it) and ``truth`` with the
    generated sentiment and the crisis, if any, that produced them.
    """
    rng = np.random.default_rng(scenario.seed)
    by_brand = {t.brand: t for t in scenario.brands}
    column = {t.brand: i for i, t in enumerate(scenario.brands)}
    multipliers: list[list[float]] = scenario.day_multipliers().tolist()
    minutes = int(scenario.duration.total_seconds() // 60)
    sequence = 0
    for minute in range(minutes):
        moment = scenario.start + timedelta(minutes=minute)
        today = multipliers[scenario.day_index(moment)]
        batch: list[tuple[float, dict[str, Any]]] = []
        for index, traffic in enumerate(scenario.brands):
            base = traffic.mentions_per_hour * scenario.rhythm(moment, today[index]) / 60
            pools = traffic.texts
            for _ in range(rng.poisson(base)):
                roll = rng.random()
                if roll < traffic.negative_share:
                    sentiment, text = "negative", pools.negative[rng.integers(len(pools.negative))]
                elif roll < traffic.negative_share + traffic.positive_share:
                    sentiment, text = "positive", pools.positive[rng.integers(len(pools.positive))]
                else:
                    sentiment, text = "neutral", pools.neutral[rng.integers(len(pools.neutral))]
                batch.append(
                    (
                        rng.random(),
                        {"brand": traffic.brand, "text": _fill(text, traffic), "truth": {"sentiment": sentiment}},
                    )
                )
        for crisis in scenario.crises:
            templates = by_brand[crisis.brand].texts.crisis(crisis.theme)
            rate = crisis.rate_at(moment)
            if crisis.follows_rhythm:
                rate *= scenario.rhythm(moment, today[column[crisis.brand]])
            for _ in range(rng.poisson(rate / 60)):
                text = templates[rng.integers(len(templates))]
                truth = {"sentiment": "negative", "crisis": crisis.theme}
                batch.append(
                    (rng.random(), {"brand": crisis.brand, "text": _fill(text, by_brand[crisis.brand]), "truth": truth})
                )
        for burst in scenario.viral:
            active = burst.onset <= moment < burst.onset + burst.duration
            viral_texts = by_brand[burst.brand].texts.viral
            for _ in range(rng.poisson(burst.positive_per_hour / 60) if active else 0):
                text = viral_texts[rng.integers(len(viral_texts))]
                truth = {"sentiment": "positive", "viral": True}
                batch.append(
                    (rng.random(), {"brand": burst.brand, "text": _fill(text, by_brand[burst.brand]), "truth": truth})
                )
        batch.sort(key=lambda item: item[0])
        for offset, record in batch:
            sequence += 1
            followers = int(rng.lognormal(math.log(scenario.followers_median), 1.6))
            created = moment + timedelta(seconds=offset * 60)
            yield {
                "id": f"{scenario.name}-{sequence}",
                "source": f"scenario:{scenario.name}",
                "created_at": created.isoformat(),
                "lang": by_brand[record["brand"]].language,
                "author_handle": f"user{int(rng.integers(1, 10**6))}",
                "author_followers": followers,
                "url": f"https://social.example/{scenario.name}/{sequence}",
                "likes": int(rng.poisson(2)),
                "reposts": int(rng.poisson(0.5)),
                "replies": int(rng.poisson(0.3)),
                **record,
            }


@dataclass(frozen=True)
class ExpectedCounts:
    """Mean mentions per bucket for one brand of a scenario, by kind, over consecutive buckets from ``start``.

    ``negative`` is the brand's normal negative chatter, ``other`` the rest of
    its chatter and any viral positive burst, ``crisis`` the crises' extra
    negatives. Kept apart so a crisis can be added to a background drawn once.
    """

    start: datetime
    width: timedelta
    negative: np.ndarray
    other: np.ndarray
    crisis: np.ndarray

    def draw(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """Poisson counts per bucket: negative and total mentions (normal, other, then crisis draws, in that order)."""
        normal = rng.poisson(self.negative)
        other = rng.poisson(self.other)
        negative = normal + rng.poisson(self.crisis)
        return negative, negative + other


def bucket_seconds(start: datetime, width: timedelta, count: int) -> np.ndarray:
    """Unix seconds at which each of ``count`` consecutive buckets of ``width`` from ``start`` begins."""
    return start.timestamp() + width.total_seconds() * np.arange(count)


def expected_counts(scenario: Scenario, width: timedelta) -> dict[str, ExpectedCounts]:
    """The scenario's mean counts per bucket of ``width`` for each brand: the model :func:`generate` draws from.

    Rates are taken at each bucket's start, as :func:`generate` takes them at
    each minute's start, so the two agree (to rounding) for one-minute buckets.
    """
    count = math.ceil(scenario.duration / width)
    seconds = bucket_seconds(scenario.start, width, count)
    hours = width / timedelta(hours=1)
    rhythms = scenario.rhythms(seconds)
    column = {t.brand: i for i, t in enumerate(scenario.brands)}
    means = {t.brand: t.mentions_per_hour * hours * rhythms[:, column[t.brand]] for t in scenario.brands}
    negative = {t.brand: means[t.brand] * t.negative_share for t in scenario.brands}
    other = {t.brand: means[t.brand] * (1 - t.negative_share) for t in scenario.brands}
    crises = {t.brand: np.zeros(count) for t in scenario.brands}
    for crisis in scenario.crises:
        extra = crisis.rates(seconds - crisis.onset.timestamp()) * hours
        if crisis.follows_rhythm:
            extra *= rhythms[:, column[crisis.brand]]
        crises[crisis.brand] += extra
    for burst in scenario.viral:
        active = (seconds >= burst.onset.timestamp()) & (seconds < (burst.onset + burst.duration).timestamp())
        other[burst.brand] += np.where(active, burst.positive_per_hour * hours, 0.0)
    return {
        brand: ExpectedCounts(scenario.start, width, negative[brand], other[brand], crises[brand]) for brand in column
    }


def bucket_counts(scenario: Scenario, width: timedelta) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Negative and total mentions per bucket of ``width`` for each brand, drawn from :func:`expected_counts`.

    Seeded by the scenario (brands drawn in order from one generator), so the
    counts are as reproducible as :func:`generate`'s records but not the same
    draws; the far cheaper way to feed a detector weeks of busy brands.
    """
    rng = np.random.default_rng(scenario.seed)
    return {brand: expected.draw(rng) for brand, expected in expected_counts(scenario, width).items()}


DEMO_START = datetime(2026, 3, 2, 6, 0, tzinfo=UTC)


def demo_scenario(start: datetime = DEMO_START) -> Scenario:
    """The built-in demo: four brands over ten hours, an outage storm for Nimbus Bank after five.

    Galil Mobile's customers write Hebrew; its network goes down after two
    hours, and the storm of Hebrew complaints is scored by the Hebrew model.
    """
    return Scenario(
        name="demo",
        start=start,
        duration=timedelta(hours=10),
        brands=(
            BrandTraffic("acme-air", "Acme Air", "AcmeAir", mentions_per_hour=90),
            BrandTraffic("nimbus-bank", "Nimbus Bank", "NimbusBank", mentions_per_hour=60),
            BrandTraffic("voltcell", "Voltcell", "Voltcell", mentions_per_hour=40),
            BrandTraffic("galil-mobile", "גליל מובייל", "GalilMobile", mentions_per_hour=40, language="he"),
        ),
        crises=(
            Crisis("nimbus-bank", start + timedelta(hours=5), timedelta(hours=2), "outage", negative_per_hour=240),
            Crisis("galil-mobile", start + timedelta(hours=2), timedelta(minutes=90), "outage", negative_per_hour=160),
        ),
        viral=(ViralPositive("voltcell", start + timedelta(hours=3), timedelta(minutes=40), positive_per_hour=200),),
    )


def demo_history(days: int = 7, start: datetime = DEMO_START) -> Scenario:
    """The demo brands' calm chatter over the ``days`` before the demo scenario starts: history to seed the alerter."""
    scenario = demo_scenario(start)
    return replace(
        scenario,
        name="demo-history",
        start=scenario.start - timedelta(days=days),
        duration=timedelta(days=days),
        crises=(),
        viral=(),
        seed=scenario.seed + 1,
    )
