"""The alert's chart (pure): an incident's recent history drawn as a small PNG for Slack.

Drawn on a matplotlib ``Figure`` (no pyplot, no display), so it is safe in the
alerter's event loop thread and in tests.
"""

from __future__ import annotations

import io

from crisiswatch.contracts.schemas import Incident, IncidentEventType


def incident_chart(incident: Incident) -> bytes | None:
    """PNG of the last hours: all mentions, negative mentions against their normal range, the alert window.

    None when the event carries no history (nothing worth drawing).
    """
    history = incident.history
    if len(history) < 2:
        return None
    import matplotlib.dates as mdates  # matplotlib loads with the first chart, not with the alerter's imports
    from matplotlib.figure import Figure

    width = history[1].start - history[0].start
    starts = [point.start for point in history]
    figure = Figure(figsize=(7.5, 2.8), layout="constrained")
    axis = figure.subplots()
    axis.fill_between(
        starts, [p.normal_low for p in history], [p.normal_high for p in history], step="post",
        color="#2f80ed", alpha=0.18, linewidth=0, label="normal range",
    )  # fmt: skip
    axis.step(starts, [p.total for p in history], where="post", color="#9e9e9e", linewidth=0.9, label="all mentions")
    axis.step(starts, [p.negative for p in history], where="post", color="#c0392b", linewidth=1.6, label="negative")
    colour = incident.severity.colour
    axis.axvspan(incident.window_start, incident.window_end, color=colour, alpha=0.3, linewidth=0)
    if incident.event is not IncidentEventType.RESOLVED:
        axis.axvline(incident.window_end, color=colour, linewidth=1.2)
    axis.set_title(
        f"{incident.brand}: {incident.observed_negative} negative vs {incident.expected_negative:.1f} expected",
        loc="left", fontsize=9,
    )  # fmt: skip
    axis.set_ylabel(f"per {width.total_seconds() / 60:g} min", fontsize=8)
    locator = mdates.AutoDateLocator()
    axis.xaxis.set_major_locator(locator)
    axis.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))
    axis.tick_params(labelsize=7)
    axis.legend(loc="upper left", fontsize=7, frameon=False)
    axis.grid(alpha=0.3, linewidth=0.5)
    axis.spines[["top", "right"]].set_visible(False)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=120)
    return buffer.getvalue()
