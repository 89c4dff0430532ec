"""Each look-back window's threshold, calibrated on the brand's ordinary days, and the team's false-alarm verdicts.

Each window length has its own threshold, calibrated on the brand's history
at that time scale: the level its ordinary days' maxima reach once in
``calibration_return_days`` (a Gumbel law fitted to them), never below
``open_surprise_floor``, and ``open_surprise`` until a few days are seen. So
a brand whose chatter bursts for five minutes every afternoon needs a bigger
five-minute surge, while a rise that holds for hours is still judged against
how steady its hours are. A "not a crisis" verdict raises the bar for a surge
of the same size (:func:`normal_levels`).
"""

from __future__ import annotations

import math
from datetime import date, datetime, timedelta

import numpy as np
from scipy.stats import gumbel_r

from .config import DetectorConfig
from .state import Calibration, DetectorState, WindowScore

_GUMBEL_IQR = math.log(math.log(4)) - math.log(math.log(4 / 3))


def calibrate(state: DetectorState, moment: datetime, windows: list[WindowScore], config: DetectorConfig) -> None:
    """Record each window's largest surprise of the day outside incidents in ``state`` (a copy the caller owns).

    The first bucket of a new day files the last day's maxima and refreshes the
    thresholds: every fast window's, and each day-scale horizon's that was
    scored that day (a horizon waits for its reference days). The calibration
    is replaced, never changed in place, so a state the caller kept is left as
    it was.
    """
    calibration = state.calibration
    day = moment.date()
    if calibration.day != day:
        daily, thresholds = calibration.daily_maxima, calibration.thresholds
        if calibration.day is not None:
            filed = {n: calibration.day_maxima.get(n, 0.0) for n in config.window_lengths()}
            filed |= {n: m for n, m in calibration.day_maxima.items() if n < 0}
            daily = dict(daily)
            for n, maximum in filed.items():
                daily[n] = [*daily.get(n, []), maximum][-config.calibration_days :]
            thresholds = {n: calibrated_threshold(maxima, config, n) for n, maxima in daily.items()}
        calibration = Calibration(day=day, daily_maxima=daily, thresholds=thresholds)
    if state.incident is None:
        recorded = calibration.day_maxima
        higher = {w.key: w.surprise for w in windows if w.key not in recorded or w.surprise > recorded[w.key]}
        if higher:
            calibration = calibration.model_copy(update={"day_maxima": {**calibration.day_maxima, **higher}})
    state.calibration = calibration


def calibrated_threshold(daily_maxima: list[float], config: DetectorConfig, key: int = 1) -> float:
    """The surprise an ordinary day of this brand exceeds once in ``calibration_return_days``, for one window.

    The count law is a model; real streams are burstier than it, in ways that
    differ by brand and by time scale (a brand whose chatter spikes for five
    minutes every afternoon may still hold a steady level hour to hour). So
    each window length is calibrated on its own history: the daily maxima of
    its surprise are fitted with a Gumbel law (the extreme-value law of daily
    maxima) on a log scale, since bursty streams have heavy-tailed surprises,
    with location and scale from the quartiles so one past incident does not
    move it. The threshold is never below ``open_surprise_floor`` and never
    above ``calibration_ceiling`` times it (nor a horizon's above that times
    its own floor): a brand's own storms, a bursty fortnight that opened no
    incident, can raise its bar only that far, so they cannot blind it to
    the next one for weeks. Until
    ``calibration_min_days`` are filed, it is ``open_surprise``. A day-scale
    horizon (``key`` is minus its hours) has its own floor,
    :meth:`DetectorConfig.horizon_floor`, which it also starts from.
    """
    floor = config.horizon_floor(-key) if key < 0 else config.open_surprise_floor
    if len(daily_maxima) < config.calibration_min_days:
        return floor if key < 0 else max(config.open_surprise, floor)
    logs = np.log1p(daily_maxima)
    low, middle, high = np.quantile(logs, [0.25, 0.5, 0.75])
    scale = max(float(high - low) / _GUMBEL_IQR, 1e-3)
    location = float(middle) + scale * math.log(math.log(2))
    level = gumbel_r.ppf(1 - 1 / config.calibration_return_days, location, scale)
    return min(max(floor, float(np.expm1(level))), config.calibration_ceiling * floor)


def open_thresholds(state: DetectorState, config: DetectorConfig) -> dict[int, float]:
    """The surprise that opens an incident through each window, before the sensitivity scaling.

    Fast windows are keyed by length in buckets, day-scale horizons by minus
    their hours. None is below its floor, even one calibrated under an
    older, lower floor.
    """
    thresholds = state.calibration.thresholds
    cold = max(config.open_surprise, config.open_surprise_floor)
    found = {n: max(thresholds.get(n, cold), config.open_surprise_floor) for n in config.window_lengths()}
    for hours in config.memory.horizons:
        floor = config.horizon_floor(hours)
        found[-hours] = max(thresholds.get(-hours, floor), floor)
    return found


def normal_levels(state: DetectorState, config: DetectorConfig, today: date) -> dict[int, float]:
    """Per window, the size of surge the team called normal: ``false_alarm_margin`` times the largest in a false alarm.

    A size is observed over expected mentions; no window whose surge is at
    most this size opens an incident, by any rule. A verdict counts for
    ``memory.memory_days`` after the day it was given.
    """
    levels: dict[int, float] = {}
    oldest = today - timedelta(days=config.memory.memory_days)
    for verdict in state.false_alarms:
        if verdict.day <= oldest:
            continue
        for key, level in verdict.levels.items():
            levels[key] = max(levels.get(key, 0.0), config.false_alarm_margin * level)
    return levels
