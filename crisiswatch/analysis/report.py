"""Self-contained HTML report of a backtest: per brand, a chart of what was normal and what fired.

Charts are drawn on matplotlib ``Figure`` objects (no pyplot, no display) and embedded as base64
PNG, so the report is one file an analyst can mail.
"""

from __future__ import annotations

import base64
import functools
import html
import io
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

import matplotlib.dates as mdates
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from crisiswatch.contracts.schemas import Incident, IncidentEventType, Severity
from crisiswatch.detection.config import DetectorConfig
from crisiswatch.detection.history import expected_bands
from crisiswatch.detection.state import BucketVerdict

from .backtest import BrandReplay

if TYPE_CHECKING:
    from crisiswatch.themes.clustering import Anchor
from .compare import KnownIncident, RunResult, incident_spans

Span = tuple[datetime, datetime]
MAX_POINTS = 400


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


@dataclass(frozen=True)
class DisplayPoint:
    """Counts and expectation over one plotted interval (one or several detector buckets)."""

    start: datetime
    total: int
    negative: int
    expected_negative: float
    expected_total: float
    dispersion: float


def display_points(verdicts: Sequence[BucketVerdict], most: int = MAX_POINTS) -> list[DisplayPoint]:
    """The verdicts merged into at most ``most`` intervals, so a week of one-minute buckets stays readable."""
    group = max(1, math.ceil(len(verdicts) / most))
    points = []
    for first in range(0, len(verdicts), group):
        chunk = verdicts[first : first + group]
        points.append(
            DisplayPoint(
                start=chunk[0].bucket.start,
                total=sum(v.bucket.total for v in chunk),
                negative=sum(v.bucket.negative for v in chunk),
                expected_negative=sum(v.score.expected_negative for v in chunk),
                expected_total=sum(v.score.expected_total for v in chunk),
                dispersion=chunk[-1].dispersion,
            )
        )
    return points


def brand_chart(
    replay: BrandReplay,
    config: DetectorConfig,
    overlays: Mapping[str, Sequence[Incident]] | None = None,
    known: Sequence[Span] = (),
) -> bytes:
    """PNG: volume, negative volume with its expected band, negative share, and incident spans.

    With ``overlays`` (run name -> that run's incident events) a third panel
    draws each run's incidents on its own row, and ``known`` incidents as a
    hatched row, so runs with different settings can be compared at a glance.
    """
    points = display_points(replay.verdicts)
    starts = [p.start for p in points]
    totals = [p.total for p in points]
    negatives = [p.negative for p in points]
    expected = [p.expected_negative for p in points]
    bands = expected_bands([p.expected_negative for p in points], [p.dispersion for p in points])
    shares = [p.negative / p.total if p.total else float("nan") for p in points]
    baseline_shares = [p.expected_negative / p.expected_total if p.expected_total else float("nan") for p in points]
    rows = list(overlays or {})
    figure = Figure(figsize=(11, 4.8 + (0.35 * (len(rows) + 1) if rows else 0)), layout="constrained")
    if rows:
        volume, share, runs = figure.subplots(
            3, 1, sharex=True, gridspec_kw={"height_ratios": [3, 1.3, 0.45 * (len(rows) + 1)]}
        )
        _draw_runs(runs, overlays or {}, known)
    else:
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
    for incident in [] if rows else summarise(replay.incidents):
        colour = Severity(incident.severity).colour
        for axis in (volume, share):
            axis.axvspan(incident.opened.window_start, incident.end, color=colour, alpha=0.25, linewidth=0)
        volume.axvline(incident.opened.opened_at, color=colour, linewidth=1.2)
    width = points[1].start - points[0].start if len(points) > 1 else config.bucket
    volume.set_ylabel(f"mentions per {width.total_seconds() / 60:g} min")
    volume.set_title(f"{replay.brand}: shaded spans are incidents, lines mark the alert", loc="left", fontsize=10)
    volume.legend(loc="upper left", fontsize=8, frameon=False)
    share.set_ylabel("negative share")
    share.set_ylim(0, 1)
    share.legend(loc="upper left", fontsize=8, frameon=False)
    locator = mdates.AutoDateLocator()
    bottom = runs if rows else share
    bottom.xaxis.set_major_locator(locator)
    bottom.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))
    for axis in (volume, share):
        axis.grid(alpha=0.3, linewidth=0.5)
        axis.spines[["top", "right"]].set_visible(False)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110)
    return buffer.getvalue()


def _draw_runs(axis: Axes, overlays: Mapping[str, Sequence[Incident]], known: Sequence[Span]) -> None:
    labels = [*overlays, "known"] if known else list(overlays)
    for row, name in enumerate(overlays):
        for incident in summarise(overlays[name]):
            start = mdates.date2num(incident.opened.window_start)
            axis.broken_barh(
                [(start, mdates.date2num(incident.end) - start)],
                (row - 0.35, 0.7),
                color=Severity(incident.severity).colour,
            )
    for start, end in known:
        axis.broken_barh(
            [(mdates.date2num(start), mdates.date2num(end) - mdates.date2num(start))],
            (len(overlays) - 0.35, 0.7),
            facecolor="none",
            edgecolor="#333",
            hatch="///",
        )
    axis.set_yticks(range(len(labels)), labels, fontsize=8)
    axis.set_ylim(-0.6, len(labels) - 0.4)
    axis.invert_yaxis()


