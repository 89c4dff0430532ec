"""What a frame of an open network's live stream means: Bluesky's Jetstream events, Mastodon's streaming events.

Pure functions: each frame becomes one :class:`Frame` (a post to match
against the brands, an edit or a delete of a post, something to skip because
it is not a post, or a refusal with its reason and code). The listener's
connection loops (``crisiswatch.listener.streams``) do the I/O; what a frame
means is decided here, so it is tested without a network.

Formats:

- Jetstream (``wss://jetstream2.us-east.bsky.network/subscribe``) sends one
  JSON object per WebSocket message: ``{"did", "time_us", "kind"}`` with
  ``kind`` ``commit`` (``commit.operation`` create, update or delete of
  ``commit.collection``/``commit.rkey``, with the ``record`` for create and
  update), ``identity`` or ``account``. ``time_us`` is the stream's cursor.
- Mastodon's streaming API sends server-sent events: ``event: update`` or
  ``status.update`` with a Status as ``data``, ``event: delete`` with the
  status id as ``data``. A status's ``content`` is HTML.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Mapping
from dataclasses import dataclass
from html.parser import HTMLParser
from typing import Any

from crisiswatch.contracts.schemas import RejectionCode, primary_language

from .language import UNDETERMINED, detect_language
from .records import RejectedInput, decode_json_object, parse_timestamp

BLUESKY_POST = "app.bsky.feed.post"
"""The Jetstream collection of posts (``wantedCollections``)."""
DEFAULT_MAX_FRAME_BYTES = 65_536
"""A frame larger than this is refused unread: a Bluesky post is at most 3,000 bytes of text, a status 500 chars."""


class FrameKind(enum.StrEnum):
    """What one frame is."""

    POST = "post"
    EDIT = "edit"
    DELETE = "delete"
    SKIP = "skip"
    """Not a post (an identity or account event, another collection, a boost): counted, never a dead letter."""
    REFUSED = "refused"


@dataclass(frozen=True)
class NetworkPost:
    """A public post as a network publishes it, reduced to what a mention needs."""

    id: str
    text: str
    created_at: str
    author: str
    url: str | None = None
    langs: tuple[str, ...] = ()
    """The post's own language tags (Bluesky ``langs``, Mastodon ``language``), as the author's client set them."""
    handles: tuple[str, ...] = ()
    """Accounts the post mentions (``@name``); a mention of a brand's handle is a mention of the brand."""
    tags: tuple[str, ...] = ()
    """Hashtags the post carries, without ``#``, whether or not they are in its text."""
    followers: int | None = None
    likes: int | None = None
    reposts: int | None = None
    replies: int | None = None

    def match_text(self) -> str:
        """The text the brands are matched against: the post's, then its mentioned handles and its hashtags."""
        extra = [f"@{handle.lstrip('@')}" for handle in self.handles] + [f"#{tag.lstrip('#')}" for tag in self.tags]
        return "\n".join([self.text, " ".join(extra)]) if extra else self.text

    def language(self) -> str:
        """The post's language from its own tags where it has them, else detected from its text.

        With several tags, the one detection agrees with wins; otherwise the
        first (the author's posting language).
        """
        tagged = [primary_language(tag) for tag in self.langs if isinstance(tag, str)]
        tagged = [tag for tag in tagged if tag != UNDETERMINED]
        detected = detect_language(self.text)
        if not tagged:
            return detected
        return detected if detected in tagged else tagged[0]

    def record(self, brand: str) -> dict[str, Any]:
        """The post as a listener record for ``brand`` (default field mapping; its language already decided)."""
        return {
            "id": self.id,
            "brand": brand,
            "text": self.text,
            "created_at": self.created_at,
            "lang": self.language(),
            "author_handle": self.author,
            "author_followers": self.followers,
            "url": self.url,
            "likes": self.likes,
            "reposts": self.reposts,
            "replies": self.replies,
        }


@dataclass(frozen=True)
class Frame:
    """One frame's meaning: its kind, where it sits in the stream, and what it carries."""

    kind: FrameKind
    cursor: int | None = None
    """The stream position after this frame (Jetstream ``time_us``; a Mastodon status id as a number)."""
    clock_s: float | None = None
    """The network's time of this frame, epoch seconds (for the lag behind it); None when it does not say."""
    post: NetworkPost | None = None
    post_id: str | None = None
    """The post an edit or delete concerns."""
    reason: str = ""
    code: RejectionCode | None = None

    @classmethod
    def refused(cls, reason: str, code: RejectionCode, cursor: int | None = None) -> Frame:
        """A frame that cannot be read, with why."""
        return cls(FrameKind.REFUSED, cursor=cursor, reason=reason, code=code)


def bluesky_post_uri(did: str, rkey: str) -> str:
    """The AT URI of a post: its id on the network."""
    return f"at://{did}/{BLUESKY_POST}/{rkey}"


