"""Synthetic brand-mention streams with known crises, for the demo, tests and detector evaluation.

A scenario is a seeded, deterministic description: several brands with a
daily rhythm of mentions, and crises injected at known onsets (so detection
delay can be measured) with their own theme and texts, plus harmless viral
positive spikes that a good detector must ignore.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np

THEMES: dict[str, tuple[str, ...]] = {
    "outage": (
        "{brand} app is down again, I can't log in at all. Useless.",
        "Is {handle} down? Nothing loads and I need to pay rent today #{tag}down",
        "{handle} your service has been broken for an hour, this is unacceptable",
        "Can't access my account on {brand}. Error after error. Furious.",
        "Total outage at {brand} and not a word from them. Terrible.",
        "{brand} down AGAIN. How hard is it to keep a website running?? #{tag}",
    ),
    "delay": (
        "Stuck at the gate for 4 hours, {handle} won't tell us anything. Worst airline.",
        "{brand} delayed my order for the third time, never buying from them again",
        "Three hours waiting and {brand} just cancelled. Awful. #{tag}fail",
        "{handle} my delivery is a week late and nobody answers. Disgraceful.",
    ),
    "billing": (
        "{brand} charged me twice this month and support just ignores me. Scam.",
        "Double charged by {handle} again. Give me my money back!",
        "Hidden fees everywhere, {brand} is robbing its customers #{tag}",
        "{brand} billing is a mess, overcharged three times. Done with them.",
    ),
    "customer service": (
        "Two hours on hold with {brand} and they hung up on me. Rude and useless.",
        "{handle} your support agents are the rudest people I have ever dealt with",
        "Worst customer service ever, {brand} doesn't care about its customers",
    ),
    "product defect": (
        "My new {brand} phone overheats and shuts down. Absolute garbage.",
        "{handle} the update bricked my device. Furious, it's completely broken",
        "{brand} quality has gone downhill, mine broke after two days #{tag}",
    ),
    "safety": (
        "My {brand} charger caught fire last night. This is dangerous, recall it now!",
        "{handle} your product burned my kid's hand. Horrified and angry.",
    ),
    "data/privacy": (
        "{brand} leaked my personal data?! Got an email from a stranger with my details. Scary.",
        "Data breach at {handle} and they hid it for weeks. Disgusting.",
    ),
}

NEUTRAL_TEXTS: tuple[str, ...] = (
    "Does anyone know if {brand} is open on Sunday?",
    "{handle} what time does the new store open tomorrow?",
    "Switching my plan to {brand} next month, will see how it goes",
    "{brand} announced new opening hours for the holidays",
    "Reading the {brand} quarterly report this morning",
    "Heading to the {brand} office for a meeting",
    "{handle} is there a student discount?",
    "Just saw a {brand} ad on the bus",
)
POSITIVE_TEXTS: tuple[str, ...] = (
    "Loving the new {brand} app update, so smooth!",
    "Shout out to {handle} support, they fixed my problem in minutes. Great service!",
    "{brand} never lets me down, best in the business #{tag}",
    "Thank you {handle}! Amazing experience today",
    "So happy with my {brand} purchase, highly recommend",
)
NEGATIVE_TEXTS: tuple[str, ...] = (
    "Not impressed with {brand} lately, getting worse",
    "{handle} still waiting for a reply to my complaint. Disappointed.",
    "{brand} prices keep going up and service keeps going down",
)
VIRAL_POSITIVE_TEXTS: tuple[str, ...] = (
    "This {brand} ad is the best thing I've seen all year 😂❤️ #{tag}",
    "Everyone watch the new {brand} commercial, absolutely brilliant!",
    "{handle} that surprise for your customers made my day, love it!",
)


@dataclass(frozen=True)
class BrandTraffic:
    """A brand's normal chatter: mean mentions per hour over the day and its sentiment mix."""

    brand: str
    display_name: str
    handle: str
    mentions_per_hour: float
    negative_share: float = 0.15
    positive_share: float = 0.30


