"""Turning raw source records into validated ``Mention`` messages (pure functions).

A raw record is whatever a source hands over: a JSON object from a file line or
an HTTP body, or a CSV row. A ``FieldMapping`` says where each of our fields is
in it, so exports with other column names need no code.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from crisiswatch.contracts.schemas import (
    EVENT_TIME_MAX,
    EVENT_TIME_MIN,
    MAX_ID_CHARS,
    MAX_TEXT_CHARS,
    Engagement,
    Mention,
    RejectionCode,
    primary_language,
    validation_problems,
)

from .brands import BrandCatalog
from .language import UNDETERMINED, LanguageGuess, guess_language

_TOO_LONG = frozenset({"string_too_long", "too_long", "bytes_too_long"})


class RejectedInput(ValueError):
    """Input that cannot become a mention: ``reason`` says why in words, ``code`` in one bounded word.

    Both go into the dead letter; the code also labels the rejection metric.
    It is named where the rejection is raised, so nothing has to guess it
    back from the text.
    """

    def __init__(self, reason: str, code: RejectionCode = RejectionCode.INVALID_FIELD) -> None:
        super().__init__(reason)
        self.reason = reason
        self.code = code


class MentionInput(BaseModel):
    """One mention as a source sends it under the default field mapping: the record the ingest API documents.

    Its JSON schema is what ``/openapi.json`` publishes for each record of a
    batch, so a client or a generator (schemathesis) builds records the
    listener accepts. It describes; :func:`to_mentions` judges, and accepts
    every record described here that names a configured brand or mentions
    one in its text. Other fields are allowed and ignored.
    """

    model_config = ConfigDict(
        title="Mention",
        extra="allow",
        json_schema_extra={
            "description": (
                "A mention as a JSON object. Records are judged one by one: anything else is rejected with its "
                "reason and the rest still lands. Without a brand, the text must mention a configured one."
            )
        },
    )

    id: (
        Annotated[str, StringConstraints(min_length=1, max_length=MAX_ID_CHARS)]
        | Annotated[int, Field(ge=0, le=2**63 - 1)]
    ) = Field(description="the post's id on its source")
    text: str = Field(
        min_length=1, max_length=MAX_TEXT_CHARS, pattern=r"[^\s\x1c-\x1f\x85]", description="not only whitespace"
    )
    created_at: datetime | Annotated[float, Field(ge=0, le=253_402_300_799_999)] = Field(
        description="ISO-8601 time, or epoch seconds or milliseconds"
    )
    brand: str | None = Field(
        default=None, min_length=1, max_length=64, description="a configured brand id; without it, the text is matched"
    )
    lang: str | None = Field(default=None, max_length=16)
    author_handle: str | None = Field(default=None, max_length=128)
    author_followers: int | None = Field(default=None, ge=0)
    url: str | None = Field(default=None, max_length=2048)
    likes: int | None = Field(default=None, ge=0)
    reposts: int | None = Field(default=None, ge=0)
    replies: int | None = Field(default=None, ge=0)
    source: str | None = Field(default=None, max_length=64, description="where it was collected; default: the route")


@dataclass(frozen=True)
class FieldMapping:
    """Where each mention field lives in a raw record (dotted paths reach into nested objects)."""

    id: str = "id"
    text: str = "text"
    created_at: str = "created_at"
    brand: str = "brand"
    lang: str = "lang"
    author_handle: str = "author_handle"
    author_followers: str = "author_followers"
    url: str = "url"
    likes: str = "likes"
    reposts: str = "reposts"
    replies: str = "replies"
    source: str = "source"
    timezone: str = "UTC"
    extra: Mapping[str, str] = field(default_factory=dict)
    lang_is_posts_own: bool = False
    """The ``lang`` field is the post's own tag (a network's ``langs``) and wins over detection."""

    @classmethod
    def parse(cls, spec: str) -> FieldMapping:
        """Build from ``field=path,field=path`` (e.g. ``text=full_text,author_handle=user.screen_name``).

        ``timezone=Area/City`` is the zone of timestamps written without an offset (default UTC).
        """
        pairs: dict[str, str] = {}
        for item in filter(None, (part.strip() for part in spec.split(","))):
            name, sep, path = item.partition("=")
            if not sep or name.strip() not in cls.__dataclass_fields__ or name.strip() in _NOT_PATHS:
                raise ValueError(f"bad field mapping {item!r}; expected FIELD=PATH with FIELD one of {_FIELDS}")
            pairs[name.strip()] = path.strip()
        mapping = cls(**pairs)
        zone_for(mapping.timezone)
        return mapping


DEFAULT_MAPPING = FieldMapping()
_NOT_PATHS = ("extra", "lang_is_posts_own")
_FIELDS = ", ".join(f for f in FieldMapping.__dataclass_fields__ if f not in ("extra", "timezone", *_NOT_PATHS))


MAX_INT_DIGITS = 4000


def _bounded_int(literal: str) -> int | float:
    """An integer literal; one too long to be any count reads as infinity, which the count fields refuse.

    Python refuses to convert integer text past 4,300 digits, which would
    fail a whole batch instead of the one record that holds it.
    """
    return int(literal) if len(literal) <= MAX_INT_DIGITS else math.inf


def load_json(text: bytes | str) -> Any:
    """``json.loads`` that never fails on a number: NaN, infinities and huge integers are left to the fields."""
    return json.loads(text, parse_int=_bounded_int)


def decode_json_object(payload: bytes | str) -> dict[str, Any]:
    """Parse one JSON object, rejecting invalid UTF-8, malformed JSON and non-objects with a reason."""
    if isinstance(payload, bytes):
        try:
            payload = payload.decode("utf-8")
        except UnicodeDecodeError as error:
            raise RejectedInput(f"invalid UTF-8 at byte {error.start}", RejectionCode.INVALID_UTF8) from None
    try:
        value = load_json(payload)
    except json.JSONDecodeError as error:
        reason = f"malformed JSON: {error.msg} at line {error.lineno} column {error.colno}"
        raise RejectedInput(reason, RejectionCode.MALFORMED_JSON) from None
    except RecursionError:
        raise RejectedInput("malformed JSON: nested too deeply", RejectionCode.MALFORMED_JSON) from None
    if not isinstance(value, dict):
        raise RejectedInput(f"expected a JSON object, got {type(value).__name__}", RejectionCode.NOT_AN_OBJECT)
    return value


def _lookup(record: Mapping[str, Any], path: str) -> Any:
    value: Any = record
    for part in path.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return None
        value = value[part]
    return value


def _count(record: Mapping[str, Any], path: str, name: str) -> int:
    value = _lookup(record, path)
    if value in (None, ""):
        return 0
    try:
        number = int(value)
    except (TypeError, ValueError, OverflowError):
        raise RejectedInput(f"{name} must be a whole number, got {str(value)[:40]!r}") from None
    if number < 0:
        raise RejectedInput(f"{name} must not be negative, got {number}")
    return number


def zone_for(name: str) -> ZoneInfo:
    """The IANA time zone ``name``; a clear error for an unknown one."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {name!r}; use an IANA name such as Europe/London") from None


