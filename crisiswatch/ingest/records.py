"""Turning raw source records into validated ``Mention`` messages (pure functions).

A raw record is whatever a source hands over: a JSON object from a file line or
an HTTP body, or a CSV row. A ``FieldMapping`` says where each of our fields is
in it, so exports with other column names need no code.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import ValidationError

from crisiswatch.contracts.schemas import Engagement, Mention

from .brands import BrandCatalog


class RejectedInput(ValueError):
    """Input that cannot become a mention; ``reason`` goes into the dead letter."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


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

    @classmethod
    def parse(cls, spec: str) -> FieldMapping:
        """Build from ``field=path,field=path`` (e.g. ``text=full_text,author_handle=user.screen_name``).

        ``timezone=Area/City`` is the zone of timestamps written without an offset (default UTC).
        """
        pairs: dict[str, str] = {}
        for item in filter(None, (part.strip() for part in spec.split(","))):
            name, sep, path = item.partition("=")
            if not sep or name.strip() not in cls.__dataclass_fields__ or name.strip() == "extra":
                raise ValueError(f"bad field mapping {item!r}; expected FIELD=PATH with FIELD one of {_FIELDS}")
            pairs[name.strip()] = path.strip()
        mapping = cls(**pairs)
        zone_for(mapping.timezone)
        return mapping


DEFAULT_MAPPING = FieldMapping()
_FIELDS = ", ".join(f for f in FieldMapping.__dataclass_fields__ if f not in ("extra", "timezone"))


def decode_json_object(payload: bytes | str) -> dict[str, Any]:
    """Parse one JSON object, rejecting invalid UTF-8, malformed JSON and non-objects with a reason."""
    if isinstance(payload, bytes):
        try:
            payload = payload.decode("utf-8")
        except UnicodeDecodeError as error:
            raise RejectedInput(f"invalid UTF-8 at byte {error.start}") from None
    try:
        value = json.loads(payload)
    except json.JSONDecodeError as error:
        raise RejectedInput(f"malformed JSON: {error.msg} at line {error.lineno} column {error.colno}") from None
    except RecursionError:
        raise RejectedInput("malformed JSON: nested too deeply") from None
    if not isinstance(value, dict):
        raise RejectedInput(f"expected a JSON object, got {type(value).__name__}")
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
    except (TypeError, ValueError):
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
            raise RejectedInput(f"created_at {value!r} is not a time this side of year 1 or 9999") from None
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
            raise RejectedInput(f"created_at {value[:40]!r} falls outside the calendar in UTC") from None
    raise RejectedInput("created_at is missing")


def to_mentions(
    record: Mapping[str, Any], catalog: BrandCatalog, mapping: FieldMapping = DEFAULT_MAPPING, source: str = "unknown"
) -> list[Mention]:
    """Validate a raw record and return one mention per brand it concerns.

    A record naming its brand must name a configured one; otherwise the text is
    matched against the brand catalogue. Raises :class:`RejectedInput` with the reason.
    """
    text = _lookup(record, mapping.text)
    if not isinstance(text, str):
        raise RejectedInput("text is missing" if text is None else f"text must be a string, got {type(text).__name__}")
    if not text.strip():
        raise RejectedInput("text is empty")
    mention_id = _lookup(record, mapping.id)
    if mention_id in (None, "") or isinstance(mention_id, dict | list | bool):
        raise RejectedInput("id is missing")
    named_brand = _lookup(record, mapping.brand)
    if named_brand not in (None, ""):
        if str(named_brand) not in catalog.brands:
            raise RejectedInput(f"unknown brand {str(named_brand)[:64]!r}; configured: {', '.join(catalog.ids())}")
        brands = [str(named_brand)]
    else:
        brands = catalog.match(text)
        if not brands:
            raise RejectedInput("no configured brand is mentioned in the text")
    engagement = Engagement(
        likes=_count(record, mapping.likes, "likes"),
        reposts=_count(record, mapping.reposts, "reposts"),
        replies=_count(record, mapping.replies, "replies"),
    )
    fields = {
        "id": str(mention_id),
        "source": str(_lookup(record, mapping.source) or source),
        "text": text,
        "lang": str(_lookup(record, mapping.lang) or "und"),
        "author_handle": str(_lookup(record, mapping.author_handle) or ""),
        "author_followers": _count(record, mapping.author_followers, "author_followers"),
        "created_at": parse_timestamp(_lookup(record, mapping.created_at), mapping.timezone),
        "url": _lookup(record, mapping.url) or None,
        "engagement": engagement,
    }
    try:
        return [Mention(brand=brand, brand_name=catalog.display_name(brand), **fields) for brand in brands]
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise RejectedInput(f"{where}: {first['msg']}") from None
