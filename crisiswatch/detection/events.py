"""Incident events as the detector emits them, built from the brand's state with every number that explains them.

Each event (opened, escalated, resolved, or a person's action) carries the
window that explains it, the brand's recent history for the alert's chart
and where the incident stands (who acknowledged it, who owns it, snoozed
until when), so an alert can be drawn from the event alone.
"""

from __future__ import annotations

from crisiswatch.contracts.schemas import Incident, IncidentEventType

from .baseline import effective_dispersion
from .config import MINUTE, DetectorConfig
from .history import history_points
from .scoring import window_totals
from .state import DetectorState, WindowScore


def incident_event(
    state: DetectorState,
    event: IncidentEventType,
    window: WindowScore,
    rule: str,
    config: DetectorConfig,
    acted_by: str | None = None,
    false_alarm: bool = False,
) -> Incident:
    """The ``event`` of the brand's open incident, explained by ``window`` and ``rule`` (an action's: by ``acted_by``).

    ``false_alarm`` marks a resolution by "not a crisis".
    """
    incident = state.incident
    if incident is None:
        raise ValueError("an incident event needs an open incident")
    buckets = state.recent[-window.buckets :]
    total, expected_total = window_totals(state.recent, window)
    start = window.start if window.start is not None else buckets[0].start
    return Incident(
        event=event,
        incident_id=incident.incident_id,
        revision=incident.revision,
        brand=state.brand,
        severity=incident.severity,
        window_start=start,
        window_end=buckets[-1].start + config.bucket,
        opened_at=incident.opened_at,
        observed_negative=window.observed,
        expected_negative=round(window.expected, 3),
        observed_total=total,
        expected_total=round(expected_total, 3),
        negative_share=round(min(1.0, window.observed / total), 4) if total else 0.0,
        baseline_negative_share=round(min(1.0, window.expected / expected_total), 4) if expected_total else 0.0,
        surprise=round(window.surprise, 2),
        reach=sum(b.reach for b in buckets),
        rule=rule,
        sample_mentions=list(incident.samples),
        theme_posts=list(incident.theme_posts),
        peak_negative=incident.peak_negative,
        total_negative=incident.total_negative,
        history=list(history_points(state.recent, effective_dispersion(state.baseline, config), config)),
        acknowledged_by=incident.acknowledged_by,
        assignee=incident.assignee,
        snoozed_until=incident.snoozed_until,
        acted_by=acted_by,
        brand_name=state.brand_name,
        false_alarm=false_alarm,
        horizon=horizon_words(window, config),
    )


def horizon_words(window: WindowScore, config: DetectorConfig) -> str:
    """The look-back a window covers, as a service lead says it: ``last 15 min``, ``last 12 h``."""
    if window.hours:
        return f"last {window.hours} h"
    minutes = round(window.buckets * config.bucket / MINUTE)
    return f"last {minutes // 60} h" if minutes >= 60 and minutes % 60 == 0 else f"last {minutes} min"