def parse_timestamp(value: Any, timezone: str = "UTC") -> datetime:
    """Read an ISO-8601 string, a Twitter-style date or epoch seconds/milliseconds as an aware UTC time.

    A string without an offset is read in ``timezone`` (exports often carry local time).
    """
    if isinstance(value, int | float) and not isinstance(value, bool):
        seconds = value / 1000 if value > 1e11 else value
        try:
            return datetime.fromtimestamp(seconds, UTC)
        except (OverflowError, OSError, ValueError):
            raise RejectedInput(
                f"created_at {value!r} is not a time this side of year 1 or 9999", RejectionCode.TIME_OUT_OF_RANGE
            ) from None
    if isinstance(value, str) and value.strip():
        text = value.strip().replace("Z", "+00:00")
        try:
            parsed = datetime.fromisoformat(text)
        except ValueError:
            try:
                parsed = datetime.strptime(value.strip(), "%a %b %d %H:%M:%S %z %Y")
            except ValueError:
                raise RejectedInput(f"created_at {value[:40]!r} is not an ISO-8601 time or epoch seconds") from None
        local = parsed if parsed.tzinfo else parsed.replace(tzinfo=zone_for(timezone))
        try:
            return local.astimezone(UTC)
        except OverflowError:
            raise RejectedInput(
                f"created_at {value[:40]!r} falls outside the calendar in UTC", RejectionCode.TIME_OUT_OF_RANGE
            ) from None
    raise RejectedInput("created_at is missing", RejectionCode.MISSING_FIELD)


