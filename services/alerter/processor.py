"""The alerter's stream logic, apart from faust: mentions and actions in, incident events and state records out.

Each brand's working state lives in memory: its open buckets with the
digests of the ids counted in them, its detector state, and the offset of
the last source record applied to it. A mention costs a parse, a digest and
a few additions whatever the brand's volume; the state tables are written
once per batch for each brand the batch touched (:meth:`BrandProcessor.flush`),
and the detector state only when a bucket closed or a person acted.

Durability, with faust flushing the changelog before it commits offsets:

- ``buckets`` (key: brand) holds the open buckets' counts, samples and the
  digests of their first ids, the watermark, the buckets closed since the
  detector state was last written (counts only), and the offset of the last
  record applied per source topic. A record at or below that offset is a
  replay after a restart and is skipped, so a restart mid-bucket neither
  loses nor double-counts.
- ``seen`` (key: brand, bucket, chunk) holds the rest of a busy bucket's id
  digests, those added in one batch per key, 11 characters each; with the
  inline ones it is what catches a mention that the upstream services re-send
  across a restart. A bucket's chunks are deleted when it closes (its
  lateness has passed, so nothing can be re-counted).
- ``detector`` (key: brand) holds the :class:`DetectorState`. It is written
  when an incident event or an action changed it, and otherwise once
  ``SNAPSHOT_BUCKETS`` buckets have closed since the last write: a brand with
  a mention a minute closes a bucket with nearly every mention, and its state
  (hours of recent buckets) is far larger than the mention. On load the
  closed buckets listed in ``buckets`` are judged again on top of it, which
  gives back exactly the state the detector had (their sample posts are not
  kept; only an alert's examples can differ after a restart).

Records written by earlier versions (every mention id of the open buckets in
the ``buckets`` record) are read and rewritten in the new form.
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Callable, Iterable, Mapping, MutableMapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from crisiswatch.contracts.schemas import Incident, IncidentAction, IncidentEventType, SampleMention, ScoredMention
from crisiswatch.detection.actions import ActionOutcome, apply_action
from crisiswatch.detection.config import DetectorConfig
from crisiswatch.detection.lifecycle import judge
from crisiswatch.detection.state import BucketVerdict, DetectorState
from crisiswatch.detection.windows import (
    AddResult,
    BrandBuckets,
    Bucket,
    add_mention,
    bucket_start,
    close_ready,
    id_digest,
)
from crisiswatch.ingest.brands import BrandCatalog

log = logging.getLogger(__name__)
RECORD_VERSION = 2
DIGEST_CHARS = 11
INLINE_DIGESTS = 32
"""A bucket's first ids keep their digests in the brand's own record; more go to ``seen`` chunks."""
SNAPSHOT_BUCKETS = 30
"""Closed buckets after which the detector state is written even when nothing else changed it."""
KEY_SEPARATOR = "\x1f"
"""Between the parts of a ``seen`` key; brand ids never contain it (they are printable)."""

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
SAME_HOURS = timedelta(hours=6)
"""Incidents of one sector opened within this of each other surged "in the same hours"."""

Table = MutableMapping[str, Any]


@dataclass(frozen=True, slots=True)
class StateTables:
    """Where brand state outlives the process: faust's changelogged tables in the service, dicts in tests."""

    buckets: Table
    seen: Table
    detector: Table


@dataclass(slots=True)
class BrandReport:
    """What one brand's closed buckets came to in a batch (for metrics), and whether it is still learning."""

    brand: str
    verdicts: list[BucketVerdict]
    learning: bool


@dataclass(slots=True)
class _Brand:
    """One brand's working state (the in-memory form of its three records)."""

    buckets: BrandBuckets
    offsets: dict[str, int]
    chunks: dict[datetime, int]
    inline: dict[datetime, list[int]] = field(default_factory=dict)
    pending: list[Bucket] = field(default_factory=list)
    replay: list[Bucket] = field(default_factory=list)
    detector: DetectorState | None = None
    new_digests: dict[datetime, list[int]] = field(default_factory=dict)
    expired_chunks: list[tuple[datetime, int]] = field(default_factory=list)
    verdicts: list[BucketVerdict] = field(default_factory=list)
    snapshot_due: bool = False


