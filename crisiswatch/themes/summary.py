"""The one line at the top of an alert: what most posts are about, and how far above normal the volume is.

Built from the themes alone (no language model), so it is instant, the same
every time, and cannot say anything the posts do not. Example:
"Mostly lost luggage (62%) and booking problems (21%); volume 2.1× normal for
a Sunday".
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from .clustering import Theme, Themes

SHOWN = 3
"""Themes named in the line, at most."""
MIN_SHOWN_SHARE = 0.10
"""A theme below this share of the posts is left out of the line (the largest is always named)."""
MOSTLY = 0.5
"""The line starts "Mostly" when the themes it names cover at least this share."""


def short_name(theme: Theme) -> str:
    """A theme as the line names it: its first phrase in the posts' own words ("lost luggage"), else its label."""
    return theme.terms[0] if theme.terms else theme.label


def _joined(parts: Sequence[str]) -> str:
    return parts[0] if len(parts) == 1 else f"{', '.join(parts[:-1])} and {parts[-1]}"


def summary_line(themes: Themes | Sequence[Theme], volume_ratio: float | None = None, when: str | None = None) -> str:
    """One plain-language line: the main themes with their shares, then the volume against normal.

    ``volume_ratio`` is the volume over its normal level (left out when not
    given or not a positive finite number); ``when`` completes "normal for
    ...", e.g. "a Sunday" or "this hour".
    """
    listed = sorted(themes.themes if isinstance(themes, Themes) else themes, key=lambda t: (-t.share, t.theme_id))
    shown = [t for t in listed[:SHOWN] if t.share >= MIN_SHOWN_SHARE] or listed[:1]
    parts = [f"{short_name(t)} ({t.share:.0%})" for t in shown]
    if not parts:
        line = "No clear theme yet"
    else:
        covered = sum(t.share for t in shown)
        line = f"{'Mostly' if covered >= MOSTLY else 'Mixed:'} {_joined(parts)}"
    if volume_ratio is not None and math.isfinite(volume_ratio) and volume_ratio > 0:
        line += f"; volume {volume_ratio:.1f}× normal" + (f" for {when}" if when else "")
    return line
