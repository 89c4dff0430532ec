"""An incident event composed for people once, before anything is sent: the notifiers only send it.

Composing is the expensive part of an alert: the reply drafts (a language
model may refine them), the themes of the incident's posts (grouped in a
worker thread) and the Block Kit blocks. It happens once per incident event,
so a retry after Slack failed, or a fallback to another channel, sends the
same message without redoing that work. A failure to find themes or refined
drafts costs the message those parts, never the message.
"""

from __future__ import annotations

from dataclasses import dataclass

from slack_sdk.models.blocks import Block

from crisiswatch.contracts.schemas import Incident, IncidentEventType

from .alert_blocks import compose_blocks, headline
from .alert_themes import themes_for
from .replies import Drafter, Drafts, Templates, load_templates


@dataclass(frozen=True)
class AlertMessage:
    """What every notifier shows for one incident event.

    ``blocks`` is the full alert (a thread reply, a webhook post, the alerts
    file); ``interactive_blocks`` is the same with the lifecycle buttons, for
    the parent message in bot mode with Socket Mode.
    """

    incident: Incident
    text: str
    blocks: tuple[Block, ...]
    interactive_blocks: tuple[Block, ...]

    def blocks_json(self) -> list[dict[str, object]]:
        """The full alert's blocks as Slack's JSON (what the alerts file keeps)."""
        return [block.to_dict() for block in self.blocks]


class MessageComposer:
    """Composes incident events with the team's ``templates`` and an optional reply ``drafter``."""

    def __init__(self, templates: Templates | None = None, drafter: Drafter | None = None) -> None:
        self.templates = templates or load_templates()
        self.drafter = drafter

    async def compose(self, incident: Incident) -> AlertMessage:
        """Draft, group and lay out the event once (themes off the event loop)."""
        drafts = await self._drafts(incident)
        themes = await themes_for(incident, self.templates)
        plain = compose_blocks(incident, self.templates, drafts=drafts, themes=themes)
        interactive = compose_blocks(incident, self.templates, interactive=True, drafts=drafts, themes=themes)
        return AlertMessage(incident, headline(incident), tuple(plain), tuple(interactive))

    async def _drafts(self, incident: Incident) -> Drafts | None:
        """The drafter's replies for an alert that shows replies; None means the templates' own."""
        if self.drafter is None or incident.event is IncidentEventType.RESOLVED:
            return None
        return await self.drafter.drafts(incident)
