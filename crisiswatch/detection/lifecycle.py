"""An incident's life, bucket by bucket: open, escalate, resolve; the one entry point of the alerter and backtests.

:func:`judge` steps a brand through its newly closed buckets. Each
:func:`step` folds the bucket into the brand's memory and baseline, scores
every look-back window and day-scale horizon, and opens an incident when one
of them alarms (:mod:`.alarms`). The incident resolves only after
``resolve_quiet`` without surprise (hysteresis), and the brand cannot
re-open within ``cooldown``. Escalation to a higher severity is the only
re-alert, and it waits ``escalation_gap`` after the last alert. The same
code runs in the live alerter and in offline backtests.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from datetime import datetime

from crisiswatch.contracts.schemas import THEME_POSTS_MAX, THEME_TEXT_CHARS, Incident, IncidentEventType, SampleMention
from crisiswatch.themes.folding import fold_samples

from .alarms import (
    Alarm,
    alarm,
    burst_alarm,
    describe_window,
    echoes,
    learning_alarm,
    rise_alarm,
    severity_for,
    voices_still_alarm,
)
from .baseline import effective_dispersion, expected_counts, updated_baseline, window_dispersions
from .calibration import calibrate, normal_levels, open_thresholds
from .config import MINUTE, DetectorConfig
from .events import incident_event
from .horizons import horizon_scores, still_rising
from .memory import derived, remember
from .scoring import most_surprising, scan, score, window_reach, window_scores
from .state import BucketVerdict, DetectorState, OpenIncident, RecentBucket, WindowScore
from .windows import Bucket, top_samples


def _theme_posts(*groups: list[SampleMention]) -> list[SampleMention]:
    """The posts an incident's themes are read from: every sample once, copies folded, the most copied first.

    Capped at ``THEME_POSTS_MAX``; beyond it the posts with fewest copies
    and least reach give way, so a long storm keeps its main stories.
    """
    folded = fold_samples(_lean(sample) for sample in _distinct(groups))
    folded.sort(key=lambda s: (s.copies, s.reach), reverse=True)
    return folded[:THEME_POSTS_MAX]


def _lean(post: SampleMention) -> SampleMention:
    """A theme post as small as grouping needs (its first 280 characters, no link): 150 of them ride every event.

    Cut before folding, so a long post and its copy in a later bucket key alike.
    """
    return (
        post
        if len(post.text) <= THEME_TEXT_CHARS and post.url is None
        else post.model_copy(update={"text": post.text[:THEME_TEXT_CHARS], "url": None})
    )


def _merge_samples(*groups: list[SampleMention]) -> list[SampleMention]:
    """The incident's samples from several buckets': each post once, near-duplicates folded, the top few kept."""
    return top_samples(fold_samples(_distinct(groups)))


def _distinct(groups: Iterable[list[SampleMention]]) -> list[SampleMention]:
    """Each sample once, by id: an incident's samples and a bucket's may hold the same post."""
    seen: dict[str, SampleMention] = {}
    for group in groups:
        for sample in group:
            seen.setdefault(sample.id, sample)
    return list(seen.values())


def _size(window: WindowScore) -> float:
    """How large a window's surge is: observed over expected negative mentions."""
    return window.observed / max(window.expected, 1e-9)


def _open(
    state: DetectorState, found: Alarm, end: datetime, config: DetectorConfig, windows: Sequence[WindowScore] = ()
) -> Incident:
    """Open an incident in ``state`` (a copy the caller owns) for ``found``; returns the OPENED event.

    The incident remembers how large the surge was in every window
    (``windows``), so a "not a crisis" verdict covers each window, not only
    the one that fired.
    """
    best = found.window
    window = state.recent[-best.buckets :]
    state.incidents_opened += 1
    state.incident = OpenIncident(
        incident_id=f"{state.brand}-{end:%Y%m%dT%H%M}",
        revision=1,
        opened_at=end,
        severity=max(
            severity_for(best, found.threshold, window_reach(state.recent, best), config),
            found.least_severity,
            key=lambda severity: severity.rank,
        ),
        peak_negative=max(b.negative for b in window),
        total_negative=best.observed,
        samples=_merge_samples(*(b.samples for b in window)),
        theme_posts=_theme_posts(*(b.samples for b in window)),
        horizon_hours=best.hours,
        peak_size={w.key: _size(w) for w in [*windows, best]},
    )
    return incident_event(state, IncidentEventType.OPENED, best, found.rule, config)


def _with_history_note(found: Alarm, hours_known: int, config: DetectorConfig) -> Alarm:
    """``found`` with its rule saying that the brand's history is short, when it is (under ``young_days``)."""
    days = hours_known // 24
    if days >= config.young_days:
        return found
    spread = config.memory.prior_days > 0 and found.reads_prior_spread
    note = (
        f" (short history: {days} days remembered"
        + ("; its day-to-day spread is partly the one learnt across brands" if spread else "")
        + ")"
    )
    return dataclasses.replace(found, rule=found.rule + note)


