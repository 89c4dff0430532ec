"""Messages the services exchange over Kafka.

Every record on the wire is one of these models serialised as JSON and carries
``schema_version`` so a consumer can refuse a record from an incompatible
producer with a clear reason instead of misreading it.
"""

from __future__ import annotations

import enum
import re
from datetime import UTC, datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints, ValidationError, field_validator

SCHEMA_VERSION = 1
MAX_TEXT_CHARS = 10_000
MAX_ID_CHARS = 128
THEME_POSTS_MAX = 150
"""Sampled posts an incident keeps for its themes: a few per minute of the storm, copies folded."""
THEME_TEXT_CHARS = 280
"""What of a theme post is kept (no link): enough to group it, small enough for 150 to ride every event."""
UNDETERMINED_LANGUAGE = "und"
_LEGACY_LANGUAGE_CODES = {"iw": "he", "in": "id", "ji": "yi"}
"""Codes some sources still send (X/Twitter's ``iw`` for Hebrew) for the ISO 639-1 code of today."""


def primary_language(tag: str) -> str:
    """The primary language of a tag, as every stage reads ``Mention.lang``: ``he-IL``, ``iw``, `` HE_il`` → ``he``.

    Lower-cased, region and script dropped, legacy codes replaced; a tag
    that is not a language (empty, digits, punctuation) is ``und``.
    """
    primary = re.split(r"[-_]", tag.strip().lower(), maxsplit=1)[0][:8]
    if not primary.isascii() or not primary.isalpha():
        return UNDETERMINED_LANGUAGE
    return _LEGACY_LANGUAGE_CODES.get(primary, primary)


"""The longest mention id a stage accepts: ids key deduplication and travel in every downstream message."""


