"""An incident's themes for its alert, found in a worker thread from the posts the incident carries.

The grouping is shared with backtest reports (:mod:`crisiswatch.themes.incidents`);
here the anchors come from the team's reply templates, whose keyword themes
stay the names that pick the drafts. A hundred posts take a fraction of a
second, so the work leaves the event loop, and a failure costs the alert its
themes, never the alert.
"""

from __future__ import annotations

import asyncio
import logging

from crisiswatch.contracts.schemas import Incident, IncidentEventType
from crisiswatch.themes.clustering import Anchor, Themes, anchors_from_themes
from crisiswatch.themes.incidents import incident_themes

from .replies import Templates, load_templates

log = logging.getLogger(__name__)


def anchors(templates: Templates) -> list[Anchor]:
    """The templates' keyword themes, as the anchors that name the themes found."""
    return anchors_from_themes(templates.themes)


async def themes_for(incident: Incident, templates: Templates | None) -> Themes | None:
    """The open incident's themes (None: too few posts, or it has ended); None, logged, if grouping fails."""
    if incident.event is IncidentEventType.RESOLVED:
        return None
    try:
        return await asyncio.to_thread(incident_themes, incident, anchors(templates or load_templates()))
    except Exception:  # the alert goes out without themes rather than not at all
        log.exception("could not find the incident's themes", extra={"incident": incident.incident_id})
        return None