def themes_line(incident: IncidentSummary) -> str:
    """The line the incident's opening alert starts with, from the themes of all its posts ("" when too few).

    Anchored on the installed reply templates' keyword themes, as the live alert is.
    """
    from crisiswatch.themes.incidents import incident_summary, incident_themes

    found = incident_themes(incident.last, _installed_anchors())
    return incident_summary(incident.opened, found) if found else ""


@functools.cache
def _installed_anchors() -> tuple[Anchor, ...]:
    """The installed templates' keyword themes, read once per process rather than once per incident row."""
    from crisiswatch.themes.clustering import anchors_from_templates

    from .theme_evaluation import default_templates

    return tuple(anchors_from_templates(default_templates()))


def _incident_rows(replay: BrandReplay) -> str:
    rows = []
    for incident in summarise(replay.incidents):
        opened = incident.opened
        minutes = round((incident.end - opened.window_start).total_seconds() / 60)
        samples = "".join(
            f"<li>{html.escape(s.text[:200])}{f' (×{s.copies})' if s.copies > 1 else ''}</li>"
            for s in incident.last.sample_mentions[:3]
        )
        rows.append(
            "<tr>"
            f"<td>{opened.opened_at:%Y-%m-%d %H:%M} UTC</td>"
            f"<td class='{incident.severity}'>{incident.severity}</td>"
            f"<td>{f'{minutes} min' if incident.resolved else f'open after {minutes} min'}</td>"
            f"<td>{opened.observed_negative} vs {opened.expected_negative:.1f}</td>"
            f"<td>{incident.last.peak_negative}</td>"
            f"<td>{html.escape(opened.rule)}</td>"
            f"<td>{html.escape(themes_line(incident))}</td>"
            f"<td><ul>{samples}</ul></td>"
            "</tr>"
        )
    if not rows:
        return "<p>No incident.</p>"
    header = (
        "<tr><th>alerted</th><th>severity</th><th>duration</th><th>negative at alert (observed vs expected)</th>"
        "<th>peak per bucket</th><th>rule</th><th>what it is about</th><th>sample posts</th></tr>"
    )
    return f"<table>{header}{''.join(rows)}</table>"


STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1250px; color: #222; }
table { border-collapse: collapse; margin: 1em 0; font-size: 0.9em; }
th, td { border-bottom: 1px solid #ddd; padding: 0.3em 0.7em; text-align: left; vertical-align: top; }
td ul { margin: 0; padding-left: 1.1em; }
img { max-width: 100%; }
.watch { background: #fdf5d8; } .warning { background: #fde3cf; } .critical { background: #fbd0d0; }
"""


def _table(rows: Sequence[Mapping[str, str]]) -> str:
    if not rows:
        return ""
    header = "".join(f"<th>{html.escape(key)}</th>" for key in rows[0])
    body = "".join("<tr>" + "".join(f"<td>{html.escape(v)}</td>" for v in row.values()) + "</tr>" for row in rows)
    return f"<table><tr>{header}</tr>{body}</table>"


def _page(title: str, facts: Mapping[str, str], body: str) -> str:
    fact_rows = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>" for k, v in facts.items())
    return (
        f'<!doctype html>\n<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
        f"<style>{STYLE}</style></head><body>\n<h1>{html.escape(title)}</h1>\n<table>{fact_rows}</table>\n"
        f"{body}\n</body></html>\n"
    )


def _chart_img(brand: str, png: bytes) -> str:
    return (
        f"<img alt='{html.escape(brand)} volume, negative mentions and incidents' "
        f"src='data:image/png;base64,{base64.b64encode(png).decode()}'>"
    )


def render_html(
    replays: Mapping[str, BrandReplay],
    config: DetectorConfig,
    title: str,
    facts: Mapping[str, str],
) -> str:
    """The whole report: settings and input facts, a summary table, then one section per brand."""
    summary = []
    sections = []
    for brand, replay in replays.items():
        incidents = summarise(replay.incidents)
        worst = max((i.severity for i in incidents), key=lambda name: Severity(name).rank, default="—")
        summary.append(
            {
                "brand": brand,
                "mentions": str(sum(v.bucket.total for v in replay.verdicts)),
                "negative": str(sum(v.bucket.negative for v in replay.verdicts)),
                "incidents": str(len(incidents)),
                "worst severity": worst,
            }
        )
        sections.append(
            f"<section id='{html.escape(brand)}'><h2>{html.escape(brand)}</h2>"
            f"{_chart_img(brand, brand_chart(replay, config))}{_incident_rows(replay)}</section>"
        )
    return _page(title, facts, _table(summary) + "".join(sections))


def render_comparison_html(
    results: Sequence[RunResult],
    rows: Sequence[Mapping[str, str]],
    known: Sequence[KnownIncident],
    title: str,
    facts: Mapping[str, str],
) -> str:
    """Runs side by side: the summary table, then per brand the first run's chart with every run's incidents."""
    first = results[0]
    sections = []
    for brand, replay in first.replays.items():
        spans = [(k.start, k.end) for k in known if k.brand == brand]
        chart = brand_chart(replay, first.settings.config(), incident_spans(results, brand), spans)
        sections.append(f"<section id='{html.escape(brand)}'><h2>{html.escape(brand)}</h2>{_chart_img(brand, chart)}")
        for result in results:
            if brand in result.replays:
                sections.append(f"<h3>{html.escape(result.settings.name)}</h3>{_incident_rows(result.replays[brand])}")
        sections.append("</section>")
    return _page(title, facts, _table(rows) + "".join(sections))