def bluesky_post_url(did: str, rkey: str) -> str:
    """Where a person reads the post."""
    return f"https://bsky.app/profile/{did}/post/{rkey}"


def _decode(payload: bytes | str, max_bytes: int) -> dict[str, Any]:
    size = len(payload) if isinstance(payload, bytes) else len(payload.encode("utf-8", "surrogatepass"))
    if size > max_bytes:
        raise RejectedInput(f"frame of {size} bytes; the limit is {max_bytes}", RejectionCode.TOO_LARGE)
    return decode_json_object(payload)


def _facet_terms(record: Mapping[str, Any], text: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The handles (as written in the text) and tags a post's facets and ``tags`` name."""
    handles: list[str] = []
    tags = [str(t) for t in record.get("tags") or () if isinstance(t, str)]
    encoded = text.encode("utf-8", "surrogatepass")
    for facet in record.get("facets") or ():
        if not isinstance(facet, Mapping):
            continue
        index = facet.get("index") if isinstance(facet.get("index"), Mapping) else {}
        for feature in facet.get("features") or ():
            if not isinstance(feature, Mapping):
                continue
            kind = str(feature.get("$type", ""))
            if kind.endswith("#tag") and isinstance(feature.get("tag"), str):
                tags.append(feature["tag"])
            elif kind.endswith("#mention"):
                start, end = index.get("byteStart"), index.get("byteEnd")
                if isinstance(start, int) and isinstance(end, int) and 0 <= start < end <= len(encoded):
                    written = encoded[start:end].decode("utf-8", "replace").strip()
                    if written.startswith("@"):
                        handles.append(written[1:])
    return tuple(handles), tuple(tags)


def parse_jetstream(payload: bytes | str, max_bytes: int = DEFAULT_MAX_FRAME_BYTES) -> Frame:
    """Read one Jetstream message; never raises: a frame that cannot be read is a ``REFUSED`` frame."""
    try:
        event = _decode(payload, max_bytes)
    except RejectedInput as rejection:
        return Frame.refused(rejection.reason, rejection.code)
    cursor = event.get("time_us")
    if not isinstance(cursor, int) or isinstance(cursor, bool) or cursor <= 0:
        return Frame.refused("time_us is missing or not a positive integer", RejectionCode.MISSING_FIELD)
    clock_s = cursor / 1_000_000
    kind = event.get("kind")
    if kind in ("identity", "account"):
        return Frame(FrameKind.SKIP, cursor, clock_s)
    if kind != "commit":
        return Frame.refused(f"unknown event kind {str(kind)[:40]!r}", RejectionCode.UNKNOWN_KIND, cursor)
    commit, did = event.get("commit"), event.get("did")
    if not isinstance(commit, Mapping) or not isinstance(did, str) or not did:
        return Frame.refused("a commit event needs did and commit", RejectionCode.MISSING_FIELD, cursor)
    if commit.get("collection") != BLUESKY_POST:
        return Frame(FrameKind.SKIP, cursor, clock_s)
    rkey, operation = commit.get("rkey"), commit.get("operation")
    if not isinstance(rkey, str) or not rkey:
        return Frame.refused("commit.rkey is missing", RejectionCode.MISSING_FIELD, cursor)
    uri = bluesky_post_uri(did, rkey)
    if operation == "delete":
        return Frame(FrameKind.DELETE, cursor, clock_s, post_id=uri)
    if operation not in ("create", "update"):
        reason = f"unknown commit operation {str(operation)[:40]!r}"
        return Frame.refused(reason, RejectionCode.UNKNOWN_KIND, cursor)
    record = commit.get("record")
    if not isinstance(record, Mapping):
        return Frame.refused(f"a {operation} commit needs its record", RejectionCode.MISSING_FIELD, cursor)
    text = record.get("text")
    if not isinstance(text, str):
        return Frame.refused("the post's text is missing", RejectionCode.MISSING_FIELD, cursor)
    handles, tags = _facet_terms(record, text)
    langs = record.get("langs")
    post = NetworkPost(
        id=uri,
        text=text,
        created_at=str(record.get("createdAt") or ""),
        author=did,
        url=bluesky_post_url(did, rkey),
        langs=tuple(t for t in langs if isinstance(t, str)) if isinstance(langs, list) else (),
        handles=handles,
        tags=tags,
    )
    kind_of = FrameKind.POST if operation == "create" else FrameKind.EDIT
    return Frame(kind_of, cursor, clock_s, post=post, post_id=uri)


class _Text(HTMLParser):
    """The text of a status's HTML: paragraphs and line breaks as newlines, tags dropped, entities decoded."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "br":
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag == "p":
            self.parts.append("\n\n")

    def handle_data(self, data: str) -> None:
        self.parts.append(data)


def html_text(content: str) -> str:
    """The plain text of Mastodon's status HTML."""
    parser = _Text()
    parser.feed(content)
    parser.close()
    return "".join(parser.parts).strip()


def mastodon_cursor(status_id: object) -> int | None:
    """A status id as a stream position: Mastodon's ids are numbers that grow with time (as text)."""
    text = str(status_id)
    return int(text) if text.isdigit() and len(text) <= 20 else None


def _count(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def mastodon_post(status: Mapping[str, Any]) -> NetworkPost:
    """A Mastodon Status as a post; raises :class:`RejectedInput` when it lacks what a mention needs."""
    status_id = status.get("id")
    if not isinstance(status_id, str | int) or isinstance(status_id, bool) or not str(status_id):
        raise RejectedInput("the status has no id", RejectionCode.MISSING_FIELD)
    content = status.get("content")
    if not isinstance(content, str):
        raise RejectedInput("the status has no content", RejectionCode.MISSING_FIELD)
    text = html_text(content)
    spoiler = status.get("spoiler_text")
    if isinstance(spoiler, str) and spoiler.strip():
        text = f"{spoiler.strip()}\n\n{text}"
    account = status.get("account") if isinstance(status.get("account"), Mapping) else {}
    mentions = [m.get("acct") for m in status.get("mentions") or () if isinstance(m, Mapping)]
    tags = [t.get("name") for t in status.get("tags") or () if isinstance(t, Mapping)]
    language = status.get("language")
    url = status.get("url") or status.get("uri")
    return NetworkPost(
        id=str(status_id),
        text=text,
        created_at=str(status.get("created_at") or ""),
        author=str(account.get("acct") or ""),
        url=url if isinstance(url, str) else None,
        langs=(language,) if isinstance(language, str) and language else (),
        handles=tuple(str(m).split("@")[0] for m in mentions if isinstance(m, str) and m),
        tags=tuple(t for t in tags if isinstance(t, str) and t),
        followers=_count(account.get("followers_count")),
        likes=_count(status.get("favourites_count")),
        reposts=_count(status.get("reblogs_count")),
        replies=_count(status.get("replies_count")),
    )


def _status_clock(status: Mapping[str, Any]) -> float | None:
    try:
        return parse_timestamp(status.get("created_at")).timestamp()
    except RejectedInput:
        return None


def status_frame(status: Mapping[str, Any], edit: bool = False) -> Frame:
    """A Status (from the stream or a timeline page) as a frame: a post, an edit, or a boost to skip."""
    cursor = mastodon_cursor(status.get("id"))
    if status.get("reblog"):
        return Frame(FrameKind.SKIP, cursor, _status_clock(status))
    try:
        post = mastodon_post(status)
    except RejectedInput as rejection:
        return Frame.refused(rejection.reason, rejection.code, cursor)
    kind = FrameKind.EDIT if edit else FrameKind.POST
    return Frame(kind, cursor, _status_clock(status), post=post, post_id=post.id)


MASTODON_SKIPPED_EVENTS = frozenset({"filters_changed", "announcement", "announcement.reaction", "announcement.delete"})
"""Events a public stream may carry that say nothing about posts."""


def parse_mastodon(event: str, data: str, max_bytes: int = DEFAULT_MAX_FRAME_BYTES) -> Frame:
    """Read one server-sent event of Mastodon's streaming API; never raises."""
    size = len(data.encode("utf-8", "surrogatepass"))
    if size > max_bytes:
        return Frame.refused(f"event of {size} bytes; the limit is {max_bytes}", RejectionCode.TOO_LARGE)
    if event == "delete":
        status_id = data.strip()
        if not status_id:
            return Frame.refused("a delete event needs the status id", RejectionCode.MISSING_FIELD)
        return Frame(FrameKind.DELETE, post_id=status_id)
    if event in MASTODON_SKIPPED_EVENTS:
        return Frame(FrameKind.SKIP)
    if event not in ("update", "status.update"):
        return Frame.refused(f"unknown event {event[:40]!r}", RejectionCode.UNKNOWN_KIND)
    try:
        status = decode_json_object(data)
    except RejectedInput as rejection:
        return Frame.refused(rejection.reason, rejection.code)
    return status_frame(status, edit=event == "status.update")


def mastodon_page(body: bytes | str) -> list[Frame]:
    """A timeline page (a JSON array of statuses, newest first) as frames, oldest first."""
    try:
        statuses = json.loads(body)
    except (ValueError, RecursionError):
        return [Frame.refused("the timeline page is not JSON", RejectionCode.MALFORMED_JSON)]
    if not isinstance(statuses, list):
        return [Frame.refused("the timeline page is not a JSON array", RejectionCode.NOT_AN_OBJECT)]
    frames = [status_frame(s) if isinstance(s, Mapping) else _not_a_status(s) for s in statuses]
    return sorted(frames, key=lambda frame: frame.cursor or 0)


def _not_a_status(value: object) -> Frame:
    return Frame.refused(f"expected a status object, got {type(value).__name__}", RejectionCode.NOT_AN_OBJECT)
