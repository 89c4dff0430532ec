"""When a look-back window opens an incident, how severe it is, and the rule that fired in words.

An incident opens when a window with at least ``min_negative`` mentions
reaches its threshold, or half of it while the negative share of all
mentions is itself surprising (the binomial tail of the brand's usual mix),
and the latest bucket is still above normal; no window is shorter than
``confirm_buckets``, so the evidence always spans several buckets. Severity
comes from how far the surprise passes the threshold, the velocity (observed
against expected rate) and the reach of the negative posts. A brand with
less than ``learning_period`` of history is learning: only extreme volume
opens an incident (:func:`learning_alarm`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from crisiswatch.contracts.schemas import Severity
from crisiswatch.themes.folding import RETWEET, fold_key

from .baseline import window_dispersions
from .calibration import open_thresholds
from .config import HOUR, MINUTE, DetectorConfig
from .count_laws import day_count_surprise, rise_evidence, share_surprise, tail_surprise
from .horizons import horizon_scores
from .memory import HourlyMemory, horizon_counts, part_of_day
from .scoring import window_scores, window_totals
from .state import DetectorState, RecentBucket, WindowScore


def severity_for(window: WindowScore, threshold: float, reach: int, config: DetectorConfig) -> Severity:
    """Watch / warning / critical from the surprise (against the threshold), velocity and reach.

    Velocity is the window's negative rate against the normal one; reach is
    how many followers the negative posts' authors have between them. A
    day-scale horizon that holds twice its normal is at least a warning: hours
    of doubled complaints are what a service team must hear about while the
    day is young.
    """
    velocity = window.observed / max(window.expected, 1e-9)
    if (window.surprise >= 3 * threshold and velocity >= 8) or reach >= config.critical_reach:
        return Severity.CRITICAL
    if window.surprise >= 2 * threshold or velocity >= 4 or reach >= config.warning_reach:
        return Severity.WARNING
    if window.hours and velocity >= 2:
        return Severity.WARNING
    return Severity.WATCH


@dataclass(frozen=True)
class Alarm:
    """A window that opens an incident, the threshold it passed, and the rule in words."""

    window: WindowScore
    threshold: float
    rule: str
    least_severity: Severity = Severity.WATCH
    """The least severity the rule that fired calls for (a young brand's rise is a warning whatever its size)."""
    voices_counted: bool = False
    """Whether the window already counts voices (retweets taken out), so none are to be taken out again."""
    reads_prior_spread: bool = True
    """Whether the rule leans on the day-to-day spread learnt across brands (the rise test reads the brand's own)."""


def alarm(
    recent: list[RecentBucket],
    windows: list[WindowScore],
    thresholds: dict[int, float],
    config: DetectorConfig,
    called_normal: Mapping[int, float] | None = None,
) -> Alarm | None:
    """The window that most clearly calls for an incident, if any.

    A window with at least ``min_negative`` mentions alarms by count when its
    surprise reaches its (calibrated, sensitivity-scaled) threshold, or by
    count and share when the count reaches half of it and the negative share
    of all mentions, judged against the brand's usual mix, is surprising too:
    the same number of complaints means more when the rest of the talk did
    not grow with them. On a fast window (threshold at least
    ``open_surprise_floor``) the share must reach the other half, each half a
    strong statement by itself; on a day-scale horizon, whose threshold is a
    few units, half would be no evidence at all, so the share, judged against
    the previous days' shares, must reach the whole threshold. A window whose
    count is no more surprising than a surge the team ``called_normal`` (see
    :func:`.calibration.normal_levels`) does not alarm by either rule.
    """
    found: list[Alarm] = []
    for window in windows:
        limit = config.scaled(thresholds[window.key])
        if window.observed < config.min_negative or window.surprise < limit / 2:
            continue
        if called_normal and window.observed <= called_normal.get(window.key, 0.0) * window.expected:
            continue
        if window.surprise >= limit:
            found.append(Alarm(window, limit, describe_window(window, limit, config)))
            continue
        total, expected_total = window_totals(recent, window)
        normal = window.expected / max(expected_total, 1e-9)
        shift = window.share_surprise if window.hours else share_surprise(window.observed, total, normal)
        needed = limit if window.hours else limit / 2
        if shift >= needed:
            rule = (
                describe_window(window, limit / 2, config)
                + f" (half the threshold) with {window.observed / total:.0%} of {total} mentions negative vs "
                f"{min(normal, 1.0):.0%} normal: share surprise {shift:.1f} >= {needed:.1f}"
            )
            found.append(Alarm(window, limit / 2, rule))
    return max(found, key=lambda a: a.window.surprise / a.threshold, default=None)


def burst_alarm(
    memory: HourlyMemory, end: datetime, config: DetectorConfig, called_normal: Mapping[int, float] | None = None
) -> Alarm | None:
    """An hour at ``burst_ratio`` (10) times the brand's normal for that hour opens an incident, whatever its past.

    Normal is the median of the same clock hour on the previous days (the
    hourly memory's reference for ``memory.burst_hours``: the last completed
    hour and the one being filled), never below ``floor_negative_per_hour``;
    at least ``min_negative`` mentions. No calibration is consulted: a brand
    whose last fortnight was bursty has thresholds that climbed, but ten
    times its usual hour is a storm by any measure. A surge the team called
    normal (``called_normal``, keyed as a horizon) of this size stays quiet.
    """
    hours = config.memory.burst_hours
    if memory.negative_now + sum(memory.negative[-hours:]) < config.min_negative:
        return None  # the common case, decided without building the counts
    counts = horizon_counts(memory, end, (hours,))
    if not counts:
        return None
    found = counts[0]
    normal = max(found.expected, config.floor_negative_per_hour * hours)
    if found.observed < max(config.min_negative, config.burst_ratio * normal):
        return None
    if called_normal and found.observed <= called_normal.get(-hours, 0.0) * normal:
        return None
    window = WindowScore(
        config.buckets(HOUR * hours),
        found.observed,
        normal,
        day_count_surprise(found._replace(expected=normal)),
        hours,
        found.observed_total,
        found.expected_total,
        found.start,
    )
    threshold = config.horizon_floor(hours)
    rule = (
        describe_window(window, threshold, config)
        + f"; at least {config.burst_ratio:g}x the brand's normal for these hours opens an incident whatever its past"
    )
    return Alarm(window, threshold, rule)


def rise_alarm(
    memory: HourlyMemory, end: datetime, config: DetectorConfig, called_normal: Mapping[int, float] | None = None
) -> Alarm | None:
    """A young brand's sustained rise: hours at about ``rise_ratio`` (2) times the same hours of previous days.

    A brand with under ``young_days`` of memory cannot yet say how far its
    days stray from each other, and the horizons, which judge a rise against
    that spread, stay cautious until it can. For those weeks a sequential test
    of the product's own definition of a rise decides instead. Over the last
    ``H`` hours (each of ``rise_hours``; the hour being filled counts as far
    as it has come), against the median of the same hours of the previous
    days, it needs, counting voices (negative mentions less explicit
    retweets, in those hours and in the days they are compared with):

    - at least ``min_negative`` and ``rise_min_per_hour`` negative mentions an hour;
    - a count nearer the rise than normal on a log scale (at least the square
      root of ``rise_ratio`` times normal), and so the count without its
      busiest completed hour (a sustained rise, not one burst hour: that one
      is the burst rule's), and the shortest of ``rise_hours`` nearer the rise
      too (still under way, not a rise that ended hours ago);
    - evidence for "``rise_ratio`` times normal" over "normal" of at least
      ``rise_evidence`` decades (:func:`.count_laws.rise_evidence`, with the
      brand's own day-to-day spread; chosen by the validation, ``inf`` turns
      the rule off).

    A surge the team called normal of this size stays quiet.
    """
    if not math.isfinite(config.rise_evidence) or memory.hours_known >= config.young_days * 24:
        return None
    least = max(config.min_negative, config.rise_min_per_hour * min(config.rise_hours, default=1))
    if memory.negative_now + sum(memory.negative[-max(config.rise_hours, default=1) :]) < least:
        return None  # the common case, decided without building the counts
    midpoint = math.sqrt(config.rise_ratio)
    shortest = min(config.rise_hours, default=1)
    reference = (memory.references or {}).get(shortest)
    if reference is None:
        return None
    latest_negative = memory.negative_now + sum(memory.negative[-shortest:])
    if latest_negative < midpoint * max(reference.base_voices, config.floor_negative_per_hour * shortest):
        return None  # even counting every retweet the latest hours are not nearer the rise: the common case, cheaply
    every = horizon_counts(memory, end, config.rise_hours)
    if not every:
        return None
    latest = min(every, key=lambda counts: counts.hours)
    if latest.observed_voices < midpoint * max(latest.expected_voices, config.floor_negative_per_hour * latest.hours):
        return None  # whatever the longer hours held, the rise is not under way now
    found: list[Alarm] = []
    for counts in every:
        voices = counts.observed_voices
        normal = max(counts.expected_voices, config.floor_negative_per_hour * counts.hours)
        if voices < max(config.min_negative, config.rise_min_per_hour * counts.hours, midpoint * normal):
            continue
        busiest = max(memory.voices(counts.hours))
        if voices - busiest < midpoint * normal * (counts.hours - 1) / counts.hours:
            continue
        evidence = rise_evidence(voices, normal, config.rise_ratio, counts.own_day_to_day)
        if evidence < config.rise_evidence:
            continue
        if called_normal and voices <= called_normal.get(counts.hours, 0.0) * normal:
            continue
        window = WindowScore(
            config.buckets(HOUR * counts.hours),
            voices,
            normal,
            evidence,
            counts.hours,
            counts.observed_total,
            counts.expected_total,
            counts.start,
        )
        rule = (
            describe_window(window, config.rise_evidence, config)
            .replace("Negative mentions", "Negative mentions less retweets", 1)
            .replace("surprise", "evidence for a rise")
            + f"; a young brand's hours at {config.rise_ratio:g}x the same hours of previous days open an incident"
        )
        found.append(
            Alarm(window, config.rise_evidence, rule, Severity.WARNING, voices_counted=True, reads_prior_spread=False)
        )
    return max(found, key=lambda a: a.window.surprise, default=None)


def echoes(recent: list[RecentBucket], buckets: int) -> int:
    """Retweets of a post already seen in the last ``buckets`` buckets' samples: one voice repeated, not new voices.

    Only explicit retweets (``RT @author:``) count, and only among the sample
    posts the buckets still keep (the last ``sample_span``; every negative
    post of a bucket with at most ``MAX_SAMPLES``), so this is a lower bound
    on the copies in the window (a sample counts its folded ``copies``). The
    same words typed by many accounts are many voices and are not counted
    here.
    """
    seen: set[str] = set()
    repeated = 0
    for bucket in recent[-buckets:]:
        for sample in sorted(bucket.samples, key=lambda s: s.created_at):
            key = fold_key(sample.text)
            if RETWEET.match(sample.text):
                repeated += sample.copies if key in seen else sample.copies - 1
            seen.add(key)
    return repeated


def voices_still_alarm(
    found: Alarm, repeated: int, dispersions: Mapping[int, float], tried: int, config: DetectorConfig
) -> bool:
    """Whether ``found`` still opens an incident once ``repeated`` retweets of posts already counted are taken out.

    A fast window's count surprise is recomputed (against the same threshold);
    an hour-scale alarm keeps its ratio to normal only if the voices alone
    keep it (at least ``burst_ratio`` for a burst, the same excess share for a
    horizon).
    """
    window = found.window
    voices = window.observed - repeated
    if repeated <= 0 or found.voices_counted:
        return True
    if voices < config.min_negative:
        return False
    if not window.hours:
        surprise = tail_surprise(voices, window.expected, dispersions[window.buckets]) - math.log10(tried)
        return surprise >= found.threshold
    excess = window.observed - window.expected
    return voices - window.expected >= 0.9 * excess if excess > 0 else False


def learning_alarm(state: DetectorState, config: DetectorConfig) -> Alarm | None:
    """While a brand is learning, only extreme volume alerts: ``learning_alert_negative`` in ``learning_alert_window``.

    Its baseline is a guess before a day is seen, so its surprise is not
    trusted on its own: the count must also be extreme in absolute terms, and
    still surprising (``learning_alert_surprise``) under the wide spread of a
    young baseline, so a brand that is simply busy does not alert on its first day.
    Nothing alerts during the first ``warmup``, when there is no baseline at all.
    """
    window = learning_window(state, config)
    needed = config.scaled(config.learning_alert_surprise)
    if window.observed < config.learning_alert_negative or window.surprise < needed:
        return None
    observed, minutes = window.observed, round(window.buckets * config.bucket / MINUTE)
    rule = (
        f"{observed} negative mentions in the last {minutes} min while the brand is still learning what is normal "
        f"(at least {config.learning_alert_negative} in {minutes} min alert before a day of history)"
    )
    return Alarm(window, needed, rule)


def learning_window(state: DetectorState, config: DetectorConfig) -> WindowScore:
    """The last ``learning_alert_window`` judged as the learning rule judges it: with a young baseline's spread."""
    buckets = state.recent[-config.buckets(config.learning_alert_window) :]
    observed = sum(b.negative for b in buckets)
    expected = sum(b.expected_negative for b in buckets)
    return WindowScore(len(buckets), observed, expected, tail_surprise(observed, expected, config.early_dispersion))


def alarm_ratio(state: DetectorState, config: DetectorConfig) -> float:
    """How near the brand's latest look-back windows are to opening an incident: 1 is at the threshold.

    The largest window surprise (fast windows and day-scale horizons) over
    that window's (calibrated, sensitivity-scaled) threshold; 0 during the
    warm-up, when nothing is judged; while the brand is learning, how near
    the extreme-volume rule is (both its count and its surprise). A score for
    charts and exports: the share rule and the other conditions of
    :func:`alarm` are not in it.
    """
    if state.baseline.buckets_seen < config.buckets(config.warmup):
        return 0.0
    if state.learning(config):
        window = learning_window(state, config)
        needed = config.scaled(config.learning_alert_surprise)
        return min(window.observed / config.learning_alert_negative, window.surprise / needed)
    thresholds = open_thresholds(state, config)
    windows = window_scores(state.recent, window_dispersions(state.baseline, config), config.window_lengths())
    if state.recent:
        windows += horizon_scores(state.memory, state.recent[-1].start + config.bucket, config)
    return max((w.surprise / config.scaled(thresholds[w.key]) for w in windows), default=0.0)


def describe_window(window: WindowScore, threshold: float, config: DetectorConfig) -> str:
    """Why a window passes ``threshold``, in words: its count against normal and its surprise."""
    if window.hours and window.start is not None:
        ratio = window.observed / max(window.expected, 1e-9)
        when = part_of_day(window.start + HOUR * window.hours)
        return (
            f"Negative mentions over the last {window.hours} h: {window.observed} vs {window.expected:.0f} normal "
            f"for a {when} ({ratio:.1f}x): surprise {window.surprise:.1f} >= {threshold:.1f}"
        )
    minutes = round(window.buckets * config.bucket / MINUTE)
    return (
        f"{window.observed} negative mentions in the last {minutes} min vs {window.expected:.1f} expected: "
        f"surprise {window.surprise:.1f} >= {threshold:.1f}"
    )
