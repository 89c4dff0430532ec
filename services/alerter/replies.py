"""Response drafting (pure): what drives an incident, and the public replies a service team can post.

The theme and the language come from the incident's sample posts; the drafts
come from a templates file the team edits without code (``templates.toml``
beside this module, or ``ALERTER_TEMPLATES_FILE``). The template path is the
one that always works; nothing here calls out.
"""

from __future__ import annotations

import re
import string
import tomllib
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Protocol

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from crisiswatch.contracts.schemas import UNDETERMINED_LANGUAGE, Incident, SampleMention, Severity, primary_language

DEFAULT_TEMPLATES_FILE = Path(__file__).resolve().parent / "templates.toml"
FALLBACK_LANGUAGE = "en"
OTHER = "other"
PLACEHOLDERS = {"brand", "next_update", "theme"}
STATUS_PHASES = ("investigating", "identified", "monitoring", "resolved")
UPDATE_EVERY = {Severity.CRITICAL: timedelta(minutes=30), Severity.WARNING: timedelta(hours=1)}
RIGHT_TO_LEFT = {"he", "ar", "fa", "ur", "yi"}
RIGHT_TO_LEFT_ISOLATE = "\u2067"
POP_DIRECTIONAL_ISOLATE = "\u2069"
RLM = "\u200f"
_WORD = re.compile(r"[^\W\d_][\w'’-]*", re.UNICODE)
_STOPWORD_TEXT = """
a an the and or but if of to in on at for from by with about as is are was were be been being it its this that
these those i me my we our you your he she they them their his her not no so just very can cant can't do does
did doesnt doesn't dont don't have has had will would should could again still now today all any what when why
how who get got im i'm ive i've us up out than then there here also too only של את על עם זה זו לא כן גם אבל או
כי אני אנחנו אתם הם היא הוא יש אין מה למה איך עוד כבר רק
"""
_STOPWORDS = frozenset(_STOPWORD_TEXT.split())


class Templates(BaseModel):
    """The parsed templates file; validated so a typo fails at start-up, not in the middle of a crisis."""

    model_config = ConfigDict(frozen=True)

    themes: dict[str, dict[str, list[str]]]
    replies: dict[str, dict[str, list[str]]]
    status: dict[str, dict[str, str]] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _complete_and_known_placeholders(self) -> Templates:
        english = self.replies.get(FALLBACK_LANGUAGE, {})
        missing = sorted(({*self.themes, OTHER}) - set(english))
        if missing:
            raise ValueError(f"replies.en has no drafts for themes {missing}")
        for language, by_theme in self.replies.items():
            for theme, drafts in by_theme.items():
                if theme not in self.themes and theme != OTHER:
                    raise ValueError(f"replies.{language}.{theme}: no such theme")
                for draft in drafts:
                    _check_placeholders(draft, f"replies.{language}.{theme}")
        for language, phases in self.status.items():
            for phase, text in phases.items():
                if phase not in STATUS_PHASES:
                    raise ValueError(f"status.{language}.{phase}: phases are {', '.join(STATUS_PHASES)}")
                _check_placeholders(text, f"status.{language}.{phase}")
        return self


def _check_placeholders(text: str, where: str) -> None:
    unknown = {name for _, name, _, _ in string.Formatter().parse(text) if name} - PLACEHOLDERS
    if unknown:
        raise ValueError(f"{where}: unknown placeholders {sorted(unknown)}; use {sorted(PLACEHOLDERS)}")


@cache
def load_templates(path: Path = DEFAULT_TEMPLATES_FILE) -> Templates:
    """Read and validate a templates file (cached per path)."""
    try:
        return Templates.model_validate(tomllib.loads(path.read_text(encoding="utf-8")))
    except (OSError, tomllib.TOMLDecodeError, ValidationError) as error:
        raise ValueError(f"templates file {path}: {error}") from None


@dataclass(frozen=True)
class Drivers:
    """What the sample posts say: the theme, the keywords that gave it away, frequent terms, the language."""

    theme: str
    matched: tuple[str, ...]
    top_terms: tuple[str, ...]
    language: str


@dataclass(frozen=True)
class Drafts:
    """Public replies and, for critical incidents, a status-page update, in the posts' language."""

    language: str
    replies: tuple[str, ...]
    status_update: str | None
    next_update: str


class Drafter(Protocol):
    """Something that drafts the public replies for an alert (e.g. a language model over the templates)."""

    async def drafts(self, incident: Incident) -> Drafts:
        """The replies and status update to show with the incident."""


def _contains(text: str, phrase: str) -> bool:
    return re.search(rf"(?<!\w){re.escape(phrase.casefold())}(?!\w)", text) is not None