@dataclass(frozen=True)
class Crisis:
    """Extra negative mentions about one theme, starting at a known moment."""

    brand: str
    onset: datetime
    duration: timedelta
    theme: str
    negative_per_hour: float
    ramp: timedelta = timedelta(minutes=10)

    def rate_at(self, moment: datetime) -> float:
        """Extra negative mentions per hour at ``moment`` (ramps up, holds, then fades over the last third)."""
        elapsed = (moment - self.onset).total_seconds()
        total = self.duration.total_seconds()
        if elapsed < 0 or elapsed >= total:
            return 0.0
        ramp = self.ramp.total_seconds()
        rising = min(1.0, elapsed / ramp) if ramp > 0 else 1.0
        fading = min(1.0, (total - elapsed) / (total / 3))
        return self.negative_per_hour * min(rising, fading)


@dataclass(frozen=True)
class ViralPositive:
    """A harmless burst of positive attention (a loved ad), which must not raise an alert."""

    brand: str
    onset: datetime
    duration: timedelta
    positive_per_hour: float


@dataclass(frozen=True)
class Scenario:
    """Everything needed to regenerate a stream exactly."""

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

    def diurnal(self, moment: datetime) -> float:
        """Relative volume at this time of day (mean 1 over a day)."""
        hour = moment.hour + moment.minute / 60
        return 1 + self.diurnal_amplitude * math.cos(2 * math.pi * (hour - self.peak_hour_utc) / 24)


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
    minutes = int(scenario.duration.total_seconds() // 60)
    sequence = 0
    for minute in range(minutes):
        moment = scenario.start + timedelta(minutes=minute)
        batch: list[tuple[float, dict[str, Any]]] = []
        for traffic in scenario.brands:
            base = traffic.mentions_per_hour * scenario.diurnal(moment) / 60
            for _ in range(rng.poisson(base)):
                roll = rng.random()
                if roll < traffic.negative_share:
                    sentiment, text = "negative", NEGATIVE_TEXTS[rng.integers(len(NEGATIVE_TEXTS))]
                elif roll < traffic.negative_share + traffic.positive_share:
                    sentiment, text = "positive", POSITIVE_TEXTS[rng.integers(len(POSITIVE_TEXTS))]
                else:
                    sentiment, text = "neutral", NEUTRAL_TEXTS[rng.integers(len(NEUTRAL_TEXTS))]
                batch.append(
                    (
                        rng.random(),
                        {"brand": traffic.brand, "text": _fill(text, traffic), "truth": {"sentiment": sentiment}},
                    )
                )
        for crisis in scenario.crises:
            templates = THEMES[crisis.theme]
            for _ in range(rng.poisson(crisis.rate_at(moment) / 60)):
                text = templates[rng.integers(len(templates))]
                truth = {"sentiment": "negative", "crisis": crisis.theme}
                batch.append(
                    (rng.random(), {"brand": crisis.brand, "text": _fill(text, by_brand[crisis.brand]), "truth": truth})
                )
        for burst in scenario.viral:
            active = burst.onset <= moment < burst.onset + burst.duration
            for _ in range(rng.poisson(burst.positive_per_hour / 60) if active else 0):
                text = VIRAL_POSITIVE_TEXTS[rng.integers(len(VIRAL_POSITIVE_TEXTS))]
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
                "lang": "en",
                "author_handle": f"user{int(rng.integers(1, 10**6))}",
                "author_followers": followers,
                "url": f"https://social.example/{scenario.name}/{sequence}",
                "likes": int(rng.poisson(2)),
                "reposts": int(rng.poisson(0.5)),
                "replies": int(rng.poisson(0.3)),
                **record,
            }


def demo_scenario(start: datetime = datetime(2026, 3, 2, 6, 0, tzinfo=UTC)) -> Scenario:
    """The built-in demo: three brands over ten hours, an outage storm for Nimbus Bank after five."""
    return Scenario(
        name="demo",
        start=start,
        duration=timedelta(hours=10),
        brands=(
            BrandTraffic("acme-air", "Acme Air", "AcmeAir", mentions_per_hour=90),
            BrandTraffic("nimbus-bank", "Nimbus Bank", "NimbusBank", mentions_per_hour=60),
            BrandTraffic("voltcell", "Voltcell", "Voltcell", mentions_per_hour=40),
        ),
        crises=(
            Crisis("nimbus-bank", start + timedelta(hours=5), timedelta(hours=2), "outage", negative_per_hour=240),
        ),
        viral=(ViralPositive("voltcell", start + timedelta(hours=3), timedelta(minutes=40), positive_per_hour=200),),
    )
