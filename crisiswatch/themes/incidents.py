"""An incident's themes and its one-line summary, alike in the live alert and in backtest reports.

The incident carries its sampled negative posts (a few per minute of the
storm, copies folded: ``Incident.theme_posts``). They are grouped by meaning
(:func:`.clustering.find_themes`) with a shipped sentence encoder, chosen by
the posts' languages (:func:`.encoding.encoder_name_for`: English posts by the
English encoder, any other or a mix by the multilingual one), with the knobs
chosen for that encoder (:data:`.clustering.KNOBS_BY_ENCODER`); by their words
alone when no encoder is installed; each copy counts up to
:data:`COPIES_WEIGHT_CAP` times, with the brand's own names taken out first:
they are in nearly every post, so they would name every theme.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from crisiswatch.contracts.schemas import Incident

from .clustering import DEFAULT_KNOBS, KNOBS_BY_ENCODER, Anchor, Knobs, Themes, find_themes
from .encoding import Encoder, encoder_for
from .summary import summary_line

COPIES_WEIGHT_CAP = 20
"""A post's copies count towards its theme's share up to this many, so one viral text cannot be the whole storm."""
MIN_THEME_POSTS = 6
"""Fewer sampled posts (distinct stories) than this say too little to group: no themes are shown."""


def incident_themes(
    incident: Incident, anchors: Sequence[Anchor], encoder: Encoder | None = None, knobs: Knobs = DEFAULT_KNOBS
) -> Themes | None:
    """The themes of an incident's sampled posts so far, with ``anchors`` beside them; None when there are too few.

    ``encoder`` None: the shipped one for the posts' languages with its own
    knobs (``knobs`` is then ignored), else words alone.
    """
    posts = incident.theme_posts
    if len(posts) < MIN_THEME_POSTS:
        return None
    brand = brand_words(incident)
    texts = [brand.sub(" ", post.text) for post in posts for _ in range(min(post.copies, COPIES_WEIGHT_CAP))]
    if encoder is None and (chosen := encoder_for([post.lang for post in posts])) is not None:
        name, encoder = chosen
        knobs = KNOBS_BY_ENCODER.get(name, DEFAULT_KNOBS)
    found = find_themes(texts, anchors, encoder=encoder, knobs=knobs)
    return found if found.themes else None


def incident_summary(incident: Incident, themes: Themes) -> str:
    """The line an alert opens with: the main themes, and negative mentions against normal for that weekday."""
    ratio = incident.observed_negative / incident.expected_negative if incident.expected_negative else None
    return summary_line(themes, ratio, f"a {incident.window_end:%A}")


def brand_words(incident: Incident) -> re.Pattern[str]:
    """The brand's names: its words whole (``Acme``, not ``airport``), its handles and tags (``@AcmeAirHelp``).

    The run-together name counts bare only when it is a whole word of four
    letters or more, so a short brand id (``ba``) never eats ``baggage``.
    """
    names = f"{incident.brand} {incident.brand_name}"
    words = {w for w in re.split(r"[\s\-_]+", names) if len(w) > 1}
    joined = {"".join(incident.brand.split("-")), "".join(incident.brand_name.split())} - {""}
    words |= {w for w in joined if len(w) >= 4}
    whole = "|".join(re.escape(w) for w in sorted(words, key=len, reverse=True))
    tags = "|".join(re.escape(w) for w in sorted(joined, key=len, reverse=True))
    return re.compile(rf"(?<!\w)[@#](?:{tags})\w*|(?<!\w)(?:{whole})(?!\w)", re.IGNORECASE)