class BrandProcessor:
    """Counts mentions into buckets, judges closed buckets and applies actions, brand by brand.

    Call :meth:`add` for each mention and :meth:`act` for each action in
    source order, then :meth:`flush` at the end of a batch: it writes the
    state of every brand the batch touched and returns their reports.
    Incident events come back from :meth:`add` and :meth:`act` as they happen.
    A brand's watermark never passes the ``clock`` and a mention dated more
    than ``max_future`` after it is refused (see :func:`add_mention`): one
    mis-dated post cannot make the brand's real mentions late.
    """

    def __init__(
        self,
        tables: StateTables,
        config: DetectorConfig,
        lateness: timedelta,
        max_future: timedelta = timedelta(minutes=5),
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        sectors: Mapping[str, str] | None = None,
    ) -> None:
        self.tables = tables
        self.sectors = dict(sectors or {})
        self._openings: dict[str, tuple[datetime, str]] = {}
        self.config = config
        self.lateness = lateness
        self.max_future = max_future
        self.clock = clock
        self._brands: dict[str, _Brand] = {}
        self._touched: set[str] = set()

    def add(
        self, mention: ScoredMention, source: str = "scored", offset: int | None = None
    ) -> tuple[AddResult, list[Incident]]:
        """Count one mention (``offset``: its position in ``source``, to skip replays); incidents it caused."""
        brand = self._brand(mention.brand)
        if not self._first_time(mention.brand, brand, source, offset):
            return AddResult.DUPLICATE, []
        digest = id_digest(mention.id)
        outcome = add_mention(brand.buckets, mention, self.config.bucket, digest, self.clock(), self.max_future)
        if outcome is AddResult.COUNTED:
            start = bucket_start(mention.created_at, self.config.bucket)
            inline = brand.inline.setdefault(start, [])
            (inline if len(inline) < INLINE_DIGESTS else brand.new_digests.setdefault(start, [])).append(digest)
        closed = close_ready(brand.buckets, self.config.bucket, self.lateness)
        if not closed:
            return outcome, []
        state = self._detector(mention.brand, brand)
        state.brand_name = mention.brand_name or state.brand_name
        state, verdicts = judge(state, closed, self.config)
        brand.detector = state
        brand.verdicts.extend(verdicts)
        incidents = [self._with_peers(incident) for verdict in verdicts for incident in verdict.incidents]
        brand.pending.extend(Bucket(b.start, b.total, b.negative, b.reach_negative) for b in closed)
        brand.snapshot_due |= bool(incidents) or len(brand.pending) >= SNAPSHOT_BUCKETS
        for bucket in closed:
            brand.inline.pop(bucket.start, None)
            brand.new_digests.pop(bucket.start, None)
            written = brand.chunks.pop(bucket.start, 0)
            brand.expired_chunks.extend((bucket.start, chunk) for chunk in range(written))
        return outcome, incidents

    def act(
        self, action: IncidentAction, source: str = "actions", offset: int | None = None
    ) -> tuple[ActionOutcome, list[Incident]]:
        """Apply a person's action to the brand's incident; the events that update the alert."""
        brand = self._brand(action.brand)
        if not self._first_time(action.brand, brand, source, offset):
            return ActionOutcome.STALE, []
        state, outcome, incidents = apply_action(self._detector(action.brand, brand), action, self.config)
        if incidents:
            brand.detector, brand.snapshot_due = state, True
        return outcome, incidents

    def flush(self) -> list[BrandReport]:
        """Write the state of every brand touched since the last flush; a report per brand whose buckets closed."""
        reports: list[BrandReport] = []
        for name in self._touched:
            brand = self._brands[name]
            if brand.snapshot_due and brand.detector is not None:
                self.tables.detector[name] = brand.detector.model_dump(mode="json")
                brand.snapshot_due = False
                brand.pending.clear()
            for start, chunk in brand.expired_chunks:
                key = seen_key(name, start, chunk)
                if key in self.tables.seen:
                    del self.tables.seen[key]
            brand.expired_chunks.clear()
            for start, digests in brand.new_digests.items():
                chunk = brand.chunks.get(start, 0)
                self.tables.seen[seen_key(name, start, chunk)] = encode_digests(digests)
                brand.chunks[start] = chunk + 1
            brand.new_digests.clear()
            self.tables.buckets[name] = buckets_record(brand)
            if brand.verdicts and brand.detector is not None:
                reports.append(BrandReport(name, brand.verdicts, brand.detector.learning(self.config)))
                brand.verdicts = []
        self._touched.clear()
        return reports

    def _with_peers(self, incident: Incident) -> Incident:
        """An opening with the other brands of its sector that opened in the same hours; it is remembered for theirs."""
        if incident.event is not IncidentEventType.OPENED or incident.brand not in self.sectors:
            return incident
        name = incident.brand_name or incident.brand
        peers = sector_peers(incident.brand, incident.opened_at, self.sectors, self._openings)
        self._openings[incident.brand] = (incident.opened_at, name)
        return incident.model_copy(update={"sector_peers": peers}) if peers else incident

    def brands(self) -> list[str]:
        """The brands whose working state is in memory."""
        return list(self._brands)

    def forget(self, brands: Iterable[str]) -> None:
        """Drop the working state of brands whose partitions moved to another worker (it reloads if they return)."""
        for name in brands:
            self._brands.pop(name, None)
            self._touched.discard(name)

    def _first_time(self, name: str, brand: _Brand, source: str, offset: int | None) -> bool:
        """Whether the record at ``offset`` of ``source`` is new to the brand (not a replay); marks it applied."""
        if offset is not None:
            if offset <= brand.offsets.get(source, -1):
                return False
            brand.offsets[source] = offset
        self._touched.add(name)
        return True

    def _brand(self, name: str) -> _Brand:
        brand = self._brands.get(name)
        if brand is None:
            brand = self._brands[name] = self._load(name)
        return brand

    def _load(self, name: str) -> _Brand:
        stored = self.tables.buckets.get(name)
        if not stored:
            return _Brand(BrandBuckets(), {}, {})
        if stored.get("v") != RECORD_VERSION:
            log.info("migrating a brand's bucket state to the per-bucket form", extra={"brand": name})
            migrated = _Brand(buckets_from_v1(stored), {}, {})
            migrated.new_digests = {b.start: list(b.seen) for b in migrated.buckets.open if b.seen}
            self._touched.add(name)
            return migrated
        brand = brand_from_record(stored)
        for bucket in brand.buckets.open:
            for chunk in range(brand.chunks.get(bucket.start, 0)):
                bucket.seen.update(decode_digests(self.tables.seen.get(seen_key(name, bucket.start, chunk)) or ""))
        return brand

    def _detector(self, name: str, brand: _Brand) -> DetectorState:
        if brand.detector is None:
            stored = self.tables.detector.get(name)
            state = DetectorState.model_validate(stored) if stored else DetectorState.fresh(name, self.config)
            last = state.recent[-1].start if state.recent else None
            replay = [b for b in brand.replay if last is None or b.start > last]
            brand.detector = judge(state, replay, self.config)[0] if replay else state
            brand.replay = []
        return brand.detector


