"""Alert composition (pure): an incident event becomes Slack Block Kit blocks and a plain-text summary.

With ``interactive`` the alert carries the lifecycle buttons; their
``action_id`` is ``crisiswatch:<action>`` and their value a :class:`ButtonValue`
as JSON, which :mod:`.interactivity` reads back when someone presses one.
"Not a crisis" closes the incident as a false alarm and teaches the detector
that a surge of that size is normal for the brand, so its resolution reads
differently from a plain one.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field
from slack_sdk.models.blocks import (
    ActionsBlock,
    Block,
    ButtonElement,
    ConfirmObject,
    ContextBlock,
    DividerBlock,
    HeaderBlock,
    MarkdownTextObject,
    PlainTextObject,
    SectionBlock,
)

from crisiswatch.contracts.schemas import ActionKind, Incident, IncidentEventType, Severity
from crisiswatch.themes.clustering import Themes
from crisiswatch.themes.incidents import incident_summary

from .replies import Drafts, Templates, draft, drivers, isolated, load_templates, right_to_left

ACTION_PREFIX = "crisiswatch:"
COPY_REPLY = "copy-reply"
ACTIONS_BLOCK_ID = "crisiswatch-incident-actions"
BUTTON_VALUE_CHARS = 2000
SHOWN_THEMES = 4
"""Themes listed in an alert, largest first (the summary line names at most three)."""
SECTION_CHARS = 3000
"""Slack's limit on a section's text: a longer one makes the whole message invalid."""
SUMMARY_CHARS = 300
LABEL_CHARS = 120
"""Theme names are made of the posts' own words, which can be one 500-letter run (Chinese has no spaces)."""

_SEVERITY_ICON = {Severity.WATCH: ":eyes:", Severity.WARNING: ":warning:", Severity.CRITICAL: ":rotating_light:"}
_STATE = {
    IncidentEventType.OPENED: "OPEN",
    IncidentEventType.UPDATED: "UPDATED",
    IncidentEventType.ESCALATED: "ESCALATED",
    IncidentEventType.ACKNOWLEDGED: "ACKNOWLEDGED",
    IncidentEventType.ASSIGNED: "ASSIGNED",
    IncidentEventType.SNOOZED: "SNOOZED",
    IncidentEventType.RESOLVED: "RESOLVED",
}
_BUTTON_STYLE = {ActionKind.ACKNOWLEDGE: "primary", ActionKind.RESOLVE: "danger"}
_BUTTONS = (
    (ActionKind.ACKNOWLEDGE, "Acknowledge"),
    (ActionKind.ASSIGN, "Assign to me"),
    (ActionKind.SNOOZE, "Snooze 1h"),
    (ActionKind.RESOLVE, "Resolve"),
    (ActionKind.NOT_A_CRISIS, "Not a crisis"),
)


class ButtonValue(BaseModel):
    """What a lifecycle button carries: the incident it acts on and, for Copy reply, the reply itself."""

    model_config = ConfigDict(frozen=True)

    incident: str = Field(max_length=256)
    brand: str = Field(max_length=64)
    reply: str | None = Field(default=None, max_length=1500)


def escaped(text: str) -> str:
    """``text`` for Slack mrkdwn: ``&``, ``<`` and ``>`` shown as typed, so no mention or link can be smuggled in."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def slack_link(url: str | None, label: str) -> str:
    """`` <url|label>`` for an http(s) URL from a post, or nothing.

    The URL comes from outside: any other scheme is dropped, and ``|``, ``<``,
    ``>`` and ``&`` are escaped so it cannot close the link and inject
    markup such as ``<!channel>``.
    """
    if not url:
        return ""
    parts = urlsplit(url.strip())
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
        return ""
    safe = escaped(parts.geturl()).replace("|", "%7C")
    return f" <{safe}|{escaped(label)}>"


def headline(incident: Incident) -> str:
    """One line: brand, severity, state and the key numbers (also the notification text)."""
    if incident.event is IncidentEventType.RESOLVED:
        if incident.false_alarm:
            how = "closed as not a crisis" + (f" by <@{incident.acted_by}>" if incident.acted_by else "")
        elif incident.acted_by:
            how = f"resolved by <@{incident.acted_by}>"
        else:
            how = "negative mentions back to normal"
        return (
            f"RESOLVED {incident.brand}: {how} "
            f"({incident.total_negative} negative in total, peak {incident.peak_negative} per bucket)"
        )
    return (
        f"{incident.severity.value.upper()} {_STATE[incident.event]} {incident.brand}: "
        f"{incident.observed_negative} negative mentions vs {incident.expected_negative:.1f} expected "
        f"({incident.window_start:%H:%M}-{incident.window_end:%H:%M} UTC)"
    )


def action_note(incident: Incident) -> str:
    """The thread line for a person's action on the incident (``<@U1> acknowledged the incident``)."""
    who = f"<@{incident.acted_by}>" if incident.acted_by else "Someone"
    brand = escaped(incident.brand)
    if incident.event is IncidentEventType.ACKNOWLEDGED:
        return f":eyes: {who} acknowledged the {brand} incident."
    if incident.event is IncidentEventType.ASSIGNED:
        return f":bust_in_silhouette: {who} took the {brand} incident."
    if incident.event is IncidentEventType.SNOOZED and incident.snoozed_until:
        return (
            f":zzz: {who} snoozed the {brand} incident until {incident.snoozed_until:%H:%M} UTC: "
            "escalations update the alert without a new message or page until then."
        )
    if incident.event is IncidentEventType.RESOLVED and incident.false_alarm:
        return (
            f":no_entry_sign: {who} marked the {brand} incident as not a crisis; "
            "the detector will treat a surge of this size as normal."
        )
    if incident.event is IncidentEventType.RESOLVED:
        return f":white_check_mark: {who} resolved the {brand} incident."
    return headline(incident)