def step(state: DetectorState, bucket: Bucket, config: DetectorConfig) -> tuple[DetectorState, list[Incident]]:
    """Advance one brand by one closed bucket; returns the new state and any incident events."""
    state = state.model_copy(
        update={"recent": list(state.recent), "incident": state.incident.model_copy() if state.incident else None}
    )
    state.memory = memory = remember(
        derived(state.memory, config.memory),
        bucket.start,
        bucket.negative,
        bucket.total,
        config.memory,
        bucket.negative_echoes,
    )
    weekly = memory.weekly
    expected_negative, expected_total = expected_counts(state.baseline, config, bucket.start, weekly)
    lengths = config.window_lengths()
    previous = state.recent[-1] if state.recent else None
    state.recent.append(
        RecentBucket(
            start=bucket.start,
            negative=bucket.negative,
            total=bucket.total,
            expected_negative=expected_negative,
            expected_total=expected_total,
            reach=bucket.reach_negative,
            samples=bucket.samples,
            running_negative=(previous.running_negative if previous else 0) + bucket.negative,
            running_expected=(previous.running_expected if previous else 0.0) + expected_negative,
        )
    )
    del state.recent[: -max(lengths)]
    aged = len(state.recent) - config.buckets(config.sample_span) - 1
    if aged >= 0 and state.recent[aged].samples:
        state.recent[aged] = state.recent[aged].without_samples()
    end = bucket.start + config.bucket
    cooling = state.cooldown_until is not None and bucket.start < state.cooldown_until

    if state.incident is None and state.baseline.buckets_seen < config.buckets(config.warmup):
        state.baseline = updated_baseline(state.baseline, bucket, config, weekly=weekly)
        return state, []

    dispersions = window_dispersions(state.baseline, config)
    fast = window_scores(state.recent, dispersions, lengths)
    windows = fast + horizon_scores(memory, end, config)
    calibrate(state, bucket.start, windows, config)
    if state.incident is None:
        if state.learning(config):
            found = learning_alarm(state, config)
        else:
            called_normal = normal_levels(state, config, bucket.start.date())
            found = alarm(state.recent, windows, open_thresholds(state, config), config, called_normal)
            if found is not None and found.window.hours and not still_rising(found.window, windows):
                found = None
            if found is not None and not found.window.hours and bucket.negative <= expected_negative:
                found = None
            if found is None:
                found = burst_alarm(memory, end, config, called_normal)
            if found is None:
                found = rise_alarm(memory, end, config, called_normal)
        if found is not None:
            repeated = echoes(state.recent, found.window.buckets)
            if not voices_still_alarm(found, repeated, dispersions, len(lengths), config):
                found = None
        if found is not None and not cooling:
            return state, [_open(state, _with_history_note(found, memory.hours_known, config), end, config, windows)]
        calm = most_surprising(fast).surprise < config.scaled(config.hot_surprise)
        state.baseline = updated_baseline(state.baseline, bucket, config, calm=calm, windows=fast, weekly=weekly)
        return state, []

    events: list[Incident] = []
    incident = state.incident
    incident.total_negative += bucket.negative
    incident.peak_negative = max(incident.peak_negative, bucket.negative)
    incident.samples = _merge_samples(incident.samples, bucket.samples)
    incident.theme_posts = _theme_posts(incident.theme_posts, bucket.samples)
    peaks = incident.peak_size
    larger = {w.key: size for w in windows if (size := _size(w)) > peaks.get(w.key, 0.0)}
    if larger:
        incident.peak_size = {**peaks, **larger}
    resolve_lengths = tuple(n for n in lengths if n <= config.buckets(config.resolve_window)) or lengths[:1]
    short = scan(state.recent, dispersions, resolve_lengths)
    if incident.horizon_hours:
        shortest = min((w for w in windows if w.hours), key=lambda w: w.hours, default=None)
        if shortest is not None and shortest.surprise > short.surprise:
            short = shortest
    rise_holds = bool(incident.horizon_hours) and rise_alarm(memory, end, config) is not None
    if short.surprise < config.scaled(config.resolve_surprise) and not rise_holds:
        incident.quiet_buckets += 1
    elif windows:
        incident.quiet_buckets = 0
        thresholds = open_thresholds(state, config)
        loudest = max(windows, key=lambda w: w.surprise / thresholds[w.key])
        threshold = config.scaled(thresholds[loudest.key])
        severity = severity_for(loudest, threshold, window_reach(state.recent, loudest), config)
        settled = end - (incident.alerted_at or incident.opened_at) >= config.escalation_gap
        if severity.rank > incident.severity.rank and settled:
            incident.severity = severity
            incident.alerted_at = end
            incident.revision += 1
            rule = f"severity rose to {severity.value}: " + describe_window(loudest, threshold, config)
            events.append(incident_event(state, IncidentEventType.ESCALATED, loudest, rule, config))
    if incident.quiet_buckets >= config.buckets(config.resolve_quiet):
        incident.revision += 1
        quiet_minutes = round(incident.quiet_buckets * config.bucket / MINUTE)
        rule = f"{quiet_minutes} min without surprise above {config.scaled(config.resolve_surprise):.1f}"
        events.append(incident_event(state, IncidentEventType.RESOLVED, short, rule, config))
        state.incident = None
        state.cooldown_until = end + config.cooldown
    state.baseline = updated_baseline(state.baseline, bucket, config, during_incident=True, weekly=weekly)
    return state, events


def judge(
    state: DetectorState, closed: list[Bucket], config: DetectorConfig
) -> tuple[DetectorState, list[BucketVerdict]]:
    """Step a brand through its newly closed buckets in order: the one entry point of the live alerter and backtests."""
    verdicts: list[BucketVerdict] = []
    for bucket in closed:
        own = score(state.baseline, bucket, config, state.memory.weekly)
        dispersion = effective_dispersion(state.baseline, config)
        learning = state.learning(config)
        state, events = step(state, bucket, config)
        verdicts.append(BucketVerdict(bucket, own, dispersion, events, learning))
    return state, verdicts


def warm_start(state: DetectorState) -> DetectorState:
    """A brand's state learnt from its recorded history, ready to go on live: what is normal, no open incident.

    The baseline, the hourly memory, the calibration and any false-alarm
    verdicts carry over; an incident or cooldown from the history does not,
    and neither do the recent buckets, which the live stream refills (its
    first bucket need not follow the history's last).
    """
    return state.model_copy(update={"incident": None, "cooldown_until": None, "recent": []})
