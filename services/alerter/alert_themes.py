"""An incident's themes for its alert, found in a worker thread from the posts the incident carries.

The grouping is shared with backtest reports (:mod:`crisiswatch.themes.incidents`);
here the anchors come from the team's reply templates, whose keyword themes
stay the names that pick the drafts. A hundred posts take a fraction of a
second, so the work leaves the event loop, and a failure costs the alert its
themes, never the alert. The sentence encoder is loaded at start-up in a
background thread (:func:`warm_encoder`), so the first alert does not wait
for it; an alert composed while it loads waits in its worker thread, never on
the event loop.
"""

from __future__ import annotations

import asyncio
import logging
import threading

from crisiswatch.contracts.schemas import Incident, IncidentEventType
from crisiswatch.themes.clustering import Anchor, Themes, anchors_from_themes
from crisiswatch.themes.encoding import warm_encoders
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


def warm_encoder() -> threading.Thread:
    """Load and warm the themes' sentence encoders in a daemon thread, started now; the thread, for tests to join.

    Never blocks start-up and never raises: a failed load is logged and the
    themes fall back to words (:func:`crisiswatch.themes.encoding.warm_encoders`).
    """
    thread = threading.Thread(target=warm_encoders, name="themes-encoder-warm-up", daemon=True)
    thread.start()
    return thread