def status_line(incident: Incident) -> str | None:
    """Who acknowledged, who owns it, until when it is snoozed; None while nobody has acted."""
    parts = []
    if incident.acknowledged_by:
        parts.append(f":eyes: Acknowledged by <@{incident.acknowledged_by}>")
    if incident.assignee:
        parts.append(f":bust_in_silhouette: Assigned to <@{incident.assignee}>")
    if incident.snoozed_until and incident.snoozed_at(incident.emitted_at):
        parts.append(f":zzz: Snoozed until {incident.snoozed_until:%H:%M} UTC")
    return " · ".join(parts) or None


def _confirmation(kind: ActionKind, brand: str) -> ConfirmObject | None:
    """The dialog Slack shows before a press that closes the incident takes effect; None for the others.

    Closing cannot be undone from Slack, and "Not a crisis" also changes what
    the detector alerts on for the brand, so both say what will happen first.
    """
    if kind is ActionKind.RESOLVE:
        return ConfirmObject(
            title="Resolve this incident?",
            text=f"The detector stops tracking it and stays quiet about {brand} for a while.",
            confirm="Resolve",
            deny="Keep open",
        )
    if kind is ActionKind.NOT_A_CRISIS:
        return ConfirmObject(
            title="Close as not a crisis?",
            text=(
                f"This closes the incident as a false alarm, and the detector learns that a surge of this size "
                f"is normal for {escaped(brand)}: a repeat of the same size stays quiet, "
                "while a clearly larger one still alerts."
            ),
            confirm="Not a crisis",
            deny="Keep open",
        )
    return None


def sector_note(incident: Incident) -> str | None:
    """The line saying that other brands of the sector surged in the same hours (None when none did).

    The first thing a team asks in a storm is whether it is only them: a
    weather day or a shared supplier's outage reads differently from a fault
    of their own.
    """
    peers = incident.sector_peers
    if not peers:
        return None
    shown = ", ".join(f"*{escaped(name)}*" for name in peers[:6])
    names = shown + (f" and {len(peers) - 6} more" if len(peers) > 6 else "")
    return f":busts_in_silhouette: Not only this brand: negative mentions of {names} rose in the same hours too."


def lifecycle_buttons(incident: Incident, replies: tuple[str, ...]) -> ActionsBlock:
    """Acknowledge, Assign to me, Snooze 1h, Resolve and Not a crisis (both confirmed first), one Copy per reply."""
    elements = []
    for kind, label in _BUTTONS:
        if kind is ActionKind.ACKNOWLEDGE and incident.acknowledged_by:
            continue
        confirm = _confirmation(kind, incident.brand)
        elements.append(
            ButtonElement(
                text=label,
                action_id=ACTION_PREFIX + kind.value,
                value=ButtonValue(incident=incident.incident_id, brand=incident.brand).model_dump_json(
                    exclude_none=True
                ),
                style=_BUTTON_STYLE.get(kind),
                confirm=confirm,
            )
        )
    for number, reply in enumerate(replies, start=1):
        value = ButtonValue(incident=incident.incident_id, brand=incident.brand, reply=reply[:1500])
        elements.append(
            ButtonElement(
                text=f"Copy reply {number}",
                action_id=f"{ACTION_PREFIX}{COPY_REPLY}-{number}",
                value=value.model_dump_json()[:BUTTON_VALUE_CHARS],
            )
        )
    return ActionsBlock(block_id=ACTIONS_BLOCK_ID, elements=elements)