def seen_key(brand: str, start: datetime, chunk: int) -> str:
    """The ``seen`` table's key for one batch's digests of one bucket; it starts with the brand (its partition)."""
    return f"{brand}{KEY_SEPARATOR}{start:%Y%m%dT%H%M%S}{KEY_SEPARATOR}{chunk}"


def brand_of_key(key: str) -> str:
    """The brand a state key belongs to (a ``seen`` key, or a brand itself)."""
    return key.split(KEY_SEPARATOR, 1)[0]


def encode_digests(digests: Iterable[int]) -> str:
    """Digests as one string of 11-character URL-safe base64 pieces."""
    return "".join(base64.urlsafe_b64encode(d.to_bytes(8, "big")).decode()[:DIGEST_CHARS] for d in digests)


def decode_digests(text: str) -> set[int]:
    """The digests :func:`encode_digests` wrote."""
    return {
        int.from_bytes(base64.urlsafe_b64decode(text[i : i + DIGEST_CHARS] + "="), "big")
        for i in range(0, len(text), DIGEST_CHARS)
    }


def buckets_record(brand: _Brand) -> dict[str, Any]:
    """The ``buckets`` record of a brand, compact: it is written for every batch that touches the brand.

    Times are integers (microseconds for the watermark, seconds for bucket
    starts). ``o``: open buckets as ``[start, total, negative, reach, inline
    digests, chunks written]``; ``c``: buckets closed since the detector state
    was written, ``[start, total, negative, reach]``; ``s``: offsets applied.
    Open buckets' sample posts are not kept: after a restart an alert's
    examples come from the buckets that close from then on.
    """
    buckets = brand.buckets
    return {
        "v": RECORD_VERSION,
        "w": _micros(buckets.watermark),
        "n": _micros(buckets.next_to_close),
        "s": brand.offsets,
        "o": [
            [
                _seconds(b.start),
                b.total,
                b.negative,
                b.reach_negative,
                encode_digests(brand.inline.get(b.start, ())),
                brand.chunks.get(b.start, 0),
            ]
            for b in buckets.open
        ],
        "c": [[_seconds(b.start), b.total, b.negative, b.reach_negative] for b in brand.pending],
    }