def detect_theme(texts: Sequence[str], templates: Templates) -> tuple[str, tuple[str, ...]]:
    """The theme whose keywords occur in the most posts (ties: file order), with the keywords seen."""
    folded = [text.casefold() for text in texts]
    best, best_posts, best_matched = OTHER, 0, ()
    for theme, spec in templates.themes.items():
        matched = [k for k in spec.get("keywords", []) if any(_contains(text, k) for text in folded)]
        posts = sum(any(_contains(text, k) for k in matched) for text in folded)
        if posts > best_posts:
            best, best_posts, best_matched = theme, posts, tuple(matched)
    return best, best_matched


def top_terms(texts: Sequence[str], exclude: Sequence[str] = (), limit: int = 5) -> tuple[str, ...]:
    """The most frequent content words across posts (each post counts a word once); handles and links dropped.

    Ties keep the order in which the words first appear, so the same posts give
    the same terms in every process.
    """
    excluded = {word.casefold() for phrase in exclude for word in _WORD.findall(phrase)}
    counts: Counter[str] = Counter()
    for text in texts:
        cleaned = re.sub(r"https?://\S+|[@#]\w+", " ", text)
        words = dict.fromkeys(w.casefold().strip("'’-") for w in _WORD.findall(cleaned))
        counts.update(w for w in words if len(w) > 2 and w not in _STOPWORDS and w not in excluded)
    return tuple(word for word, count in counts.most_common(limit) if count > 1 or len(texts) == 1)


def dominant_language(samples: Sequence[SampleMention]) -> str:
    """The most common known language among the posts (``und`` when none is known)."""
    counts = Counter(primary_language(s.lang) for s in samples)
    del counts[UNDETERMINED_LANGUAGE]
    return counts.most_common(1)[0][0] if counts else UNDETERMINED_LANGUAGE


def drivers(incident: Incident, templates: Templates, display_name: str | None = None) -> Drivers:
    """Theme, matched keywords, top terms and language of an incident's sample posts."""
    texts = [sample.text for sample in incident.sample_mentions]
    theme, matched = detect_theme(texts, templates)
    exclude = [incident.brand, display_name or incident.brand_name, *incident.brand.split("-")]
    return Drivers(theme, matched, top_terms(texts, exclude), dominant_language(incident.sample_mentions))


def brand_display_name(brand: str) -> str:
    """A readable name from a brand id (``nimbus-bank`` -> ``Nimbus Bank``) for drafts meant for the public."""
    return " ".join(part.capitalize() for part in brand.replace("_", "-").split("-") if part)


def next_update_at(incident: Incident) -> datetime:
    """When the team should promise the next update: sooner for critical incidents, on a round quarter hour."""
    due = incident.window_end + UPDATE_EVERY.get(incident.severity, timedelta(hours=1))
    quarter = timedelta(minutes=15)
    remainder = (due - due.replace(minute=0, second=0, microsecond=0)) % quarter
    return due + (quarter - remainder if remainder else timedelta(0))


def draft(incident: Incident, templates: Templates, display_name: str | None = None) -> Drafts:
    """2–3 replies matched to the theme and language (English when no template exists), plus a status update."""
    display_name = display_name or incident.brand_name or None
    found = drivers(incident, templates, display_name)
    language = found.language if found.language in templates.replies else FALLBACK_LANGUAGE
    by_theme = templates.replies[language]
    chosen = by_theme.get(found.theme) or by_theme.get(OTHER)
    if not chosen:
        language, chosen = FALLBACK_LANGUAGE, templates.replies[FALLBACK_LANGUAGE][found.theme]
    next_update = f"{next_update_at(incident):%H:%M} UTC"
    values = {
        "brand": display_name or brand_display_name(incident.brand),
        "next_update": next_update,
        "theme": found.theme.replace("_", " "),
    }
    replies = tuple(directional(text.format(**values), language) for text in chosen[:3])
    status = None
    if incident.severity is Severity.CRITICAL:
        phases = templates.status.get(language) or templates.status.get(FALLBACK_LANGUAGE, {})
        phase = "resolved" if incident.event.value == "resolved" else "investigating"
        if phase in phases:
            status = directional(phases[phase].format(**values), language)
    return Drafts(language, replies, status, next_update)


def directional(text: str, language: str) -> str:
    """Start right-to-left text with a right-to-left mark so clients lay out its punctuation correctly."""
    return RLM + text if right_to_left(language) else text


def right_to_left(language: str) -> bool:
    """Whether ``language`` (``he``, ``ar-EG``…) is written right to left."""
    return primary_language(language) in RIGHT_TO_LEFT


def isolated(text: str) -> str:
    """Right-to-left text set apart (a Unicode isolate) inside a left-to-right line, such as a quoted post.

    Without it a Hebrew post that opens with an @handle is laid out left to
    right, and its words and punctuation run in the wrong order; the isolate
    also keeps the post's direction from reordering the line around it.
    """
    return f"{RIGHT_TO_LEFT_ISOLATE}{text}{POP_DIRECTIONAL_ISOLATE}"