RECORDING_MARGIN = timedelta(days=7)
"""How far past its recording's own span (see :func:`recording_span`) a replayed row may lie."""


@dataclass(frozen=True, slots=True)
class EventTimeBounds:
    """Which ``created_at`` a mention may carry: near the reading clock live, within its recording's span in history.

    Event time drives every window downstream, so one mention dated far ahead
    would make a brand's on-time mentions late, and one dated far back would
    make a new brand walk centuries of empty buckets. Live ingest takes a few
    minutes of source clock skew and a day of backfill against the clock. A
    replay of history (``span`` set, see :meth:`history`) is judged against
    the recording's own span, never the wall clock: history can be any age
    the wire contract takes (1970 to 2200), and only a row far from the rest
    of its file is refused.
    """

    max_future: timedelta = timedelta(minutes=5)
    max_age: timedelta = timedelta(hours=24)
    hint: str = ""
    """Said after a too-old rejection: how to get such a record in (e.g. which flag)."""
    span: tuple[datetime, datetime] | None = None
    """History only: the first and last event time accepted (the recording's span); the clock is then ignored."""

    def check(self, moment: datetime, now: datetime) -> None:
        """Raise :class:`RejectedInput` (``time_out_of_range``) when ``moment`` is outside the bounds at ``now``."""
        if self.span is not None:
            first, last = self.span
            if not first <= moment <= last:
                away = first - moment if moment < first else moment - last
                raise RejectedInput(
                    f"created_at {moment.isoformat()} lies {_span(away)} outside the recording's span "
                    f"({first:%Y-%m-%d} to {last:%Y-%m-%d}, from the times of its rows)",
                    RejectionCode.TIME_OUT_OF_RANGE,
                )
            return
        if moment > now + self.max_future:
            raise RejectedInput(
                f"created_at {moment.isoformat()} is {_span(moment - now)} ahead of the listener's clock "
                f"(at most {_span(self.max_future)} of source clock skew is accepted)",
                RejectionCode.TIME_OUT_OF_RANGE,
            )
        if moment < now - self.max_age:
            hint = f"; {self.hint}" if self.hint else ""
            raise RejectedInput(
                f"created_at {moment.isoformat()} is {_span(now - moment)} old (at most {_span(self.max_age)} "
                f"is accepted here{hint})",
                RejectionCode.TIME_OUT_OF_RANGE,
            )

    @classmethod
    def history(cls, span: tuple[datetime, datetime] | None = None) -> EventTimeBounds:
        """The bounds of a replay of history: ``span`` (see :func:`recording_span`), or all the wire contract takes."""
        return cls(span=span or (EVENT_TIME_MIN, EVENT_TIME_MAX))

    def contains(self, moment: datetime, now: datetime) -> bool:
        """Whether ``moment`` is within the bounds at ``now``."""
        if self.span is not None:
            return self.span[0] <= moment <= self.span[1]
        return now - self.max_age <= moment <= now + self.max_future


