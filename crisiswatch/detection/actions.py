"""People acting on an open incident from its alert: acknowledge, assign, snooze, resolve, not a crisis.

Each change is an incident event of its own, applying the same action twice
changes nothing, and "not a crisis" teaches the brand that a surge of that
size is normal, so a repeat of it stays quiet.
"""

from __future__ import annotations

import enum
from datetime import timedelta

from crisiswatch.contracts.schemas import ActionKind, Incident, IncidentAction, IncidentEventType

from .baseline import window_dispersions
from .config import MINUTE, DetectorConfig
from .events import incident_event
from .scoring import scan
from .state import DetectorState, FalseAlarm


class ActionOutcome(enum.StrEnum):
    """What a person's action did to the brand's state."""

    APPLIED = "applied"
    UNCHANGED = "unchanged"
    STALE = "stale"


def apply_action(
    state: DetectorState, action: IncidentAction, config: DetectorConfig
) -> tuple[DetectorState, ActionOutcome, list[Incident]]:
    """Apply a person's action to the brand's open incident; returns the new state, the outcome and any event.

    An action on an incident that is no longer open is ``STALE``; one that
    would change nothing (the same person acknowledging twice, a redelivered
    snooze) is ``UNCHANGED``, so applying an action twice is harmless. A
    snooze keeps escalations from interrupting anyone until it ends; a manual
    resolution closes the incident and starts the cooldown as if it had calmed.
    "Not a crisis" resolves it as a false alarm and teaches the brand that a
    surge of this size is normal: for ``memory.memory_days`` no window opens
    an incident unless its surge (observed over expected) is more than
    ``false_alarm_margin`` times the largest that window saw in this
    incident, so a repeat of the same size stays quiet while a clearly larger
    one still alerts.
    """
    incident = state.incident
    if incident is None or incident.incident_id != action.incident_id:
        return state, ActionOutcome.STALE, []
    state = state.model_copy(update={"incident": incident.model_copy()})
    incident = state.incident
    assert incident is not None
    if action.kind is ActionKind.ACKNOWLEDGE:
        if incident.acknowledged_by is not None:
            return state, ActionOutcome.UNCHANGED, []
        incident.acknowledged_by = action.user_id
        event = IncidentEventType.ACKNOWLEDGED
    elif action.kind is ActionKind.ASSIGN:
        if incident.assignee == action.user_id:
            return state, ActionOutcome.UNCHANGED, []
        incident.assignee = action.user_id
        event = IncidentEventType.ASSIGNED
    elif action.kind is ActionKind.SNOOZE:
        until = action.acted_at + timedelta(minutes=action.snooze_minutes)
        if incident.snoozed_until is not None and incident.snoozed_until >= until:
            return state, ActionOutcome.UNCHANGED, []
        incident.snoozed_until = until
        event = IncidentEventType.SNOOZED
    else:
        event = IncidentEventType.RESOLVED
    incident.revision += 1
    window = scan(state.recent, window_dispersions(state.baseline, config), config.window_lengths())
    minutes = round(window.buckets * config.bucket / MINUTE)
    rule = (
        f"{action.kind.value} by a person; now {window.observed} negative mentions in the last {minutes} min "
        f"vs {window.expected:.1f} expected (surprise {window.surprise:.1f})"
    )
    false_alarm = action.kind is ActionKind.NOT_A_CRISIS
    change = incident_event(state, event, window, rule, config, acted_by=action.user_id, false_alarm=false_alarm)
    if false_alarm:
        oldest = action.acted_at.date() - timedelta(days=config.memory.memory_days)
        kept = [verdict for verdict in state.false_alarms if verdict.day > oldest]
        state.false_alarms = [*kept, FalseAlarm(day=action.acted_at.date(), levels=dict(incident.peak_size))]
    if event is IncidentEventType.RESOLVED:
        last_end = state.recent[-1].start + config.bucket if state.recent else action.acted_at
        state.incident = None
        state.cooldown_until = max(action.acted_at, last_end) + config.cooldown
    return state, ActionOutcome.APPLIED, [change]
