"""Alert composition (pure): an incident event becomes Slack Block Kit blocks and a plain-text summary."""

from __future__ import annotations

from slack_sdk.models.blocks import (
    Block,
    ContextBlock,
    DividerBlock,
    HeaderBlock,
    MarkdownTextObject,
    PlainTextObject,
    SectionBlock,
)

from crisiswatch.contracts.schemas import Incident, IncidentEventType, Severity

from .responses import Templates, draft, drivers, load_templates

_SEVERITY_ICON = {Severity.WATCH: ":eyes:", Severity.WARNING: ":warning:", Severity.CRITICAL: ":rotating_light:"}
_STATE = {
    IncidentEventType.OPENED: "OPEN",
    IncidentEventType.UPDATED: "UPDATED",
    IncidentEventType.ESCALATED: "ESCALATED",
    IncidentEventType.RESOLVED: "RESOLVED",
}


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def headline(incident: Incident) -> str:
    """One line: brand, severity, state and the key numbers (also the notification text)."""
    if incident.event is IncidentEventType.RESOLVED:
        return (
            f"RESOLVED {incident.brand}: negative mentions back to normal "
            f"({incident.total_negative} negative in total, peak {incident.peak_negative} per bucket)"
        )
    return (
        f"{incident.severity.value.upper()} {_STATE[incident.event]} {incident.brand}: "
        f"{incident.observed_negative} negative mentions vs {incident.expected_negative:.1f} expected "
        f"({incident.window_start:%H:%M}-{incident.window_end:%H:%M} UTC)"
    )


def compose_blocks(incident: Incident, templates: Templates | None = None) -> list[Block]:
    """Block Kit blocks for the alert: what, how bad, why we think so, what drives it, evidence, drafted replies."""
    templates = templates or load_templates()
    icon = _SEVERITY_ICON[incident.severity]
    title = f"{incident.brand} · {incident.severity.value} · {_STATE[incident.event].lower()}"
    blocks: list[Block] = [HeaderBlock(text=PlainTextObject(text=title[:150], emoji=True))]
    if incident.event is IncidentEventType.RESOLVED:
        duration = incident.window_end - incident.opened_at
        blocks.append(
            SectionBlock(
                text=MarkdownTextObject(
                    text=(
                        f":white_check_mark: Negative talk about *{_escape(incident.brand)}* is back to normal. "
                        f"Incident `{incident.incident_id}` lasted about {int(duration.total_seconds() // 60)} min, "
                        f"with {incident.total_negative} negative mentions (peak {incident.peak_negative} per bucket)."
                    )
                )
            )
        )
        blocks.append(ContextBlock(elements=[MarkdownTextObject(text=f"Rule: {_escape(incident.rule)}")]))
        return blocks
    blocks.append(
        SectionBlock(
            text=MarkdownTextObject(
                text=f"{icon} Negative mentions of *{_escape(incident.brand)}* are surging "
                f"({incident.window_start:%Y-%m-%d %H:%M}–{incident.window_end:%H:%M} UTC)."
            ),
            fields=[
                MarkdownTextObject(
                    text=f"*Negative mentions*\n{incident.observed_negative} observed vs "
                    f"{incident.expected_negative:.1f} expected"
                ),
                MarkdownTextObject(
                    text=f"*Negative share*\n{100 * incident.negative_share:.0f}% "
                    f"(normally {100 * incident.baseline_negative_share:.0f}%)"
                ),
                MarkdownTextObject(text=f"*Surprise*\n{incident.surprise:.1f} (−log10 p)"),
                MarkdownTextObject(text=f"*Estimated reach*\n{incident.reach:,} accounts"),
            ],
        )
    )
    blocks.append(ContextBlock(elements=[MarkdownTextObject(text=f"Why: {_escape(incident.rule)}"[:2000])]))
    found = drivers(incident, templates)
    if incident.sample_mentions:
        theme = found.theme.replace("_", " ")
        because = f" (posts mention {', '.join(f'“{_escape(k)}”' for k in found.matched[:4])})" if found.matched else ""
        terms = ", ".join(_escape(t) for t in found.top_terms) or "—"
        blocks.append(
            SectionBlock(text=MarkdownTextObject(text=f"*What drives it*: {theme}{because}\n*Frequent terms*: {terms}"))
        )
        blocks.append(DividerBlock())
        lines = []
        for sample in incident.sample_mentions[:5]:
            link = f" <{sample.url}|link>" if sample.url else ""
            lines.append(
                f"• _{_escape(sample.text[:280])}_ — @{_escape(sample.author_handle)} "
                f"({sample.author_followers:,} followers){link}"
            )
        blocks.append(SectionBlock(text=MarkdownTextObject(text=("*Top posts*\n" + "\n".join(lines))[:3000])))
    blocks.append(DividerBlock())
    drafts = draft(incident, templates)
    for number, reply in enumerate(drafts.replies, start=1):
        blocks.append(SectionBlock(text=MarkdownTextObject(text=f"*Suggested reply {number}*\n>{_escape(reply)}")))
    if drafts.status_update:
        blocks.append(
            SectionBlock(text=MarkdownTextObject(text=f"*Status page draft*\n>{_escape(drafts.status_update)}"))
        )
    blocks.append(
        ContextBlock(
            elements=[MarkdownTextObject(text=f"Incident `{incident.incident_id}` · revision {incident.revision}")]
        )
    )
    return blocks