def _as_utc(value: datetime) -> datetime:
    """Interpret naive timestamps as UTC and convert aware ones to UTC."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


UtcDatetime = Annotated[datetime, AfterValidator(_as_utc)]
EVENT_TIME_MIN = datetime(1970, 1, 1, tzinfo=UTC)
EVENT_TIME_MAX = datetime(2200, 1, 1, tzinfo=UTC)
EventDatetime = Annotated[UtcDatetime, Field(ge=EVENT_TIME_MIN, lt=EVENT_TIME_MAX)]
"""When a post was made: between the Unix epoch and 2200. No source clock is right outside that, and window
arithmetic on it (a bucket's end, a watermark minus lateness) stays far from ``datetime``'s own limits."""
SlackUserId = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")]
"""A Slack user id (``U0123ABCD``); the pattern keeps anything but an id out of ``<@...>`` mentions."""


def validation_problems(error: ValidationError, limit: int = 3) -> str:
    """What a validation error found, field by field (``where: what``), never the input it was given.

    For dead-letter reasons and rejections: the payload travels beside the
    reason where it is safe to keep, and an input may hold a secret (a Slack
    ``response_url``) that a reason must not repeat.
    """
    problems = error.errors(include_input=False, include_url=False)[:limit]
    return "; ".join(f"{'.'.join(map(str, p['loc'])) or 'payload'}: {p['msg']}" for p in problems)[:300]


def utc_now() -> datetime:
    """The current time as an aware UTC datetime."""
    return datetime.now(UTC)


class Sentiment(enum.StrEnum):
    """The three sentiment classes every model is mapped onto."""

    NEGATIVE = "negative"
    NEUTRAL = "neutral"
    POSITIVE = "positive"


SENTIMENT_ORDER: tuple[Sentiment, ...] = (Sentiment.NEGATIVE, Sentiment.NEUTRAL, Sentiment.POSITIVE)


class WireModel(BaseModel):
    """Base for every Kafka message: strict about unknown shapes, stamped with a version."""

    model_config = ConfigDict(extra="ignore", frozen=True, str_strip_whitespace=False)

    schema_version: int = SCHEMA_VERSION

    @field_validator("schema_version")
    @classmethod
    def _known_version(cls, value: int) -> int:
        if value > SCHEMA_VERSION:
            raise ValueError(f"schema_version {value} is newer than this service understands ({SCHEMA_VERSION})")
        return value

    def to_bytes(self) -> bytes:
        """Serialise for the wire."""
        return self.model_dump_json().encode()

    @classmethod
    def from_bytes(cls, payload: bytes) -> WireModel:
        """Parse and validate a wire payload; raises ``ValueError`` with the reason."""
        return cls.model_validate_json(payload)


class Engagement(BaseModel):
    """Public interaction counts on a post at the time it was collected."""

    model_config = ConfigDict(frozen=True)

    likes: int = Field(default=0, ge=0)
    reposts: int = Field(default=0, ge=0)
    replies: int = Field(default=0, ge=0)


class Mention(WireModel):
    """A normalised public post that mentions one configured brand."""

    id: str = Field(min_length=1, max_length=MAX_ID_CHARS)
    source: str = Field(min_length=1, max_length=64)
    brand: str = Field(min_length=1, max_length=64)
    brand_name: str = Field(default="", max_length=128, description="the brand's display name, for public replies")
    text: str = Field(min_length=1, max_length=MAX_TEXT_CHARS)
    lang: str = Field(default="und", max_length=16)
    author_handle: str = Field(default="", max_length=128)
    author_followers: int = Field(default=0, ge=0)
    created_at: EventDatetime
    url: str | None = Field(default=None, max_length=2048)
    engagement: Engagement = Field(default_factory=Engagement)
    ingested_at: UtcDatetime = Field(default_factory=utc_now)

    @field_validator("text")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("text is blank")
        return value

    @property
    def reach(self) -> int:
        """Rough audience estimate: the author's followers plus one for the post itself."""
        return self.author_followers + 1


class SentimentScores(BaseModel):
    """Class probabilities; they sum to one."""

    model_config = ConfigDict(frozen=True)

    negative: float = Field(ge=0.0, le=1.0)
    neutral: float = Field(ge=0.0, le=1.0)
    positive: float = Field(ge=0.0, le=1.0)

    @property
    def label(self) -> Sentiment:
        """The most probable class."""
        best = max(SENTIMENT_ORDER, key=lambda s: getattr(self, s.value))
        return best


class ScoredMention(Mention):
    """A mention with the sentiment model's verdict attached."""

    label: Sentiment
    scores: SentimentScores
    model: str = Field(min_length=1)
    scored_at: UtcDatetime = Field(default_factory=utc_now)


_SEVERITY_COLOURS = {"watch": "#f2c94c", "warning": "#f2994a", "critical": "#eb5757"}


class Severity(enum.StrEnum):
    """How loudly the service team should be told."""

    WATCH = "watch"
    WARNING = "warning"
    CRITICAL = "critical"

    @property
    def colour(self) -> str:
        """The colour it is drawn in, in Slack charts and analysts' reports alike."""
        return _SEVERITY_COLOURS[self.value]

    @property
    def rank(self) -> int:
        """Ordering used to tell an escalation from a repeat."""
        return {"watch": 0, "warning": 1, "critical": 2}[self.value]


class IncidentEventType(enum.StrEnum):
    """Lifecycle step an incident event records."""

    OPENED = "opened"
    UPDATED = "updated"
    ESCALATED = "escalated"
    ACKNOWLEDGED = "acknowledged"
    ASSIGNED = "assigned"
    SNOOZED = "snoozed"
    RESOLVED = "resolved"

    @property
    def by_person(self) -> bool:
        """Whether a person's action in Slack, not the detector, produced the event."""
        return self in (IncidentEventType.ACKNOWLEDGED, IncidentEventType.ASSIGNED, IncidentEventType.SNOOZED)


class SampleMention(BaseModel):
    """A post shown to the service team as evidence."""

    model_config = ConfigDict(frozen=True)

    id: str
    text: str
    author_handle: str
    author_followers: int
    url: str | None
    created_at: UtcDatetime
    negative_score: float
    lang: str = "und"
    copies: int = Field(default=1, ge=1, description="the posts it stands for: itself and its near-duplicates")
    copies_followers: int = Field(default=0, ge=0, description="followers of its near-duplicates' authors")

    @property
    def reach(self) -> int:
        """The audience of this post and its near-duplicates: their authors' followers plus one per post."""
        return self.author_followers + self.copies_followers + self.copies


class HistoryPoint(BaseModel):
    """One interval of a brand's recent history as an alert charts it: counts and the normal range."""

    model_config = ConfigDict(frozen=True)

    start: UtcDatetime
    total: int = Field(ge=0)
    negative: int = Field(ge=0)
    expected_negative: float = Field(ge=0.0)
    normal_low: int = Field(ge=0)
    normal_high: int = Field(ge=0)


class Incident(WireModel):
    """One event in an incident's life; ``(incident_id, revision)`` is unique and idempotent."""

    incident_id: str
    revision: int = Field(ge=1)
    event: IncidentEventType
    brand: str
    brand_name: str = Field(default="", description="the brand's display name (empty: derived from the id)")
    severity: Severity
    window_start: UtcDatetime
    window_end: UtcDatetime
    opened_at: UtcDatetime
    observed_negative: int = Field(ge=0)
    expected_negative: float = Field(ge=0.0)
    observed_total: int = Field(ge=0)
    expected_total: float = Field(ge=0.0)
    negative_share: float = Field(ge=0.0, le=1.0)
    baseline_negative_share: float = Field(ge=0.0, le=1.0)
    surprise: float = Field(ge=0.0, description="-log10 of the tail probability of the observed count")
    reach: int = Field(default=0, ge=0)
    rule: str = Field(description="which detector rule produced this event")
    sample_mentions: list[SampleMention] = Field(default_factory=list)
    theme_posts: list[SampleMention] = Field(
        default_factory=list,
        max_length=THEME_POSTS_MAX,
        description="the incident's sampled negative posts (copies folded), from which its themes are found",
    )
    peak_negative: int = Field(default=0, ge=0)
    total_negative: int = Field(default=0, ge=0)
    history: list[HistoryPoint] = Field(
        default_factory=list, max_length=120, description="the brand's last hours, for the alert's chart"
    )
    acknowledged_by: SlackUserId | None = Field(default=None, description="who acknowledged it")
    assignee: SlackUserId | None = Field(default=None, description="who owns it")
    snoozed_until: UtcDatetime | None = Field(default=None, description="escalations until then update quietly")
    acted_by: SlackUserId | None = Field(default=None, description="whose action produced this event, if a person's")
    false_alarm: bool = Field(
        default=False, description="on a resolved event: the team closed it as not a crisis (a false alarm)"
    )
    horizon: str = Field(
        default="", description="the look-back that fired, in words (e.g. 'last 12 h'); empty on older events"
    )
    sector_peers: list[str] = Field(
        default_factory=list,
        max_length=50,
        description="other brands of the brand's sector whose incidents opened in the same hours (names)",
    )
    emitted_at: UtcDatetime = Field(default_factory=utc_now)

    def snoozed_at(self, moment: datetime) -> bool:
        """Whether the team asked not to be disturbed about this incident at ``moment``."""
        return self.snoozed_until is not None and moment < self.snoozed_until

    @property
    def idempotency_key(self) -> str:
        """Unique per delivered event: re-delivery of the same key must be a no-op."""
        return f"{self.incident_id}:{self.revision}"


class ActionKind(enum.StrEnum):
    """What a person can do to an open incident from its Slack message."""

    ACKNOWLEDGE = "acknowledge"
    ASSIGN = "assign"
    SNOOZE = "snooze"
    RESOLVE = "resolve"
    NOT_A_CRISIS = "not_a_crisis"


class IncidentAction(WireModel):
    """A person's button press on an incident, on its way to the detector that owns the incident's state.

    Keyed by brand on ``crisis.actions`` so it reaches the partition that holds
    the brand's state. Applying the same action twice changes nothing.
    """

    incident_id: str = Field(min_length=1, max_length=256)
    brand: str = Field(min_length=1, max_length=64)
    kind: ActionKind
    user_id: SlackUserId
    user_name: str = Field(default="", max_length=128)
    acted_at: UtcDatetime
    snooze_minutes: int = Field(default=60, ge=1, le=24 * 60)
    channel: str | None = Field(default=None, max_length=64, description="where the button was pressed")


DeadLetterStage = Literal["listener", "classifier", "alerter"]


class RejectionCode(enum.StrEnum):
    """Why an input was rejected, in a word: a bounded set, fit for metric labels and for routing dead letters.

    The reason text beside it says the details (which field, what value).
    """

    INVALID_UTF8 = "invalid_utf8"
    MALFORMED_JSON = "malformed_json"
    NOT_AN_OBJECT = "not_an_object"
    UNKNOWN_BRAND = "unknown_brand"
    NO_BRAND_MATCH = "no_brand_match"
    EMPTY_TEXT = "empty_text"
    MISSING_FIELD = "missing_field"
    TOO_LARGE = "too_large"
    INVALID_FIELD = "invalid_field"
    TIME_OUT_OF_RANGE = "time_out_of_range"
    UNKNOWN_KIND = "unknown_kind"
    """A live stream's event of a kind or operation the listener does not know."""
    DELETED = "deleted"
    """A live stream deleted a post after the listener took it: the mention stands, the deletion is kept here."""
    EDITED = "edited"
    """A live stream edited a post after the listener took it: the first version stands, the edit is kept here."""


class DeadLetter(WireModel):
    """A rejected input kept with the reason it was rejected, so nothing is lost silently."""

    stage: DeadLetterStage
    source: str
    reason: str
    code: RejectionCode | None = Field(
        default=None, description="the reason in a word, where the stage that rejected the input names one"
    )
    payload: str = Field(description="the rejected input, decoded leniently and truncated")
    payload_bytes: int = Field(ge=0)
    rejected_at: UtcDatetime = Field(default_factory=utc_now)

    @classmethod
    def for_payload(
        cls,
        stage: DeadLetterStage,
        source: str,
        reason: str,
        payload: bytes | str,
        limit: int = 4096,
        code: RejectionCode | None = None,
    ) -> DeadLetter:
        """Build a dead letter, keeping at most ``limit`` characters of the payload.

        Text that is not valid Unicode (bytes smuggled in as surrogates by a
        CSV reader, or a lone surrogate from a JSON escape) is kept as
        backslash escapes, so the letter itself can always be written.
        """
        raw = _utf8(payload) if isinstance(payload, str) else payload
        text = raw.decode("utf-8", errors="backslashreplace")
        reason_text = _utf8(reason[:1000]).decode("utf-8", errors="backslashreplace")
        return cls(
            stage=stage, source=source, reason=reason_text, code=code, payload=text[:limit], payload_bytes=len(raw)
        )


def _utf8(text: str) -> bytes:
    """``text`` as UTF-8, surrogates included: escaped bytes restored, lone ones kept as their (invalid) code units."""
    try:
        return text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        return text.encode("utf-8", "surrogatepass")
