"""Self-contained HTML report of a backtest: per brand, a chart of what was normal and what fired.

Charts are drawn on matplotlib ``Figure`` objects (no pyplot, no display) and embedded as base64
PNG, so the report is one file an analyst can mail.
"""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

import matplotlib.dates as mdates
from matplotlib.figure import Figure

from crisiswatch.alerter.detector import DetectorConfig, expected_band
from crisiswatch.contracts.schemas import Incident, IncidentEventType

from .backtest import BrandReplay

SEVERITY_COLOURS = {"watch": "#f2c94c", "warning": "#f2994a", "critical": "#eb5757"}


@dataclass(frozen=True)
class IncidentSummary:
    """One incident from its events: when it opened and ended, how bad it got, and why it opened."""

    opened: Incident
    last: Incident

    @property
    def resolved(self) -> bool:
        """Whether the detector resolved it within the data."""
        return self.last.event is IncidentEventType.RESOLVED

    @property
    def severity(self) -> str:
        """The highest severity it reached."""
        return self.last.severity.value

    @property
    def end(self) -> datetime:
        """When it resolved, or the end of its last event's window."""
        return self.last.window_end


def summarise(incidents: Sequence[Incident]) -> list[IncidentSummary]:
    """Group incident events by incident, in opening order."""
    first: dict[str, Incident] = {}
    last: dict[str, Incident] = {}
    for event in incidents:
        first.setdefault(event.incident_id, event)
        last[event.incident_id] = event
    return [IncidentSummary(first[key], last[key]) for key in first]


def brand_chart(replay: BrandReplay, config: DetectorConfig) -> bytes:
    """PNG: volume, negative volume with its expected band, negative share, and incident spans."""
    starts = [v.bucket.start for v in replay.verdicts]
    totals = [v.bucket.total for v in replay.verdicts]
    negatives = [v.bucket.negative for v in replay.verdicts]
    expected = [v.score.expected_negative for v in replay.verdicts]
    bands = [expected_band(v.score.expected_negative, v.dispersion) for v in replay.verdicts]
    shares = [v.bucket.negative / v.bucket.total if v.bucket.total else float("nan") for v in replay.verdicts]
    baseline_shares = [
        v.score.expected_negative / v.score.expected_total if v.score.expected_total else float("nan")
        for v in replay.verdicts
    ]
    figure = Figure(figsize=(11, 4.8), layout="constrained")
    volume, share = figure.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 1.3]})
    volume.step(starts, totals, where="post", color="#9e9e9e", linewidth=0.8, label="all mentions")
    volume.fill_between(
        starts, [b[0] for b in bands], [b[1] for b in bands], step="post", color="#2f80ed", alpha=0.15,
        label="expected negative (95% band)",
    )  # fmt: skip
    volume.step(starts, expected, where="post", color="#2f80ed", linewidth=0.8, linestyle="--")
    volume.step(starts, negatives, where="post", color="#c0392b", linewidth=1.1, label="negative mentions")
    share.step(starts, shares, where="post", color="#c0392b", linewidth=0.8, label="negative share")
    share.step(starts, baseline_shares, where="post", color="#2f80ed", linewidth=0.8, linestyle="--", label="usual")
    for incident in summarise(replay.incidents):
        colour = SEVERITY_COLOURS[incident.severity]
        for axis in (volume, share):
            axis.axvspan(incident.opened.window_start, incident.end, color=colour, alpha=0.25, linewidth=0)
        volume.axvline(incident.opened.opened_at, color=colour, linewidth=1.2)
    bucket_minutes = round(config.bucket.total_seconds() / 60)
    volume.set_ylabel(f"mentions per {bucket_minutes} min")
    volume.set_title(f"{replay.brand}: shaded spans are incidents, lines mark the alert", loc="left", fontsize=10)
    volume.legend(loc="upper left", fontsize=8, frameon=False)
    share.set_ylabel("negative share")
    share.set_ylim(0, 1)
    share.legend(loc="upper left", fontsize=8, frameon=False)
    locator = mdates.AutoDateLocator()
    share.xaxis.set_major_locator(locator)
    share.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))
    for axis in (volume, share):
        axis.grid(alpha=0.3, linewidth=0.5)
        axis.spines[["top", "right"]].set_visible(False)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110)
    return buffer.getvalue()


def _incident_rows(replay: BrandReplay) -> str:
    rows = []
    for incident in summarise(replay.incidents):
        opened = incident.opened
        minutes = round((incident.end - opened.window_start).total_seconds() / 60)
        samples = "".join(f"<li>{html.escape(s.text[:200])}</li>" for s in incident.last.sample_mentions[:3])
        rows.append(
            "<tr>"
            f"<td>{opened.opened_at:%Y-%m-%d %H:%M} UTC</td>"
            f"<td class='{incident.severity}'>{incident.severity}</td>"
            f"<td>{f'{minutes} min' if incident.resolved else f'open after {minutes} min'}</td>"
            f"<td>{opened.observed_negative} vs {opened.expected_negative:.1f}</td>"
            f"<td>{incident.last.peak_negative}</td>"
            f"<td>{html.escape(opened.rule)}</td>"
            f"<td><ul>{samples}</ul></td>"
            "</tr>"
        )
    if not rows:
        return "<p>No incident.</p>"
    header = (
        "<tr><th>alerted</th><th>severity</th><th>duration</th><th>negative at alert (observed vs expected)</th>"
        "<th>peak per bucket</th><th>rule</th><th>sample posts</th></tr>"
    )
    return f"<table>{header}{''.join(rows)}</table>"


def render_html(
    replays: Mapping[str, BrandReplay],
    config: DetectorConfig,
    title: str,
    facts: Mapping[str, str],
) -> str:
    """The whole report: settings and input facts, a summary table, then one section per brand."""
    summary_rows = []
    sections = []
    for brand, replay in replays.items():
        incidents = summarise(replay.incidents)
        mentions = sum(v.bucket.total for v in replay.verdicts)
        negative = sum(v.bucket.negative for v in replay.verdicts)
        worst = max((i.severity for i in incidents), key=list(SEVERITY_COLOURS).index, default="—")
        summary_rows.append(
            f"<tr><td><a href='#{html.escape(brand)}'>{html.escape(brand)}</a></td><td>{mentions}</td>"
            f"<td>{negative}</td><td>{len(incidents)}</td><td>{worst}</td></tr>"
        )
        chart = base64.b64encode(brand_chart(replay, config)).decode()
        sections.append(
            f"<section id='{html.escape(brand)}'><h2>{html.escape(brand)}</h2>"
            f"<img alt='{html.escape(brand)} volume, negative mentions and incidents' "
            f"src='data:image/png;base64,{chart}'>{_incident_rows(replay)}</section>"
        )
    fact_rows = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>" for k, v in facts.items())
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1250px; color: #222; }}
table {{ border-collapse: collapse; margin: 1em 0; font-size: 0.9em; }}
th, td {{ border-bottom: 1px solid #ddd; padding: 0.3em 0.7em; text-align: left; vertical-align: top; }}
td ul {{ margin: 0; padding-left: 1.1em; }}
img {{ max-width: 100%; }}
.watch {{ background: #fdf5d8; }} .warning {{ background: #fde3cf; }} .critical {{ background: #fbd0d0; }}
</style></head><body>
<h1>{html.escape(title)}</h1>
<table>{fact_rows}</table>
<table><tr><th>brand</th><th>mentions</th><th>negative</th><th>incidents</th><th>worst severity</th></tr>
{"".join(summary_rows)}</table>
{"".join(sections)}
</body></html>
"""
