"""The real recorded streams in ``../shared/data/streams/`` as bucket counts, and the detector judged on them.

Two real streams nobody here wrote, one fold each in the detector's
validation (:mod:`.validation`): FCC consumer complaints about Comcast in
2015 (every row a complaint, so every row is a negative mention; a real surge
on 23-24 June) and tweets about Apple in December 2014 with crowd sentiment (a
calm week). Each is read into event times, counted into the detector's
buckets and judged by the same functions the live alerter runs (a backtest's
:func:`~.backtest.replay`); the incidents it opens are compared with the windows
labelled in ``benchmarks/stream_incidents.csv``.
"""

from __future__ import annotations

import contextlib
import csv
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import numpy as np

from crisiswatch.contracts.schemas import IncidentEventType, ScoredMention, Sentiment
from crisiswatch.detection.config import DetectorConfig

from .backtest import LABELLED_MODEL, one_hot, replay
from .compare import KnownIncident, load_known

COMCAST_FILE = "comcast_complaints_2015.csv"
APPLE_FILE = "apple_twitter_sentiment_dec2014.csv"
DEFAULT_LABELS = Path(__file__).resolve().parents[2] / "benchmarks" / "stream_incidents.csv"
"""The incident windows labelled by hand on the real streams (``brand,start,end,reason``)."""


@dataclass(frozen=True)
class Event:
    """One mention of a real stream: its id, when, whether it is negative, and its words."""

    id: str
    at: datetime
    negative: bool
    text: str


def _comcast_day(text: str, ticket: int, tickets: np.ndarray, ordinals: np.ndarray) -> date:
    """The filing date of a complaint: ``dd-mm-yyyy``, unless that disagrees with the ticket order.

    Days up to 12 read both ways; the ticket numbers rise with time, so the
    reading nearer the date that neighbouring unambiguous tickets give wins.
    """
    first, second, year = (int(part) for part in text.split("-"))
    readings = [date(year, second, first)]
    if first <= 12 and second <= 31 and first != second:
        with contextlib.suppress(ValueError):
            readings.append(date(year, first, second))
    if len(readings) == 1:
        return readings[0]
    expected = float(np.interp(ticket, tickets, ordinals))
    return min(readings, key=lambda reading: abs(reading.toordinal() - expected))


def read_comcast(path: Path) -> list[Event]:
    """Every complaint's filing time (UTC taken for the unstated local time), each a negative mention."""
    with path.open(encoding="utf-8", newline="") as handle:
        rows = [row for row in csv.DictReader(handle) if row["Ticket #"].strip().isdigit()]
    clear = sorted(
        (int(row["Ticket #"]), datetime.strptime(row["Date"], "%d-%m-%Y").date().toordinal())
        for row in rows
        if int(row["Date"][:2]) > 12
    )
    tickets = np.asarray([t for t, _ in clear], dtype=float)
    ordinals = np.asarray([o for _, o in clear], dtype=float)
    events = []
    for row in rows:
        day = _comcast_day(row["Date"], int(row["Ticket #"]), tickets, ordinals)
        clock = datetime.strptime(row["Time"].strip(), "%I:%M:%S %p").time()
        at = datetime.combine(day, clock, UTC)
        events.append(Event(row["Ticket #"], at, True, row["Customer Complaint"].strip() or "complaint"))
    return sorted(events, key=lambda event: event.at)


def read_apple(path: Path) -> list[Event]:
    """Every tweet judged relevant by the crowd; negative when its sentiment is 1 (of 1, 3, 5)."""
    with path.open(encoding="latin-1", newline="") as handle:
        rows = [row for row in csv.DictReader(handle) if row["sentiment"].strip() in ("1", "3", "5")]
    events = [
        Event(
            row["_unit_id"],
            datetime.strptime(row["date"], "%a %b %d %H:%M:%S %z %Y").astimezone(UTC),
            row["sentiment"] == "1",
            row["text"].strip() or "tweet",
        )
        for row in rows
    ]
    return sorted(events, key=lambda event: event.at)


def to_mentions(events: Iterable[Event], brand: str) -> list[ScoredMention]:
    """The events as the classifier would publish them, labelled with the stream's own sentiment (no model)."""
    return [
        ScoredMention(
            id=event.id,
            source="stream",
            brand=brand,
            text=event.text,
            created_at=event.at,
            label=(label := Sentiment.NEGATIVE if event.negative else Sentiment.NEUTRAL),
            scores=one_hot(label),
            model=LABELLED_MODEL,
        )
        for event in events
    ]


def opened_incidents(mentions: Sequence[ScoredMention], config: DetectorConfig) -> list[datetime]:
    """When the detector, replaying ``mentions`` as the live alerter would from a fresh start, opens each incident."""
    replays = replay(mentions, config)
    return [i.opened_at for r in replays.values() for i in r.incidents if i.event is IncidentEventType.OPENED]


@dataclass(frozen=True)
class StreamOutcome:
    """One stream against its labelled windows: each window's delay (None: missed) and the unwanted openings."""

    stream: str
    windows: int
    delays: tuple[timedelta | None, ...]
    unwanted: tuple[datetime, ...]

    @property
    def caught(self) -> int:
        """Labelled windows an incident opened in."""
        return sum(delay is not None for delay in self.delays)


def judge_stream(stream: str, opened: Sequence[datetime], known: Sequence[KnownIncident]) -> StreamOutcome:
    """Which labelled windows of ``stream`` an opening fell in (and how late), and which openings nobody wanted."""
    windows = [k for k in known if k.brand == stream]
    delays = []
    wanted: set[datetime] = set()
    for window in windows:
        inside = [moment for moment in opened if window.start <= moment <= window.end]
        delays.append(inside[0] - window.start if inside else None)
        wanted.update(inside)
    return StreamOutcome(stream, len(windows), tuple(delays), tuple(m for m in opened if m not in wanted))


STREAM_READERS = {"comcast": (COMCAST_FILE, read_comcast), "apple": (APPLE_FILE, read_apple)}
"""Each real stream's fold name, its file under ``streams/`` and its reader."""


def stream_mentions(streams_dir: Path) -> dict[str, list[ScoredMention]]:
    """The real streams found under ``streams_dir`` as labelled mentions (those whose file is absent are left out)."""
    found = {}
    for name, (file_name, reader) in STREAM_READERS.items():
        path = streams_dir / file_name
        if path.is_file():
            found[name] = to_mentions(reader(path), name)
    return found


def run_streams(
    streams: dict[str, list[ScoredMention]], config: DetectorConfig, labels: Path = DEFAULT_LABELS
) -> dict[str, StreamOutcome]:
    """Each real stream through the detector and against its labelled windows."""
    known = load_known(labels)
    return {name: judge_stream(name, opened_incidents(mentions, config), known) for name, mentions in streams.items()}
