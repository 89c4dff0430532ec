"""Input sources: recorded files (JSONL or CSV) and generated scenarios, replayed with their timing."""

from __future__ import annotations

import csv
import json
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from .records import DEFAULT_MAPPING, FieldMapping, RejectedInput, parse_timestamp

RawRecord = bytes | Mapping[str, Any]


def read_file(path: Path) -> Iterator[RawRecord]:
    """Yield a file's records: raw JSON lines (validated downstream) or CSV rows as dicts."""
    if path.suffix.lower() == ".csv":
        with path.open(encoding="utf-8", errors="surrogateescape", newline="") as handle:
            yield from csv.DictReader(handle)
        return
    with path.open("rb") as handle:
        for line in handle:
            if line.strip():
                yield line.rstrip(b"\r\n")


def event_time(record: RawRecord, mapping: FieldMapping) -> datetime | None:
    """A record's ``created_at`` as aware UTC, or None when it has none readable."""
    try:
        parsed = record if isinstance(record, Mapping) else json.loads(record)
        if not isinstance(parsed, Mapping):
            return None
        value: Any = parsed
        for part in mapping.created_at.split("."):
            value = value.get(part) if isinstance(value, Mapping) else None
        return parse_timestamp(value, mapping.timezone)
    except (ValueError, RejectedInput, RecursionError, UnicodeDecodeError):
        return None


def paced(
    records: Iterable[RawRecord],
    speed: float,
    mapping: FieldMapping = DEFAULT_MAPPING,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
    should_stop: Callable[[], bool] = lambda: False,
    accept: Callable[[datetime], bool] = lambda _: True,
) -> Iterator[RawRecord]:
    """Release records on their recorded timing divided by ``speed`` (0 = as fast as possible).

    Records without a readable timestamp, or with one ``accept`` refuses (a
    year-9999 line), pass through at once without moving the clock: they will
    be rejected downstream with the reason, and one of them must not hold the
    replay for centuries.
    """
    first_event: datetime | None = None
    started = clock()
    for record in records:
        if should_stop():
            return
        if speed > 0:
            moment = event_time(record, mapping)
            if moment is not None and accept(moment):
                first_event = first_event or moment
                due = started + (moment - first_event).total_seconds() / speed
                while (wait := due - clock()) > 0 and not should_stop():
                    sleep(min(wait, 0.25))
        yield record