def recording_span(times: Iterable[datetime]) -> tuple[datetime, datetime]:
    """The span a recording's rows may lie in, from their own times: Tukey's far fences, widened by a week.

    The quartiles of the times give the recording's bulk; a row more than
    three interquartile ranges (and :data:`RECORDING_MARGIN`) beyond them is
    a mis-dated line (a 1970 default, a year-2199 typo), whose time would
    stall its brand's windows. Nothing depends on the clock, so a recording
    from 2015 replays as one from yesterday does. Always within the wire
    contract's span; all of it when no time is readable.
    """
    seconds = sorted(moment.timestamp() for moment in times)
    if not seconds:
        return EVENT_TIME_MIN, EVENT_TIME_MAX
    low, high = seconds[len(seconds) // 4], seconds[(3 * len(seconds)) // 4]
    reach = 3 * (high - low) + RECORDING_MARGIN.total_seconds()
    first = max(datetime.fromtimestamp(max(low - reach, 0.0), UTC), EVENT_TIME_MIN)
    last = min(datetime.fromtimestamp(min(high + reach, EVENT_TIME_MAX.timestamp()), UTC), EVENT_TIME_MAX)
    return first, last


def _span(delta: timedelta) -> str:
    """A duration the way a person reads it: the largest whole unit."""
    seconds = delta.total_seconds()
    for unit, size in (("years", 365.25 * 86400), ("days", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds / size:.3g} {unit}"
    return f"{seconds:.3g} s"


def language_of(text: str, claimed: Any, expected: Sequence[str] = (), guess: LanguageGuess | None = None) -> str:
    """The mention's language: detected from its text; the source's own tag only when the text cannot tell.

    Detection wins because routing to a sentiment model depends on it and a
    source's tag is often the account's language, not the post's. With
    ``expected`` (the brand's own languages), a short or unsure text leans on
    them (:meth:`LanguageGuess.leaning_on`); one with too few letters to tell
    takes the source's tag first, then the brand's first language.
    """
    guess = guess or guess_language(text)
    if guess.language == UNDETERMINED and isinstance(claimed, str) and claimed.strip():
        return primary_language(claimed)
    return guess.leaning_on(expected)


def _language(
    text: str, claimed: Any, claimed_is_posts_own: bool, expected: Sequence[str], guess: LanguageGuess
) -> str:
    """The post's own language tag where the source gives one per post (``langs``), else :func:`language_of`."""
    if claimed_is_posts_own and isinstance(claimed, str) and claimed.strip():
        return primary_language(claimed)
    return language_of(text, claimed, expected, guess)


def to_mentions(
    record: Mapping[str, Any],
    catalog: BrandCatalog,
    mapping: FieldMapping = DEFAULT_MAPPING,
    source: str = "unknown",
    bounds: EventTimeBounds | None = None,
    now: datetime | None = None,
) -> list[Mention]:
    """Validate a raw record and return one mention per brand it concerns.

    A record naming its brand must name a configured one; otherwise the text is
    matched against the brand catalogue. With ``bounds``, ``created_at`` must
    lie within them at ``now`` (the wall clock when not given). Raises
    :class:`RejectedInput` with the reason.
    """
    text = _lookup(record, mapping.text)
    if text is None:
        raise RejectedInput("text is missing", RejectionCode.MISSING_FIELD)
    if not isinstance(text, str):
        raise RejectedInput(f"text must be a string, got {type(text).__name__}")
    if not text.strip():
        raise RejectedInput("text is empty", RejectionCode.EMPTY_TEXT)
    mention_id = _lookup(record, mapping.id)
    if mention_id in (None, "") or isinstance(mention_id, dict | list | bool):
        raise RejectedInput("id is missing", RejectionCode.MISSING_FIELD)
    if len(str(mention_id)) > MAX_ID_CHARS:
        reason = f"id is {len(str(mention_id))} characters long; the limit is {MAX_ID_CHARS}"
        raise RejectedInput(reason, RejectionCode.TOO_LARGE)
    named_brand = _lookup(record, mapping.brand)
    if named_brand not in (None, ""):
        if str(named_brand) not in catalog.brands:
            reason = f"unknown brand {str(named_brand)[:64]!r}: not one of the {len(catalog.brands)} configured ids"
            raise RejectedInput(reason, RejectionCode.UNKNOWN_BRAND)
        brands = [str(named_brand)]
    else:
        brands = catalog.match(text)
        if not brands:
            raise RejectedInput("no configured brand is mentioned in the text", RejectionCode.NO_BRAND_MATCH)
    engagement = Engagement(
        likes=_count(record, mapping.likes, "likes"),
        reposts=_count(record, mapping.reposts, "reposts"),
        replies=_count(record, mapping.replies, "replies"),
    )
    created_at = parse_timestamp(_lookup(record, mapping.created_at), mapping.timezone)
    if bounds is not None:
        bounds.check(created_at, now or datetime.now(UTC))
    fields = {
        "id": str(mention_id),
        "source": str(_lookup(record, mapping.source) or source),
        "text": text,
        "author_handle": str(_lookup(record, mapping.author_handle) or ""),
        "author_followers": _count(record, mapping.author_followers, "author_followers"),
        "created_at": created_at,
        "url": _lookup(record, mapping.url) or None,
        "engagement": engagement,
    }
    try:
        guess = guess_language(text)
        claimed = _lookup(record, mapping.lang)
        return [
            Mention(
                brand=brand,
                brand_name=catalog.display_name(brand),
                lang=_language(text, claimed, mapping.lang_is_posts_own, catalog.brands[brand].languages, guess),
                **fields,
            )
            for brand in brands
        ]
    except ValidationError as error:
        code = RejectionCode.TOO_LARGE if error.errors()[0]["type"] in _TOO_LONG else RejectionCode.INVALID_FIELD
        raise RejectedInput(validation_problems(error, limit=1), code) from None