def brand_from_record(record: dict[str, Any]) -> _Brand:
    """Read back what :func:`buckets_record` wrote (the ``seen`` chunks are read by the caller)."""
    buckets = BrandBuckets(watermark=_from_micros(record.get("w")), next_to_close=_from_micros(record.get("n")))
    brand = _Brand(buckets, {str(k): int(v) for k, v in record.get("s", {}).items()}, {})
    for start_s, total, negative, reach, inline, written in record.get("o", []):
        start = _from_seconds(start_s)
        bucket = Bucket(start, total, negative, reach)
        brand.inline[start] = list(decode_digests(inline))
        bucket.seen.update(brand.inline[start])
        buckets.open.append(bucket)
        brand.chunks[start] = written
    brand.pending = [
        Bucket(_from_seconds(s), total, negative, reach) for s, total, negative, reach in record.get("c", [])
    ]
    brand.replay = list(brand.pending)
    return brand


def buckets_from_v1(record: dict[str, Any]) -> BrandBuckets:
    """Read a record of the earlier form, which kept every id of the open buckets in the record itself."""
    buckets = BrandBuckets(watermark=_parse(record.get("watermark")), next_to_close=_parse(record.get("next_to_close")))
    for stored in record.get("open", []):
        bucket = Bucket(
            datetime.fromisoformat(stored["start"]),
            stored.get("total", 0),
            stored.get("negative", 0),
            stored.get("reach_negative", 0),
            [SampleMention.model_validate(s) for s in stored.get("samples", [])],
        )
        bucket.seen.update(id_digest(mention_id) for mention_id in stored.get("ids", []))
        buckets.open.append(bucket)
    return buckets


def _micros(moment: datetime | None) -> int | None:
    return None if moment is None else round((moment - EPOCH) / timedelta(microseconds=1))


def _from_micros(micros: int | None) -> datetime | None:
    return None if micros is None else EPOCH + timedelta(microseconds=micros)


def _seconds(moment: datetime) -> int:
    return round((moment - EPOCH).total_seconds())


def _from_seconds(seconds: int) -> datetime:
    return EPOCH + timedelta(seconds=seconds)


def _parse(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text)


def sector_peers(
    brand: str, opened_at: datetime, sectors: Mapping[str, str], openings: Mapping[str, tuple[datetime, str]]
) -> list[str]:
    """The other brands of ``brand``'s sector whose last incident opened within ``SAME_HOURS`` of ``opened_at``.

    ``openings`` maps a brand to when its last incident opened and its name;
    the names come back, in the order the incidents opened. Each brand is
    still alerted on its own: this only says, in its alert, that the others
    rose too.
    """
    sector = sectors.get(brand)
    if not sector:
        return []
    near = [
        (moment, name)
        for other, (moment, name) in openings.items()
        if other != brand and sectors.get(other) == sector and abs(opened_at - moment) <= SAME_HOURS
    ]
    return [name for _, name in sorted(near)]


def brand_sectors(brands_file: Path) -> dict[str, str]:
    """Each brand's sector from ``brands_file``; none, logged, when it cannot be read (sectors only add context)."""
    try:
        return BrandCatalog.from_file(brands_file).sectors()
    except (OSError, ValueError) as error:
        log.warning("no sector context: the brands file cannot be read", extra={"error": str(error)[:300]})
        return {}