def _shortened(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def compose_blocks(
    incident: Incident,
    templates: Templates | None = None,
    *,
    interactive: bool = False,
    drafts: Drafts | None = None,
    themes: Themes | None = None,
) -> list[Block]:
    """Block Kit blocks for the alert: what, how bad, why we think so, what it is about, evidence, drafted replies.

    ``themes`` (found from the incident's posts, see :mod:`.themes`) adds the
    one-line summary and the themes with their shares;
    ``drafts`` replaces the template drafts (e.g. refined by a language model);
    ``interactive`` adds the lifecycle buttons (bot mode with Socket Mode only:
    elsewhere nobody would receive the presses).
    """
    templates = templates or load_templates()
    icon = _SEVERITY_ICON[incident.severity]
    title = f"{incident.brand} · {incident.severity.value} · {_STATE[incident.event].lower()}"
    blocks: list[Block] = [HeaderBlock(text=PlainTextObject(text=title[:150], emoji=True))]
    if incident.event is IncidentEventType.RESOLVED:
        duration = incident.window_end - incident.opened_at
        brand = escaped(incident.brand)
        icon = ":white_check_mark:"
        if incident.false_alarm:
            icon = ":no_entry_sign:"
            who = f"<@{incident.acted_by}>" if incident.acted_by else "The team"
            how = (
                f"{who} closed the incident about *{brand}* as not a crisis: the detector will treat "
                "a surge of this size as normal for the brand. "
            )
        elif incident.acted_by:
            how = f"<@{incident.acted_by}> resolved the incident about *{brand}*. "
        else:
            how = f"Negative talk about *{brand}* is back to normal. "
        blocks.append(
            SectionBlock(
                text=MarkdownTextObject(
                    text=(
                        f"{icon} {how}"
                        f"Incident `{incident.incident_id}` lasted about {int(duration.total_seconds() // 60)} min, "
                        f"with {incident.total_negative} negative mentions (peak {incident.peak_negative} per bucket)."
                    )
                )
            )
        )
        blocks.append(ContextBlock(elements=[MarkdownTextObject(text=f"Rule: {escaped(incident.rule)}")]))
        return blocks
    if themes is not None and themes.themes:
        summary = escaped(_shortened(incident_summary(incident, themes), SUMMARY_CHARS))
        blocks.append(SectionBlock(text=MarkdownTextObject(text=f"*{summary}*")))
    blocks.append(
        SectionBlock(
            text=MarkdownTextObject(
                text=f"{icon} Negative mentions of *{escaped(incident.brand)}* are surging "
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
    if incident.horizon:
        blocks.append(
            ContextBlock(
                elements=[MarkdownTextObject(text=f"Fired on the {escaped(incident.horizon)} of negative mentions")]
            )
        )
    blocks.append(ContextBlock(elements=[MarkdownTextObject(text=f"Why: {escaped(incident.rule)}"[:2000])]))
    peers = sector_note(incident)
    if peers:
        blocks.append(ContextBlock(elements=[MarkdownTextObject(text=peers[:2000])]))
    status = status_line(incident)
    if status:
        blocks.append(ContextBlock(elements=[MarkdownTextObject(text=status)]))
    found = drivers(incident, templates)
    if incident.sample_mentions:
        theme = found.theme.replace("_", " ")
        because = f" (posts mention {', '.join(f'“{escaped(k)}”' for k in found.matched[:4])})" if found.matched else ""
        terms = ", ".join(escaped(t) for t in found.top_terms) or "—"
        about = f"*Frequent terms*: {terms}"
        if themes is not None and themes.themes:
            listed = sorted(themes.themes, key=lambda t: -t.share)[:SHOWN_THEMES]
            about = "*What it is about* (sampled negative posts)\n" + "\n".join(
                f"• {escaped(_shortened(t.label, LABEL_CHARS))} · {t.share:.0%}" for t in listed
            )
        drives = f"*What drives it*: {theme}{because}\n{about}"
        blocks.append(SectionBlock(text=MarkdownTextObject(text=drives[:SECTION_CHARS])))
        blocks.append(DividerBlock())
        lines = []
        for sample in incident.sample_mentions[:5]:
            link = slack_link(sample.url, "link")
            text = escaped(sample.text[:280])
            # Slack's italics need the underscore beside the text, which the isolate's mark would break.
            quoted = isolated(text) if right_to_left(sample.lang) else f"_{text}_"
            similar = sample.copies - 1
            copies = f" · and {similar} similar post{'s' * (similar > 1)}, reach {sample.reach:,}" if similar else ""
            lines.append(
                f"• {quoted} — @{escaped(sample.author_handle)} ({sample.author_followers:,} followers){copies}{link}"
            )
        blocks.append(SectionBlock(text=MarkdownTextObject(text=("*Top posts*\n" + "\n".join(lines))[:SECTION_CHARS])))
    blocks.append(DividerBlock())
    drafts = drafts or draft(incident, templates)
    for number, reply in enumerate(drafts.replies, start=1):
        blocks.append(SectionBlock(text=MarkdownTextObject(text=f"*Suggested reply {number}*\n>{escaped(reply)}")))
    if drafts.status_update:
        blocks.append(
            SectionBlock(text=MarkdownTextObject(text=f"*Status page draft*\n>{escaped(drafts.status_update)}"))
        )
    blocks.append(
        ContextBlock(
            elements=[MarkdownTextObject(text=f"Incident `{incident.incident_id}` · revision {incident.revision}")]
        )
    )
    if interactive:
        blocks.append(lifecycle_buttons(incident, drafts.replies))
    return blocks
